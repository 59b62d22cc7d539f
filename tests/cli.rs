//! The `massgen-rs` binary as a user runs it: flags, exit codes, stdout/stderr, run directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_massgen-rs"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    // Keys for the example teams that name real providers: fake, never sent anywhere.
    for var in [
        "GEMINI_API_KEY",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GROQ_API_KEY",
        "TOGETHER_API_KEY",
        "OPENROUTER_API_KEY",
    ] {
        cmd.env(var, "test-key-not-real-0000");
    }
    cmd.env_remove("RUST_LOG");
    // Quota state of these runs goes to a directory of this test process, never the user's.
    cmd.env(
        "XDG_STATE_HOME",
        std::env::temp_dir().join(format!("massgen-rs-cli-tests-{}", std::process::id())),
    );
    cmd
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

/// A temporary directory holding `team.yaml` with `yaml`, and that file's path.
fn team_file(yaml: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("team.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_accepts_every_example_team() {
    let mut checked = 0;
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // The built-in limits and prices, and the gateway's file, are not teams.
        if !name.ends_with(".yaml")
            || name == "rate_limits.yaml"
            || name == "prices.yaml"
            || name == "pools.yaml"
            || name == "gateway.yaml"
        {
            continue;
        }
        let out = run(&["--config", &format!("configs/{name}"), "--validate"]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(stdout.contains("valid"), "{name}: {stdout}");
        assert!(
            stdout.contains("Effective limits per model"),
            "{name}: {stdout}"
        );
        assert!(
            !stdout.contains("test-key-not-real"),
            "{name}: a key was printed: {stdout}"
        );
        checked += 1;
    }
    assert!(checked >= 4, "expected the example teams, found {checked}");
}

#[test]
fn validate_shows_gemini_pro_limits() {
    let out = run(&["--config", "configs/gemini_team.yaml", "--validate"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("gemini/gemini-2.5-pro: 2 rpm, 120000 tpm, 48 rpd"),
        "{stdout}"
    );
    assert!(stdout.contains("startup cooldown 10s"), "{stdout}");
}

#[test]
fn config_errors_name_file_path_and_line_and_exit_2() {
    let (_dir, file) =
        team_file("agents:\n  - id: a\n    backend:\n      type: simulated\n      modle: sim\n");
    let out = run(&["--config", file.to_str().unwrap(), "--validate"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("team.yaml:5"), "{stderr}");
    assert!(stderr.contains("agents[0].backend"), "{stderr}");
    assert!(stderr.contains("model"), "did-you-mean expected: {stderr}");
}

#[test]
fn missing_config_or_question_is_a_usage_error() {
    let out = run(&["What is 2+2?"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--config"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["--config", "configs/simulated_team.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no question"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn help_has_examples_and_exit_codes() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    for needle in [
        "Examples:",
        "--rate-limit",
        "--validate",
        "mock-provider",
        "Exit codes:",
    ] {
        assert!(stdout.contains(needle), "missing {needle}: {stdout}");
    }
    let out = run(&["--version"]);
    assert!(
        text(&out.stdout).starts_with("massgen-rs "),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn mock_provider_help_documents_the_hostile_kinds() {
    let out = run(&["mock-provider", "--help"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    for needle in [
        "--faults",
        "hostile-huge",
        "99999999999999999999",
        "hostile-nan",
        "hostile-negative",
        "hostile-empty",
        "hostile-garbage",
        "hostile-exponent",
        "hostile-far-future",
        "hostile-past",
        "hostile-limits",
        "--groq",
    ] {
        assert!(stdout.contains(needle), "missing {needle}: {stdout}");
    }
}

#[test]
fn list_backends_names_every_supported_type() {
    let out = run(&["--list-backends"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    for kind in [
        "simulated",
        "chatcompletion",
        "openai",
        "groq",
        "gemini",
        "claude",
        "vllm",
    ] {
        assert!(stdout.contains(kind), "missing {kind}: {stdout}");
    }
}

fn fast_team(dir: &Path, fail: bool) -> std::path::PathBuf {
    let fail = if fail {
        "\n        fail: {always: true}"
    } else {
        ""
    };
    let mut yaml = String::from("agents:\n");
    for (i, id) in ["alpha", "beta", "gamma"].iter().enumerate() {
        yaml.push_str(&format!(
            "  - id: {id}\n    backend:\n      type: simulated\n      model: sim-test\n      simulated:\n        seed: {i}{fail}\n"
        ));
    }
    let path = dir.join("team.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn a_simulated_run_prints_the_answer_and_writes_the_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let team = fast_team(dir.path(), false);
    let runs = dir.path().join("runs");
    let answer_file = dir.path().join("answer.md");
    let out = run(&[
        "--config",
        team.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
        "--output-file",
        answer_file.to_str().unwrap(),
        "What is the capital of France?",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.trim().is_empty());
    assert_eq!(
        std::fs::read_to_string(&answer_file).unwrap().trim(),
        stdout.trim()
    );
    let run_dir = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("status.json")).unwrap())
            .unwrap();
    assert!(status["winner"].is_string(), "{status}");
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    assert!(events.lines().count() > 5, "{events}");
    for line in events.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON");
    }
}

#[test]
fn automation_prints_massgen_keys() {
    let dir = tempfile::tempdir().unwrap();
    let team = fast_team(dir.path(), false);
    let out = run(&[
        "--config",
        team.to_str().unwrap(),
        "--no-run-dir",
        "--automation",
        "2+2?",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for key in [
        "STATUS: completed",
        "QUESTION: 2+2?",
        "WINNER: ",
        "DURATION: ",
        "ANSWER: ",
    ] {
        assert!(stdout.contains(key), "missing {key}: {stdout}");
    }
}

#[test]
fn every_agent_failing_exits_3_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let team = fast_team(dir.path(), true);
    let out = run(&[
        "--config",
        team.to_str().unwrap(),
        "--no-run-dir",
        "-q",
        "question",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no agent succeeded"), "{stderr}");
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn validate_without_keys_warns_and_a_run_without_keys_is_a_config_error() {
    let mut cmd = bin();
    cmd.env_remove("GEMINI_API_KEY");
    let out = cmd
        .args(["--config", "configs/gemini_team.yaml", "--validate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("GEMINI_API_KEY"),
        "{}",
        text(&out.stderr)
    );
    let mut cmd = bin();
    cmd.env_remove("GEMINI_API_KEY");
    let out = cmd
        .args(["--config", "configs/gemini_team.yaml", "question"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("GEMINI_API_KEY") && stderr.contains("gemini_team.yaml:"),
        "{stderr}"
    );
}

/// Stops the mock provider child process when the test ends, pass or fail.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_team_runs_through_the_mock_provider_in_all_three_dialects_without_a_429() {
    let dir = tempfile::tempdir().unwrap();
    let limits = dir.path().join("mock_limits.yaml");
    // Tight enough to bind: 2 requests per 5 s per key and model, while each agent makes 2 or 3 calls.
    std::fs::write(&limits, "default:\n  windows: [{requests: 2, per: 5s}]\n").unwrap();
    let mut child = Child(
        bin()
            .args(["mock-provider", "--listen", "127.0.0.1:0", "--limits"])
            .arg(&limits)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let addr = mock_addr(&mut child);
    let team = dir.path().join("team.yaml");
    std::fs::write(
        &team,
        format!(
            "agents:\n\
             - id: oa\n  backend: {{type: chatcompletion, model: mock-a, base_url: 'http://{addr}/v1', api_key: key-oa-000000000000}}\n\
             - id: an\n  backend: {{type: claude, model: mock-b, base_url: 'http://{addr}/v1', api_key: key-an-000000000000}}\n\
             - id: ge\n  backend: {{type: gemini, model: mock-c, base_url: 'http://{addr}/v1beta', api_key: key-ge-000000000000}}\n\
             rate_limit: {{limits_file: limits.yaml}}\n"
        ),
    )
    .unwrap();
    // The team's own view of the same limits, slightly wider to absorb loopback jitter.
    std::fs::write(
        dir.path().join("limits.yaml"),
        "chatcompletion:\n  default:\n    windows: [{requests: 2, per: 5250ms}]\n\
         anthropic:\n  default:\n    windows: [{requests: 2, per: 5250ms}]\n\
         gemini:\n  default:\n    windows: [{requests: 2, per: 5250ms}]\n    startup_cooldown: 0s\n",
    )
    .unwrap();
    let out = run(&[
        "--config",
        team.to_str().unwrap(),
        "--rate-limit",
        "--no-run-dir",
        "--automation",
        "Name a prime number.",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("STATUS: completed"), "{stdout}");
    let stats = reqwest_free_get(&addr, "/stats");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    // The winner's key made three calls (answer, vote, presentation) against a limit of two
    // per window: the supervisor held the third back instead of drawing a 429.
    let busiest = stats["by_key_model"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["admitted"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(busiest >= 3, "{stats}");
    assert_eq!(
        stats["total"]["refused"], 0,
        "the mock refused requests: {stats}"
    );
}

/// A plain HTTP/1.1 GET over loopback, returning the body.
fn reqwest_free_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn granted_exactly_at_the_window_edge_is_not_refused_by_a_provider_with_latency() {
    // Four agents on one key with the same limits on both sides: without a window guard the
    // supervisor grants a request exactly one window after an earlier one, and the provider,
    // which counts arrivals, can see them less than a window apart and answer 429.
    let dir = tempfile::tempdir().unwrap();
    let mock_limits = dir.path().join("mock_limits.yaml");
    std::fs::write(
        &mock_limits,
        "default:\n  windows: [{requests: 2, per: 2s}]\n",
    )
    .unwrap();
    let mut child = Child(
        bin()
            .args([
                "mock-provider",
                "--listen",
                "127.0.0.1:0",
                "--latency",
                "30",
                "--limits",
            ])
            .arg(&mock_limits)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let addr = mock_addr(&mut child);
    let mut yaml = String::from("agents:\n");
    for id in ["a", "b", "c", "d"] {
        yaml.push_str(&format!(
            "- id: {id}\n  backend: {{type: chatcompletion, model: gpt-4o-mini, \
             base_url: 'http://{addr}/v1', api_key: shared-key-0000000000}}\n"
        ));
    }
    yaml.push_str("rate_limit: {limits_file: limits.yaml}\n");
    let team = dir.path().join("team.yaml");
    std::fs::write(&team, yaml).unwrap();
    std::fs::write(
        dir.path().join("limits.yaml"),
        "chatcompletion:\n  default:\n    windows: [{requests: 2, per: 2s}]\n    scope: per_key\n",
    )
    .unwrap();
    let out = run(&[
        "--config",
        team.to_str().unwrap(),
        "--rate-limit",
        "--no-run-dir",
        "-q",
        "Q?",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats: serde_json::Value =
        serde_json::from_str(&reqwest_free_get(&addr, "/stats")).unwrap();
    assert!(stats["total"]["admitted"].as_u64().unwrap() >= 5, "{stats}");
    assert_eq!(
        stats["total"]["refused"], 0,
        "the mock refused requests: {stats}"
    );
}

/// The address a `mock-provider` child prints on its first stderr line.
fn mock_addr(child: &mut Child) -> String {
    use std::io::{BufRead, BufReader};
    let stderr = child.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().unwrap().unwrap();
    // Keep reading so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let addr = first.rsplit("http://").next().unwrap().trim().to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{first}");
    addr
}

/// Sends `signal` (`INT`, `TERM`) to `pid` with the system's `kill`.
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Starts a slow simulated team (each call takes 2 s) writing into `runs`, waits until its run
/// directory exists and a first answer was written, then sends `signal`.
fn interrupt_a_run(signal: &str) -> (Output, tempfile::TempDir, std::path::PathBuf) {
    let (dir, team) = team_file(concat!(
        "agents:\n",
        "  - id: a\n",
        "    backend: {type: simulated, model: sim, simulated: {latency_ms: 2000, seed: 1}}\n",
        "  - id: b\n",
        "    backend: {type: simulated, model: sim, simulated: {latency_ms: 2000, seed: 2}}\n",
        "ui: {display_type: simple}\n",
    ));
    let runs = dir.path().join("runs");
    let child = bin()
        .args([
            "--config",
            team.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
            "Will you be stopped?",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let run_dir = loop {
        let found = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.join("answers")
                    .read_dir()
                    .is_ok_and(|mut d| d.next().is_some())
            });
        if let Some(p) = found {
            break p;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no answer was written"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    send_signal(child.id(), signal);
    (child.wait_with_output().unwrap(), dir, run_dir)
}

#[test]
fn ctrl_c_and_sigterm_write_the_status_and_exit_130() {
    for signal in ["INT", "TERM"] {
        let (out, _dir, run_dir) = interrupt_a_run(signal);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{signal}: {stderr}");
        assert!(stderr.contains("interrupted"), "{signal}: {stderr}");
        let status: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("status.json")).unwrap())
                .unwrap();
        assert_eq!(status["status"], "interrupted", "{signal}: {status}");
        // An answer once produced is not lost: the best one so far is the final answer file.
        assert!(
            !std::fs::read_to_string(run_dir.join("final_answer.md"))
                .unwrap()
                .trim()
                .is_empty()
        );
        let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
        let last: serde_json::Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
        assert_eq!(last["event"], "run_finished", "{signal}");
        assert_eq!(last["status"], "interrupted", "{signal}");
    }
}

#[test]
fn quota_waits_show_once_and_info_logs_need_verbose() {
    let (_dir, team) = team_file(concat!(
        "agents:\n",
        "  - id: a\n",
        "    backend: {type: simulated, model: sim-fast}\n",
        "  - id: b\n",
        "    backend: {type: simulated, model: sim-fast}\n",
        "ui: {display_type: simple}\n",
    ));
    let args = [
        "--config",
        team.to_str().unwrap(),
        "--no-run-dir",
        "--rate-limit",
        "Quiet?",
    ];
    let quiet = run(&args);
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    let stderr = text(&quiet.stderr);
    let waits = stderr
        .lines()
        .filter(|l| l.contains("waiting for quota"))
        .count();
    assert!(
        waits > 0,
        "the built-in simulated limits make the team wait: {stderr}"
    );
    assert!(!stderr.contains(" INFO "), "{stderr}");
    let mut verbose_args = vec!["-v"];
    verbose_args.extend_from_slice(&args);
    let verbose = run(&verbose_args);
    assert!(verbose.status.success());
    assert!(
        text(&verbose.stderr).contains(" INFO "),
        "{}",
        text(&verbose.stderr)
    );
}

#[test]
fn massgen_keys_warn_and_strict_refuses_them() {
    // One of MassGen's own example files: web search and code execution are MassGen features.
    let file = "tests/fixtures/massgen/basic/multi/gemini_gpt5nano_claude.yaml";
    let out = run(&["--config", file, "--validate"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let web: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("enable_web_search"))
        .collect();
    assert_eq!(web.len(), 1, "one warning for the key: {stderr}");
    assert!(
        web[0].starts_with(&format!(
            "warning: {file}:9:7: agents[0].backend.enable_web_search:"
        )),
        "{stderr}"
    );
    assert!(web[0].contains("cannot search the web"), "{stderr}");
    let out = run(&["--config", file, "--validate", "--strict"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 4, "every refused key at once: {stderr}");
    assert!(
        errors
            .iter()
            .all(|l| l.ends_with("(an error under --strict)"))
    );
}

#[test]
fn every_problem_of_a_file_is_printed_errors_first() {
    let (_dir, path) = team_file(
        "agents:\n  - id: a\n    backend: {type: gemini, model: m, temprature: 1, cwd: w}\n  - id: b\n    backend: {type: codex, model: m}\n",
    );
    let out = run(&["--config", path.to_str().unwrap(), "--validate"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let kinds: Vec<&str> = stderr
        .lines()
        .map(|l| l.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["error", "error", "warning"], "{stderr}");
    assert!(stderr.contains("Did you mean `temperature`?"), "{stderr}");
    assert!(
        stderr.contains("backend type `codex` is not supported"),
        "{stderr}"
    );
}
