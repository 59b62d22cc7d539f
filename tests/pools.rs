//! Teams on model pools end to end: `massgen-rs` runs agents on `backend: {type: pool, pool:
//! local}` whose pool (a pools file, `rate_limit.pools`) has three models served by the mock
//! provider, the first allowed only two requests a minute by the mock. What happened is read
//! from the mock (`GET /stats`: admitted and refused per model) and compared with what the run
//! wrote (`status.json`: calls per model and rotations), never taken from our own accounting.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;

#[path = "common/runs.rs"]
mod runs;

use runs::{Child, bin, get, mock_with, state_run, text};

/// What the mock allows the first model: one request per minute. The first agent to reach it
/// takes it; an agent keeps to the model its calls went to before unless that one is full (a
/// model new to an agent waits the supervisor's stagger while another admits at once), so that
/// agent's next call is over the limit, whichever agent it is.
const TIGHT_RPM: u64 = 1;

/// A mock that allows `mock-a` one request a minute and the other models anything.
fn mock(dir: &Path) -> (Child, String) {
    let limits = dir.join("mock_limits.yaml");
    std::fs::write(&limits, format!("mock-a: {{rpm: {TIGHT_RPM}}}\n")).unwrap();
    mock_with(dir, &["--limits", &limits.display().to_string()])
}

/// How the pool's models are reached: the OpenAI-compatible dialect (its answers carry
/// `x-ratelimit-*` headers) or Gemini's (no rate-limit headers on success: a limit shows only
/// in a 429).
#[derive(Clone, Copy)]
enum Dialect {
    OpenAi,
    Gemini,
}

impl Dialect {
    fn provider(self) -> &'static str {
        match self {
            Dialect::OpenAi => "chatcompletion",
            Dialect::Gemini => "gemini",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Dialect::OpenAi => "v1",
            Dialect::Gemini => "v1beta",
        }
    }
}

/// A pools file with the pool `local`: mock-a, mock-b, mock-c at the mock, in that order of
/// priority (no prices: the order decides). A pool of a built-in name (`fast`) would keep the
/// built-in entries beside these (a pools file overrides entry by entry).
fn pools_file(dir: &Path, addr: &str, dialect: Dialect) {
    let mut yaml = String::from("local:\n");
    for (i, model) in ["mock-a", "mock-b", "mock-c"].iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{provider: {}, model: {model}, priority: {}, tools: true, \
             context_window: 200000, max_output_tokens: 2000, base_url: 'http://{addr}/{}', \
             source: the test, as_of: 2026-01-01}}\n",
            dialect.provider(),
            i + 1,
            dialect.path()
        ));
    }
    std::fs::write(dir.join("pools.yaml"), yaml).unwrap();
}

/// Three agents on the pool `local`; `rate_limit` gets `extra` (YAML map entries) as well.
fn team(dir: &Path, addr: &str, dialect: Dialect, extra: &str) -> PathBuf {
    pools_file(dir, addr, dialect);
    let mut yaml = String::from("agents:\n");
    for id in ["a", "b", "c"] {
        yaml.push_str(&format!(
            "- id: {id}\n  backend: {{type: pool, pool: local, max_tokens: 200}}\n"
        ));
    }
    yaml.push_str(&format!(
        "rate_limit: {{enable_rate_limit: true, pools: pools.yaml{extra}}}\n"
    ));
    let path = dir.join("team.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// One run with its run directory under `runs` and its quota state in `state`.
fn run(dir: &Path, team: &Path, state: &Path, runs: &Path) -> Output {
    state_run(dir, team, state, runs)
        .env("GEMINI_API_KEY", "pool-test-gemini-key")
        .output()
        .unwrap()
}

/// (admitted, refused) of `model` at the mock, over every key.
fn served(addr: &str, model: &str) -> (u64, u64) {
    let stats = get(addr, "/stats");
    let mut out = (0, 0);
    for (label, counts) in stats["by_key_model"].as_object().unwrap() {
        if label.ends_with(&format!("/{model}")) {
            out.0 += counts["admitted"].as_u64().unwrap();
            out.1 += counts["refused"].as_u64().unwrap();
        }
    }
    out
}

/// Every agent's `models` part of the newest `status.json` under `runs`.
fn models_of_last_run(runs: &Path) -> Vec<serde_json::Value> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("status.json").is_file())
        .collect();
    dirs.sort();
    let last = dirs.last().expect("a run directory with status.json");
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(last.join("status.json")).unwrap()).unwrap();
    let agents = &status["agents"];
    let list: Vec<serde_json::Value> = match agents {
        serde_json::Value::Object(map) => map.values().cloned().collect(),
        serde_json::Value::Array(list) => list.clone(),
        other => panic!("agents is {other}"),
    };
    list.iter().map(|a| a["models"].clone()).collect()
}

fn sum(models: &[serde_json::Value], f: impl Fn(&serde_json::Value) -> u64) -> u64 {
    models.iter().map(f).sum()
}

fn answered(out: &Output) {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(stdout.contains("ANSWER:"), "{stdout}");
}

