//! Routing over a pool of models (issue 12), each figure beside a baseline of the same run.
//!
//! Criterion groups (`routing/`): the selection work of one pooled call with a 10-model pool
//! beside a 1-model pool: `ModelPool::order` plus the permit request's candidates, then the
//! supervisor granting a 10-candidate request (the first admissible, or only the last) beside a
//! 1-candidate one (acquire + settle), in-process with no HTTP, the supervisor on a thread of
//! its own (as the runtime places it) and on the caller's own arbiter.
//!
//! A harness after them measures failover over real HTTP on loopback: a pool of two models on
//! the mock provider whose cheaper model has used up its minute (the supervisor does not
//! know); one pooled call gets a 429 from it and moves to the other model. Over
//! `ROUTING_BENCH_FAILOVERS` (default 300) trials it prints the median, p95 and max of
//!   - the mock's clock: arrival of the refused request -> arrival of the request on the
//!     other model (an upper bound: it includes the 429's trip back and its parsing), and
//!   - the client's clock: the call learning of the 429 (`CallObserver::retrying`) -> arrival
//!     at the mock of the request on the other model (both `Instant`s of this one process).
//!
//! Run: `cargo bench --bench routing -- --noplot`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use massgen::config::{BackendConfig, BackendKind, PoolEntry, Price, SimulatedSettings};
use massgen::mock_provider::{MockLimits, MockOptions, MockOutcome, serve};
use massgen::provider::{ChatRequest, Message, ProviderRef, build_provider_with, http};
use massgen::quota::{Dimension, Limit, RateLimitSignal, ScopeId, ScopeSpec, SignalKind};
use massgen::routing::pooled::{ModelPool, Needs, PoolMember};
use massgen::routing::{CallObserver, QuotaRoute, RetryPolicy, Route, call};
use massgen::supervisor::{AcquireRequest, QuotaHandle, SupervisorSettings};
use massgen::system::ActorSystem;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The bench's actor system (provider actors), on threads of its own.
fn actors() -> &'static ActorSystem {
    static ACTORS: std::sync::OnceLock<ActorSystem> = std::sync::OnceLock::new();
    ACTORS.get_or_init(|| ActorSystem::start().unwrap())
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

fn request() -> ChatRequest {
    ChatRequest {
        model: "bench-model".into(),
        messages: vec![
            Message::system("You are one agent of a team."),
            Message::user("<ORIGINAL MESSAGE> Summarise the trade-offs. <END OF ORIGINAL MESSAGE>"),
        ],
        tools: Vec::new(),
        temperature: None,
        max_tokens: Some(48),
        stream: false,
        options: Default::default(),
    }
}

/// A member `model` at `endpoint`, `usd` per million tokens in (4x out).
fn member(endpoint: &ProviderRef, model: &str, usd: f64) -> PoolMember {
    PoolMember {
        provider: endpoint.clone(),
        entry: PoolEntry {
            provider: "openai".into(),
            model: model.into(),
            priority: 100,
            tools: true,
            parallel_tool_calls: true,
            vision: false,
            context_window: 128_000,
            max_output_tokens: 4096,
            base_url: None,
            source: "bench".into(),
            as_of: "2025-01-01".into(),
        },
        price: Some(Price {
            input_per_mtok: usd,
            output_per_mtok: usd * 4.0,
            source: "bench".into(),
            as_of: "2025-01-01".into(),
        }),
        key: None,
        scopes: vec![ScopeId::new(format!("openai/{model}"))],
    }
}

/// A pool of `n` models at `endpoint`, dearest first (so ordering has work to do).
fn pool_of(endpoint: &ProviderRef, n: usize, tag: &str) -> ModelPool {
    ModelPool {
        name: "fast".into(),
        members: (0..n)
            .map(|i| member(endpoint, &format!("{tag}-{i}"), (n - i) as f64 * 0.1))
            .collect(),
        max_models: 3,
        events: None,
    }
}

