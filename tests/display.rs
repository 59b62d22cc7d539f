//! The terminal display as a user sees it: the real binary runs in a tmux pane of a fixed size
//! (tmux from Debian's `tmux` package; `.ci/setup` installs it), the pane is read back while a
//! team waits for quota, and after the run the same pane must be a normal terminal again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Generous: a loaded two-core machine builds and runs other tests at the same time.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// A tmux server of this test only (its own socket), with one session; killed on drop.
struct Pane {
    socket: PathBuf,
    name: String,
}

impl Pane {
    /// A detached 120x40 session `tag` running `bash` in `dir`, with `env` set.
    fn start(dir: &Path, tag: &str, env: &[(&str, String)]) -> Pane {
        let probe = Command::new("tmux").arg("-V").output();
        assert!(
            probe.as_ref().is_ok_and(|o| o.status.success()),
            "tmux is needed by this test and was not found: run .ci/setup \
             (it installs Debian's `tmux` package), or `apt-get install tmux`"
        );
        let pane = Pane {
            socket: dir.join("tmux.sock"),
            name: format!("massgen-display-{}-{tag}", std::process::id()),
        };
        let mut cmd = pane.tmux();
        cmd.args([
            "new-session",
            "-d",
            "-s",
            &pane.name,
            "-x",
            "120",
            "-y",
            "40",
        ])
        .args(["-c", dir.to_str().unwrap()]);
        for (k, v) in env {
            cmd.args(["-e", &format!("{k}={v}")]);
        }
        // bash, not dash: after a Ctrl-C that the program handled (it exits 130 on its own),
        // bash goes on with the command line, so `echo exit=$?` still reports the code.
        cmd.args(["bash", "--norc", "--noprofile"]);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "tmux new-session: {}", text(&out));
        pane
    }

    fn tmux(&self) -> Command {
        let mut cmd = Command::new("tmux");
        // No user configuration: the same tmux everywhere.
        cmd.args(["-f", "/dev/null", "-S"]).arg(&self.socket);
        cmd.env_remove("TMUX");
        cmd
    }

    /// Types `line` and Enter.
    fn type_line(&self, line: &str) {
        let out = self
            .tmux()
            .args(["send-keys", "-t", &self.name, "-l", line])
            .output()
            .unwrap();
        assert!(out.status.success(), "send-keys: {}", text(&out));
        let out = self
            .tmux()
            .args(["send-keys", "-t", &self.name, "Enter"])
            .output()
            .unwrap();
        assert!(out.status.success(), "send-keys: {}", text(&out));
    }

    /// What the pane shows now (the alternate screen while one is up).
    fn capture(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        assert!(out.status.success(), "capture-pane: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The main screen's lines, scrollback included.
    fn history(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-S", "-200", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A tmux format of the pane: `#{alternate_on}`, `#{cursor_flag}`.
    fn format(&self, f: &str) -> String {
        let out = self
            .tmux()
            .args(["display-message", "-p", "-t", &self.name, f])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Polls the pane until `done` holds for what it shows; fails with the last screen.
    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if done(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; the pane shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").output();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Two simulated agents under a limit of two requests per 8 s (and a roomy rpm and tpm, for
/// more gauges): their first calls go at once, and the votes and the final answer wait several
/// seconds each for the window.
const TEAM: &str = "\
agents:
  - id: alpha
    backend: {type: simulated, model: sim-fast, simulated: {latency_ms: 200, seed: 1}}
  - id: beta
    backend: {type: simulated, model: sim-fast, simulated: {latency_ms: 200, seed: 2, vote_for: alpha}}
ui:
  display_type: rich_terminal
rate_limit:
  enable_rate_limit: true
  limits_file: limits.yaml
";

const LIMITS: &str = "\
simulated:
  default:
    rpm: 30
    tpm: 100000
    windows:
      - {requests: 2, per: 8s}
    concurrency: 2
    window_guard: 0s
";

/// The exit code the shell printed after the run (a line `exit=N`; the typed command line
/// shows `exit=$?`, which is not one).
fn exit_code(screen: &str) -> Option<i32> {
    screen
        .lines()
        .find_map(|l| l.trim().strip_prefix("exit=")?.parse().ok())
}

/// The whole-second ETA the quota strip shows (`blocked by requests/8s, ETA 6s`), if any.
fn strip_eta(screen: &str) -> Option<u64> {
    let at = screen.find("blocked by requests/8s, ETA ")?;
    let rest = &screen[at + "blocked by requests/8s, ETA ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let unit = rest[digits.len()..].chars().next()?;
    (unit == 's').then(|| digits.parse().ok()).flatten()
}

/// A pane in a fresh directory holding the team, running the team on a question.
fn start_run(tag: &str) -> (tempfile::TempDir, Pane) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("team.yaml"), TEAM).unwrap();
    std::fs::write(dir.path().join("limits.yaml"), LIMITS).unwrap();
    let pane = Pane::start(
        dir.path(),
        tag,
        &[
            ("TERM", "xterm-256color".to_owned()),
            // Quota state of this run stays in the test's directory.
            (
                "XDG_STATE_HOME",
                dir.path().join("state").display().to_string(),
            ),
            ("RUST_LOG", String::new()),
        ],
    );
    pane.type_line(&format!(
        "'{}' --config team.yaml --no-run-dir 'What is the capital of France?'; echo \"exit=$?\"",
        env!("CARGO_BIN_EXE_massgen-rs")
    ));
    (dir, pane)
}

/// The pane is a normal cooked terminal again: the alternate screen is left, the cursor
/// shown, and what is typed is echoed and run.
fn assert_restored(pane: &Pane) {
    let end = pane.capture();
    assert_eq!(
        pane.format("#{alternate_on}"),
        "0",
        "alternate screen left:\n{end}"
    );
    assert_eq!(
        pane.format("#{cursor_flag}"),
        "1",
        "cursor shown again:\n{end}"
    );
    pane.type_line(
        "stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo -e -icanon -e -echo; echo restored-ok",
    );
    let after = pane.wait_for("the shell to answer", RUN_TIMEOUT, |s| {
        s.lines().any(|l| l.trim() == "restored-ok")
    });
    // The typed command itself was echoed.
    assert!(after.contains("echo restored-ok"), "{after}");
    let modes: Vec<&str> = after
        .lines()
        .map(str::trim)
        .filter(|l| ["icanon", "echo", "-icanon", "-echo"].contains(l))
        .collect();
    assert_eq!(modes, ["icanon", "echo"], "{after}");
}

#[test]
fn the_display_shows_quota_waits_and_gives_the_terminal_back() {
    let (_dir, pane) = start_run("wait");

    // While a call waits for the window: the gauge of the full limit, and its ETA.
    let waiting = pane.wait_for("a quota wait on the display", RUN_TIMEOUT, |s| {
        s.contains("requests/8s 2/2") && strip_eta(s).is_some()
    });
    assert!(waiting.contains(" alpha "), "{waiting}");
    assert!(waiting.contains(" beta "), "{waiting}");
    assert!(waiting.contains("waiting for quota"), "{waiting}");
    assert!(waiting.contains("simulated/sim-fast"), "{waiting}");
    assert!(waiting.contains("in flight"), "{waiting}");
    assert!(waiting.contains("rpm 2/30"), "{waiting}");
    assert!(waiting.contains("tpm "), "{waiting}");
    assert_eq!(
        pane.format("#{alternate_on}"),
        "1",
        "the display is on the alternate screen"
    );
    // Echo is off while the display is up, so keys typed now (Enter too) neither show on
    // nor scroll the display; the line discipline is otherwise untouched.
    let tty = pane.format("#{pane_tty}");
    let modes = Command::new("stty")
        .args(["-F", &tty, "-a"])
        .output()
        .unwrap();
    let modes = String::from_utf8_lossy(&modes.stdout).into_owned();
    let words: Vec<&str> = modes.split_whitespace().collect();
    assert!(words.contains(&"-echo"), "{modes}");
    assert!(words.contains(&"icanon"), "{modes}");
    assert!(words.contains(&"isig"), "{modes}");
    pane.type_line("typed-while-the-display-is-up");
    // The ETA counts down while the call waits (it does not need a new event to move).
    let first = strip_eta(&waiting).unwrap();
    let later = pane.wait_for("the ETA to count down", RUN_TIMEOUT, |s| {
        strip_eta(s).is_some_and(|eta| eta < first)
    });
    assert!(!later.contains("typed-while"), "typed keys shown:\n{later}");
    assert!(
        later.starts_with("massgen-rs  elapsed"),
        "the display moved:\n{later}"
    );
    if let Ok(keep) = std::env::var("MASSGEN_DISPLAY_SCREEN") {
        // For the docs: the pane as captured during the wait.
        std::fs::write(keep, &waiting).unwrap();
    }

    // The run ends: the main screen is back with the winner and the answer.
    let end = pane.wait_for("the run to end", RUN_TIMEOUT, |s| exit_code(s).is_some());
    assert_eq!(exit_code(&end), Some(0), "{end}");
    let history = pane.history();
    assert!(history.contains("winner: "), "{history}");
    // What was typed during the display is discarded, not run by the shell afterwards.
    assert!(!history.contains("typed-while"), "{history}");
    assert!(history.contains("run completed in"), "{history}");
    assert!(
        history.contains("Final answer."),
        "the answer on stdout:\n{history}"
    );
    assert_restored(&pane);
}

#[test]
fn ctrl_c_stops_the_run_and_gives_the_terminal_back() {
    let (_dir, pane) = start_run("ctrl-c");
    pane.wait_for("a quota wait on the display", RUN_TIMEOUT, |s| {
        s.contains("requests/8s 2/2") && strip_eta(s).is_some()
    });
    let out = pane
        .tmux()
        .args(["send-keys", "-t", &pane.name, "C-c"])
        .output()
        .unwrap();
    assert!(out.status.success(), "send-keys: {}", text(&out));
    // The first Ctrl-C stops the run the orderly way: exit code 130, the best answer named.
    let end = pane.wait_for("the run to stop", RUN_TIMEOUT, |s| exit_code(s).is_some());
    assert_eq!(exit_code(&end), Some(130), "{end}");
    let history = pane.history();
    assert!(history.contains("run interrupted in"), "{history}");
    assert!(
        history.contains("interrupted: the best answer so far"),
        "{history}"
    );
    assert_restored(&pane);
}

/// Plain progress (stderr not a terminal) of a pooled team under the supervisor: the run's
/// record holds each pooled wait twice (the agent's `waiting_quota` state and the pool's
/// `no_model_available`), the lines show it once.
#[test]
fn plain_lines_show_a_pooled_wait_once() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let out = Command::new(env!("CARGO_BIN_EXE_massgen-rs"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .args(["--config", "configs/pool_team.yaml", "--runs-dir"])
        .arg(&runs)
        .arg("Which sort suits nearly sorted data?")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let run_dir = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    let recorded = |kind: &str| events.lines().filter(|l| l.contains(kind)).count();
    // The first calls wait out the startup cooldown: both events are recorded.
    assert!(recorded("\"no_model_available\"") > 0, "{events}");
    assert!(recorded("\"waiting_quota\"") > 0, "{events}");
    let waits = stderr
        .lines()
        .filter(|l| l.contains("waiting for quota"))
        .count();
    assert!(waits > 0, "{stderr}");
    assert!(waits <= recorded("\"waiting_quota\""), "{stderr}");
    assert!(
        !stderr.contains("no model of pool"),
        "a pooled wait shown twice:\n{stderr}"
    );
}