#[test]
fn with_the_limit_known_a_pool_team_goes_around_the_full_model_with_no_429() {
    let dir = tempfile::tempdir().unwrap();
    let (_mock, addr) = mock(dir.path());
    // Our limits file says what the mock enforces.
    std::fs::write(
        dir.path().join("limits.yaml"),
        format!("chatcompletion:\n  mock-a: {{rpm: {TIGHT_RPM}}}\n  default: {{rpm: 600}}\n"),
    )
    .unwrap();
    let team = team(
        dir.path(),
        &addr,
        Dialect::OpenAi,
        ", limits_file: limits.yaml",
    );
    let runs = dir.path().join("runs");
    let out = run(dir.path(), &team, &dir.path().join("state.db"), &runs);
    answered(&out);
    let (a_admitted, a_refused) = served(&addr, "mock-a");
    let (b_admitted, b_refused) = served(&addr, "mock-b");
    let (c_admitted, c_refused) = served(&addr, "mock-c");
    assert_eq!(
        (a_refused, b_refused, c_refused),
        (0, 0, 0),
        "no model was refused"
    );
    // The cheapest-by-priority model was used up to its limit, then the others answered.
    assert_eq!(a_admitted, TIGHT_RPM, "mock-a served up to its limit");
    assert!(
        b_admitted + c_admitted >= 3,
        "the others kept answering: {b_admitted} + {c_admitted}"
    );
    // What the run says it used is what the mock served; nothing rotated (no 429).
    let models = models_of_last_run(&runs);
    let used = |m: &str| sum(&models, |x| x["used"][m].as_u64().unwrap_or(0));
    assert_eq!(used("chatcompletion/mock-a"), a_admitted);
    assert_eq!(
        used("chatcompletion/mock-b") + used("chatcompletion/mock-c"),
        b_admitted + c_admitted
    );
    assert_eq!(sum(&models, |x| x["rotations"].as_u64().unwrap()), 0);
}

#[test]
fn a_429_rotates_the_call_and_once_the_limit_is_learned_no_429_follows() {
    let dir = tempfile::tempdir().unwrap();
    let (_mock, addr) = mock(dir.path());
    // Nothing tells us mock-a's limit (our limits file allows every model far more): on the
    // Gemini dialect it shows only in the mock's 429.
    std::fs::write(
        dir.path().join("limits.yaml"),
        "gemini:\n  default: {rpm: 600}\n",
    )
    .unwrap();
    let team = team(
        dir.path(),
        &addr,
        Dialect::Gemini,
        ", limits_file: limits.yaml",
    );
    let runs = dir.path().join("runs");
    let state = dir.path().join("state.db");
    let out = run(dir.path(), &team, &state, &runs);
    answered(&out);
    let (a_admitted, a_refused) = served(&addr, "mock-a");
    assert_eq!(a_admitted, TIGHT_RPM);
    // Only calls already on their way when the first 429 came back can be refused: at most
    // one per agent.
    assert!(
        (1..=3).contains(&a_refused),
        "mock-a refused {a_refused} requests"
    );
    let first = models_of_last_run(&runs);
    // Every refusal moved its call to another model, and the run says so.
    assert_eq!(
        sum(&first, |x| x["rotations"].as_u64().unwrap()),
        a_refused,
        "{first:?}"
    );
    for m in &first {
        for r in m["recent_rotations"].as_array().unwrap() {
            assert_eq!(r["from"], "gemini/mock-a", "{r}");
            assert_eq!(r["reason"], "rate_limited", "{r}");
        }
    }
    // A second run within the minute, on the same state file: the learned limit and mock-a's
    // full window are known, so not one request goes to mock-a, and none is refused.
    let out = run(dir.path(), &team, &state, &runs);
    answered(&out);
    assert_eq!(served(&addr, "mock-a"), (a_admitted, a_refused));
    let (b, c) = (served(&addr, "mock-b"), served(&addr, "mock-c"));
    assert_eq!((b.1, c.1), (0, 0));
    let second = models_of_last_run(&runs);
    assert_eq!(sum(&second, |x| x["rotations"].as_u64().unwrap()), 0);
    assert_eq!(
        sum(&second, |x| x["used"]["gemini/mock-a"]
            .as_u64()
            .unwrap_or(0)),
        0
    );
}

#[test]
fn validate_lists_the_pools_models_and_what_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    // No server is needed to validate; an address that is never contacted.
    let team = team(dir.path(), "127.0.0.1:9", Dialect::OpenAi, "");
    let out = bin(dir.path())
        .env_remove("GEMINI_API_KEY")
        .env_remove("GOOGLE_API_KEY")
        .arg("--config")
        .arg(&team)
        .arg("--validate")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for model in ["mock-a", "mock-b", "mock-c"] {
        assert!(
            stdout.contains(&format!("chatcompletion/{model} priority")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("Pool local (agents a, b, c"), "{stdout}");
    // The built-in pool `fast` leaves out the models whose key is not set, naming the variable.
    let any = dir.path().join("any.yaml");
    std::fs::write(
        &any,
        "agents:\n- id: x\n  backend: {type: pool, pool: fast}\n",
    )
    .unwrap();
    let out = bin(dir.path())
        .env_remove("GEMINI_API_KEY")
        .env_remove("GOOGLE_API_KEY")
        .arg("--config")
        .arg(&any)
        .arg("--validate")
        .output()
        .unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        all.contains("gemini/gemini-2.5-flash-lite left out: no API key: set GEMINI_API_KEY"),
        "{all}"
    );
}
