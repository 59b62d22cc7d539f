//! The Redis store's commit script against a real server: two stores on one server admit
//! exactly what a brute-force reference on the server's clock would, a refusal names the exact
//! earliest instant the request fits, and a refused supervisor pass holds the scope, then
//! grants; an unreachable server is a clear error at open, or per-process limits with
//! `fail_open_local`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use massgen::quota::{Dimension, ScopeId, ScopeSpec};
use massgen::store::{Change, QuotaStore, RedisStore, StoreError, StoreSpec, WindowLimit, Write};
use massgen::supervisor::{AcquireRequest, QuotaHandle, SupervisorSettings};
use proptest::prelude::*;

use crate::redis_server::RedisServer;

#[derive(Clone, Debug)]
struct Entry {
    at: i64,
    tokens: u64,
}

/// Whether `tokens` more (one request) fits every limit at server instant `t`, recomputed from
/// every live admission of both stores.
fn fits(limits: &[WindowLimit], log: &[Entry], t: i64, tokens: u64) -> bool {
    limits.iter().all(|l| {
        let inside = log.iter().filter(|e| e.at <= t && t < e.at + l.window_ms);
        let (used, w) = match l.dimension {
            Dimension::Requests => (inside.count() as u64, 1),
            _ => (inside.map(|e| e.tokens).sum(), tokens),
        };
        used + w <= l.amount
    })
}

/// The earliest instant at or after `t` at which it fits, with nothing else admitted.
fn earliest(limits: &[WindowLimit], log: &[Entry], t: i64, tokens: u64) -> i64 {
    let mut candidates: Vec<i64> = log
        .iter()
        .flat_map(|e| limits.iter().map(move |l| e.at + l.window_ms))
        .filter(|&c| c > t)
        .collect();
    candidates.sort_unstable();
    candidates
        .into_iter()
        .find(|&c| fits(limits, log, c, tokens))
        .unwrap_or(i64::MAX)
}

#[derive(Clone, Debug)]
enum Op {
    Sleep(u64),
    Admit { who: usize, tokens: u64 },
    Settle { which: usize, actual: u64 },
    Release { which: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u64..250).prop_map(Op::Sleep),
        5 => (0usize..2, 0u64..=600).prop_map(|(who, tokens)| Op::Admit { who, tokens }),
        2 => (any::<usize>(), 0u64..=700).prop_map(|(which, actual)| Op::Settle { which, actual }),
        1 => any::<usize>().prop_map(|which| Op::Release { which }),
    ]
}

