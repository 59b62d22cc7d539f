//! MassGen itself (the Python package, installed by `.ci/setup` into its own virtual environment
//! under `target/`) running a team against the gateway: on loopback only, in a temporary
//! directory, for a bounded time.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The gateway client key MassGen's backends send.
pub const CLIENT_KEY: &str = "massgen-client-key";

/// The gateway's model name the team uses. A name MassGen's pricing table knows: for any other
/// MassGen 0.1.97 downloads a price list from the internet after every call.
pub const MODEL: &str = "gpt-4o-mini";

/// Where `.ci/setup` installs MassGen, relative to the project.
pub const VENV: &str = "target/massgen-venv";

/// The longest a MassGen run may take before it is killed.
const KILL_AFTER: Duration = Duration::from_secs(400);

/// The `massgen` command of the project's MassGen environment; fails the test, never skips it,
/// when it is missing or does not start.
pub fn installed() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(VENV)
        .join("bin")
        .join("massgen");
    assert!(
        bin.is_file(),
        "MassGen is not installed at {VENV}/bin/massgen: run .ci/setup, which installs it there \
         (the `massgen` Python package in a virtual environment of its own)"
    );
    bin
}

/// What a MassGen run printed and how it ended.
pub struct Run {
    /// It exited with status 0 within the time allowed.
    pub success: bool,
    /// The final answer: the text of the file `--automation`'s `ANSWER:` line names.
    pub answer: String,
    /// Everything it printed, for failure messages.
    pub output: String,
    /// The first line of every connection made to the proxy trap: attempts to reach a host
    /// other than loopback.
    pub strays: Vec<String>,
}

/// Writes a team of three `chatcompletion` agents on the gateway's model [`MODEL`] and runs
/// `massgen --automation` on `question` in a fresh temporary directory, with no provider
/// keys, a time limit, and every proxy variable naming a loopback port of the test's that
/// answers nothing: a library that honours them and tries another host shows up in
/// [`Run::strays`] instead of leaving the machine.
///
/// The key goes in `OPENAI_API_KEY`: MassGen 0.1.97's `chatcompletion` backend fails to start
/// with an `api_key` in the file ("got multiple values for keyword argument 'api_key'"), and
/// its OpenAI client reads the variable when the file has none.
pub fn run_team(massgen: &Path, gateway: &str, question: &str) -> Run {
    let work = tempfile::tempdir().unwrap();
    let agent = |id: &str| {
        format!(
            "  - id: {id}\n    backend:\n      type: chatcompletion\n      model: {MODEL}\n      \
             base_url: http://{gateway}/v1\n"
        )
    };
    let config = format!(
        "agents:\n{}{}{}\
         ui:\n  display_type: simple\n  logging_enabled: true\n\
         timeout_settings:\n  orchestrator_timeout_seconds: 300\n",
        agent("agent_a"),
        agent("agent_b"),
        agent("agent_c"),
    );
    let file = work.path().join("team.yaml");
    std::fs::write(&file, config).unwrap();
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", trap.local_addr().unwrap());
    trap.set_nonblocking(true).unwrap();
    let nowhere = nowhere.as_str();
    let mut cmd = Command::new(massgen);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("TERM", "dumb")
        .env("OPENAI_API_KEY", CLIENT_KEY)
        .env("HTTP_PROXY", nowhere)
        .env("HTTPS_PROXY", nowhere)
        .env("ALL_PROXY", nowhere)
        .env("http_proxy", nowhere)
        .env("https_proxy", nowhere)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("HF_HUB_OFFLINE", "1")
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("DO_NOT_TRACK", "1")
        .env("MASSGEN_LOGFIRE_ENABLED", "false")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(work.path())
        .args(["--config", file.to_str().unwrap(), "--automation"])
        .args(["--orchestrator-timeout", "300", question])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run .ci/setup to install MassGen",
            massgen.display()
        )
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let began = Instant::now();
    let mut strays = Vec::new();
    let status = loop {
        drain(&trap, &mut strays);
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if began.elapsed() > KILL_AFTER {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    drain(&trap, &mut strays);
    // `ANSWER:` names the file holding the final answer.
    let answer = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ANSWER:"))
        .map(|path| work.path().join(path.trim()))
        .and_then(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_default();
    let output = format!(
        "status: {status:?} after {:.0} s\n--- stdout\n{stdout}\n--- stderr\n{}",
        began.elapsed().as_secs_f64(),
        tail(&stderr, 4000)
    );
    Run {
        success: status.is_some_and(|s| s.success()),
        answer,
        output,
        strays,
    }
}

/// Takes the connections waiting at the proxy trap, keeps the first line of each (`CONNECT
/// host:443 ...`) and closes them, so the attempt fails at once.
fn drain(trap: &std::net::TcpListener, strays: &mut Vec<String>) {
    while let Ok((mut conn, _)) = trap.accept() {
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
        let mut head = [0u8; 200];
        let n = conn.read(&mut head).unwrap_or(0);
        let head = String::from_utf8_lossy(&head[..n]);
        strays.push(head.lines().next().unwrap_or_default().to_owned());
    }
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}
