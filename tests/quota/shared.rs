//! Several processes on one quota store: two ledgers that share an SQLite file decide exactly
//! what one ledger holding both logs would (property test against the brute-force reference),
//! and a supervisor started later respects what an earlier one spent in a day window, on
//! paused time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use massgen::quota::{
    DailyReset, Dimension, Ledger, Limit, RateLimitSignal, Reservation, ScopeId, ScopeSpec,
    SignalKind, Verdict, WallClock,
};
use massgen::store::{Mirror, QuotaStore, SqliteStore, StoreSpec, Write, wall_ms};
use massgen::supervisor::{AcquireRequest, QuotaHandle, SupervisorSettings};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Admitted {
    at: Instant,
    tokens: u64,
}

/// Whether `est` fits under `limits` at `t`, recomputed from the union of both processes' logs.
fn ref_fits(limits: &[Limit], log: &[Admitted], t: Instant, est: u64) -> bool {
    limits.iter().all(|l| {
        let inside = log.iter().filter(|a| a.at <= t && t < a.at + l.period);
        let (used, w) = match l.dimension {
            Dimension::Requests => (inside.count() as u64, 1),
            _ => (inside.map(|a| a.tokens).sum(), est),
        };
        used + w <= l.amount.get()
    })
}

#[derive(Clone, Debug)]
enum Op {
    Advance(u64),
    Acquire { who: usize, est: u64 },
    Settle { which: usize, actual: u64 },
    Release { which: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..3000).prop_map(Op::Advance),
        5 => (0usize..2, 0u64..=800).prop_map(|(who, est)| Op::Acquire { who, est }),
        2 => (any::<usize>(), 0u64..=900).prop_map(|(which, actual)| Op::Settle { which, actual }),
        1 => any::<usize>().prop_map(|which| Op::Release { which }),
    ]
}

/// One process: its ledger, its view of the others, its store connection.
struct Process {
    ledger: Ledger,
    mirror: Mirror,
    store: SqliteStore,
}

impl Process {
    fn sync(&mut self, now: Instant) {
        let changes = self.store.begin().unwrap();
        self.mirror.apply(&mut self.ledger, changes, now);
    }

