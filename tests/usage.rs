//! The usage ledger end to end: `massgen-rs` runs a team against the mock provider with a
//! state file, then `massgen-rs usage` reports the calls. Every figure is checked against what
//! the mock itself says it served (`GET /admissions`: one entry per admitted request with its
//! key, its tokens and the fault it was answered with), never against our own accounting.
//! Budgets (`rate_limit.budget`) are checked the same way, in `usage/budget.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use massgen::keys::ApiKey;

const KEY_A: &str = "usage-test-key-alpha-0001";
const KEY_B: &str = "usage-test-key-bravo-0002";

#[path = "common/runs.rs"]
mod runs;

use runs::{Child, bin, get, text};

#[path = "usage/budget.rs"]
mod budget;

/// A mock provider without limits, with `args` (`--faults ...`) after its address.
fn mock(dir: &Path, args: &[&str]) -> (Child, String) {
    runs::mock_with(dir, args)
}

/// Two agents on the Gemini dialect, each with a key of its own.
fn team(dir: &Path, addr: &str) -> std::path::PathBuf {
    let mut yaml = String::from("agents:\n");
    for (id, key) in [("a", KEY_A), ("b", KEY_B)] {
        yaml.push_str(&format!(
            "- id: {id}\n  backend: {{type: gemini, model: mock-gemini, \
             base_url: 'http://{addr}/v1beta', api_key: {key}}}\n"
        ));
    }
    let path = dir.join("team.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn usage(home: &Path, state: &Path, args: &[&str]) -> Output {
    bin(home)
        .arg("usage")
        .args(args)
        .arg("--state")
        .arg(state)
        .output()
        .unwrap()
}

/// What the mock served one key: (requests, of those faulted, input tokens and output tokens
/// of the answered ones).
#[derive(Debug, Default, PartialEq, Eq)]
struct Served {
    requests: u64,
    faulted: u64,
    input: u64,
    output: u64,
}

fn served_per_key(addr: &str) -> BTreeMap<String, Served> {
    let mut out: BTreeMap<String, Served> = BTreeMap::new();
    for a in get(addr, "/admissions").as_array().unwrap() {
        let s = out
            .entry(a["key"].as_str().unwrap().to_owned())
            .or_default();
        s.requests += 1;
        if a["fault"].is_null() {
            s.input += a["charged"]["input_tokens"].as_u64().unwrap();
            s.output += a["charged"]["output_tokens"].as_u64().unwrap();
        } else {
            s.faulted += 1;
        }
    }
    out
}

#[test]
fn the_ledger_reports_what_the_mock_served_per_agent_and_never_holds_a_key() {
    let dir = tempfile::tempdir().unwrap();
    // Every 4th request is answered with a 503.
    let (_mock, addr) = mock(dir.path(), &["--faults", "503:every=4"]);
    let team = team(dir.path(), &addr);
    let state = dir.path().join("ledger").join("state.db");
    let runs = dir.path().join("runs");
    for _ in 0..2 {
        let out = bin(dir.path())
            .arg("--config")
            .arg(&team)
            .arg("--state")
            .arg(&state)
            .arg("--runs-dir")
            .arg(&runs)
            .args(["--automation", "Name a prime number."])
            .output()
            .unwrap();
        assert!(
            out.status.success() && text(&out.stdout).contains("STATUS: completed"),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    let stats = get(&addr, "/stats");
    assert_eq!(stats["total"]["refused"], 0, "{stats}");
    let served = served_per_key(&addr);
    let label = |key: &str| format!("key:{}", ApiKey::new(key, "test").short_id());
    let (a, b) = (&served[&label(KEY_A)], &served[&label(KEY_B)]);
    assert!(
        a.faulted + b.faulted > 0,
        "no fault was injected: {served:?}"
    );

    let out = usage(dir.path(), &state, &["--by", "agent", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, (agent, s)) in rows.iter().zip([("a", a), ("b", b)]) {
        assert_eq!(row["group"], agent);
        assert_eq!(row["by"], "agent");
        assert_eq!(row["calls"], s.requests, "{agent}: {row} vs {s:?}");
        assert_eq!(row["errors"], s.faulted, "{agent}: {row} vs {s:?}");
        assert_eq!(row["ok"], s.requests - s.faulted, "{agent}: {row}");
        assert_eq!(row["rate_limited"], 0);
        assert_eq!(row["input_tokens"], s.input, "{agent}: {row} vs {s:?}");
        assert_eq!(row["output_tokens"], s.output, "{agent}: {row} vs {s:?}");
        // The mock's model has no price: the cost is unknown, not zero.
        assert_eq!(row["cost_usd"], serde_json::Value::Null);
        assert_eq!(row["unpriced_calls"], s.requests);
    }

    // CSV: a header, one row per key fingerprint (masked tail and short id, never the key).
    let out = usage(dir.path(), &state, &["--by", "key", "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("key,calls,ok,rate_limited,errors,input_tokens"),
        "{csv}"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    for (key, s) in [(KEY_A, a), (KEY_B, b)] {
        let id = ApiKey::new(key, "test").short_id();
        let row = lines.iter().find(|l| l.contains(&id)).unwrap();
        let tail = &key[key.len() - 4..];
        assert!(
            row.starts_with(&format!("****{tail}#{id},{},", s.requests)),
            "{row}"
        );
    }

    // The table: a total line and the footnote about the unknown price.
    let out = usage(dir.path(), &state, &["--by", "run"]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(table.contains("total") && table.contains("? "), "{table}");

    // Each run's status.json counts its own calls; together they are what the mock served.
    let mut calls = 0;
    for entry in std::fs::read_dir(&runs).unwrap() {
        let status = std::fs::read_to_string(entry.unwrap().path().join("status.json")).unwrap();
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        calls += status["usage"]["calls"].as_u64().unwrap();
        assert_eq!(status["usage"]["ledger"]["dropped"], 0, "{status}");
    }
    assert_eq!(calls, a.requests + b.requests);

    // Nothing of either key's secret is in the state file (or its write-ahead log).
    for entry in std::fs::read_dir(state.parent().unwrap()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for key in [KEY_A, KEY_B] {
            let secret = &key.as_bytes()[..key.len() - 4];
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "the key {key} is in the state directory"
            );
        }
    }
}

#[test]
fn an_empty_ledger_says_so_and_reading_creates_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("none-yet.db");
    let out = usage(dir.path(), &state, &["--since", "12h"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("no usage recorded since "),
        "{}",
        text(&out.stdout)
    );
    assert!(!state.exists());
    // A state file without records (a run with rate limiting only, say) says the same; JSON
    // stays parseable.
    massgen::store::SqliteStore::open(&state).unwrap();
    let out = usage(dir.path(), &state, &["--format", "json"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), "[]");
    assert!(text(&out.stderr).contains("no usage recorded since"));
    let out = bin(dir.path())
        .args(["usage", "--state", "none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("keeps no usage"),
        "{}",
        text(&out.stderr)
    );
    let out = usage(dir.path(), &state, &["--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--since `yesterday`"));
}
