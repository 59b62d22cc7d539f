//! Budgets (`rate_limit.budget`) end to end: `massgen-rs` runs a team of two agents against the
//! mock provider with a prices file giving the mock's model a price. What was spent is what the
//! mock says it served (`GET /admissions`: the tokens of every request it admitted, the same
//! tokens it reported as usage), priced here, never our ledger's figures.
//!
//! The mock speaks the Gemini dialect: Gemini charges the actual input and output tokens (an
//! OpenAI-compatible mock charges the output cap), so the admissions hold exactly the usage the
//! mock reported. The figures: with these prices an answer costs the mock about $0.36 and the
//! whole unlimited run about $1.72; a call's worst case (our prompt estimate and the 60-token
//! output cap, above every reply of the mock) is about $0.55 for a first answer and $0.61 for
//! a later call.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::runs::{bin, get, text};
use super::{KEY_A, KEY_B, mock};

/// US dollars per million tokens.
const INPUT_PRICE: f64 = 1000.0;
const OUTPUT_PRICE: f64 = 2000.0;

/// Two Gemini agents with a key each and a 60-token output cap, the mock's model priced, and
/// `budget` (a YAML mapping) as `rate_limit.budget`; written to `team.yaml` (over any earlier).
fn team(dir: &Path, addr: &str, budget: &str) -> PathBuf {
    std::fs::write(
        dir.join("prices.yaml"),
        format!(
            "gemini:\n  mock-gemini:\n    input: {INPUT_PRICE}\n    output: {OUTPUT_PRICE}\n    \
             source: the test\n    as_of: 2026-01-01\n"
        ),
    )
    .unwrap();
    let mut yaml = String::from("agents:\n");
    for (id, key) in [("a", KEY_A), ("b", KEY_B)] {
        yaml.push_str(&format!(
            "- id: {id}\n  backend: {{type: gemini, model: mock-gemini, max_tokens: 60, \
             base_url: 'http://{addr}/v1beta', api_key: {key}}}\n"
        ));
    }
    yaml.push_str(&format!(
        "rate_limit: {{prices: prices.yaml, budget: {budget}}}\n"
    ));
    let path = dir.join("team.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// One run of `team` with its own run directory under `runs`, the usage ledger in `state`.
fn run(dir: &Path, team: &Path, state: &Path, runs: &Path) -> Output {
    super::runs::state_run(dir, team, state, runs)
        .output()
        .unwrap()
}

/// What the mock served from its `skip`th admission on: (requests, US dollars at the test's
/// prices, answers it gave as `new_answer`).
fn served(addr: &str, skip: usize) -> (usize, f64, usize) {
    let log = get(addr, "/admissions");
    let mut usd = 0.0;
    let (mut requests, mut answers) = (0, 0);
    for a in log.as_array().unwrap().iter().skip(skip) {
        assert!(a["fault"].is_null(), "no fault was asked for: {a}");
        let input = a["charged"]["input_tokens"].as_u64().unwrap() as f64;
        let output = a["charged"]["output_tokens"].as_u64().unwrap() as f64;
        usd += (input * INPUT_PRICE + output * OUTPUT_PRICE) / 1e6;
        requests += 1;
        answers += usize::from(a["reply"] == "new_answer");
    }
    (requests, usd, answers)
}

/// The one run directory under `runs` (`status.json`, `final_answer.md`).
fn run_dir(runs: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

fn status_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap()
}

/// A run stopped by its budget kept its best answer: exit code 5, `STATUS: budget_exceeded`
/// with a winner and the answer printed, the same answer in `final_answer.md`, `status.json`
/// saying `budget_exceeded`, and the message naming `limit` on stderr.
fn assert_stopped_with_answer(out: &Output, runs: &Path, limit: &str) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(5), "{stdout}{stderr}");
    assert!(stdout.contains("STATUS: budget_exceeded"), "{stdout}");
    assert!(!stdout.contains("WINNER: none"), "{stdout}");
    assert!(
        stderr.contains(&format!("{limit} reached")) && stderr.contains("the call was not made"),
        "{stderr}"
    );
    let dir = run_dir(runs);
    let answer = std::fs::read_to_string(dir.join("final_answer.md")).unwrap();
    assert!(!answer.trim().is_empty(), "{dir:?}");
    assert!(
        stdout.contains(&format!("ANSWER: {}", answer.trim())),
        "{stdout} vs {answer}"
    );
    let status = status_json(&dir);
    assert_eq!(status["status"], "budget_exceeded", "{status}");
}

