//! Provider benchmark against the mock server on loopback (a harness binary: `cargo bench
//! --bench providers`).
//!
//! 1. Saturation: 16 agents call through routing + the quota supervisor against a mock that
//!    enforces 120 requests and 20,000 tokens per 10 s on one key, for `PROVIDERS_BENCH_SECS`
//!    (default 60) seconds. Reports the admitted requests and tokens as a share of the limits'
//!    maximum over the steady state (after the first window), and the 429s.
//! 2. Failover: a key whose window the mock has used up (the supervisor does not know), then
//!    one call over a pool of that key and a fresh one: the time from the mock refusing the
//!    first key to the request arriving on the second, measured on the mock's clock, over
//!    `PROVIDERS_BENCH_FAILOVERS` (default 200) trials.
//!
//! The supervisor is given the mock's limits with a window `PROVIDERS_BENCH_MARGIN_PERMILLE`
//! (default 10 = 1 %) longer: the margin for the time between a grant and the request's arrival.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use massgen::config::{BackendConfig, BackendKind, SimulatedSettings};
use massgen::keys::{ApiKey, KeyPool, KeyRegistry};
use massgen::mock_provider::{MockLimits, MockOptions, MockOutcome, serve};
use massgen::provider::{ChatRequest, Message, ProviderRef, ToolSpec, build_provider_with, http};
use massgen::quota::{Dimension, Limit, ScopeKind, ScopeSpec};
use massgen::routing::{CallObserver, QuotaRoute, RetryPolicy, Route, call};
use massgen::supervisor::{QuotaHandle, SupervisorSettings};
use massgen::system::ActorSystem;
use serde_json::json;

const PERIOD: Duration = Duration::from_secs(10);
const MAX_REQUESTS: u64 = 120;
const MAX_TOKENS: u64 = 20_000;
const AGENTS: usize = 16;