/// What `store` reads from the change stream once another process's commit reached it (a
/// store reads the stream when it hears of a commit, or every 500 ms at the latest).
fn pulled(store: &mut RedisStore) -> Vec<Change> {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let seen = store.begin().unwrap();
        if !seen.is_empty() || std::time::Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scope_limits(store: &mut RedisStore, limits: &[WindowLimit]) {
    store
        .write(&Write::Limits {
            scope: "s".into(),
            limits: limits.to_vec(),
        })
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn two_stores_on_one_server_admit_exactly_what_the_reference_would(
        requests in 1u64..=4,
        window in 150i64..=700,
        tokens in proptest::option::of(300u64..=1200),
        ops in proptest::collection::vec(op(), 1..28),
    ) {
        let server = RedisServer::start();
        let mut limits = vec![WindowLimit { dimension: Dimension::Requests, amount: requests, window_ms: window }];
        if let Some(t) = tokens {
            limits.push(WindowLimit { dimension: Dimension::Tokens, amount: t, window_ms: window + 100 });
        }
        let mut stores: Vec<RedisStore> = (0..2).map(|_| RedisStore::open(&server.url(), false).unwrap()).collect();
        for s in &mut stores {
            scope_limits(s, &limits);
        }
        // (store, id, entry index)
        let mut open: Vec<(usize, i64, usize)> = Vec::new();
        let mut log: Vec<Option<Entry>> = Vec::new();
        for op in ops {
            match op {
                Op::Sleep(ms) => std::thread::sleep(Duration::from_millis(ms)),
                Op::Admit { who, tokens } => {
                    let s = &mut stores[who];
                    s.begin().unwrap();
                    let id = s.write(&Write::Admit { scope: "s".into(), at_ms: 0, input: tokens, output: 0 }).unwrap().unwrap();
                    let result = s.commit(0);
                    let t = s.last_server_ms();
                    let live: Vec<Entry> = log.iter().flatten().cloned().collect();
                    let expected = fits(&limits, &live, t, tokens);
                    match result {
                        Ok(()) => {
                            prop_assert!(expected, "admitted at {} though the reference refuses: {:?}", t, live);
                            open.push((who, id, log.len()));
                            log.push(Some(Entry { at: t, tokens }));
                        }
                        Err(StoreError::Conflict { .. }) => {
                            prop_assert!(!expected, "refused at {} though the reference admits: {:?}", t, live);
                            let at = s.last_refused().first().map(|r| r.1).unwrap();
                            // A request larger than a limit never fits (the ledger refuses it
                            // before asking the store): any later instant will do.
                            let expected_at = earliest(&limits, &live, t, tokens);
                            if expected_at != i64::MAX {
                                prop_assert_eq!(at, expected_at, "earliest fit at {}", t);
                            } else {
                                prop_assert!(at > t);
                            }
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                Op::Settle { which, actual } => {
                    if !open.is_empty() {
                        let (k, id, idx) = open[which % open.len()];
                        let s = &mut stores[k];
                        s.begin().unwrap();
                        s.write(&Write::Tokens { id, input: actual, output: 0 }).unwrap();
                        s.commit(0).unwrap();
                        if let Some(e) = log[idx].as_mut() {
                            e.tokens = actual;
                        }
                    }
                }
                Op::Release { which } => {
                    if !open.is_empty() {
                        let (k, id, idx) = open.swap_remove(which % open.len());
                        let s = &mut stores[k];
                        s.begin().unwrap();
                        s.write(&Write::Remove { id }).unwrap();
                        s.commit(0).unwrap();
                        log[idx] = None;
                    }
                }
            }
        }
    }
}

#[test]
fn a_store_sees_what_the_other_admitted_settled_and_released() {
    let server = RedisServer::start();
    let url = server.url();
    let mut a = RedisStore::open(&url, false).unwrap();
    let mut b = RedisStore::open(&url, false).unwrap();
    assert_ne!(a.process(), b.process());
    let limits = [WindowLimit {
        dimension: Dimension::Requests,
        amount: 10,
        window_ms: 60_000,
    }];
    scope_limits(&mut a, &limits);
    a.begin().unwrap();
    let id = a
        .write(&Write::Admit {
            scope: "s".into(),
            at_ms: 0,
            input: 40,
            output: 2,
        })
        .unwrap()
        .unwrap();
    a.commit(0).unwrap();
    let seen = pulled(&mut b);
    assert!(
        matches!(seen.as_slice(), [Change::Admission { id: i, input: 40, output: 2, .. }] if *i == id),
        "{seen:?}"
    );
    // Its own writes are not returned to it.
    assert!(a.begin().unwrap().is_empty());
    a.write(&Write::Tokens {
        id,
        input: 30,
        output: 1,
    })
    .unwrap();
    a.commit(0).unwrap();
    let seen = pulled(&mut b);
    assert!(
        matches!(
            seen.as_slice(),
            [Change::Admission {
                input: 30,
                output: 1,
                ..
            }]
        ),
        "{seen:?}"
    );
    a.begin().unwrap();
    a.write(&Write::Remove { id }).unwrap();
    a.commit(0).unwrap();
    assert_eq!(pulled(&mut b), vec![Change::Removed { id }]);
    // A third store started later loads the scope's state instead.
    let mut c = RedisStore::open(&url, false).unwrap();
    a.begin().unwrap();
    a.write(&Write::Admit {
        scope: "s".into(),
        at_ms: 0,
        input: 5,
        output: 0,
    })
    .unwrap();
    a.commit(0).unwrap();
    c.begin().unwrap();
    let now = massgen::store::wall_ms(
        &massgen::quota::WallClock {
            origin: std::time::Instant::now(),
            origin_wall: chrono::Utc::now(),
        },
        std::time::Instant::now(),
    );
    let loaded = c.load_scope("s", now - 60_000, now).unwrap();
    assert_eq!(
        loaded
            .iter()
            .filter(|ch| matches!(ch, Change::Admission { .. }))
            .count(),
        1,
        "{loaded:?}"
    );
}

#[test]
fn an_unreachable_server_is_a_clear_error_at_open_or_local_limits_with_fail_open_local() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/0");
    let err = RedisStore::open(&url, false).unwrap_err().to_string();
    assert!(
        err.contains(&format!("redis://:***@127.0.0.1:{port}/0"))
            && err.contains("unreachable")
            && !err.contains("hunter2"),
        "{err}"
    );
    let mut store = RedisStore::open(&url, true).unwrap();
    assert!(store.degraded());
    // Per-process limits: every pass commits locally.
    store.begin().unwrap();
    store
        .write(&Write::Admit {
            scope: "s".into(),
            at_ms: 0,
            input: 1,
            output: 0,
        })
        .unwrap();
    store.commit(0).unwrap();
    let spec = StoreSpec::parse(&url);
    assert!(!spec.to_string().contains("hunter2"), "{spec}");
}

#[test]
fn a_degraded_store_rejoins_and_writes_what_it_admitted_meanwhile() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop(false);
    let mut a = RedisStore::open(&url, true).unwrap();
    assert!(a.degraded());
    a.load_scope("s", 0, 60_000).unwrap();
    a.begin().unwrap();
    a.write(&Write::Admit {
        scope: "s".into(),
        at_ms: 0,
        input: 7,
        output: 0,
    })
    .unwrap();
    a.commit(0).unwrap();
    server.resume();
    // It tries to connect again at most once a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while a.degraded() && std::time::Instant::now() < deadline {
        a.begin().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!a.degraded(), "the store did not rejoin the server");
    let mut b = RedisStore::open(&url, false).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let loaded = b.load_scope("s", now - 60_000, now).unwrap();
    assert!(
        loaded
            .iter()
            .any(|c| matches!(c, Change::Admission { input: 7, .. })),
        "{loaded:?}"
    );
}

/// Two supervisors (two "processes") on one server, one scope of 3 requests per 1.2 s: every
/// acquire is granted, and no window holds more than 3 grants of both together. The grants are
/// timed when the callers see them, a little after the server admitted them and not always
/// equally late on a loaded machine: the check uses windows of 0.95 s (without sharing, six
/// would go at once).
#[test]
fn two_supervisors_share_a_limit_through_redis() {
    let server = RedisServer::start();
    let spec = ScopeSpec {
        limits: vec![
            massgen::quota::Limit::new(Dimension::Requests, 3, Duration::from_millis(1200))
                .unwrap(),
        ],
        window_guard: Duration::ZERO,
        ..ScopeSpec::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let grants = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let q = QuotaHandle::start(SupervisorSettings {
                stagger: Duration::ZERO,
                store: StoreSpec::parse(&server.url()),
                ..SupervisorSettings::default()
            })
            .unwrap();
            q.register_scope(ScopeId::from("s"), spec.clone())
                .await
                .unwrap();
            for k in 0..4 {
                let q = q.clone();
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    for _ in 0..2 {
                        let mut r =
                            AcquireRequest::new(vec![ScopeId::from("s")], 1, format!("w{k}"));
                        r.deadline = Some(Duration::from_secs(60));
                        let p = q.acquire(r).await.unwrap();
                        out.push(std::time::Instant::now());
                        p.settle(1);
                    }
                    out
                }));
            }
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    assert_eq!(grants.len(), 16);
    for &t in &grants {
        let inside = grants
            .iter()
            .filter(|&&u| u <= t && t < u + Duration::from_millis(950))
            .count();
        let mut sorted = grants.clone();
        sorted.sort();
        let ms: Vec<u128> = sorted
            .iter()
            .map(|g| (*g - sorted[0]).as_millis())
            .collect();
        assert!(inside <= 3, "{inside} grants within 0.95 s: {ms:?}");
    }
}

