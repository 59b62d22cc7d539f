//! Cost of metrics on the permit path: acquire + settle through the quota supervisor, with and
//! without telemetry, in the same run.
//!
//! One uncontended requester; the supervisor on its own thread as `QuotaHandle::start` runs it;
//! the caller and any listener task on one current-thread tokio runtime. Variants:
//! - `no_listener`: acquire + settle and nothing else (nobody subscribed: the supervisor then
//!   builds no events at all);
//! - `routing_side`: the same plus the routing layer recording the grant through cached handles
//!   (`ScopeMetrics::permit_granted`), Prometheus recorder on;
//! - `listener`: one task draining the quota event stream and dropping each event: the consumer
//!   the runtime has anyway (progress, events.jsonl);
//! - `listener_metrics`: that same task also feeding each event to a `QuotaMetricsBridge`,
//!   Prometheus recorder on: metrics recorded where events are already consumed;
//! - `separate_bridge`: `listener` plus `spawn_quota_bridge` as a second subscriber, Prometheus
//!   recorder on: the worst case, a dedicated metrics task.
//!
//! The recorder is a local Prometheus recorder set as this thread's default (where the caller
//! and the listener tasks run), so variants with and without it share one process and one
//! supervisor. Criterion measures each variant; then an interleaved harness (rounds rotating the
//! variants, medians) prints the overheads so the drift of a shared machine cancels out.
//! Run: `cargo bench --bench metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use massgen::quota::{Dimension, Limit, ScopeId, ScopeSpec};
use massgen::supervisor::{AcquireRequest, QuotaHandle, SupervisorSettings};
use massgen::telemetry::{self, QuotaMetricsBridge, quota::ScopeMetrics};
use metrics_exporter_prometheus::PrometheusRecorder;
use tokio::runtime::Runtime;

const SCOPE: &str = "bench/model";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    NoListener,
    RoutingSide,
    Listener,
    ListenerMetrics,
    SeparateBridge,
}

const VARIANTS: [(&str, Variant); 5] = [
    ("no_listener", Variant::NoListener),
    ("routing_side", Variant::RoutingSide),
    ("listener", Variant::Listener),
    ("listener_metrics", Variant::ListenerMetrics),
    ("separate_bridge", Variant::SeparateBridge),
];

impl Variant {
    fn recorder_on(self) -> bool {
        matches!(
            self,
            Variant::RoutingSide | Variant::ListenerMetrics | Variant::SeparateBridge
        )
    }
}

struct Bench {
    rt: Runtime,
    quota: QuotaHandle,
    scope: ScopeId,
    recorder: PrometheusRecorder,
}

impl Bench {
    fn new() -> Bench {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let quota = QuotaHandle::start(SupervisorSettings::default()).unwrap();
        let scope = ScopeId::new(SCOPE);
        // Huge limits over a 1 s window: every limit is checked, none ever blocks, and the
        // sliding logs stay bounded by one second of entries.
        let spec = ScopeSpec {
            limits: vec![
                Limit::new(Dimension::Requests, 1 << 40, Duration::from_secs(1)).unwrap(),
                Limit::new(Dimension::Tokens, 1 << 50, Duration::from_secs(1)).unwrap(),
            ],
            concurrency: None,
            ..ScopeSpec::default()
        };
        rt.block_on(quota.register_scope(scope.clone(), spec))
            .unwrap();
        Bench {
            rt,
            quota,
            scope,
            recorder: telemetry::local_recorder().unwrap(),
        }
    }

