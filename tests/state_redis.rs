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
use std::process::Stdio;
use std::time::{Duration, Instant};

use redis_server::RedisServer;

#[path = "common/runs.rs"]
mod runs;

use runs::*;

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
    let team = team(dir.path(), &addr, "", 2, "    window_guard: 1s\n");
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
    let team = team(dir.path(), &addr, "", 4, "    window_guard: 1s\n");
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
    let team = team(dir.path(), "127.0.0.1:9", "", 2, "    window_guard: 1s\n");
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
    let out = validate_team(
        dir.path(),
        "agents:\n  - id: a\n    backend: {type: simulated, model: sim}\nrate_limit:\n  store:\n    url: redis://h/0\n    fail_open: true\n",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:7") && stderr.contains("rate_limit.store.fail_open"),
        "{stderr}"
    );
    let out = validate_team(
        dir.path(),
        "agents:\n  - id: a\n    backend: {type: simulated, model: sim}\nrate_limit:\n  store: state.db\n",
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:5")
            && stderr.contains("rate_limit.store")
            && stderr.contains("not a Redis URL"),
        "{stderr}"
    );
    // The mapping form with fail_open_local is accepted and shown.
    let out = validate_team(
        dir.path(),
        "agents:\n  - id: a\n    backend: {type: simulated, model: sim}\nrate_limit:\n  store: {url: 'redis://127.0.0.1:6399/0', fail_open_local: true}\n",
    );
    let stdout = text(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("Quota state: Redis redis://127.0.0.1:6399/0 (fail_open_local"),
        "{stdout}{}",
        text(&out.stderr)
    );
}
