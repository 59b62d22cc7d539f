//! What the quota store holds, as the supervisor answers it for `/status`: every process's
//! admissions over the windows of the scopes' limits, cooldowns, reused for a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use massgen::quota::{Limit, RateLimitSignal, ScopeId, ScopeSpec, SignalKind};
use massgen::store::StoreSpec;
use massgen::supervisor::{AcquireRequest, QuotaHandle, SupervisorSettings};
use massgen::telemetry::StatusReport;

fn wall0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-15T20:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn spend(q: &QuotaHandle, tokens: u64) {
    let p = q
        .acquire(AcquireRequest::new(vec![ScopeId::from("g")], 100, "agent"))
        .await
        .unwrap();
    p.settle(tokens);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn the_store_status_counts_every_process_and_is_reused_for_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let settings = SupervisorSettings {
        stagger: Duration::ZERO,
        store: StoreSpec::Sqlite(dir.path().join("state.db")),
        ..SupervisorSettings::default()
    };
    let spec = ScopeSpec {
        limits: vec![
            Limit::rpm(NonZeroU64::new(5).unwrap()),
            Limit::rpd(NonZeroU64::new(100).unwrap()),
        ],
        ..ScopeSpec::default()
    };
    let a = QuotaHandle::start_local_with_wall_clock(settings.clone(), wall0()).unwrap();
    let b = QuotaHandle::start_local_with_wall_clock(settings, wall0()).unwrap();
    for q in [&a, &b] {
        q.register_scope(ScopeId::from("g"), spec.clone())
            .await
            .unwrap();
    }
    for tokens in [10, 20, 30] {
        spend(&a, tokens).await;
    }
    spend(&b, 40).await;
    // Settlements are written within 10 ms of their message.
    for q in [&a, &b] {
        q.snapshot().await.unwrap();
    }
    tokio::time::advance(Duration::from_millis(20)).await;
    for q in [&a, &b] {
        q.snapshot().await.unwrap();
    }
    let st = b.store_status().await.unwrap();
    assert!(st.shared && st.store.starts_with("SQLite file"), "{st:?}");
    let g = st.scope("g").unwrap();
    for period in [60_000, 86_400_000] {
        let w = g.window(period).unwrap();
        assert_eq!(
            (w.requests, w.input_tokens),
            (4, 100),
            "{period} ms: {st:?}"
        );
    }
    assert!(g.cooldowns.is_empty());
    // One more admission and a 429 in the first process: the second answers from what it read
    // less than a second ago, then reads again.
    spend(&a, 50).await;
    a.feedback(
        ScopeId::from("g"),
        RateLimitSignal::new(SignalKind::RateLimited).with_retry_after(Duration::from_secs(30)),
    );
    a.snapshot().await.unwrap();
    tokio::time::advance(Duration::from_millis(500)).await;
    let cached = b.store_status().await.unwrap();
    assert_eq!(cached, st);
    tokio::time::advance(Duration::from_millis(500)).await;
    let st = b.store_status().await.unwrap();
    let g = st.scope("g").unwrap();
    assert_eq!(g.window(60_000).unwrap().requests, 5, "{st:?}");
    assert_eq!(g.admissions, 5);
    let cooldown = &g.cooldowns[0];
    let end = wall0().timestamp_millis() + 30_000;
    assert!(
        cooldown.until_ms >= end && cooldown.until_ms < end + 1_000,
        "{cooldown:?}"
    );
    assert!(
        cooldown.until.starts_with("2026-01-15T20:00:3"),
        "{cooldown:?}"
    );
    // In /status: the store's view (now) beside the ledger's own (as of its last pass, which
    // came before the other process's fifth admission and its 429).
    let report = StatusReport::from_snapshot(&b.snapshot().await.unwrap())
        .with_store(b.store_status().await)
        .to_json();
    assert_eq!(report["store"]["shared"], true);
    assert_eq!(
        report["store"]["scopes"][0]["windows"][0]["period_ms"],
        60_000
    );
    assert_eq!(report["store"]["scopes"][0]["windows"][0]["requests"], 5);
    assert_eq!(report["scopes"][0]["limits"][0]["used"], 4, "{report}");
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn the_in_memory_store_says_it_keeps_nothing() {
    let q = QuotaHandle::start_local(SupervisorSettings::default()).unwrap();
    let st = q.store_status().await.unwrap();
    assert!(!st.shared && st.scopes.is_empty(), "{st:?}");
    assert!(st.store.starts_with("in memory"), "{st:?}");
}