struct Quiet;
impl CallObserver for Quiet {
    fn retrying(&self, _: u32, _: &str, _: Duration) {}
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How many times the filler sentence is repeated in the prompt (`PROVIDERS_BENCH_PROMPT_REPEAT`,
/// default 9: tokens bind; 3: requests bind).
fn repeat() -> usize {
    usize::try_from(env_u64("PROVIDERS_BENCH_PROMPT_REPEAT", 9)).unwrap_or(9)
}

fn request() -> ChatRequest {
    let filler =
        "The team weighs each answer for accuracy, clarity and completeness before it votes. ";
    ChatRequest {
        model: "bench-model".into(),
        messages: vec![
            Message::system("You are one agent of a team."),
            Message::user(format!(
                "<ORIGINAL MESSAGE> Summarise the trade-offs. {} <END OF ORIGINAL MESSAGE>\n(no answers available yet)",
                filler.repeat(repeat())
            )),
        ],
        tools: vec![ToolSpec {
            name: "new_answer".into(),
            description: "Submit an answer".into(),
            parameters: json!({"type": "object", "properties": {"content": {"type": "string"}}}),
        }],
        temperature: None,
        max_tokens: Some(48),
        stream: false,
        options: Default::default(),
    }
}

fn provider(base_url: String) -> Arc<dyn massgen::provider::Provider> {
    let backend = BackendConfig {
        kind: BackendKind::OpenAi,
        model: "bench-model".into(),
        base_url: Some(base_url),
        api_keys: vec![],
        temperature: None,
        max_tokens: None,
        enable_rate_limit: None,
        simulated: SimulatedSettings::default(),
        options: Default::default(),
        pool: None,
    };
    build_provider_with(
        &backend,
        http::build_client(http::HttpSettings::default()).unwrap(),
    )
    .unwrap()
}

/// The bench's actor system (provider and key actors), on threads of its own.
fn actors() -> &'static ActorSystem {
    static ACTORS: std::sync::OnceLock<ActorSystem> = std::sync::OnceLock::new();
    ACTORS.get_or_init(|| ActorSystem::start().unwrap())
}

fn route(p: ProviderRef, pool: Arc<KeyPool>, q: &QuotaHandle, who: &str) -> Route {
    Route {
        provider: p,
        key: None,
        retry: RetryPolicy::default(),
        requester: Arc::from(who),
        quota: Some(QuotaRoute {
            handle: q.clone(),
            candidates: Vec::new(),
            deadline: Some(Duration::from_secs(120)),
            run_deadline: None,
            output_cap: None,
            extra_scopes: Vec::new(),
        }),
        pool: Some(pool),
        models: None,
        usage: None,
        budget: None,
    }
}

async fn saturation(secs: u64, margin: f64) {
    let limits = vec![
        Limit::new(Dimension::Requests, MAX_REQUESTS, PERIOD).unwrap(),
        Limit::new(Dimension::Tokens, MAX_TOKENS, PERIOD).unwrap(),
    ];
    let server = serve(MockOptions {
        limits: MockLimits::uniform(limits),
        latency: Duration::from_millis(20),
        record_events: true,
        ..MockOptions::default()
    })
    .await
    .unwrap();
    let key = ApiKey::new("bench-key-000000000001", "bench");
    let pool = Arc::new(KeyPool::new(
        &KeyRegistry::new(actors()),
        "mock",
        "bench-model",
        vec![key],
        ScopeKind::PerKey,
        None,
    ));
    let q = QuotaHandle::start(SupervisorSettings::default()).unwrap();
    let client_period = PERIOD.mul_f64(1.0 + margin);
    let spec = ScopeSpec {
        limits: vec![
            Limit::new(Dimension::Requests, MAX_REQUESTS, client_period).unwrap(),
            Limit::new(Dimension::Tokens, MAX_TOKENS, client_period).unwrap(),
        ],
        ..ScopeSpec::default()
    };
    for (scope, spec) in pool.scope_specs(&spec) {
        q.register_scope(scope, spec).await.unwrap();
    }
    let p = ProviderRef::start(actors(), provider(server.v1_url()));
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for i in 0..AGENTS {
        let r = route(p.clone(), pool.clone(), &q, &format!("agent{i}"));
        tasks.push(tokio::spawn(async move {
            let mut failed = 0u32;
            while Instant::now() < end {
                let call = call(&r, request, None, 0, &Quiet);
                match tokio::time::timeout(end.saturating_duration_since(Instant::now()), call)
                    .await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => failed += 1,
                    Err(_) => break,
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.unwrap();
    }
    let events = server.events();
    let first = events.first().map_or(start, |e| e.at);
    // The steady state: whole windows after the first (whose burst starts from empty). Over k
    // whole windows the exact limit admits at most k times its amount.
    let steady_from = first + PERIOD;
    let k =
        (end.saturating_duration_since(steady_from).as_secs_f64() / PERIOD.as_secs_f64()).floor();
    let steady_to = steady_from + PERIOD.mul_f64(k);
    let (mut req, mut tok) = (0u64, 0u64);
    for e in events
        .iter()
        .filter(|e| e.at >= steady_from && e.at < steady_to && e.outcome == MockOutcome::Admitted)
    {
        req += 1;
        tok += e.tokens;
    }
    let stats = server.stats();
    println!(
        "saturation: {AGENTS} agents, {secs} s, client window margin {:.1} %",
        margin * 100.0
    );
    println!(
        "  admitted {} requests, {} tokens in all; refused (429) {}; failed calls {failed}",
        stats.total.admitted, stats.total.tokens, stats.total.refused
    );
    println!(
        "  steady state ({k} whole windows after the first): {req} requests = {:.1} % of {MAX_REQUESTS}/10 s, {tok} tokens = {:.1} % of {MAX_TOKENS}/10 s",
        100.0 * req as f64 / (MAX_REQUESTS as f64 * k),
        100.0 * tok as f64 / (MAX_TOKENS as f64 * k),
    );
    server.shutdown().await;
}

async fn failover(trials: u64) {
    let rpm = Limit::new(Dimension::Requests, 1, Duration::from_secs(60)).unwrap();
    let server = serve(MockOptions {
        limits: MockLimits::uniform(vec![rpm]),
        record_events: true,
        ..MockOptions::default()
    })
    .await
    .unwrap();
    let direct = provider(server.v1_url());
    let p = ProviderRef::start(actors(), direct.clone());
    let q = QuotaHandle::start(SupervisorSettings::default()).unwrap();
    let mut gaps = Vec::new();
    for i in 0..trials {
        let limited = ApiKey::new(format!("bench-limited-{i:08}"), "bench");
        let fresh = ApiKey::new(format!("bench-fresh-{i:010}"), "bench");
        direct.chat(&request(), Some(&limited), None).await.unwrap();
        let pool = Arc::new(KeyPool::new(
            &KeyRegistry::new(actors()),
            "mock",
            "bench-model",
            vec![limited.clone(), fresh.clone()],
            ScopeKind::PerKey,
            None,
        ));
        for (scope, spec) in pool.scope_specs(&ScopeSpec::default()) {
            q.register_scope(scope, spec).await.unwrap();
        }
        let before = server.events().len();
        let report = call(
            &route(p.clone(), pool, &q, "bench"),
            request,
            None,
            0,
            &Quiet,
        )
        .await
        .unwrap();
        assert_eq!(report.calls, 2);
        let events = server.events();
        let new = &events[before..];
        let refused = new
            .iter()
            .find(|e| e.outcome == MockOutcome::Refused)
            .unwrap();
        let admitted = new
            .iter()
            .find(|e| e.outcome == MockOutcome::Admitted)
            .unwrap();
        assert_ne!(refused.key, admitted.key);
        gaps.push(admitted.at.duration_since(refused.at));
    }
    gaps.sort();
    let pct = |p: f64| gaps[((gaps.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "failover: {trials} trials, 429 on one key -> request arriving on the other (mock clock)"
    );
    println!(
        "  median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.9).as_secs_f64() * 1e3,
        gaps[gaps.len() - 1].as_secs_f64() * 1e3
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let secs = env_u64("PROVIDERS_BENCH_SECS", 60);
    let margin = env_u64("PROVIDERS_BENCH_MARGIN_PERMILLE", 10) as f64 / 1000.0;
    rt.block_on(async {
        failover(env_u64("PROVIDERS_BENCH_FAILOVERS", 200)).await;
        saturation(secs, margin).await;
    });
}
