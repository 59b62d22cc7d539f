//! The supervisor's waiting rules: a request that cannot fit before its deadline is refused at
//! once (and stops blocking those behind it), a wait that ends before its deadline is not cut
//! short, a rolled-back grant leaves no trace in pacing or stagger, and a scope named twice is
//! reserved once. Paused tokio time drives the supervisor.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use massgen::quota::{
    Ledger, Limit, RateLimitSignal, ScopeId, ScopeSpec, SignalKind, Verdict, WallClock,
};
use massgen::supervisor::{AcquireError, AcquireRequest};
use tokio::time::Instant;

use crate::signals::{limits, ms_since, nz, req, scope_snapshot, spawn_timed, start, wall};

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_queue_head_that_cannot_fit_before_its_deadline_is_refused_at_once() {
    let q = start(&[("s", limits(vec![Limit::tpm(nz(1000))]))]).await;
    let t0 = Instant::now();
    q.acquire(req("s", 900, "a")).await.unwrap().settle(900);
    // Needs the 900 to leave the window (60 s), has 10 s: refused now, saying when it fits.
    let mut head = req("s", 500, "b");
    head.deadline = Some(Duration::from_secs(10));
    let head = {
        let q = q.clone();
        tokio::spawn(async move { q.acquire(head).await })
    };
    let behind = spawn_timed(&q, req("s", 50, "c"), t0);
    match head.await.unwrap().unwrap_err() {
        AcquireError::DeadlineExceeded {
            frees_in, waited, ..
        } => {
            assert_eq!(frees_in, Some(Duration::from_secs(60)));
            assert_eq!(waited, Duration::ZERO);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(behind.await.unwrap().unwrap(), 0);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_waiting_head_whose_wait_grows_past_its_deadline_stops_blocking_those_behind() {
    let q = start(&[("s", limits(vec![Limit::tpm(nz(1000))]))]).await;
    let t0 = Instant::now();
    q.acquire(req("s", 900, "a")).await.unwrap().settle(900);
    // Fits at 60 s, deadline 90 s: it waits, and the small request behind it waits too (no
    // overtaking a large request).
    let mut head = req("s", 500, "b");
    head.deadline = Some(Duration::from_secs(90));
    let head = {
        let q = q.clone();
        tokio::spawn(async move {
            let r = q.acquire(head).await;
            (r.map(|p| p.settle(0)), ms_since(t0))
        })
    };
    tokio::task::yield_now().await;
    let behind = spawn_timed(&q, req("s", 50, "c"), t0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A 429 closes the scope until 101 s: the head can no longer make its deadline.
    q.feedback(
        ScopeId::from("s"),
        RateLimitSignal::new(SignalKind::RateLimited).with_retry_after(Duration::from_secs(100)),
    );
    let (result, at) = head.await.unwrap();
    assert_eq!(at, 1_000, "refused as soon as it could not make it");
    match result.unwrap_err() {
        AcquireError::DeadlineExceeded { frees_in, .. } => {
            assert_eq!(frees_in, Some(Duration::from_secs(100)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(behind.await.unwrap().unwrap(), 101_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_wait_whose_eta_falls_before_its_deadline_is_not_cut_short() {
    // 2 requests per 60 s with a window guard of 250.5 ms: a slot frees at 60.2505 s, which no
    // timer tick hits exactly.
    let spec = ScopeSpec {
        limits: vec![Limit::rpm(nz(2))],
        window_guard: Duration::from_micros(250_500),
        ..ScopeSpec::default()
    };
    let q = start(&[("s", spec)]).await;
    let t0 = Instant::now();
    q.acquire(req("s", 1, "a")).await.unwrap().settle(1);
    q.acquire(req("s", 1, "a")).await.unwrap().settle(1);
    let eta = Duration::from_micros(60_250_500);
    // Deadline 49 ms after the slot frees, and exactly at it: both are granted when it frees.
    let mut late = req("s", 1, "b");
    late.deadline = Some(eta + Duration::from_millis(49));
    let mut exact = req("s", 1, "c");
    exact.deadline = Some(eta);
    let late = spawn_timed(&q, late, t0);
    let exact = spawn_timed(&q, exact, t0);
    for at in [late.await.unwrap().unwrap(), exact.await.unwrap().unwrap()] {
        assert!((60_250..=60_251).contains(&at), "granted at {at} ms");
    }
    // A deadline before the next slot frees (at 120.5 s) cannot be met: refused at once.
    let t1 = Instant::now();
    let mut short = req("s", 1, "d");
    short.deadline = Some(Duration::from_secs(60));
    assert!(matches!(
        q.acquire(short).await,
        Err(AcquireError::DeadlineExceeded { .. })
    ));
    assert_eq!(ms_since(t1), 0);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn duplicate_scopes_in_one_request_are_reserved_once() {
    let q = start(&[("s", limits(vec![Limit::rpm(nz(2))]))]).await;
    let t0 = Instant::now();
    let twice = AcquireRequest::new(vec![ScopeId::from("s"), ScopeId::from("s")], 1, "a");
    let p = q.acquire(twice).await.unwrap();
    assert_eq!(p.scopes(), &[ScopeId::from("s")]);
    let snap = scope_snapshot(&q, "s").await;
    assert_eq!((snap.limits[0].used, snap.in_flight), (1, 1));
    p.settle(1);
    // The second request of the minute still fits at once.
    assert_eq!(
        spawn_timed(&q, req("s", 1, "b"), t0)
            .await
            .unwrap()
            .unwrap(),
        0
    );
}

#[test]
fn a_rolled_back_grant_restores_pacing_and_stagger() {
    let t0 = std::time::Instant::now();
    let mut ledger = Ledger::new(
        Duration::from_millis(250),
        WallClock {
            origin: t0,
            origin_wall: wall(),
        },
    );
    let paced = ScopeSpec {
        limits: vec![Limit::rpm(nz(6))],
        pacing: true,
        ..ScopeSpec::default()
    };
    let s = ledger.register(ScopeId::from("s"), paced, t0);
    let a: Arc<str> = Arc::from("a");
    let first = ledger.reserve(&[s], t0, 1, &a);
    let t1 = t0 + Duration::from_secs(10);
    // Pacing: one every 10 s. The grant at 10 s is rolled back (its caller had left).
    let second = ledger.reserve(&[s], t1, 1, &Arc::from("b"));
    assert!(matches!(
        ledger.check(&[s], t1, 1, "a").verdict,
        Verdict::WaitUntil { .. }
    ));
    ledger.rollback(&second);
    // Pacing counts from the grant at 0 again, and `b` is a new requester again: it goes now,
    // without waiting for a stagger slot behind a grant that never happened.
    assert_eq!(ledger.check(&[s], t1, 1, "b").verdict, Verdict::Admit);
    assert_eq!(ledger.check(&[s], t1, 1, "c").verdict, Verdict::Admit);
    let snap = ledger.scope_mut(s).unwrap().snapshot(t1);
    assert_eq!((snap.limits[0].used, snap.granted_total), (1, 1));
    // Rolling back the first grant too leaves nothing: no pacing, no stagger.
    ledger.rollback(&first);
    assert_eq!(ledger.check(&[s], t0, 1, "z").verdict, Verdict::Admit);
    let snap = ledger.scope_mut(s).unwrap().snapshot(t1);
    assert_eq!((snap.limits[0].used, snap.granted_total), (0, 0));
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_token_wait_that_a_settlement_can_shorten_is_not_refused_at_once() {
    let q = start(&[("s", limits(vec![Limit::tpm(nz(1000))]))]).await;
    let t0 = Instant::now();
    // 900 reserved for a call still in flight: 500 more fit at 60 s by the window, but the call
    // may settle below its estimate first.
    let in_flight = q.acquire(req("s", 900, "a")).await.unwrap();
    let mut r = req("s", 500, "b");
    r.deadline = Some(Duration::from_secs(10));
    let waiting = spawn_timed(&q, r, t0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    in_flight.settle(100);
    assert_eq!(waiting.await.unwrap().unwrap(), 2_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn an_output_token_wait_that_a_settlement_can_shorten_is_not_refused_at_once() {
    // Anthropic's OTPM: 6,000 output reserved for a call in flight, 4,000 more asked with a 30 s
    // deadline. By the window alone they fit at 60 s, but the call settles its output to what it
    // wrote (300) at 2 s, and then they fit.
    let q = start(&[("s", limits(vec![Limit::otpm(nz(8000))]))]).await;
    let t0 = Instant::now();
    let in_flight = q
        .acquire(req("s", 0, "a").with_tokens(massgen::quota::TokenCount::new(0, 6000)))
        .await
        .unwrap();
    let mut r = req("s", 0, "b").with_tokens(massgen::quota::TokenCount::new(0, 4000));
    r.deadline = Some(Duration::from_secs(30));
    let waiting = spawn_timed(&q, r, t0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    in_flight.settle_tokens(massgen::quota::TokenCount::new(0, 300));
    assert_eq!(waiting.await.unwrap().unwrap(), 2_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_permit_given_back_unsent_leaves_no_pacing_behind_but_an_uncounted_one_does() {
    // Pacing at 6 per minute: one every 10 s.
    let paced = ScopeSpec {
        limits: vec![Limit::rpm(nz(6))],
        pacing: true,
        ..ScopeSpec::default()
    };
    let q = start(&[("s", paced)]).await;
    let t0 = Instant::now();
    // A request that grew past its permit before it was sent gives it back unsent: the next
    // one goes at once.
    q.acquire(req("s", 1, "a")).await.unwrap().release_unsent();
    let at = spawn_timed(&q, req("s", 1, "a"), t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at, 0);
    // A call the provider did not count (a 529) was still sent: pacing keeps its place.
    tokio::time::sleep(Duration::from_secs(10)).await;
    q.acquire(req("s", 1, "a"))
        .await
        .unwrap()
        .release_uncounted();
    let at = spawn_timed(&q, req("s", 1, "a"), t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at, 20_000);
}
