//! Property tests: random schedules checked against an independent brute-force reference that
//! recomputes every trailing window from the admitted log (never from the code under test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use massgen::quota::{
    Dimension, Ledger, Limit, RateLimitSignal, Reservation, ScopeId, ScopeSpec, SignalKind,
    Verdict, WallClock,
};
use massgen::supervisor::{AcquireError, AcquireRequest, QuotaHandle, SupervisorSettings};
use proptest::prelude::*;

// ---------- the reference model ----------

/// One admission as the reference sees it.
#[derive(Clone, Debug)]
struct Admitted {
    at: Instant,
    est: u64,
    /// Actual tokens once settled.
    actual: Option<u64>,
    scopes: Vec<usize>,
}

impl Admitted {
    fn tokens(&self) -> u64 {
        self.actual.unwrap_or(self.est)
    }
}

#[derive(Clone, Debug)]
struct RefScope {
    limits: Vec<Limit>,
    cap: Option<u32>,
    cooldown_until: Option<Instant>,
}

/// Whether `est` fits in scope `s` at `t` by recomputing every window from the log, ignoring
/// concurrency when `slots` is false.
fn ref_fits(s: &RefScope, i: usize, log: &[Admitted], t: Instant, est: u64, slots: bool) -> bool {
    if s.cooldown_until.is_some_and(|u| u > t) {
        return false;
    }
    if slots {
        if let Some(cap) = s.cap {
            let in_flight = log
                .iter()
                .filter(|a| a.actual.is_none() && a.scopes.contains(&i))
                .count();
            if in_flight >= cap as usize {
                return false;
            }
        }
    }
    s.limits.iter().all(|l| {
        let in_window = log
            .iter()
            .filter(|a| a.scopes.contains(&i) && a.at <= t && t < a.at + l.period);
        let (used, w) = match l.dimension {
            Dimension::Requests => (in_window.count() as u64, 1),
            Dimension::Tokens | Dimension::InputTokens | Dimension::OutputTokens => {
                (in_window.map(Admitted::tokens).sum(), est)
            }
        };
        used + w <= l.amount.get()
    })
}

// ---------- property 1: the pure ledger against the reference, exactly ----------

#[derive(Clone, Debug)]
enum Op {
    Advance(u64),
    Acquire {
        candidates: Vec<Vec<usize>>,
        est: u64,
    },
    Settle {
        which: usize,
        actual: u64,
    },
    RateLimited {
        scope: usize,
        retry_ms: u64,
    },
}

fn limit_strategy() -> impl Strategy<Value = Vec<Limit>> {
    (
        1u64..=4,
        1u64..=10,
        proptest::option::of((200u64..=2000, 1u64..=10)),
    )
        .prop_map(|(n, p, tok)| {
            let mut v = vec![Limit::new(Dimension::Requests, n, Duration::from_secs(p)).unwrap()];
            if let Some((a, p)) = tok {
                v.push(Limit::new(Dimension::Tokens, a, Duration::from_secs(p)).unwrap());
            }
            v
        })
}