    fn commit(&mut self, now: Instant) {
        let ms = wall_ms(self.ledger.wall_clock(), now);
        self.store.commit(ms).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn two_ledgers_sharing_a_store_admit_exactly_what_one_ledger_would(
        requests in 1u64..=4,
        period in 1u64..=6,
        tokens in proptest::option::of(300u64..=1500),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut limits = vec![Limit::new(Dimension::Requests, requests, Duration::from_secs(period)).unwrap()];
        if let Some(t) = tokens {
            limits.push(Limit::new(Dimension::Tokens, t, Duration::from_secs(period + 1)).unwrap());
        }
        let t0 = Instant::now();
        // Whole milliseconds on both clocks: the store's rounding is then exact.
        let wall = WallClock { origin: t0, origin_wall: DateTime::from_timestamp(1_770_000_000, 0).unwrap() };
        let spec = ScopeSpec { limits: limits.clone(), ..ScopeSpec::default() };
        let mut procs: Vec<Process> = (0..2)
            .map(|_| {
                let mut ledger = Ledger::new(Duration::ZERO, wall);
                ledger.register(ScopeId::new("s"), spec.clone(), t0);
                Process { ledger, mirror: Mirror::new(), store: SqliteStore::open(&path).unwrap() }
            })
            .collect();
        let who: Arc<str> = Arc::from("agent");
        let mut now = t0;
        let mut log: Vec<Option<Admitted>> = Vec::new();
        // (process, index in `log`, reservation, store row)
        let mut open: Vec<(usize, usize, Reservation, i64)> = Vec::new();
        for op in ops {
            match op {
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::Acquire { who: k, est } => {
                    let union: Vec<Admitted> = log.iter().flatten().cloned().collect();
                    let expected = ref_fits(&limits, &union, now, est);
                    let p = &mut procs[k];
                    p.sync(now);
                    let verdict = p.ledger.check(&[0], now, est, &who).verdict;
                    let admitted = verdict == Verdict::Admit;
                    prop_assert_eq!(admitted, expected, "process {} at {:?}: {:?}", k, now - t0, verdict);
                    if admitted {
                        let r = p.ledger.reserve(&[0], now, est, &who);
                        let id = p.store.write(&Write::Admit {
                            scope: "s".into(),
                            at_ms: wall_ms(&wall, now),
                            input: est,
                            output: 0,
                        }).unwrap().unwrap();
                        open.push((k, log.len(), r, id));
                        log.push(Some(Admitted { at: now, tokens: est }));
                    }
                    p.commit(now);
                }
                Op::Settle { which, actual } => {
                    if !open.is_empty() {
                        let (k, idx, r, id) = open.swap_remove(which % open.len());
                        // A reservation is an upper bound of what the provider counts.
                        let actual = actual.min(r.est.total());
                        let p = &mut procs[k];
                        p.sync(now);
                        p.ledger.settle(&r, actual);
                        p.store.write(&Write::Tokens { id, input: actual, output: 0 }).unwrap();
                        p.commit(now);
                        if let Some(a) = log[idx].as_mut() {
                            a.tokens = actual;
                        }
                    }
                }
                Op::Release { which } => {
                    if !open.is_empty() {
                        let (k, idx, r, id) = open.swap_remove(which % open.len());
                        let p = &mut procs[k];
                        p.sync(now);
                        p.ledger.uncount(&r);
                        p.store.write(&Write::Remove { id }).unwrap();
                        p.commit(now);
                        log[idx] = None;
                    }
                }
            }
        }
        // Every admission of both, in any window, never exceeds a limit.
        let union: Vec<Admitted> = log.iter().flatten().cloned().collect();
        for a in &union {
            for l in &limits {
                let inside = union.iter().filter(|b| b.at <= a.at && a.at < b.at + l.period);
                let used: u64 = match l.dimension {
                    Dimension::Requests => inside.count() as u64,
                    _ => inside.map(|b| b.tokens).sum(),
                };
                prop_assert!(used <= l.amount.get(), "{} in a window of {}", used, l);
            }
        }
    }
}

fn nz(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap()
}

fn settings(path: &std::path::Path) -> SupervisorSettings {
    SupervisorSettings {
        stagger: Duration::ZERO,
        store: StoreSpec::Sqlite(path.to_path_buf()),
        ..SupervisorSettings::default()
    }
}

fn wall0() -> DateTime<Utc> {
    // 20:00 UTC in January is 12:00 in Los Angeles: midnight Pacific is 12 h away.
    DateTime::parse_from_rfc3339("2026-01-15T20:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Acquires on `q` and returns how long after `t0` the permit came (the permit is settled).
async fn granted_after(q: &QuotaHandle, scope: &str, t0: tokio::time::Instant) -> Duration {
    let mut r = AcquireRequest::new(vec![ScopeId::from(scope)], 1, "late");
    r.deadline = Some(Duration::from_secs(2 * 86_400));
    let p = q.acquire(r).await.unwrap();
    let at = tokio::time::Instant::now() - t0;
    p.settle(1);
    at
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn requests_per_day_spent_by_an_earlier_process_hold_a_later_one_until_they_leave() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let spec = ScopeSpec {
        limits: vec![Limit::rpd(nz(3))],
        ..ScopeSpec::default()
    };
    let t0 = tokio::time::Instant::now();
    let first = QuotaHandle::start_local_with_wall_clock(settings(&path), wall0()).unwrap();
    first
        .register_scope(ScopeId::from("g"), spec.clone())
        .await
        .unwrap();
    for i in 0..3 {
        let p = first
            .acquire(AcquireRequest::new(
                vec![ScopeId::from("g")],
                1,
                format!("a{i}"),
            ))
            .await
            .unwrap();
        p.settle(1);
        tokio::time::advance(Duration::from_secs(600)).await;
    }
    drop(first);
    // Five hours later a new process starts on the same file: the day's 3 are spent, and the
    // first of them leaves the window 24 h after it was made.
    tokio::time::advance(Duration::from_secs(5 * 3600 - 1800)).await;
    let wall = wall0() + chrono::Duration::seconds(5 * 3600);
    assert_eq!(
        tokio::time::Instant::now() - t0,
        Duration::from_secs(5 * 3600)
    );
    let second = QuotaHandle::start_local_with_wall_clock(settings(&path), wall).unwrap();
    second
        .register_scope(ScopeId::from("g"), spec.clone())
        .await
        .unwrap();
    assert_eq!(
        granted_after(&second, "g", t0).await,
        Duration::from_secs(86_400)
    );
    // A process with its own memory only would have gone at once.
    let alone = QuotaHandle::start_local_with_wall_clock(
        SupervisorSettings {
            stagger: Duration::ZERO,
            ..SupervisorSettings::default()
        },
        wall,
    )
    .unwrap();
    alone
        .register_scope(ScopeId::from("g"), spec)
        .await
        .unwrap();
    let now = tokio::time::Instant::now();
    assert_eq!(granted_after(&alone, "g", now).await, Duration::ZERO);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_daily_quota_signal_seen_by_an_earlier_process_closes_the_scope_until_the_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let spec = ScopeSpec {
        limits: vec![Limit::rpd(nz(100))],
        daily_reset: Some(DailyReset {
            hour: 0,
            minute: 0,
            tz: chrono_tz::America::Los_Angeles,
        }),
        ..ScopeSpec::default()
    };
    let t0 = tokio::time::Instant::now();
    let first = QuotaHandle::start_local_with_wall_clock(settings(&path), wall0()).unwrap();
    first
        .register_scope(ScopeId::from("g"), spec.clone())
        .await
        .unwrap();
    first.feedback(
        ScopeId::from("g"),
        RateLimitSignal::new(SignalKind::DailyQuotaExhausted),
    );
    // The snapshot is answered after the feedback was applied and written through.
    first.snapshot().await.unwrap();
    drop(first);
    tokio::task::yield_now().await;
    tokio::time::advance(Duration::from_secs(3600)).await;
    let second = QuotaHandle::start_local_with_wall_clock(
        settings(&path),
        wall0() + chrono::Duration::seconds(3600),
    )
    .unwrap();
    second
        .register_scope(ScopeId::from("g"), spec)
        .await
        .unwrap();
    // Midnight Pacific: 12 h after the first process started.
    assert_eq!(
        granted_after(&second, "g", t0).await,
        Duration::from_secs(12 * 3600)
    );
}
