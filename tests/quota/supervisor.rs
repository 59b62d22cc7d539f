//! Deterministic actor tests: paused tokio time drives the supervisor exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::time::Duration;

use massgen::quota::{
    DailyReset, Dimension, Limit, RateLimitSignal, ScopeId, ScopeSpec, SignalKind,
};
use massgen::supervisor::{
    AcquireError, AcquireRequest, QuotaEvent, QuotaHandle, SupervisorSettings,
};
use tokio::time::Instant;

fn nz(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap()
}

fn spec(limits: Vec<Limit>) -> ScopeSpec {
    ScopeSpec {
        limits,
        ..ScopeSpec::default()
    }
}

fn settings() -> SupervisorSettings {
    SupervisorSettings {
        stagger: Duration::ZERO,
        ..SupervisorSettings::default()
    }
}

async fn start(scope: &str, spec: ScopeSpec) -> QuotaHandle {
    let q = QuotaHandle::start_local(settings()).unwrap();
    q.register_scope(ScopeId::from(scope), spec).await.unwrap();
    q
}

fn req(scope: &str, est: u64, who: &str) -> AcquireRequest {
    AcquireRequest::new(vec![ScopeId::from(scope)], est, who)
}

/// Milliseconds since `t0`, so assertions read like the spec (`60_000`).
fn ms_since(t0: Instant) -> u128 {
    (Instant::now() - t0).as_millis()
}

