//! Quota engine benchmarks, each beside a baseline measured in the same run.
//!
//! Criterion groups: bare tokio mpsc+oneshot round trips and actix request/reply round trips
//! (same thread and across threads), governor's `check()`, the pure ledger, and an uncontended
//! acquire+settle through the supervisor actor. A small harness after them measures what
//! Criterion does not: latency percentiles with 64 concurrent requesters (beside both
//! baselines), wake-up lateness of parked permits, and 10,000 queued waiters.
//! Run: `cargo bench --bench quota`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler, Message};
use criterion::{Criterion, Throughput};
use massgen::quota::{Dimension, Ledger, Limit, ScopeId, ScopeSpec, Verdict, WallClock};
use massgen::supervisor::{AcquireRequest, QuotaHandle, SupervisorSettings};
use tokio::sync::{mpsc, oneshot};

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Limits high enough never to block: a per-second window keeps the log to one second of
/// admissions (hundreds of thousands of entries at full speed), as a real RPM log holds one
/// minute of them (a few hundred at real LLM rates).
fn roomy_spec() -> ScopeSpec {
    roomy_spec_over(Duration::from_secs(1))
}

/// Like [`roomy_spec`] with windows of `period`.
fn roomy_spec_over(period: Duration) -> ScopeSpec {
    ScopeSpec {
        limits: vec![
            Limit::new(Dimension::Requests, 1_000_000_000, period).unwrap(),
            Limit::new(Dimension::Tokens, 1_000_000_000_000, period).unwrap(),
        ],
        concurrency: NonZeroU32::new(1024),
        ..ScopeSpec::default()
    }
}

fn request(who: &str) -> AcquireRequest {
    AcquireRequest::new(vec![ScopeId::from("bench")], 100, who)
}

fn settings() -> SupervisorSettings {
    SupervisorSettings {
        stagger: Duration::ZERO,
        mailbox_capacity: 65_536,
        ..SupervisorSettings::default()
    }
}

/// A bare actor: answers every oneshot it receives.
async fn echo(mut rx: mpsc::Receiver<oneshot::Sender<()>>) {
    while let Some(tx) = rx.recv().await {
        let _ = tx.send(());
    }
}

async fn roundtrip(tx: &mpsc::Sender<oneshot::Sender<()>>) {
    let (otx, orx) = oneshot::channel();
    tx.send(otx).await.unwrap();
    orx.await.unwrap();
}

/// An echo actor on its own thread, like `QuotaHandle::start`.
fn echo_thread() -> mpsc::Sender<oneshot::Sender<()>> {
    let (tx, rx) = mpsc::channel(65_536);
    std::thread::spawn(move || current_thread().block_on(echo(rx)));
    tx
}

/// A bare actix actor: answers every `Ping` (the request/reply round trip of the actor
/// mechanism itself, with nothing of the supervisor's work).
struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(65_536);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Ping;

impl Handler<Ping> for Echo {
    type Result = ();

    fn handle(&mut self, _: Ping, _: &mut Context<Self>) {}
}

/// An actix echo actor on an actix System of its own thread, like `QuotaHandle::start`.
fn actix_echo_thread() -> Addr<Echo> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sys = actix_rt::System::new();
        sys.block_on(async { tx.send(Echo.start()).unwrap() });
        sys.run().unwrap();
    });
    rx.recv().unwrap()
}