fn admit(store: &mut RedisStore, tokens: u64) -> Result<(), StoreError> {
    store.begin()?;
    store.write(&Write::Admit {
        scope: "s".into(),
        at_ms: 0,
        input: tokens,
        output: 0,
    })?;
    store.commit(0)
}

/// A server that lost everything (`FLUSHALL`, a restart without persistence): the next commit
/// notices (the epoch key is gone), grants nothing, writes the process's live admissions
/// again; then the limit holds as before for every process.
#[test]
fn a_server_that_lost_its_state_gets_each_process_admissions_back() {
    let server = RedisServer::start();
    let url = server.url();
    let limits = [WindowLimit {
        dimension: Dimension::Requests,
        amount: 3,
        window_ms: 60_000,
    }];
    let mut a = RedisStore::open(&url, false).unwrap();
    scope_limits(&mut a, &limits);
    admit(&mut a, 1).unwrap();
    admit(&mut a, 1).unwrap();
    let _: () = redis::cmd("FLUSHALL")
        .query(&mut server.connection())
        .unwrap();
    let err = admit(&mut a, 1).unwrap_err().to_string();
    assert!(err.contains("lost its state"), "{err}");
    admit(&mut a, 1).unwrap();
    // A process started now is refused a fourth admission in the window.
    let mut b = RedisStore::open(&url, false).unwrap();
    assert_ne!(
        a.process(),
        b.process(),
        "a process id was handed out twice"
    );
    scope_limits(&mut b, &limits);
    assert!(matches!(admit(&mut b, 1), Err(StoreError::Conflict { .. })));
}