/// What a pooled call does to choose before it asks the supervisor: the order of the capable
/// members and the permit request's candidates.
fn select(pool: &ModelPool, needs: &Needs) -> Vec<Vec<ScopeId>> {
    pool.order(needs, 600, 48)
        .iter()
        .map(|&i| pool.members[i].scopes.clone())
        .collect()
}

fn grant_request(candidates: Vec<Vec<ScopeId>>) -> AcquireRequest {
    AcquireRequest {
        candidates,
        est_tokens: 648,
        est_output: 48,
        priority: 0,
        deadline: Some(Duration::from_secs(5)),
        requester: Arc::from("bench"),
    }
}

fn settings() -> SupervisorSettings {
    SupervisorSettings {
        stagger: Duration::ZERO,
        ..SupervisorSettings::default()
    }
}

/// Registers the pools' scopes without limits, and closes all but the dearest member of the
/// last pool (the last candidate in cost order) for longer than the bench: a request over it
/// makes the supervisor check nine closed candidates before it grants.
async fn prepare(q: &QuotaHandle, pools: &[&ModelPool; 3], needs: &Needs) {
    for m in pools.iter().flat_map(|p| &p.members) {
        q.register_scope(m.scopes[0].clone(), ScopeSpec::default())
            .await
            .unwrap();
    }
    let closed = pools[2];
    for m in &closed.members[1..] {
        q.feedback(
            m.scopes[0].clone(),
            RateLimitSignal::new(SignalKind::RateLimited)
                .with_retry_after(Duration::from_secs(3600)),
        );
    }
    let p = q
        .acquire(grant_request(select(closed, needs)))
        .await
        .unwrap();
    assert_eq!(p.candidate(), 9, "only the last candidate is open");
    p.settle(48);
}

/// `n` grants (acquire + settle) of a request over `candidates`; how long they took.
async fn grants(q: &QuotaHandle, candidates: &[Vec<ScopeId>], n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        q.acquire(grant_request(candidates.to_vec()))
            .await
            .unwrap()
            .settle(48);
    }
    start.elapsed()
}

fn criterion_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30)
        .throughput(Throughput::Elements(1));

    // No request is ever sent to this endpoint: selection only reads its circuit.
    let idle = ProviderRef::start(actors(), provider("http://127.0.0.1:9/v1".into()));
    let needs = Needs {
        context: 648,
        tools: false,
        vision: false,
    };
    let one = pool_of(&idle, 1, "one");
    let ten = pool_of(&idle, 10, "ten");
    assert_eq!(select(&ten, &needs).len(), 10);
    g.bench_function("baseline_select_1_model", |b| {
        b.iter(|| black_box(select(black_box(&one), &needs)))
    });
    g.bench_function("select_10_models", |b| {
        b.iter(|| black_box(select(black_box(&ten), &needs)))
    });

    // The supervisor on its own thread (as the runtime places it), and on the caller's own
    // arbiter (no thread hop: the supervisor's own work stands out).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let closed = pool_of(&idle, 10, "closed");
    let pools = [&one, &ten, &closed];
    let there = QuotaHandle::start(settings()).unwrap();
    rt.block_on(prepare(&there, &pools, &needs));
    let sys = actix_rt::System::new();
    let here = sys.block_on(async {
        let q = QuotaHandle::start_local(settings()).unwrap();
        prepare(&q, &pools, &needs).await;
        q
    });
    let cases = [
        ("baseline_grant_1_candidate", &one),
        ("grant_10_candidates_first_open", &ten),
        ("grant_10_candidates_last_open", &closed),
    ];
    for (name, pool) in cases {
        let candidates = select(pool, &needs);
        g.bench_function(format!("{name}_cross_thread"), |b| {
            b.iter_custom(|n| rt.block_on(grants(&there, &candidates, n)))
        });
    }
    for (name, pool) in cases {
        let candidates = select(pool, &needs);
        g.bench_function(format!("{name}_same_thread"), |b| {
            b.iter_custom(|n| sys.block_on(grants(&here, &candidates, n)))
        });
    }
    g.finish();
}