fn criterion_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("quota");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30)
        .throughput(Throughput::Elements(1));

    let rt = current_thread();
    let (tx, rx) = mpsc::channel(65_536);
    rt.spawn(echo(rx));
    g.bench_function("baseline_mpsc_oneshot_same_thread", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    roundtrip(&tx).await;
                }
                start.elapsed()
            })
        })
    });

    // The caller and the actor on one actix arbiter (the paused-time tests' placement).
    let sys = actix_rt::System::new();
    let echo_here = sys.block_on(async { Echo.start() });
    g.bench_function("baseline_actix_send_same_thread", |b| {
        b.iter_custom(|n| {
            sys.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    echo_here.send(Ping).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    let q = sys.block_on(async { QuotaHandle::start_local(settings()).unwrap() });
    sys.block_on(q.register_scope(ScopeId::from("bench"), roomy_spec()))
        .unwrap();
    g.bench_function("supervisor_acquire_settle_same_thread", |b| {
        b.iter_custom(|n| {
            sys.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    q.acquire(request("a")).await.unwrap().settle(90);
                }
                start.elapsed()
            })
        })
    });

    let tx = echo_thread();
    g.bench_function("baseline_mpsc_oneshot_cross_thread", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    roundtrip(&tx).await;
                }
                start.elapsed()
            })
        })
    });

    let echo_there = actix_echo_thread();
    g.bench_function("baseline_actix_send_cross_thread", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    echo_there.send(Ping).await.unwrap();
                }
                start.elapsed()
            })
        })
    });

    let q = QuotaHandle::start(settings()).unwrap();
    rt.block_on(q.register_scope(ScopeId::from("bench"), roomy_spec()))
        .unwrap();
    g.bench_function("supervisor_acquire_settle_cross_thread", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    q.acquire(request("a")).await.unwrap().settle(90);
                }
                start.elapsed()
            })
        })
    });

    let limiter = governor::RateLimiter::direct(governor::Quota::per_second(
        NonZeroU32::new(u32::MAX).unwrap(),
    ));
    g.bench_function("baseline_governor_check", |b| {
        b.iter(|| black_box(limiter.check()).is_ok())
    });

    let origin = Instant::now();
    let mut ledger = Ledger::new(
        Duration::ZERO,
        WallClock {
            origin,
            origin_wall: chrono::Utc::now(),
        },
    );
    let i = ledger.register(ScopeId::from("bench"), roomy_spec(), origin);
    let who: Arc<str> = Arc::from("a");
    g.bench_function("ledger_check_reserve_settle", |b| {
        b.iter(|| {
            let now = Instant::now();
            if ledger.check(&[i], now, 100, &who).verdict == Verdict::Admit {
                let r = ledger.reserve(&[i], now, 100, &who);
                ledger.settle(&r, 90);
            }
        })
    });
    g.finish();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut lat: Vec<Duration>, elapsed: Duration) {
    lat.sort_unstable();
    let ops = lat.len() as f64 / elapsed.as_secs_f64();
    println!(
        "harness/{name}: {} ops in {:.3} s = {:.0} ops/s; latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
        lat.len(),
        elapsed.as_secs_f64(),
        ops,
        percentile(&lat, 0.50).as_secs_f64() * 1e6,
        percentile(&lat, 0.99).as_secs_f64() * 1e6,
        percentile(&lat, 0.999).as_secs_f64() * 1e6,
    );
}

const REQUESTERS: usize = 64;
const PER_REQUESTER: usize = 3_000;

/// 64 concurrent requesters on a 2-worker runtime, each timing every call.
fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn contended<F, Fut>(rt: &tokio::runtime::Runtime, name: &str, call: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (lat, elapsed) = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..REQUESTERS)
            .map(|n| {
                let call = call.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(PER_REQUESTER);
                    for _ in 0..PER_REQUESTER {
                        let t = Instant::now();
                        call(n).await;
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::with_capacity(REQUESTERS * PER_REQUESTER);
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        (all, start.elapsed())
    });
    report(name, lat, elapsed);
}

fn contended_harness() {
    let tx = echo_thread();
    contended(
        &two_workers(),
        "baseline_mpsc_oneshot_64_requesters",
        move |_| {
            let tx = tx.clone();
            async move { roundtrip(&tx).await }
        },
    );
    let echo = actix_echo_thread();
    contended(
        &two_workers(),
        "baseline_actix_send_64_requesters",
        move |_| {
            let echo = echo.clone();
            async move { echo.send(Ping).await.unwrap() }
        },
    );
    let names: Arc<Vec<String>> = Arc::new((0..REQUESTERS).map(|n| format!("agent{n}")).collect());
    let call = |q: QuotaHandle| {
        let names = Arc::clone(&names);
        move |n: usize| {
            let q = q.clone();
            let names = Arc::clone(&names);
            async move {
                q.acquire(request(&names[n])).await.unwrap().settle(90);
            }
        }
    };
    for (label, period) in [
        ("1s_windows", Duration::from_secs(1)),
        ("10ms_windows", Duration::from_millis(10)),
    ] {
        // The supervisor actor on a thread of its own (QuotaHandle::start), the callers on a
        // 2-worker tokio runtime of the embedding application.
        let rt = two_workers();
        let q = QuotaHandle::start(settings()).unwrap();
        rt.block_on(q.register_scope(ScopeId::from("bench"), roomy_spec_over(period)))
            .unwrap();
        let name = format!("supervisor_own_thread_64_requesters_{label}");
        contended(&rt, &name, call(q));
    }
}

