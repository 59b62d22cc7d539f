//! Permits per second through the quota supervisor with the SQLite state store, beside the
//! in-memory store in the same run: sequential acquire+settle (one store transaction per
//! grant) and 64 concurrent requesters (group commit: every grant of a scheduling pass in one
//! transaction), and the Redis store on loopback (a server of its own, append-only with an
//! fsync per write). Run: `cargo bench --bench store [-- memory|sqlite|redis]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/redis.rs"]
mod redis_server;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use massgen::quota::{Dimension, Limit, ScopeId, ScopeSpec};
use massgen::store::StoreSpec;
use massgen::supervisor::{AcquireRequest, QuotaHandle, SupervisorSettings};

const REQUESTERS: usize = 64;

/// Limits high enough never to block, over a minute: the store keeps a minute of admissions.
fn roomy() -> ScopeSpec {
    let period = Duration::from_secs(60);
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

fn start(store: StoreSpec, rt: &tokio::runtime::Runtime) -> QuotaHandle {
    let q = QuotaHandle::start(SupervisorSettings {
        stagger: Duration::ZERO,
        mailbox_capacity: 65_536,
        store,
        ..SupervisorSettings::default()
    })
    .unwrap();
    rt.block_on(q.register_scope(ScopeId::from("bench"), roomy()))
        .unwrap();
    q
}

/// Sequential acquire+settle: permits per second.
fn sequential(q: &QuotaHandle, rt: &tokio::runtime::Runtime, secs: f64) -> (u64, f64) {
    rt.block_on(async {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() < secs {
            q.acquire(request("one")).await.unwrap().settle(90);
            n += 1;
        }
        (n, n as f64 / start.elapsed().as_secs_f64())
    })
}

/// `REQUESTERS` tasks doing acquire+settle for `secs`: permits per second.
fn concurrent(q: &QuotaHandle, rt: &tokio::runtime::Runtime, secs: f64) -> (u64, f64) {
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..REQUESTERS)
            .map(|i| {
                let q = q.clone();
                tokio::spawn(async move {
                    let who = format!("r{i}");
                    let mut n = 0u64;
                    while start.elapsed().as_secs_f64() < secs {
                        q.acquire(request(&who)).await.unwrap().settle(90);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut n = 0;
        for t in tasks {
            n += t.await.unwrap();
        }
        (n, n as f64 / start.elapsed().as_secs_f64())
    })
}

fn main() {
    let secs: f64 = std::env::var("STORE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    // `cargo bench --bench store -- redis`: only the cases whose name contains the filter.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    println!("store bench: {secs} s per case, {REQUESTERS} concurrent requesters");
    let mut server = None;
    for name in ["memory", "sqlite", "redis"] {
        if !name.contains(filter.as_str()) {
            continue;
        }
        let spec = match name {
            "memory" => StoreSpec::Memory,
            "sqlite" => StoreSpec::Sqlite(path.clone()),
            _ => {
                let s = server.get_or_insert_with(redis_server::RedisServer::start);
                StoreSpec::parse(&s.url())
            }
        };
        let q = start(spec, &rt);
        let (n, rate) = sequential(&q, &rt, secs);
        println!("{name:<7} sequential acquire+settle: {rate:>10.0} permits/s ({n} permits)");
        let (n, rate) = concurrent(&q, &rt, secs);
        println!(
            "{name:<7} {REQUESTERS} requesters:            {rate:>10.0} permits/s ({n} permits)"
        );
        drop(q);
        std::thread::sleep(Duration::from_millis(200));
    }
    if !"sqlite".contains(filter.as_str()) {
        return;
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let wal = std::fs::metadata(path.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "sqlite file after the run: {:.1} MB (+ {:.1} MB write-ahead log)",
        size as f64 / 1e6,
        wal as f64 / 1e6
    );
}