/// When the call learned of the 429 (and gave up on that model).
#[derive(Default)]
struct Told(Mutex<Vec<Instant>>);

impl CallObserver for Told {
    fn retrying(&self, _: u32, _: &str, _: Duration) {
        self.0.lock().unwrap().push(Instant::now());
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn print(name: &str, mut gaps: Vec<Duration>) {
    gaps.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "harness/{name}: {} trials; median {:.3} ms, p95 {:.3} ms, max {:.3} ms",
        gaps.len(),
        ms(percentile(&gaps, 0.5)),
        ms(percentile(&gaps, 0.95)),
        ms(gaps[gaps.len() - 1]),
    );
}

/// 429 on one model -> request on the other (see the module docs).
async fn failover(trials: u64) {
    // Every model has one request a minute at the mock; each trial uses two fresh model names.
    let rpm = Limit::new(Dimension::Requests, 1, Duration::from_secs(60)).unwrap();
    let server = serve(MockOptions {
        limits: MockLimits::uniform(vec![rpm]),
        record_events: true,
        ..MockOptions::default()
    })
    .await
    .unwrap();
    let direct = provider(server.v1_url());
    let endpoint = ProviderRef::start(actors(), direct.clone());
    let q = QuotaHandle::start(settings()).unwrap();
    let mut mock_clock = Vec::new();
    let mut client_clock = Vec::new();
    for i in 0..trials {
        let (limited, fresh) = (format!("limited-{i}"), format!("fresh-{i}"));
        // Use the cheap model's minute outside routing: the supervisor does not know.
        let mut used = request();
        used.model.clone_from(&limited);
        direct.chat(&used, None, None).await.unwrap();
        let pool = ModelPool {
            name: "fast".into(),
            members: vec![
                member(&endpoint, &limited, 0.1),
                member(&endpoint, &fresh, 1.0),
            ],
            max_models: 3,
            events: None,
        };
        for m in &pool.members {
            q.register_scope(m.scopes[0].clone(), ScopeSpec::default())
                .await
                .unwrap();
        }
        let route = Route {
            provider: endpoint.clone(),
            key: None,
            retry: RetryPolicy::default(),
            requester: Arc::from("bench"),
            quota: Some(QuotaRoute {
                handle: q.clone(),
                candidates: Vec::new(),
                deadline: Some(Duration::from_secs(30)),
                run_deadline: None,
                output_cap: None,
                extra_scopes: Vec::new(),
            }),
            pool: None,
            models: Some(Arc::new(pool)),
            usage: None,
            budget: None,
        };
        let before = server.events().len();
        let told = Told::default();
        let report = call(&route, request, None, 0, &told).await.unwrap();
        assert_eq!(report.calls, 2, "one 429, then the other model");
        assert_eq!(report.sent.model, fresh);
        let events = server.events();
        let new = &events[before..];
        let refused = new
            .iter()
            .find(|e| e.outcome == MockOutcome::Refused && e.model == limited)
            .expect("the mock refused the limited model");
        let admitted = new
            .iter()
            .find(|e| e.outcome == MockOutcome::Admitted && e.model == fresh)
            .expect("the mock admitted the other model");
        let told = told.0.lock().unwrap().clone();
        assert_eq!(told.len(), 1);
        mock_clock.push(admitted.at.duration_since(refused.at));
        client_clock.push(admitted.at.duration_since(told[0]));
    }
    print("failover_mock_clock_429_arrival_to_other_model", mock_clock);
    print("failover_client_429_seen_to_other_model", client_clock);
    server.shutdown().await;
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
    let args: Vec<String> = std::env::args().collect();
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    // Without `--bench` (`cargo test --benches`) Criterion runs each bench once as a test and
    // the harness, which measures rather than checks, is left out.
    let testing = !args.iter().any(|a| a == "--bench");
    if !testing && filter.is_none_or(|f| f.contains("harness")) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(failover(env_u64("ROUTING_BENCH_FAILOVERS", 300)));
    }
}