/// A scope admitting one request per `period`: the second acquire parks until the first
/// one's entry leaves the window. Lateness is measured from the moment the first acquire was
/// sent (an upper bound: the reservation was made at or after that moment).
fn wake_harness() {
    let period = Duration::from_millis(10);
    let q = QuotaHandle::start(settings()).unwrap();
    let rt = current_thread();
    let spec = ScopeSpec {
        limits: vec![Limit::new(Dimension::Requests, 1, period).unwrap()],
        ..ScopeSpec::default()
    };
    rt.block_on(q.register_scope(ScopeId::from("bench"), spec))
        .unwrap();
    let mut late = Vec::new();
    rt.block_on(async {
        tokio::time::sleep(period).await;
        for _ in 0..200 {
            let sent = Instant::now();
            q.acquire(request("a")).await.unwrap().settle(1);
            q.acquire(request("a")).await.unwrap().settle(1);
            late.push(Instant::now().saturating_duration_since(sent + period));
            // Let the second entry leave the window so the next sample starts clean.
            tokio::time::sleep(period).await;
        }
    });
    late.sort_unstable();
    println!(
        "harness/wakeup_lateness_after_window_frees: {} samples; p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        late.len(),
        percentile(&late, 0.50).as_secs_f64() * 1e3,
        percentile(&late, 0.99).as_secs_f64() * 1e3,
        late.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// Sequential acquire+settle calls on the roomy scope: calls per second.
async fn sequential_rate(q: &QuotaHandle, n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        q.acquire(request("probe")).await.unwrap().settle(90);
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// 10,000 waiters parked behind a concurrency cap of 1 in one scope: memory, the rate of calls
/// in another scope while they wait (compared with before they came), then the drain.
fn queued_harness() {
    const WAITERS: usize = 10_000;
    const PROBES: usize = 20_000;
    let q = QuotaHandle::start(settings()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let parked = ScopeSpec {
        limits: roomy_spec().limits,
        concurrency: NonZeroU32::new(1),
        ..ScopeSpec::default()
    };
    rt.block_on(async {
        q.register_scope(ScopeId::from("bench"), roomy_spec())
            .await
            .unwrap();
        q.register_scope(ScopeId::from("parked"), parked)
            .await
            .unwrap();
        let idle_rate = sequential_rate(&q, PROBES).await;
        let gate = q
            .acquire(AcquireRequest::new(vec![ScopeId::from("parked")], 1, "gate"))
            .await
            .unwrap();
        let before = rss_bytes();
        let names: Vec<Arc<str>> = (0..64).map(|n| Arc::from(format!("agent{n}"))).collect();
        let tasks: Vec<_> = (0..WAITERS)
            .map(|n| {
                let q = q.clone();
                let who = Arc::clone(&names[n % names.len()]);
                tokio::spawn(async move {
                    let mut r = AcquireRequest::new(vec![ScopeId::from("parked")], 90, who);
                    r.priority = (n % 10) as u8;
                    q.acquire(r).await.unwrap().settle(90);
                })
            })
            .collect();
        // Wait until every waiter is queued.
        loop {
            let snap = q.snapshot().await.unwrap();
            if snap.scopes[1].queue_depth >= WAITERS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let after = rss_bytes();
        let busy_rate = sequential_rate(&q, PROBES).await;
        let start = Instant::now();
        drop(gate);
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = start.elapsed();
        println!(
            "harness/queued_10k_waiters: RSS grew {:.2} MB with {WAITERS} queued (supervisor queue plus the callers' own tasks); acquire+settle in another scope {:.0}/s with them queued vs {:.0}/s before ({:.2}x); drained one at a time through a cap of 1 in {:.3} s = {:.0} grants/s",
            after.saturating_sub(before) as f64 / 1e6,
            busy_rate,
            idle_rate,
            busy_rate / idle_rate,
            elapsed.as_secs_f64(),
            WAITERS as f64 / elapsed.as_secs_f64(),
        );
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench -- <filter>` with a Criterion filter skips the harness unless it asks for it.
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) Criterion runs each
    // bench once as a test, and the harness, which measures rather than checks, is left out.
    let testing = !args.iter().any(|a| a == "--bench");
    if !testing && filter.is_none_or(|f| f.contains("harness")) {
        contended_harness();
        wake_harness();
        queued_harness();
    }
}
