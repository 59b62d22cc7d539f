//! Quota state that outlives a process: `massgen-rs` runs against the mock provider (which
//! enforces exact limits and answers 429 past them) with the SQLite state store, one after
//! another, after a `kill -9`, and three at once on one key. The mock must see no 429, never
//! more than the limit in any window, and every run must answer.
//!
//! The limit is 5 requests per 8 s (per 2 s for three processes) rather than per 60 s so each
//! test takes seconds: the store keeps every admission inside the window whatever its length.
//! A run of two agents makes 4 calls: two runs in one window are more than the limit, and a
//! process that does not know what the other spent draws 429s (checked by hand with
//! `--state none`: two 429s and a 60 s cooldown in the back-to-back case).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const LIMIT: usize = 5;

/// Stops a child process when the test ends, pass or fail.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary with fake keys, no RUST_LOG, and a state home inside `home` (never the user's).
fn bin(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_massgen-rs"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd.env_remove("RUST_LOG");
    cmd.env("XDG_STATE_HOME", home.join("state-home"));
    cmd.env("HOME", home);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A mock provider allowing `LIMIT` requests per `secs` per key and model, answering after
/// `latency_ms`.
fn mock(dir: &Path, latency_ms: u64, secs: u64) -> (Child, String) {
    let limits = dir.join("mock_limits.yaml");
    std::fs::write(
        &limits,
        format!("default:\n  windows: [{{requests: {LIMIT}, per: {secs}s}}]\n"),
    )
    .unwrap();
    let mut child = Child(
        bin(dir)
            .args(["mock-provider", "--listen", "127.0.0.1:0", "--latency"])
            .arg(latency_ms.to_string())
            .arg("--limits")
            .arg(&limits)
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
/// goes under `rate_limit:`. (Gemini sends no rate-limit headers on success, so a process that
/// does not know what another spent learns it only from a 429.)
fn team(dir: &Path, addr: &str, extra: &str, secs: u64) -> std::path::PathBuf {
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
            "gemini:\n  default:\n    windows: [{{requests: {LIMIT}, per: {secs}s}}]\n    startup_cooldown: 0s\n"
        ),
    )
    .unwrap();
    path
}

fn run_args(team: &Path) -> Vec<String> {
    vec![
        "--config".into(),
        team.display().to_string(),
        "--rate-limit".into(),
        "--no-run-dir".into(),
        "--automation".into(),
        "Name a prime number.".into(),
    ]
}

fn assert_answered(out: &Output) {
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("STATUS: completed"),
        "{stdout}{}",
        text(&out.stderr)
    );
}

fn get(addr: &str, path: &str) -> serde_json::Value {
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
fn assert_within_limit(addr: &str, secs: u64) -> usize {
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

#[test]
fn a_second_run_right_after_the_first_waits_for_what_the_first_spent() {
    let dir = tempfile::tempdir().unwrap();
    let (_mock, addr) = mock(dir.path(), 0, 8);
    // The default state file, under XDG_STATE_HOME.
    let team = team(dir.path(), &addr, "", 8);
    let state = dir.path().join("state-home/massgen-rs/state.db");
    // `--validate` reads the store without creating it.
    let validate = || {
        let out = bin(dir.path())
            .args(["--config", team.to_str().unwrap(), "--validate"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let before = validate();
    assert!(before.contains("no state recorded yet"), "{before}");
    assert!(!state.exists(), "--validate created the state file");
    for _ in 0..2 {
        let out = bin(dir.path()).args(run_args(&team)).output().unwrap();
        assert_answered(&out);
    }
    let admitted = assert_within_limit(&addr, 8);
    assert!(admitted > LIMIT, "two runs made only {admitted} calls");
    assert!(state.is_file(), "the default state file was not used");
    // Afterwards it says what the runs spent in the window (the second run's calls at least).
    let after = validate();
    let stored = after
        .split("Stored quota state:")
        .nth(1)
        .unwrap_or_default();
    let line = stored
        .lines()
        .find(|l| l.trim_start().starts_with("gemini/mock-gemini: "))
        .unwrap_or_else(|| panic!("{after}"));
    let used: usize = line
        .split(": ")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=LIMIT).contains(&used) && line.ends_with("/5 requests in the last 8 s"),
        "{after}"
    );
}

#[test]
fn a_run_started_right_after_one_killed_with_sigkill_respects_its_calls() {
    let dir = tempfile::tempdir().unwrap();
    // Slow answers: the first run is still calling when it is killed.
    let (_mock, addr) = mock(dir.path(), 1200, 8);
    let team = team(dir.path(), &addr, ", state: quota.db", 8);
    let mut first = Child(
        bin(dir.path())
            .args(run_args(&team))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_secs(3));
    // `Child::kill` sends SIGKILL.
    first.0.kill().unwrap();
    let status = first.0.wait().unwrap();
    assert!(
        !status.success(),
        "the first run ended before it was killed"
    );
    let before = get(&addr, "/stats")["total"]["admitted"].as_u64().unwrap();
    assert!(before >= 2, "the killed run made no calls");
    let out = bin(dir.path()).args(run_args(&team)).output().unwrap();
    assert_answered(&out);
    assert_within_limit(&addr, 8);
    assert!(dir.path().join("quota.db").is_file());
}

#[test]
fn three_processes_started_together_share_one_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (_mock, addr) = mock(dir.path(), 0, 2);
    let team = team(dir.path(), &addr, "", 2);
    let state = dir.path().join("shared.db");
    let started = Instant::now();
    let children: Vec<std::process::Child> = (0..3)
        .map(|_| {
            bin(dir.path())
                .args(run_args(&team))
                .arg("--state")
                .arg(&state)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_answered(&out);
    }
    let admitted = assert_within_limit(&addr, 2);
    assert!(
        admitted > 2 * LIMIT,
        "three runs made only {admitted} calls"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn validate_names_the_store_and_a_store_that_cannot_open_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let team = team(dir.path(), "127.0.0.1:9", "", 2);
    let out = bin(dir.path())
        .args(["--config", team.to_str().unwrap(), "--validate"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("Quota state: SQLite file")
            && stdout.contains("state-home/massgen-rs/state.db"),
        "{stdout}"
    );
    let out = bin(dir.path())
        .args([
            "--config",
            team.to_str().unwrap(),
            "--validate",
            "--state",
            "none",
        ])
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains("Quota state: in memory"),
        "{}",
        text(&out.stdout)
    );
    // A directory where the file should be.
    let blocked = dir.path().join("blocked.db");
    std::fs::create_dir(&blocked).unwrap();
    let out = bin(dir.path())
        .args(run_args(&team))
        .arg("--state")
        .arg(&blocked)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("quota state store") && stderr.contains(&blocked.display().to_string()),
        "{stderr}"
    );
    // In the team file: named with its file, key path and line.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "agents:\n  - id: a\n    backend: {type: simulated, model: sim}\nrate_limit:\n  state: ''\n",
    )
    .unwrap();
    let out = bin(dir.path())
        .args(["--config", bad.to_str().unwrap(), "--validate"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:5") && stderr.contains("rate_limit.state"),
        "{stderr}"
    );
}
