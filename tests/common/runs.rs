//! What the CLI tests of quota state share: the binary with a state home of the test's own, the
//! mock provider with an exact limit, a two-agent team on one key, and the check that the mock
//! saw no 429 and never more than the limit in any window.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

pub const LIMIT: usize = 5;

/// Stops a child process when the test ends, pass or fail.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary with fake keys, no RUST_LOG, and a state home inside `home` (never the user's).
pub fn bin(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_massgen-rs"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd.env_remove("RUST_LOG");
    cmd.env("XDG_STATE_HOME", home.join("state-home"));
    cmd.env("HOME", home);
    cmd
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A mock provider allowing `LIMIT` requests per `secs` per key and model, answering after
/// `latency_ms`.
pub fn mock(dir: &Path, latency_ms: u64, secs: u64) -> (Child, String) {
    let limits = dir.join("mock_limits.yaml");
    std::fs::write(
        &limits,
        format!("default:\n  windows: [{{requests: {LIMIT}, per: {secs}s}}]\n"),
    )
    .unwrap();
    let latency = latency_ms.to_string();
    let limits = limits.display().to_string();
    mock_with(dir, &["--latency", &latency, "--limits", &limits])
}

/// A mock provider started with `args` after its address (`--limits FILE`, `--faults ...`);
/// its address once it listens.
pub fn mock_with(dir: &Path, args: &[&str]) -> (Child, String) {
    let mut child = Child(
        bin(dir)
            .args(["mock-provider", "--listen", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    use std::io::{BufRead, BufReader};
    let stderr = child.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().unwrap().unwrap();
    std::thread::spawn(move || lines.for_each(drop));
    let addr = first.rsplit("http://").next().unwrap().trim().to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{first}");
    (child, addr)
}

/// A team of two agents on one Gemini key and model, with the same limit as the mock; `extra`
/// goes under `rate_limit:`, `limits_extra` under the limits file's model entry. (Gemini sends
/// no rate-limit headers on success, so a process that does not know what another spent learns
/// it only from a 429.)
pub fn team(
    dir: &Path,
    addr: &str,
    extra: &str,
    secs: u64,
    limits_extra: &str,
) -> std::path::PathBuf {
    let mut yaml = String::from("agents:\n");
    for id in ["a", "b"] {
        yaml.push_str(&format!(
            "- id: {id}\n  backend: {{type: gemini, model: mock-gemini, \
             base_url: 'http://{addr}/v1beta', api_key: shared-key-0000000000}}\n"
        ));
    }
    yaml.push_str(&format!(
        "rate_limit: {{limits_file: limits.yaml{extra}}}\n"
    ));
    let path = dir.join("team.yaml");
    std::fs::write(&path, yaml).unwrap();
    std::fs::write(
        dir.join("limits.yaml"),
        format!(
            "gemini:\n  default:\n    windows: [{{requests: {LIMIT}, per: {secs}s}}]\n    startup_cooldown: 0s\n{limits_extra}"
        ),
    )
    .unwrap();
    path
}

pub fn run_args(team: &Path) -> Vec<String> {
    vec![
        "--config".into(),
        team.display().to_string(),
        "--rate-limit".into(),
        "--no-run-dir".into(),
        "--automation".into(),
        "Name a prime number.".into(),
    ]
}

pub fn assert_answered(out: &Output) {
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("STATUS: completed"),
        "{stdout}{}",
        text(&out.stderr)
    );
}

pub fn get(addr: &str, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap()
}

/// The mock refused nothing, and no window of `secs` holds more than the limit. Returns how
/// many requests it admitted.
pub fn assert_within_limit(addr: &str, secs: u64) -> usize {
    let window_us = secs * 1_000_000;
    let stats = get(addr, "/stats");
    assert_eq!(stats["total"]["refused"], 0, "the mock drew 429s: {stats}");
    let log = get(addr, "/admissions");
    let times: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["at_us"].as_u64().unwrap())
        .collect();
    for &t in &times {
        let inside = times
            .iter()
            .filter(|&&u| u <= t && t < u + window_us)
            .count();
        assert!(
            inside <= LIMIT,
            "{inside} requests in the {secs} s up to {t} us: {times:?}"
        );
    }
    times.len()
}

/// `massgen-rs --config <team written from yaml> --validate` in `dir`.
pub fn validate_team(dir: &Path, yaml: &str) -> Output {
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, yaml).unwrap();
    bin(dir)
        .args(["--config", bad.to_str().unwrap(), "--validate"])
        .output()
        .unwrap()
}

/// `massgen-rs --config team --state state --runs-dir runs --automation "Name a prime
/// number."`: one run with its run directory under `runs` and its quota state and usage ledger
/// in `state` (add environment before running it).
pub fn state_run(dir: &Path, team: &Path, state: &Path, runs: &Path) -> Command {
    let mut cmd = bin(dir);
    cmd.arg("--config")
        .arg(team)
        .arg("--state")
        .arg(state)
        .arg("--runs-dir")
        .arg(runs)
        .args(["--automation", "Name a prime number."]);
    cmd
}
