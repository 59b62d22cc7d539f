//! Cancellation through the actix supervisor: callers that leave consume nothing, whether they
//! leave while queued (by the thousand) or in the instant between the grant and reading it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU64;
use std::time::Duration;

use futures_util::poll;
use massgen::quota::{Limit, ScopeId, ScopeSpec};
use massgen::supervisor::{AcquireRequest, QuotaEvent, QuotaHandle, SupervisorSettings};
use tokio::time::Instant;

async fn start(limits: Vec<Limit>, concurrency: Option<u32>) -> QuotaHandle {
    let q = QuotaHandle::start_local(SupervisorSettings {
        stagger: Duration::ZERO,
        ..SupervisorSettings::default()
    })
    .unwrap();
    let spec = ScopeSpec {
        limits,
        concurrency: concurrency.and_then(std::num::NonZeroU32::new),
        ..ScopeSpec::default()
    };
    q.register_scope(ScopeId::from("s"), spec).await.unwrap();
    q
}

fn req(who: &str) -> AcquireRequest {
    let mut r = AcquireRequest::new(vec![ScopeId::from("s")], 10, who);
    r.deadline = Some(Duration::from_secs(600));
    r
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_thousand_callers_timing_out_while_queued_consume_nothing() {
    let q = start(vec![Limit::rpm(NonZeroU64::new(1).unwrap())], None).await;
    let mut events = q.subscribe();
    let t0 = Instant::now();
    q.acquire(req("first")).await.unwrap().settle(10);
    // A thousand callers queue behind the used-up minute and give up after 5 s.
    let callers: Vec<_> = (0..1000)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(5), q.acquire(req(&format!("c{i}"))))
                    .await
                    .is_err()
            })
        })
        .collect();
    for c in callers {
        assert!(c.await.unwrap(), "every caller timed out while queued");
    }
    let snap = q.snapshot().await.unwrap();
    assert_eq!(
        snap.scopes[0].queue_depth, 0,
        "the gone callers left the queue"
    );
    // The next caller gets the slot that frees at 60 s: nobody who left took it.
    let late = q.acquire(req("late")).await.unwrap();
    assert_eq!((Instant::now() - t0).as_millis(), 60_000);
    late.settle(10);
    let snap = q.snapshot().await.unwrap();
    assert_eq!(snap.scopes[0].granted_total, 2);
    assert_eq!(snap.scopes[0].limits[0].used, 1);
    // No grant event ever named one of the thousand.
    while let Ok(e) = events.try_recv() {
        if let QuotaEvent::Granted { requester, .. } = e {
            assert!(!requester.starts_with('c'), "{requester} was granted");
        }
    }
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_permit_granted_to_a_caller_that_drops_before_reading_it_is_rolled_back() {
    // One call at a time and 5 requests per minute.
    let q = start(vec![Limit::rpm(NonZeroU64::new(5).unwrap())], Some(1)).await;
    let held = q.acquire(req("a")).await.unwrap();
    let mut waiting = Box::pin(q.acquire(req("b")));
    // Polled until its request is queued at the supervisor (the mailbox hop, then the wait).
    for _ in 0..4 {
        assert!(poll!(&mut waiting).is_pending());
        tokio::task::yield_now().await;
    }
    assert_eq!(q.snapshot().await.unwrap().scopes[0].queue_depth, 1);
    // The slot frees: the supervisor grants b's permit into b's reply channel...
    held.settle(10);
    q.snapshot().await.unwrap();
    let snap = q.snapshot().await.unwrap();
    assert_eq!(snap.scopes[0].queue_depth, 0);
    assert_eq!(snap.scopes[0].in_flight, 1, "granted to b, not yet read");
    assert_eq!(snap.scopes[0].limits[0].used, 2);
    // ...and b goes away without ever reading it: the grant is undone, not settled.
    drop(waiting);
    q.snapshot().await.unwrap();
    let snap = q.snapshot().await.unwrap();
    assert_eq!(snap.scopes[0].in_flight, 0);
    assert_eq!(snap.scopes[0].limits[0].used, 1, "only a's request counts");
    // A permit that was read and then dropped unsettled still settles at its estimate.
    let read = q.acquire(req("c")).await.unwrap();
    drop(read);
    q.snapshot().await.unwrap();
    assert_eq!(q.snapshot().await.unwrap().scopes[0].limits[0].used, 2);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn callers_that_left_behind_a_live_waiter_leave_the_queue_at_once() {
    let q = start(vec![Limit::rpm(NonZeroU64::new(1).unwrap())], None).await;
    q.acquire(req("first")).await.unwrap().settle(10);
    // A live waiter heads the queue; a hundred callers queue behind it and give up after 5 s.
    let live = {
        let q = q.clone();
        tokio::spawn(async move { q.acquire(req("live")).await.is_ok() })
    };
    tokio::task::yield_now().await;
    let callers: Vec<_> = (0..100)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(5), q.acquire(req(&format!("c{i}"))))
                    .await
                    .is_err()
            })
        })
        .collect();
    for c in callers {
        assert!(c.await.unwrap());
    }
    let snap = q.snapshot().await.unwrap();
    assert_eq!(
        snap.scopes[0].queue_depth, 1,
        "only the live waiter is queued"
    );
    assert!(live.await.unwrap(), "the live waiter is served at 60 s");
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_head_that_leaves_right_after_it_queued_lets_those_behind_go_at_once() {
    // 1,000 tokens per minute: 500 used; a 900-token head waits, a 100-token request behind it.
    let q = start(vec![Limit::tpm(NonZeroU64::new(1000).unwrap())], None).await;
    let t0 = Instant::now();
    let mut r = req("a");
    r.est_tokens = 500;
    q.acquire(r).await.unwrap().settle(500);
    let mut big_req = req("big");
    big_req.est_tokens = 900;
    let mut big = Box::pin(q.acquire(big_req));
    // Polled just far enough to be queued, never again.
    assert!(poll!(&mut big).is_pending());
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    assert_eq!(q.snapshot().await.unwrap().scopes[0].queue_depth, 1);
    let small = {
        let q = q.clone();
        tokio::spawn(async move {
            let mut r = req("small");
            r.est_tokens = 100;
            q.acquire(r).await.unwrap();
            Instant::now() - t0
        })
    };
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    assert_eq!(q.snapshot().await.unwrap().scopes[0].queue_depth, 2);
    drop(big);
    assert_eq!(
        small.await.unwrap(),
        Duration::ZERO,
        "small went when the head left"
    );
}