    /// `iters` acquire + settle round trips in `variant`; the elapsed time.
    fn run(&self, variant: Variant, iters: u64) -> Duration {
        let _guard = variant
            .recorder_on()
            .then(|| metrics::set_default_local_recorder(&self.recorder));
        self.rt.block_on(async {
            let mut tasks = Vec::new();
            if matches!(
                variant,
                Variant::Listener | Variant::ListenerMetrics | Variant::SeparateBridge
            ) {
                let mut events = self.quota.subscribe();
                let with_metrics = variant == Variant::ListenerMetrics;
                tasks.push(tokio::spawn(async move {
                    let mut bridge = with_metrics.then(QuotaMetricsBridge::new);
                    while let Ok(event) = events.recv().await {
                        if let Some(bridge) = bridge.as_mut() {
                            bridge.record(&event);
                        }
                        std::hint::black_box(event);
                    }
                }));
            }
            if variant == Variant::SeparateBridge {
                tasks.push(telemetry::spawn_quota_bridge(&self.quota));
            }
            let scope_metrics = (variant == Variant::RoutingSide).then(|| ScopeMetrics::new(SCOPE));
            let start = Instant::now();
            for _ in 0..iters {
                let req = AcquireRequest::new(vec![self.scope.clone()], 1, "bench");
                let permit = self.quota.acquire(req).await.unwrap();
                if let Some(m) = &scope_metrics {
                    m.permit_granted(permit.waited());
                }
                permit.settle(1);
            }
            // Let the listeners drain what this batch emitted, inside the timed region.
            tokio::task::yield_now().await;
            for t in tasks {
                t.abort();
            }
            start.elapsed()
        })
    }
}

fn permit_path(c: &mut Criterion) {
    let bench = Bench::new();
    let mut group = c.benchmark_group("permit_path");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, variant) in VARIANTS {
        group.bench_function(name, |b| b.iter_custom(|iters| bench.run(variant, iters)));
    }
    group.finish();
}

fn recording_alone(c: &mut Criterion) {
    let recorder = telemetry::local_recorder().unwrap();
    let mut group = c.benchmark_group("recording");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("permit_granted_prometheus", |b| {
        metrics::with_local_recorder(&recorder, || {
            b.iter(|| telemetry::quota::permit_granted(SCOPE, Duration::from_millis(3)));
        });
    });
    group.bench_function("permit_granted_noop", |b| {
        b.iter(|| telemetry::quota::permit_granted(SCOPE, Duration::from_millis(3)));
    });
    group.bench_function("scope_metrics_prometheus", |b| {
        metrics::with_local_recorder(&recorder, || {
            let m = telemetry::quota::ScopeMetrics::new(SCOPE);
            b.iter(|| m.permit_granted(Duration::from_millis(3)));
        });
    });
    group.bench_function("window_usage_prometheus", |b| {
        metrics::with_local_recorder(&recorder, || {
            b.iter(|| {
                telemetry::quota::window_usage(
                    SCOPE,
                    Dimension::Tokens,
                    Duration::from_secs(60),
                    12_000,
                    32_000,
                );
            });
        });
    });
    group.finish();
}

/// Rounds rotating the variants, each `iters` round trips; medians in microseconds per op.
fn interleaved(rounds: usize, iters: u64) {
    let bench = Bench::new();
    for (_, v) in VARIANTS {
        bench.run(v, iters / 4); // warm up
    }
    let n = VARIANTS.len();
    let mut per_op: Vec<Vec<f64>> = vec![Vec::new(); n];
    for round in 0..rounds {
        for k in 0..n {
            // Rotate the order each round so no variant always runs first.
            let i = (k + round) % n;
            let t = bench.run(VARIANTS[i].1, iters);
            per_op[i].push(t.as_secs_f64() * 1e6 / iters as f64);
        }
    }
    let m: Vec<f64> = per_op
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    let pct = |a: f64, b: f64| (a / b - 1.0) * 100.0;
    println!("\ninterleaved permit path ({rounds} rounds x {iters} acquire+settle, medians):");
    for ((name, _), us) in VARIANTS.iter().zip(&m) {
        println!("  {name:<17} {us:6.2} us/op");
    }
    println!(
        "  overhead routing_side vs no_listener:     {:+.1}%",
        pct(m[1], m[0])
    );
    println!(
        "  overhead listener_metrics vs listener:    {:+.1}%",
        pct(m[3], m[2])
    );
    println!(
        "  overhead separate_bridge vs listener:     {:+.1}%",
        pct(m[4], m[2])
    );
    println!(
        "  (listener vs no_listener, no metrics:     {:+.1}%)",
        pct(m[2], m[0])
    );
}

criterion_group!(benches, permit_path, recording_alone);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let quick = std::env::args().any(|a| a == "--test");
    if quick {
        interleaved(3, 200);
    } else {
        interleaved(15, 20_000);
    }
}
