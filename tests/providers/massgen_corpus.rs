//! Every MassGen example file that validates runs against the mock provider, unchanged except
//! for where its agents point and the key they use: with rate limiting on under binding limits,
//! each run ends with an answer, draws no 429 and retires no agent. The files that cannot run,
//! and why, are listed in `tests/fixtures/massgen/mock_runs.txt`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use massgen::config::{EnvLookup, LoadOptions, ModelLimits, TeamConfig, check_team};
use massgen::keys::ApiKey;
use massgen::mock_provider::{MockLimits, MockOptions, serve};
use massgen::orchestrator::{FinalAgentState, RunStatus};
use massgen::provider::dialect_of;
use massgen::provider::signals::Dialect;
use massgen::quota::{Dimension, Limit, ScopeKind};
use massgen::supervisor::{QuotaHandle, SupervisorSettings};
use massgen::{LimitsSource, Runtime, RuntimeOptions};

/// Files run at once (each with its own mock server and quota supervisor).
const AT_ONCE: usize = 8;
/// The window of the limits; the mock and the supervisor are told the same limits.
const WINDOW: Duration = Duration::from_secs(1);
/// Requests per window per key and model: a team's agents on one model share a key, so
/// three or more of them bind.
const REQUESTS: u64 = 3;
/// Tokens per window per key and model: an agent without `max_tokens` is sent (and reserves)
/// a quarter of it as its output cap, and two requests at the largest cap a corpus file sets
/// (4,096) fill it.
const TOKENS: u64 = 10_000;
/// The orchestrator timeout of each run: short, but far above what a run needs.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

#[path = "../common/massgen_corpus.rs"]
mod corpus;
use corpus::{corpus_dir, yaml_files};

/// `file | reason` lines of a fixture list.
fn listed(name: &str) -> BTreeMap<String, String> {
    std::fs::read_to_string(corpus_dir().join(name))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (file, why) = l.split_once(" | ").unwrap();
            (file.trim().to_owned(), why.trim().to_owned())
        })
        .collect()
}

/// The same limits for every provider and model, counted per key.
struct Uniform(ModelLimits);

impl LimitsSource for Uniform {
    fn lookup(&self, _provider: &str, _model: &str) -> ModelLimits {
        self.0.clone()
    }
}

fn limits() -> Vec<Limit> {
    vec![
        Limit::new(Dimension::Requests, REQUESTS, WINDOW).unwrap(),
        Limit::new(Dimension::Tokens, TOKENS, WINDOW).unwrap(),
    ]
}

/// What one file's run showed.
struct Ran {
    /// `Err` says why the run does not count as a success.
    result: Result<(), String>,
    /// Requests the mock admitted.
    admitted: u64,
    /// Whether any agent waited for quota.
    waited: bool,
    /// The run's wall time.
    took: Duration,
}

/// A corpus file loaded as `--validate` loads it on a machine without secrets.
fn load(path: &Path) -> TeamConfig {
    let opts = LoadOptions {
        env: EnvLookup::from_pairs(Vec::<(String, String)>::new()),
        allow_missing_keys: true,
        ..LoadOptions::default()
    };
    check_team(path, &opts)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .team
}

