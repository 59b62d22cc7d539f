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

use std::process::Stdio;
use std::time::{Duration, Instant};

#[path = "common/runs.rs"]
mod runs;

use runs::*;

#[test]
fn a_second_run_right_after_the_first_waits_for_what_the_first_spent() {
    let dir = tempfile::tempdir().unwrap();
    let (_mock, addr) = mock(dir.path(), 0, 8);
    // The default state file, under XDG_STATE_HOME.
    let team = team(dir.path(), &addr, "", 8, "");
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
    let team = team(dir.path(), &addr, ", state: quota.db", 8, "");
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
    let team = team(dir.path(), &addr, "", 2, "");
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
    let team = team(dir.path(), "127.0.0.1:9", "", 2, "");
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
    let out = validate_team(
        dir.path(),
        "agents:\n  - id: a\n    backend: {type: simulated, model: sim}\nrate_limit:\n  state: ''\n",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:5") && stderr.contains("rate_limit.state"),
        "{stderr}"
    );
}