#[test]
fn a_run_budget_stops_the_run_before_a_call_could_pass_it_and_keeps_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (_mock, addr) = mock(dir.path(), &[]);
    let state = dir.path().join("state.db");

    // Unlimited, the run costs more than the budget below.
    let free = team(dir.path(), &addr, "{per_day_usd: 1000}");
    let out = run(dir.path(), &free, &state, &dir.path().join("runs-free"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (calls, whole, _) = served(&addr, 0);
    let budget = 1.3;
    assert!(
        whole > budget,
        "the budget must bind: the run cost ${whole}"
    );

    // Both first calls fit (their worst cases together are about $1.10); no third call does,
    // whether one answer or both were in when it asked.
    let capped = team(dir.path(), &addr, &format!("{{per_run_usd: {budget}}}"));
    let runs = dir.path().join("runs");
    let out = run(dir.path(), &capped, &state, &runs);
    assert_stopped_with_answer(&out, &runs, "budget per run of $1.30");
    let (requests, usd, answers) = served(&addr, calls);
    assert!(
        usd <= budget,
        "the mock served ${usd} in {requests} requests"
    );
    assert!(
        requests < calls,
        "{requests} of the {calls} calls of a whole run"
    );
    assert!(answers >= 1, "the mock gave no answer");
    let status = status_json(&run_dir(&runs));
    assert!(
        status["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["answers"].as_u64().unwrap() >= 1),
        "{status}"
    );
}

#[test]
fn calls_in_flight_count_against_the_run_budget() {
    let dir = tempfile::tempdir().unwrap();
    // Each answer takes the mock a second, so both agents' first calls are usually in flight
    // together.
    let (_mock, addr) = mock(dir.path(), &["--latency", "1000"]);
    // One first call's worst case (about $0.55) fits, two together do not; two answers served
    // (about $0.72) would pass it.
    let budget = 0.6;
    let team = team(dir.path(), &addr, &format!("{{per_run_usd: {budget}}}"));
    let out = run(
        dir.path(),
        &team,
        &dir.path().join("state.db"),
        &dir.path().join("runs"),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{}{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("budget per run of $0.60 reached"),
        "{stderr}"
    );
    let (requests, usd, _) = served(&addr, 0);
    assert!(
        usd <= budget,
        "the mock served ${usd} in {requests} requests"
    );
    assert!(requests <= 1, "the mock served {requests} requests");
}

/// The UTC day (days since 1970) now.
/// The cost of every call in the ledger of `state`, from `massgen-rs usage`.
fn ledger_usd(dir: &Path, state: &Path) -> f64 {
    let out = bin(dir)
        .args(["usage", "--by", "run", "--format", "json", "--state"])
        .arg(state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let groups: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    groups.iter().map(|g| g["cost_usd"].as_f64().unwrap()).sum()
}

fn utc_day() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400
}

#[test]
fn a_day_budget_counts_every_run_of_the_state_file_and_stops_the_one_that_would_pass_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_mock, addr) = mock(dir.path(), &[]);
    let state = dir.path().join("ledger").join("state.db");
    let day = utc_day();
    // The first run (about $1.72 at the mock) has room to spare.
    let team = team(dir.path(), &addr, "{per_day_usd: 1000}");
    let out = run(dir.path(), &team, &state, &dir.path().join("runs-1"));
    assert!(
        out.status.success() && text(&out.stdout).contains("STATUS: completed"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (first_calls, first_usd, _) = served(&addr, 0);
    // What the ledger holds for it: the answered calls at their usage, calls cancelled when the
    // run ended at what they reserved (the provider may have served them), so at least what
    // the mock served.
    let recorded = ledger_usd(dir.path(), &state);
    assert!(
        recorded >= first_usd - 1e-9,
        "ledger ${recorded}, mock ${first_usd}"
    );
    // The day's budget leaves the second run room for its two first calls (about $1.10 of
    // worst case) and no whole run.
    let budget = recorded + 1.3;
    let team = self::team(dir.path(), &addr, &format!("{{per_day_usd: {budget}}}"));
    let runs = dir.path().join("runs-2");
    let out = run(dir.path(), &team, &state, &runs);
    if utc_day() != day {
        // A new UTC day began between the runs: the second run had the whole day's budget.
        return;
    }
    assert_stopped_with_answer(&out, &runs, &format!("budget per day of ${budget:.2}"));
    let (calls, total_usd, _) = served(&addr, 0);
    assert!(
        total_usd <= budget,
        "the mock served ${total_usd} over both runs (the first ${first_usd})"
    );
    assert!(
        calls - first_calls < first_calls,
        "the second run made {} calls, the first {first_calls}",
        calls - first_calls
    );
}