#[test]
fn the_usage_ledger_in_redis_keeps_every_record_oldest_first() {
    use massgen::store::redis::usage::RedisUsage;
    use massgen::store::{UsageRecord, UsageStore};
    let server = RedisServer::start();
    let record = |at_ms: i64, agent: &str| UsageRecord {
        at_ms,
        run_id: "run".into(),
        agent: agent.into(),
        provider: "simulated".into(),
        model: "sim".into(),
        key: String::new(),
        input_tokens: 10,
        output_tokens: 2,
        cost_usd: None,
        outcome: "ok".into(),
        latency_ms: 5,
    };
    let mut a = RedisUsage::open(&server.url()).unwrap();
    let mut b = RedisUsage::open(&server.url()).unwrap();
    // Two identical records are two calls: both are kept.
    a.append(&[record(2_000, "x"), record(2_000, "x")]).unwrap();
    b.append(&[record(1_000, "y"), record(3_000, "z")]).unwrap();
    let all = a.since(0).unwrap();
    let agents: Vec<&str> = all.iter().map(|r| r.agent.as_str()).collect();
    assert_eq!(agents, ["y", "x", "x", "z"]);
    assert_eq!(b.since(2_500).unwrap(), vec![record(3_000, "z")]);
    let err = RedisUsage::open("redis://127.0.0.1:1/0")
        .unwrap_err()
        .to_string();
    assert!(err.contains("redis://127.0.0.1:1/0"), "{err}");
}

/// A cooldown written by one process holds the other's admissions on the server until it ends
/// (the refusal names its end), and is seen by the other as a change.
#[test]
fn a_cooldown_elsewhere_holds_admissions_on_the_server_until_it_ends() {
    let server = RedisServer::start();
    let mut a = RedisStore::open(&server.url(), false).unwrap();
    let mut b = RedisStore::open(&server.url(), false).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    a.begin().unwrap();
    a.write(&Write::Cooldown {
        scope: "s".into(),
        until_ms: now + 600,
        reason: "429 rate limited".into(),
    })
    .unwrap();
    a.commit(now).unwrap();
    let seen = pulled(&mut b);
    assert!(
        matches!(seen.as_slice(), [Change::Cooldown { until_ms, .. }] if *until_ms >= now + 600),
        "{seen:?}"
    );
    assert!(matches!(
        admit(&mut b, 1),
        Err(StoreError::Conflict { retry_at_ms, .. }) if retry_at_ms >= now + 600
    ));
    let refused_until = b.last_refused()[0].1;
    std::thread::sleep(Duration::from_millis(700));
    admit(&mut b, 1).unwrap();
    assert!(b.last_server_ms() >= refused_until);
}

/// `/status` and `--validate` read what the server holds: every process's admissions summed
/// over each period, cooldowns not over, from any process's store.
#[test]
fn the_status_of_a_redis_store_counts_every_process_admissions() {
    let server = RedisServer::start();
    let mut a = RedisStore::open(&server.url(), false).unwrap();
    let mut b = RedisStore::open(&server.url(), false).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    // A supervisor describes each scope before its first admission.
    a.begin().unwrap();
    a.write(&Write::Scope {
        scope: "s".into(),
        horizon_ms: 60_250,
        short_horizon_ms: 60_250,
        started_ms: now,
        startup_until_ms: now,
    })
    .unwrap();
    a.commit(now).unwrap();
    admit(&mut a, 10).unwrap();
    admit(&mut a, 20).unwrap();
    admit(&mut b, 5).unwrap();
    b.begin().unwrap();
    b.write(&Write::Cooldown {
        scope: "s".into(),
        until_ms: now + 60_000,
        reason: "429 rate limited".into(),
    })
    .unwrap();
    b.commit(now).unwrap();
    let status = a.status(now, &[1_000, 60_000]).unwrap();
    assert!(status.shared);
    let s = status.scope("s").expect("scope s in the status");
    assert_eq!(s.admissions, 3);
    let minute = s.window(60_000).unwrap();
    assert_eq!((minute.requests, minute.input_tokens), (3, 35));
    assert_eq!(s.cooldowns.len(), 1, "{:?}", s.cooldowns);
    assert!(s.cooldowns[0].until_ms >= now + 59_000);
    // A second later the one-second window is empty and the minute still holds all three.
    std::thread::sleep(Duration::from_millis(1_100));
    let later = chrono::Utc::now().timestamp_millis();
    let status = b.status(later, &[1_000, 60_000]).unwrap();
    let s = status.scope("s").unwrap();
    assert_eq!(s.window(1_000).unwrap().requests, 0);
    assert_eq!(s.window(60_000).unwrap().requests, 3);
}