/// Spawns an acquire that settles at once and reports when it was granted.
fn spawn_timed(
    q: &QuotaHandle,
    r: AcquireRequest,
    t0: Instant,
) -> tokio::task::JoinHandle<Result<u128, AcquireError>> {
    let q = q.clone();
    tokio::spawn(async move {
        let p = q.acquire(r).await?;
        let at = ms_since(t0);
        p.settle(0);
        Ok(at)
    })
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn rpm_2_with_three_agents_grants_at_0_0_and_60_s() {
    let q = start("gemini/pro", spec(vec![Limit::rpm(nz(2))])).await;
    let t0 = Instant::now();
    let tasks: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|who| spawn_timed(&q, req("gemini/pro", 100, who), t0))
        .collect();
    let mut at = Vec::new();
    for t in tasks {
        at.push(t.await.unwrap().unwrap());
    }
    assert_eq!(at, vec![0, 0, 60_000]);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn tpm_settlement_frees_capacity_early() {
    let q = start("groq/llama", spec(vec![Limit::tpm(nz(1000))])).await;
    let t0 = Instant::now();
    let first = q.acquire(req("groq/llama", 800, "a")).await.unwrap();
    let second = spawn_timed(&q, req("groq/llama", 500, "b"), t0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The call used 200 tokens, not 800: 600 come back at once.
    first.settle(200);
    assert_eq!(second.await.unwrap().unwrap(), 5_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn extra_charge_delays_the_next_request() {
    let q = start("s", spec(vec![Limit::tpm(nz(1000))])).await;
    let t0 = Instant::now();
    q.acquire(req("s", 100, "a")).await.unwrap().settle(900);
    // 900 charged at t=0: a 200-token request fits only when that entry leaves the window.
    let next = spawn_timed(&q, req("s", 200, "a"), t0);
    assert_eq!(next.await.unwrap().unwrap(), 60_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn retry_after_26_s_closes_the_scope_for_26_s() {
    let q = start("gemini/flash", spec(vec![Limit::rpm(nz(100))])).await;
    let mut events = q.subscribe();
    let t0 = Instant::now();
    q.feedback(
        ScopeId::from("gemini/flash"),
        RateLimitSignal::new(SignalKind::RateLimited).with_retry_after(Duration::from_secs(26)),
    );
    let at = spawn_timed(&q, req("gemini/flash", 10, "a"), t0);
    assert_eq!(at.await.unwrap().unwrap(), 26_000);
    let mut saw_cooldown = false;
    let mut saw_wait = false;
    while let Ok(e) = events.try_recv() {
        match e {
            QuotaEvent::CooldownStarted { duration_ms, .. } => {
                saw_cooldown = true;
                assert_eq!(duration_ms, 26_000);
            }
            QuotaEvent::Waiting { eta_ms, limit, .. } => {
                saw_wait = true;
                assert_eq!(eta_ms, Some(26_000));
                assert_eq!(limit.as_deref(), Some("cooldown: 429 rate limited"));
            }
            _ => {}
        }
    }
    assert!(saw_cooldown && saw_wait);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn daily_quota_signal_parks_the_scope_until_the_reset_instant() {
    // 20:00 UTC in January is 12:00 in Los Angeles: midnight Pacific is 12 h away.
    let wall = chrono::DateTime::parse_from_rfc3339("2026-01-15T20:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let q = QuotaHandle::start_local_with_wall_clock(settings(), wall).unwrap();
    let daily = ScopeSpec {
        limits: vec![Limit::rpd(nz(100))],
        daily_reset: Some(DailyReset {
            hour: 0,
            minute: 0,
            tz: chrono_tz::America::Los_Angeles,
        }),
        ..ScopeSpec::default()
    };
    q.register_scope(ScopeId::from("g"), daily).await.unwrap();
    let t0 = Instant::now();
    // The provider also sent a short retry delay: the daily reset wins.
    q.feedback(
        ScopeId::from("g"),
        RateLimitSignal::new(SignalKind::DailyQuotaExhausted)
            .with_retry_after(Duration::from_secs(30)),
    );
    let mut r = req("g", 1, "a");
    r.deadline = Some(Duration::from_secs(13 * 3600));
    let at = spawn_timed(&q, r, t0);
    assert_eq!(at.await.unwrap().unwrap(), 12 * 3600 * 1000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn never_fits_unknown_and_empty_fail_at_once() {
    let q = start("s", spec(vec![Limit::tpm(nz(1000))])).await;
    let t0 = Instant::now();
    let err = q.acquire(req("s", 1001, "a")).await.unwrap_err();
    assert!(
        matches!(
            err,
            AcquireError::NeverFits {
                requested: 1001,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("never fit in scope `s`"), "{err}");
    let err = q.acquire(req("nope", 1, "a")).await.unwrap_err();
    assert!(matches!(err, AcquireError::UnknownScope(_)));
    let mut empty = req("s", 1, "a");
    empty.candidates.clear();
    assert!(matches!(
        q.acquire(empty).await,
        Err(AcquireError::NoCandidates)
    ));
    assert_eq!(ms_since(t0), 0);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn deadline_error_names_scope_limit_usage_and_when_it_frees() {
    let q = start("gemini/pro", spec(vec![Limit::rpm(nz(1))])).await;
    let _held = q.acquire(req("gemini/pro", 1, "a")).await.unwrap();
    let t0 = Instant::now();
    let mut r = req("gemini/pro", 1, "b");
    r.deadline = Some(Duration::from_secs(10));
    // It fits at 60 s, after its 10 s deadline: refused at once, saying when it would fit.
    let err = q.acquire(r).await.unwrap_err();
    assert_eq!(ms_since(t0), 0);
    match &err {
        AcquireError::DeadlineExceeded {
            scope,
            limit,
            used,
            frees_in,
            waited,
            ..
        } => {
            assert_eq!(scope.as_str(), "gemini/pro");
            assert_eq!(*limit, Some(Limit::rpm(nz(1))));
            assert_eq!(*used, 1);
            assert_eq!(*frees_in, Some(Duration::from_secs(60)));
            assert_eq!(*waited, Duration::ZERO);
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("`gemini/pro`") && text.contains("used 1"),
        "{text}"
    );
    assert!(text.contains("frees in 60.0 s"), "{text}");
    assert!(text.starts_with("refused at once"), "{text}");
    let snap = q.snapshot().await.unwrap();
    assert_eq!(snap.scopes[0].denied_total, 1);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_wait_for_a_free_slot_ends_at_its_deadline() {
    let capped = ScopeSpec {
        concurrency: Some(NonZeroU32::new(1).unwrap()),
        ..ScopeSpec::default()
    };
    let q = start("s", capped).await;
    let _held = q.acquire(req("s", 1, "a")).await.unwrap();
    let t0 = Instant::now();
    let mut r = req("s", 1, "b");
    r.deadline = Some(Duration::from_secs(10));
    // When the slot frees is not known: it waits its whole deadline.
    match q.acquire(r).await.unwrap_err() {
        AcquireError::DeadlineExceeded {
            frees_in, waited, ..
        } => {
            assert_eq!(frees_in, None);
            assert_eq!(waited, Duration::from_secs(10));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(ms_since(t0), 10_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_caller_that_gave_up_consumes_nothing() {
    let q = start("s", spec(vec![Limit::rpm(nz(1))])).await;
    let t0 = Instant::now();
    q.acquire(req("s", 1, "a")).await.unwrap().settle(1);
    // b gives up after 5 s (its future is dropped while it waits).
    let gave_up = tokio::time::timeout(Duration::from_secs(5), q.acquire(req("s", 1, "b"))).await;
    assert!(gave_up.is_err());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let c = spawn_timed(&q, req("s", 1, "c"), t0);
    // c gets the slot that frees at 60 s; had b consumed it, c would wait until 120 s.
    assert_eq!(c.await.unwrap().unwrap(), 60_000);
    let snap = q.snapshot().await.unwrap();
    assert_eq!(snap.scopes[0].granted_total, 2);
    assert_eq!(snap.scopes[0].limits[0].used, 1);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn first_requests_of_different_agents_are_staggered() {
    let q = QuotaHandle::start_local(SupervisorSettings::default()).unwrap();
    q.register_scope(ScopeId::from("s"), ScopeSpec::default())
        .await
        .unwrap();
    let t0 = Instant::now();
    let tasks: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|who| spawn_timed(&q, req("s", 1, who), t0))
        .collect();
    let mut at = Vec::new();
    for t in tasks {
        at.push(t.await.unwrap().unwrap());
    }
    assert_eq!(at, vec![0, 250, 500]);
    // A requester's later requests are not staggered.
    q.acquire(req("s", 1, "a")).await.unwrap();
    assert_eq!(ms_since(t0), 500);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn startup_cooldown_admits_nothing_until_it_passes() {
    let s = ScopeSpec {
        startup_cooldown: Duration::from_secs(10),
        ..ScopeSpec::default()
    };
    let q = start("gemini/pro", s).await;
    let t0 = Instant::now();
    let at = spawn_timed(&q, req("gemini/pro", 1, "a"), t0);
    assert_eq!(at.await.unwrap().unwrap(), 10_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn higher_priority_goes_first_fifo_within_a_level() {
    let q = start("s", spec(vec![Limit::rpm(nz(1))])).await;
    let t0 = Instant::now();
    q.acquire(req("s", 1, "x")).await.unwrap();
    let mut tasks = Vec::new();
    for (who, prio) in [("low1", 0), ("low2", 0), ("high", 9)] {
        let mut r = req("s", 1, who);
        r.priority = prio;
        r.deadline = Some(Duration::from_secs(600));
        tasks.push(spawn_timed(&q, r, t0));
        tokio::task::yield_now().await;
    }
    let mut at = Vec::new();
    for t in tasks {
        at.push(t.await.unwrap().unwrap());
    }
    // high at 60 s, then low1 and low2 in arrival order.
    assert_eq!(at, vec![120_000, 180_000, 60_000]);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn concurrency_cap_waits_for_a_settle() {
    let s = ScopeSpec {
        concurrency: NonZeroU32::new(1),
        ..ScopeSpec::default()
    };
    let q = start("s", s).await;
    let t0 = Instant::now();
    let first = q.acquire(req("s", 1, "a")).await.unwrap();
    let second = spawn_timed(&q, req("s", 1, "a"), t0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(first); // settles at the estimate and frees the slot
    assert_eq!(second.await.unwrap().unwrap(), 3_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn the_first_candidate_with_capacity_is_granted() {
    let q = QuotaHandle::start_local(settings()).unwrap();
    for key in ["key1", "key2"] {
        q.register_scope(ScopeId::from(key), spec(vec![Limit::rpm(nz(1))]))
            .await
            .unwrap();
    }
    let two = || AcquireRequest {
        candidates: vec![vec![ScopeId::from("key1")], vec![ScopeId::from("key2")]],
        est_tokens: 1,
        est_output: 0,
        priority: 0,
        deadline: None,
        requester: Arc::from("a"),
    };
    let p1 = q.acquire(two()).await.unwrap();
    let p2 = q.acquire(two()).await.unwrap();
    assert_eq!((p1.candidate(), p2.candidate()), (0, 1));
    assert_eq!(p2.scopes(), &[ScopeId::from("key2")]);
    let t0 = Instant::now();
    let p3 = q.acquire(two()).await.unwrap();
    assert_eq!(p3.candidate(), 0);
    assert_eq!(p3.waited(), Duration::from_secs(60));
    assert_eq!(ms_since(t0), 60_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_big_token_request_is_not_overtaken_by_small_ones() {
    let q = start("s", spec(vec![Limit::tpm(nz(1000))])).await;
    let t0 = Instant::now();
    q.acquire(req("s", 500, "a")).await.unwrap().settle(500);
    let big = spawn_timed(&q, req("s", 900, "big"), t0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // 100 would fit now (600 of 1000) but must queue behind the big one.
    let small = spawn_timed(&q, req("s", 100, "small"), t0);
    assert_eq!(big.await.unwrap().unwrap(), 60_000);
    assert_eq!(small.await.unwrap().unwrap(), 60_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn spend_cap_closes_the_scope_for_waiters_and_newcomers() {
    let q = start("s", spec(vec![Limit::rpm(nz(1))])).await;
    q.acquire(req("s", 1, "a")).await.unwrap();
    let q2 = q.clone();
    let waiter = tokio::spawn(async move { q2.acquire(req("s", 1, "b")).await });
    tokio::task::yield_now().await;
    q.feedback(
        ScopeId::from("s"),
        RateLimitSignal::new(SignalKind::SpendCapReached),
    );
    let err = waiter.await.unwrap().unwrap_err();
    assert!(matches!(err, AcquireError::ScopeClosed { .. }), "{err}");
    let err = q.acquire(req("s", 1, "c")).await.unwrap_err();
    assert!(err.to_string().contains("spend cap"), "{err}");
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn learned_limits_only_lower() {
    let q = start("s", spec(vec![Limit::rpm(nz(5))])).await;
    let mut events = q.subscribe();
    let mut signal = RateLimitSignal::new(SignalKind::Observed);
    signal.learned_limits = vec![
        Limit::rpm(nz(10)),
        Limit::rpm(nz(2)),
        Limit::new(Dimension::Tokens, 30_000, Duration::from_secs(60)).unwrap(),
    ];
    q.feedback(ScopeId::from("s"), signal);
    let snap = q.snapshot().await.unwrap();
    let limits = &snap.scopes[0].limits;
    assert_eq!((limits[0].limit, limits[0].configured_limit), (2, 5));
    assert!(limits[0].learned);
    assert_eq!((limits[1].dimension, limits[1].limit), ("tokens", 30_000));
    let learned: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, QuotaEvent::LimitLearned { .. }))
        .collect();
    assert_eq!(learned.len(), 2);
    let t0 = Instant::now();
    q.acquire(req("s", 1, "a")).await.unwrap();
    q.acquire(req("s", 1, "a")).await.unwrap();
    let third = spawn_timed(&q, req("s", 1, "a"), t0);
    assert_eq!(third.await.unwrap().unwrap(), 60_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn events_serialize_with_an_event_tag() {
    let q = start("s", spec(vec![Limit::rpm(nz(1))])).await;
    let mut events = q.subscribe();
    q.acquire(req("s", 7, "agent_a")).await.unwrap().settle(5);
    q.snapshot().await.unwrap();
    let granted = serde_json::to_value(events.recv().await.unwrap()).unwrap();
    assert_eq!(granted["event"], "granted");
    assert_eq!(granted["requester"], "agent_a");
    let settled = serde_json::to_value(events.recv().await.unwrap()).unwrap();
    assert_eq!(settled["event"], "settled");
    assert_eq!(
        (settled["estimate"].as_u64(), settled["actual"].as_u64()),
        (Some(7), Some(5))
    );
}

#[test]
fn start_runs_on_its_own_thread_from_sync_code() {
    let q = QuotaHandle::start(SupervisorSettings::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        q.register_scope(ScopeId::from("s"), spec(vec![Limit::rpm(nz(100))]))
            .await
            .unwrap();
        for _ in 0..10 {
            q.acquire(req("s", 1, "a")).await.unwrap().settle(1);
        }
        let snap = q.snapshot().await.unwrap();
        assert_eq!(snap.scopes[0].granted_total, 10);
        assert_eq!(snap.scopes[0].in_flight, 0);
    });
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<QuotaHandle>();
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn aging_lets_a_long_waiting_low_priority_request_go_before_a_new_high_one() {
    let q = start("s", spec(vec![Limit::rpm(nz(1))])).await;
    let t0 = Instant::now();
    q.acquire(req("s", 1, "x")).await.unwrap();
    let mut low = req("s", 1, "low");
    low.deadline = Some(Duration::from_secs(600));
    let low = spawn_timed(&q, low, t0);
    // 50 s later a priority-9 request arrives: 9 levels are worth 45 s of waiting, so the
    // low-priority request, waiting 50 s, stays ahead.
    tokio::time::sleep(Duration::from_secs(50)).await;
    let mut high = req("s", 1, "high");
    high.priority = 9;
    high.deadline = Some(Duration::from_secs(600));
    let high = spawn_timed(&q, high, t0);
    assert_eq!(low.await.unwrap().unwrap(), 60_000);
    assert_eq!(high.await.unwrap().unwrap(), 120_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn pacing_spreads_requests_over_the_window() {
    let paced = ScopeSpec {
        limits: vec![Limit::rpm(nz(2))],
        pacing: true,
        ..ScopeSpec::default()
    };
    let q = start("s", paced).await;
    let t0 = Instant::now();
    let mut at = Vec::new();
    for _ in 0..3 {
        q.acquire(req("s", 1, "a")).await.unwrap().settle(1);
        at.push(ms_since(t0));
    }
    assert_eq!(at, vec![0, 30_000, 60_000]);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn when_the_head_gives_up_those_behind_it_go_at_once() {
    let q = start("s", spec(vec![Limit::tpm(nz(1000))])).await;
    let t0 = Instant::now();
    q.acquire(req("s", 500, "a")).await.unwrap().settle(500);
    let q2 = q.clone();
    let big = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(5), q2.acquire(req("s", 900, "big"))).await
    });
    tokio::task::yield_now().await;
    // Queued behind the big request although 100 fits now.
    let small = spawn_timed(&q, req("s", 100, "small"), t0);
    assert!(big.await.unwrap().is_err());
    // The big request gave up at 5 s: the small one goes then, not at 60 s.
    assert_eq!(small.await.unwrap().unwrap(), 5_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn registering_an_equal_spec_changes_nothing_and_a_new_spec_keeps_history() {
    let cooled = ScopeSpec {
        limits: vec![Limit::rpm(nz(2))],
        startup_cooldown: Duration::from_secs(10),
        ..ScopeSpec::default()
    };
    let q = start("s", cooled.clone()).await;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    q.acquire(req("s", 1, "a")).await.unwrap();
    // The same spec again: no new startup cooldown.
    q.register_scope(ScopeId::from("s"), cooled.clone())
        .await
        .unwrap();
    q.acquire(req("s", 1, "a")).await.unwrap();
    assert_eq!(ms_since(t0), 10_000);
    // Raising the limit keeps the two admissions already in the window.
    let raised = ScopeSpec {
        limits: vec![Limit::rpm(nz(3))],
        ..cooled
    };
    q.register_scope(ScopeId::from("s"), raised).await.unwrap();
    q.acquire(req("s", 1, "a")).await.unwrap();
    let fourth = spawn_timed(&q, req("s", 1, "a"), t0);
    assert_eq!(fourth.await.unwrap().unwrap(), 70_000);
    fn assert_send<T: Send + std::fmt::Debug>() {}
    assert_send::<massgen::supervisor::Permit>();
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_call_the_provider_did_not_count_leaves_every_window() {
    let q = start("s", spec(vec![Limit::rpm(nz(1)), Limit::tpm(nz(1000))])).await;
    let t0 = Instant::now();
    // An overloaded provider (529) answered: the request did not count.
    q.acquire(req("s", 900, "a"))
        .await
        .unwrap()
        .release_uncounted();
    q.acquire(req("s", 900, "a")).await.unwrap().settle(900);
    assert_eq!(ms_since(t0), 0);
    let snap = q.snapshot().await.unwrap();
    let used: Vec<u64> = snap.scopes[0].limits.iter().map(|l| l.used).collect();
    assert_eq!(used, vec![1, 900]);
    assert_eq!(snap.scopes[0].granted_total, 2);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_window_guard_keeps_admissions_counting_that_much_longer() {
    let guarded = ScopeSpec {
        window_guard: Duration::from_millis(250),
        ..spec(vec![Limit::rpm(nz(2))])
    };
    let q = start("openai/gpt", guarded).await;
    let t0 = Instant::now();
    let tasks: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|who| spawn_timed(&q, req("openai/gpt", 100, who), t0))
        .collect();
    let mut at = Vec::new();
    for t in tasks {
        at.push(t.await.unwrap().unwrap());
    }
    // Not at 60 s: a request granted then could reach the provider less than a minute after an
    // earlier one that travelled slower.
    assert_eq!(at, vec![0, 0, 60_250]);
    let snapshot = q.snapshot().await.unwrap();
    // The limit is still reported as the provider states it.
    assert_eq!(snapshot.scopes[0].limits[0].period_secs, 60.0);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn every_waiter_is_announced_with_what_blocks_it() {
    let cooled = ScopeSpec {
        startup_cooldown: Duration::from_secs(10),
        ..spec(vec![Limit::rpm(nz(100))])
    };
    let q = start("gemini/flash", cooled).await;
    let mut events = q.subscribe();
    let t0 = Instant::now();
    let tasks: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|who| spawn_timed(&q, req("gemini/flash", 10, who), t0))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 10_000);
    }
    let mut announced = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let QuotaEvent::Waiting {
            requester,
            limit,
            eta_ms,
            ..
        } = event
        {
            assert_eq!(limit.as_deref(), Some("cooldown: startup"), "{requester}");
            assert_eq!(eta_ms, Some(10_000), "{requester}");
            announced.push(requester);
        }
    }
    announced.sort();
    assert_eq!(announced, ["a", "b", "c", "d"]);
}
