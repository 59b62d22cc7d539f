//! Quota state shared through Redis: three `massgen-rs` processes started together on one key
//! with `--quota-store` (d), and the same while the Redis server is killed mid-run and started
//! again on the same port and data (e). The mock provider enforces the exact limit and answers
//! 429 past it: it must see no 429, never more than the limit in any window, and every run must
//! answer. Each test starts its own `redis-server` (append-only, fsync per write) and fails with
//! a clear message when it is not installed. The agents' limits hold each admission a second
//! longer than the mock's window (`window_guard: 1s`): on a loaded machine the time from a
//! grant to its arrival at the mock varies by more than the default guard.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/redis.rs"]
mod redis_server;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use redis_server::RedisServer;

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
            "gemini:\n  default:\n    windows: [{{requests: {LIMIT}, per: {secs}s}}]\n    startup_cooldown: 0s\n    window_guard: 1s\n"
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

fn spawn_runs(dir: &Path, team: &Path, url: &str, n: usize) -> Vec<std::process::Child> {
    (0..n)
        .map(|_| {
            bin(dir)
                .args(run_args(team))
                .arg("--quota-store")
                .arg(url)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

#[test]
fn three_processes_started_together_share_one_limit_through_redis() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (_mock, addr) = mock(dir.path(), 0, 2);
    let team = team(dir.path(), &addr, "", 2);
    let started = Instant::now();
    for child in spawn_runs(dir.path(), &team, &server.url(), 3) {
        let out = child.wait_with_output().unwrap();
        assert_answered(&out);
    }
    let admitted = assert_within_limit(&addr, 2);
    assert!(
        admitted > 2 * LIMIT,
        "three runs made only {admitted} calls"
    );
    assert!(started.elapsed() < Duration::from_secs(90));
}

#[test]
fn runs_wait_while_redis_restarts_and_finish_within_the_limit() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Slow answers and a longer window: the runs are still calling when the server goes.
    let (_mock, addr) = mock(dir.path(), 400, 4);
    let team = team(dir.path(), &addr, "", 4);
    let children = spawn_runs(dir.path(), &team, &server.url(), 3);
    std::thread::sleep(Duration::from_millis(1500));
    // SIGKILL: what was acknowledged is in the append-only file (fsync per write).
    server.stop(true);
    std::thread::sleep(Duration::from_secs(2));
    server.resume();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_answered(&out);
    }
    let admitted = assert_within_limit(&addr, 4);
    assert!(
        admitted > 2 * LIMIT,
        "three runs made only {admitted} calls"
    );
}

#[test]
fn validate_names_redis_and_an_unreachable_server_or_a_bad_url_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let team = team(dir.path(), "127.0.0.1:9", "", 2);
    let out = bin(dir.path())
        .args(["--config", team.to_str().unwrap(), "--validate"])
        .args([
            "--state",
            "none",
            "--quota-store",
            "redis://:pw@127.0.0.1:6399/2",
        ])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("Quota state: Redis redis://:***@127.0.0.1:6399/2")
            && !stdout.contains(":pw@"),
        "{stdout}"
    );
    // Nobody listens there: the run stops at once, naming the server (password masked).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:pw@127.0.0.1:{port}/0");
    let out = bin(dir.path())
        .args(run_args(&team))
        .args(["--quota-store", &url])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("redis://:***@127.0.0.1:{port}/0"))
            && stderr.contains("unreachable")
            && !stderr.contains(":pw@"),
        "{stderr}"
    );
    let out = bin(dir.path())
        .args(run_args(&team))
        .args(["--quota-store", "quota.db"])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && text(&out.stderr).contains("not a Redis URL"),
        "{}",
        text(&out.stderr)
    );
    // In the team file: named with its file, key path and line.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "agents:\n  - id: a\n    backend: {type: simulated, model: sim}\nrate_limit:\n  store:\n    url: redis://h/0\n    fail_open: true\n",
    )
    .unwrap();
    let out = bin(dir.path())
        .args(["--config", bad.to_str().unwrap(), "--validate"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:7") && stderr.contains("rate_limit.store.fail_open"),
        "{stderr}"
    );
    std::fs::write(
        &bad,
        "agents:\n  - id: a\n    backend: {type: simulated, model: sim}\nrate_limit:\n  store: state.db\n",
    )
    .unwrap();
    let out = bin(dir.path())
        .args(["--config", bad.to_str().unwrap(), "--validate"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:5")
            && stderr.contains("rate_limit.store")
            && stderr.contains("not a Redis URL"),
        "{stderr}"
    );
    // The mapping form with fail_open_local is accepted and shown.
    std::fs::write(
        &bad,
        "agents:\n  - id: a\n    backend: {type: simulated, model: sim}\nrate_limit:\n  store: {url: 'redis://127.0.0.1:6399/0', fail_open_local: true}\n",
    )
    .unwrap();
    let out = bin(dir.path())
        .args(["--config", bad.to_str().unwrap(), "--validate"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("Quota state: Redis redis://127.0.0.1:6399/0 (fail_open_local"),
        "{stdout}{}",
        text(&out.stderr)
    );
}