async fn run_file(index: usize, mut team: TeamConfig) -> Ran {
    let server = serve(MockOptions {
        limits: MockLimits::uniform(limits()),
        record_events: true,
        ..MockOptions::default()
    })
    .await
    .unwrap();
    // Only where each agent points and its key change. One key per provider in a file, as a
    // user holds one key per provider: agents on the same provider and model share windows.
    let mut expected_windows = BTreeSet::new();
    for agent in &mut team.agents {
        let b = &mut agent.backend;
        b.base_url = Some(match dialect_of(b.kind) {
            Dialect::Gemini => server.gemini_url(),
            _ => server.v1_url(),
        });
        let secret = format!("corpus-{index}-{}-0123456789", b.kind.limits_provider());
        let key = ApiKey::new(secret, "test");
        expected_windows.insert(format!("key:{}/{}", key.short_id(), b.model));
        b.api_keys = vec![key];
    }
    let model_limits = ModelLimits {
        matched: "corpus".into(),
        limits: limits(),
        scope: ScopeKind::PerKey,
        // As limits files have it by default: the spread of delays between a grant and the
        // request's arrival.
        window_guard: Duration::from_millis(250),
        ..ModelLimits::default()
    };
    let quota = QuotaHandle::start(SupervisorSettings {
        stagger: Duration::from_millis(50),
        ..SupervisorSettings::default()
    })
    .unwrap();
    let options = RuntimeOptions {
        rate_limit: true,
        limits: Some(Arc::new(Uniform(model_limits))),
        quota: Some(quota),
        orchestrator_timeout: Some(RUN_TIMEOUT),
        ..RuntimeOptions::default()
    };
    let started = tokio::time::Instant::now();
    let outcome = match Runtime::new(team, options) {
        Ok(rt) => rt.run("What is 2+2?").await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let took = started.elapsed();
    let stats = server.stats();
    let result = outcome.and_then(|out| {
        let retired: Vec<String> = out
            .agents
            .iter()
            .filter(|a| a.state == FinalAgentState::Failed)
            .map(|a| format!("{}: {}", a.id, a.failure.as_deref().unwrap_or("")))
            .collect();
        let reached: BTreeSet<String> = stats.by_key_model.keys().cloned().collect();
        if out.status != RunStatus::Completed {
            Err(format!("ended {}", out.status.as_str()))
        } else if out.final_answer.is_empty() {
            Err("an empty final answer".to_owned())
        } else if stats.total.refused > 0 {
            Err(format!("{} 429s", stats.total.refused))
        } else if !retired.is_empty() {
            Err(format!("retired agents: {}", retired.join("; ")))
        } else if reached != expected_windows {
            Err(format!(
                "the mock saw {reached:?}, not {expected_windows:?}"
            ))
        } else {
            Ok(out.agents.iter().any(|a| a.quota_wait > Duration::ZERO))
        }
    });
    if let Err(why) = &result {
        // What the mock saw, in the test's output, to tell why.
        eprintln!("run {index}: {why}");
        for e in server.events() {
            let ms =
                e.at.saturating_duration_since(started.into_std())
                    .as_millis();
            eprintln!(
                "run {index}: +{ms} ms {} {} {} tokens: {:?}",
                e.key, e.model, e.tokens, e.outcome
            );
        }
    }
    server.shutdown().await;
    Ran {
        waited: result.as_ref().is_ok_and(|w| *w),
        result: result.map(|_| ()),
        admitted: stats.total.admitted,
        took,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_massgen_file_that_validates_runs_against_the_mock() {
    let dir = corpus_dir();
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    files.sort();
    let invalid = listed("expectations.txt");
    // Loaded before any run starts: parsing is blocking work.
    let teams: Vec<(String, TeamConfig)> = files
        .iter()
        .map(|f| (f.strip_prefix(&dir).unwrap().display().to_string(), f))
        .filter(|(rel, _)| !invalid.contains_key(rel))
        .map(|(rel, f)| (rel, load(f)))
        .collect();
    assert_eq!(teams.len(), 213, "MassGen files that validate");
    let agents: usize = teams.iter().map(|(_, t)| t.agents.len()).sum();

    let started = Instant::now();
    let ran: BTreeMap<String, Ran> = futures_util::stream::iter(teams.into_iter().enumerate())
        .map(|(i, (rel, team))| async move {
            eprintln!("run {i}: {rel}");
            let ran = tokio::spawn(run_file(i, team)).await.unwrap();
            (rel, ran)
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let took = started.elapsed();

    let failing: BTreeMap<&String, &String> = ran
        .iter()
        .filter_map(|(rel, r)| r.result.as_ref().err().map(|why| (rel, why)))
        .collect();
    let shown: Vec<String> = failing.iter().map(|(f, w)| format!("{f} | {w}")).collect();
    let expected = listed("mock_runs.txt");
    assert_eq!(
        failing.keys().copied().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>(),
        "the files that do not run against the mock changed; now:\n{}",
        shown.join("\n")
    );
    let admitted: u64 = ran.values().map(|r| r.admitted).sum();
    let waited = ran.values().filter(|r| r.waited).count();
    let (slowest, slowest_took) = ran
        .iter()
        .max_by_key(|(_, r)| r.took)
        .map(|(rel, r)| (rel.as_str(), r.took))
        .unwrap_or_default();
    eprintln!(
        "{} of {} MassGen files ({agents} agents) ran against the mock in {took:.1?}, \
         {AT_ONCE} at a time: {admitted} requests, no 429; {waited} runs waited for quota; \
         the slowest, {slowest}, took {slowest_took:.1?}",
        ran.len() - failing.len(),
        ran.len(),
    );
    // The limits bound: many runs had to wait for quota, and still drew no 429.
    assert!(waited > 20, "only {waited} runs waited for quota");
}