fn scope_strategy() -> impl Strategy<Value = RefScope> {
    (limit_strategy(), proptest::option::of(1u32..=3)).prop_map(|(limits, cap)| RefScope {
        limits,
        cap,
        cooldown_until: None,
    })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let cand = proptest::collection::btree_set(0usize..3, 1..=2)
        .prop_map(|s| s.into_iter().collect::<Vec<_>>());
    prop_oneof![
        3 => (0u64..4000).prop_map(Op::Advance),
        5 => (proptest::collection::vec(cand, 1..=2), 0u64..=1200)
            .prop_map(|(candidates, est)| Op::Acquire { candidates, est }),
        3 => (any::<usize>(), 0u64..=1500).prop_map(|(which, actual)| Op::Settle { which, actual }),
        1 => (0usize..3, 0u64..10_000).prop_map(|(scope, retry_ms)| Op::RateLimited { scope, retry_ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ledger_admits_exactly_what_the_reference_admits(
        mut scopes in proptest::collection::vec(scope_strategy(), 3),
        ops in proptest::collection::vec(op_strategy(), 1..120),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut ledger = Ledger::new(Duration::ZERO, WallClock { origin: t0, origin_wall: Utc::now() });
        for (i, s) in scopes.iter().enumerate() {
            let spec = ScopeSpec {
                limits: s.limits.clone(),
                concurrency: s.cap.and_then(NonZeroU32::new),
                ..ScopeSpec::default()
            };
            prop_assert_eq!(ledger.register(ScopeId::new(format!("s{i}")), spec, t0), i);
        }
        let who: Arc<str> = Arc::from("agent");
        let mut log: Vec<Admitted> = Vec::new();
        let mut open: Vec<(usize, Reservation)> = Vec::new();
        for op in ops {
            match op {
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::Acquire { candidates, est } => {
                    let expected = candidates.iter().position(|c| {
                        c.iter().all(|&i| ref_fits(&scopes[i], i, &log, now, est, true))
                    });
                    let mut granted = None;
                    for (ci, c) in candidates.iter().enumerate() {
                        let check = ledger.check(c, now, est, &who);
                        match check.verdict {
                            Verdict::Admit => {
                                granted = Some(ci);
                                break;
                            }
                            Verdict::WaitUntil { at, .. } => {
                                // The earliest instant is exact: it fits then, not a moment before.
                                prop_assert!(at > now);
                                prop_assert!(c.iter().all(|&i| ref_fits(&scopes[i], i, &log, at, est, false)));
                                let before = at - Duration::from_nanos(1);
                                prop_assert!(!c.iter().all(|&i| ref_fits(&scopes[i], i, &log, before, est, false)));
                            }
                            Verdict::Never { limit, requested } => {
                                prop_assert!(requested > limit.amount.get());
                            }
                            Verdict::WaitForEvent { .. } | Verdict::Closed { .. } => {}
                        }
                    }
                    prop_assert_eq!(granted, expected, "at {:?}", now - t0);
                    if let Some(ci) = granted {
                        let r = ledger.reserve(&candidates[ci], now, est, &who);
                        open.push((log.len(), r));
                        log.push(Admitted { at: now, est, actual: None, scopes: candidates[ci].clone() });
                    }
                }
                Op::Settle { which, actual } => {
                    if !open.is_empty() {
                        let (idx, r) = open.swap_remove(which % open.len());
                        ledger.settle(&r, actual);
                        log[idx].actual = Some(actual);
                    }
                }
                Op::RateLimited { scope, retry_ms } => {
                    let d = Duration::from_millis(retry_ms);
                    let signal = RateLimitSignal::new(SignalKind::RateLimited).with_retry_after(d);
                    ledger.apply_signal(scope, &signal, now);
                    let s = &mut scopes[scope];
                    s.cooldown_until = Some(s.cooldown_until.map_or(now + d, |u| u.max(now + d)));
                }
            }
        }
        // Memory stays bounded by what is inside the windows.
        for i in 0..3 {
            let s = ledger.scope(i).unwrap();
            let longest = s.limits().iter().map(|l| l.log.period()).max().unwrap();
            let distinct: std::collections::BTreeSet<_> = log
                .iter()
                .filter(|a| a.scopes.contains(&i) && a.at + longest > now)
                .map(|a| a.at)
                .collect();
            let mut probe = s.clone();
            probe.check(now, 0, "agent");
            prop_assert!(probe.log_entries() <= distinct.len() * s.limits().len());
        }
    }
}

// ---------- property 2: the supervisor under paused time ----------

/// The candidate shapes a caller may ask for, over scopes `s0` and `s1`.
const SHAPES: [&[&[usize]]; 4] = [&[&[0]], &[&[1]], &[&[0, 1]], &[&[0], &[1]]];

#[derive(Clone, Debug)]
struct Caller {
    arrive_ms: u64,
    shape: usize,
    est: u64,
    actual: u64,
    hold_ms: u64,
    priority: u8,
    gives_up_ms: Option<u64>,
}

fn caller_strategy() -> impl Strategy<Value = Caller> {
    (
        (0u64..30_000, 0usize..SHAPES.len()),
        0u64..=1100,
        0u64..=1500,
        0u64..5_000,
        0u8..=9,
        proptest::option::weighted(0.25, 0u64..20_000),
    )
        .prop_map(
            |((arrive_ms, shape), est, actual, hold_ms, priority, gives_up_ms)| Caller {
                arrive_ms,
                shape,
                est,
                actual,
                hold_ms,
                priority,
                gives_up_ms,
            },
        )
}

/// A permit as its caller saw it.
#[derive(Debug, Clone)]
struct Grant {
    at: Duration,
    est: u64,
    settled: Duration,
    actual: u64,
    waited: Duration,
    scopes: Vec<usize>,
}

#[derive(Debug, Default)]
struct Record {
    grants: Vec<Grant>,
    never_fits: usize,
    gave_up: usize,
    other_errors: Vec<String>,
}

#[derive(Clone, Debug)]
struct ScopeLimits {
    rpm: u64,
    tpm: u64,
    cap: Option<u32>,
}

fn scope_limits() -> impl Strategy<Value = ScopeLimits> {
    (1u64..=4, 500u64..=1000, proptest::option::of(1u32..=3))
        .prop_map(|(rpm, tpm, cap)| ScopeLimits { rpm, tpm, cap })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn supervisor_never_exceeds_a_window_and_never_serves_a_caller_that_left(
        limits in proptest::collection::vec(scope_limits(), 2),
        callers in proptest::collection::vec(caller_strategy(), 1..24),
        storms in proptest::collection::vec((0u64..40_000, 0u64..15_000, 0usize..2), 0..3),
    ) {
        let period = Duration::from_secs(10);
        let rt = crate::paused_system();
        let record = Arc::new(Mutex::new(Record::default()));
        let names = [ScopeId::from("s0"), ScopeId::from("s1")];
        let (granted_total, t_end) = rt.block_on(async {
            let settings = SupervisorSettings { stagger: Duration::ZERO, ..SupervisorSettings::default() };
            let q = QuotaHandle::start_local(settings).unwrap();
            for (name, l) in names.iter().zip(&limits) {
                let spec = ScopeSpec {
                    limits: vec![
                        Limit::new(Dimension::Requests, l.rpm, period).unwrap(),
                        Limit::new(Dimension::Tokens, l.tpm, period).unwrap(),
                    ],
                    concurrency: l.cap.and_then(NonZeroU32::new),
                    ..ScopeSpec::default()
                };
                q.register_scope(name.clone(), spec).await.unwrap();
            }
            let t0 = tokio::time::Instant::now();
            let mut tasks = Vec::new();
            for (at, retry, scope) in storms.clone() {
                let q = q.clone();
                let name = names[scope].clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(at)).await;
                    q.feedback(name, RateLimitSignal::new(SignalKind::RateLimited)
                        .with_retry_after(Duration::from_millis(retry)));
                }));
            }
            for (n, c) in callers.clone().into_iter().enumerate() {
                let q = q.clone();
                let record = Arc::clone(&record);
                let names = names.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(c.arrive_ms)).await;
                    let candidates = SHAPES[c.shape]
                        .iter()
                        .map(|cand| cand.iter().map(|&i| names[i].clone()).collect())
                        .collect();
                    let req = AcquireRequest {
                        candidates,
                        est_tokens: c.est,
                        est_output: 0,
                        priority: c.priority,
                        deadline: Some(Duration::from_secs(3600)),
                        requester: Arc::from(format!("agent{n}")),
                    };
                    let res = match c.gives_up_ms {
                        Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), q.acquire(req)).await {
                            Ok(r) => r,
                            Err(_) => {
                                record.lock().unwrap().gave_up += 1;
                                return;
                            }
                        },
                        None => q.acquire(req).await,
                    };
                    match res {
                        Ok(p) => {
                            let at = t0.elapsed();
                            let waited = p.waited();
                            let scopes = SHAPES[c.shape][p.candidate()].to_vec();
                            let named: Vec<_> = scopes.iter().map(|&i| names[i].clone()).collect();
                            assert_eq!(p.scopes(), &named[..]);
                            tokio::time::sleep(Duration::from_millis(c.hold_ms)).await;
                            let settled = t0.elapsed();
                            p.settle(c.actual);
                            record.lock().unwrap().grants.push(Grant {
                                at, est: c.est, settled, actual: c.actual, waited, scopes,
                            });
                        }
                        Err(AcquireError::NeverFits { .. }) => record.lock().unwrap().never_fits += 1,
                        Err(e) => record.lock().unwrap().other_errors.push(e.to_string()),
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let snap = q.snapshot().await.unwrap();
            let mut granted = Vec::new();
            for s in &snap.scopes {
                prop_assert_eq!(s.in_flight, 0);
                granted.push(s.granted_total);
            }
            Ok((granted, t0.elapsed()))
        })?;
        let r = record.lock().unwrap();
        // Nobody was refused for waiting too long: no starvation within an hour.
        prop_assert!(r.other_errors.is_empty(), "{:?}", r.other_errors);
        // Every permit the supervisor counts reached a caller: none went to a caller that left.
        for (i, total) in granted_total.iter().enumerate() {
            let seen = r.grants.iter().filter(|g| g.scopes.contains(&i)).count();
            prop_assert_eq!(*total as usize, seen);
        }
        // A request never fits when every candidate has a scope whose token limit is too small.
        let never = callers
            .iter()
            .filter(|c| SHAPES[c.shape].iter().all(|cand| cand.iter().any(|&i| c.est > limits[i].tpm)))
            .count();
        prop_assert_eq!(r.never_fits, never);
        prop_assert_eq!(r.grants.len() + r.never_fits + r.gave_up, callers.len());
        // Bounded waits: one full period per caller ahead, plus holds and cooldowns.
        let bound = period * callers.len() as u32
            + Duration::from_millis(callers.iter().map(|c| c.hold_ms).sum::<u64>()
                + storms.iter().map(|s| s.1).sum::<u64>());
        for g in &r.grants {
            prop_assert!(g.waited <= bound, "waited {:?} > bound {:?}", g.waited, bound);
        }
        // Every trailing window of every scope, recomputed from the grant log at every grant.
        for (i, l) in limits.iter().enumerate() {
            let mine: Vec<&Grant> = r.grants.iter().filter(|g| g.scopes.contains(&i)).collect();
            for g in &mine {
                let t = g.at;
                let window: Vec<_> = mine.iter().filter(|h| h.at <= t && t < h.at + period).collect();
                prop_assert!(window.len() as u64 <= l.rpm, "{} requests in s{} ending {:?}", window.len(), i, t);
                let tokens: u64 = window
                    .iter()
                    .map(|h| match h.settled.cmp(&t) {
                        std::cmp::Ordering::Less => h.actual,
                        std::cmp::Ordering::Equal => h.est.min(h.actual),
                        std::cmp::Ordering::Greater => h.est,
                    })
                    .sum();
                prop_assert!(tokens <= l.tpm, "{} tokens in s{} ending {:?}", tokens, i, t);
                if let Some(cap) = l.cap {
                    let in_flight = mine.iter().filter(|h| h.at <= t && h.settled > t).count();
                    prop_assert!(in_flight as u32 <= cap);
                }
                for &(at, retry, scope) in &storms {
                    let (at, retry) = (Duration::from_millis(at), Duration::from_millis(retry));
                    prop_assert!(scope != i || !(t > at && t < at + retry), "granted at {:?} inside a cooldown of s{}", t, i);
                }
            }
        }
        prop_assert!(t_end < Duration::from_secs(3600));
    }
}
