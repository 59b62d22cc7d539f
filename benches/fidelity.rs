//! Wall time of whole team runs against the mock provider, beside the least time the limits
//! allow for the requests the team actually sent (a harness binary: `cargo bench --bench
//! fidelity`).
//!
//! For each case — 4 requests per 10 s and 2 per 60 s with three agents, 9 per minute with six —
//! a team of OpenAI-compatible agents runs one question against the mock on loopback, which
//! enforces the limit exactly on one key and answers after `FIDELITY_BENCH_LATENCY_MS` (default
//! 50). Each case runs twice: with the limit given up front in the limits table, and with no
//! limit known, so the supervisor must learn it from the mock's headers and 429s.
//!
//! The minimum for N admitted requests at R per W is `floor((N-1)/R)·W` plus one call's
//! latency: the last request cannot leave before its window frees, and its answer takes the
//! latency. Reported: wall time, that minimum, their ratio, the requests and the 429s the mock
//! counted. Targets: ≤ 1.05× with the limit given and no 429; ≤ 1.5× when it is learned.
//!
//! `FIDELITY_BENCH_CASES` picks cases by name (`4per10s,2per60s,9rpm`, default all); the whole
//! run takes about ten minutes, most of it the 2-per-60-s case waiting as the limit demands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use massgen::config::{AgentConfig, BackendConfig, BackendKind, ModelLimits, TeamConfig};
use massgen::keys::ApiKey;
use massgen::mock_provider::{MockDimension, MockLimit, MockLimits, MockOptions, serve};
use massgen::quota::{Dimension, Limit, ScopeKind};
use massgen::supervisor::{QuotaHandle, SupervisorSettings};
use massgen::{Runtime, RuntimeOptions};

const MODEL: &str = "gpt-4o-mini";

struct Case {
    name: &'static str,
    requests: u64,
    window: Duration,
    agents: usize,
}

const CASES: [Case; 3] = [
    Case {
        name: "4per10s",
        requests: 4,
        window: Duration::from_secs(10),
        agents: 3,
    },
    Case {
        name: "2per60s",
        requests: 2,
        window: Duration::from_secs(60),
        agents: 3,
    },
    Case {
        name: "9rpm",
        requests: 9,
        window: Duration::from_secs(60),
        agents: 6,
    },
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn agent(id: &str, base_url: &str, key: &ApiKey) -> AgentConfig {
    let mut a = AgentConfig::simulated(id, Default::default());
    a.backend = BackendConfig {
        kind: BackendKind::OpenAi,
        model: MODEL.to_owned(),
        base_url: Some(base_url.to_owned()),
        api_keys: vec![key.clone()],
        max_tokens: Some(200),
        enable_rate_limit: Some(true),
        ..a.backend
    };
    a.system_message = Some(format!("You are {id}, a careful analyst."));
    a
}

struct Measured {
    wall: Duration,
    admitted: u64,
    refused: u64,
    minimum: Duration,
}

async fn run_case(case: &Case, given: bool, latency: Duration) -> Measured {
    let server = serve(MockOptions {
        limits: MockLimits::uniform_mock(vec![
            MockLimit::new(MockDimension::Requests, case.requests, case.window).unwrap(),
        ]),
        latency,
        ..MockOptions::default()
    })
    .await
    .unwrap();
    let key = ApiKey::new("bench-key-0000000001", "the fidelity bench");
    let ids = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    let agents = ids[..case.agents]
        .iter()
        .map(|id| agent(id, &server.v1_url(), &key))
        .collect();
    let limits: Option<Arc<dyn massgen::LimitsSource>> = if given {
        let mut table: HashMap<(String, String), ModelLimits> = HashMap::new();
        table.insert(
            ("openai".to_owned(), MODEL.to_owned()),
            ModelLimits {
                matched: "bench".into(),
                limits: vec![Limit::new(Dimension::Requests, case.requests, case.window).unwrap()],
                scope: ScopeKind::PerKey,
                // The project default for limits files: covers the spread between a grant
                // and the request's arrival at the provider.
                window_guard: Duration::from_millis(250),
                ..ModelLimits::default()
            },
        );
        Some(Arc::new(table))
    } else {
        None
    };
    let options = RuntimeOptions {
        rate_limit: true,
        limits,
        quota: Some(QuotaHandle::start(SupervisorSettings::default()).unwrap()),
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::new(TeamConfig::new(agents), options).unwrap();
    let started = Instant::now();
    if std::env::var_os("FIDELITY_BENCH_TRACE").is_some() {
        let mut events = runtime.subscribe();
        tokio::spawn(async move {
            while let Ok(e) = events.recv().await {
                if let massgen::RunEvent::Quota { quota } = e {
                    println!("  {:>8.3}s {quota:?}", started.elapsed().as_secs_f64());
                }
            }
        });
    }
    let outcome = runtime.run("Which is larger, 2^10 or 10^3?").await;
    let wall = started.elapsed();
    if let Err(e) = &outcome {
        eprintln!("{} ({}): the run failed: {e}", case.name, mode(given));
    }
    let stats = server.stats();
    if std::env::var_os("FIDELITY_BENCH_TRACE").is_some() {
        for a in server.admissions() {
            println!(
                "  {:>8.3}s {:<10} {}",
                a.at.duration_since(started).as_secs_f64(),
                a.key,
                a.reply
            );
        }
    }
    let admitted = stats.total.admitted;
    let windows = u32::try_from(admitted.saturating_sub(1) / case.requests).unwrap();
    let minimum = case.window * windows + latency;
    server.shutdown().await;
    Measured {
        wall,
        admitted,
        refused: stats.total.refused,
        minimum,
    }
}

fn mode(given: bool) -> &'static str {
    if given { "given" } else { "learned" }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let picked = std::env::var("FIDELITY_BENCH_CASES").unwrap_or_default();
    let latency = Duration::from_millis(env_u64("FIDELITY_BENCH_LATENCY_MS", 50));
    println!(
        "{:<9} {:<8} {:>7} {:>9} {:>9} {:>6} {:>5}",
        "case", "limits", "agents", "wall", "minimum", "ratio", "429s"
    );
    println!(
        "{:<9} {:<8} {:>7} {:>9} {:>9} {:>6} {:>5}",
        "", "", "", "", "", "", ""
    );
    for case in CASES
        .iter()
        .filter(|c| picked.is_empty() || picked.split(',').any(|p| p.trim() == c.name))
    {
        for given in [true, false] {
            let m = run_case(case, given, latency).await;
            println!(
                "{:<9} {:<8} {:>7} {:>8.2}s {:>8.2}s {:>5.2}x {:>5}   ({} requests admitted)",
                case.name,
                mode(given),
                case.agents,
                m.wall.as_secs_f64(),
                m.minimum.as_secs_f64(),
                m.wall.as_secs_f64() / m.minimum.as_secs_f64(),
                m.refused,
                m.admitted,
            );
        }
    }
}
