//! Routing over key pools against the mock: key choice through the supervisor, failover on a
//! 429, retirement on 401, backoff on 5xx, settlement of reported usage.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use massgen::config::BackendKind;
use massgen::keys::{KeyHealth, KeyPool, KeyRegistry};
use massgen::mock_provider::MockLimits;
use massgen::provider::{ProviderErrorKind, ProviderRef};
use massgen::quota::{Dimension, Limit, ScopeKind, ScopeSpec};
use massgen::routing::{
    CallError, CallObserver, CallReport, QuotaRoute, RetryPolicy, Route, call, reserve,
};
use massgen::supervisor::{QuotaHandle, SupervisorSettings};

use super::{FIRST, KINDS, actors, key, mock, provider, request};

/// A key registry of its own (keys shared only within one test).
fn registry() -> KeyRegistry {
    KeyRegistry::new(actors())
}

#[derive(Default)]
struct Retries(Mutex<Vec<(u32, String, Duration)>>);

impl CallObserver for Retries {
    fn retrying(&self, attempt: u32, reason: &str, delay: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((attempt, reason.to_owned(), delay));
    }
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(5),
        multiplier: 2,
        max_backoff: Duration::from_millis(50),
        jitter: 0.2,
        ..RetryPolicy::default()
    }
}

/// One call of the first-turn request through `r`, streamed or not, retries unobserved.
async fn call_first(r: &Route, stream: bool) -> Result<CallReport, CallError> {
    call(
        r,
        || request(FIRST, true, stream),
        None,
        0,
        &Retries::default(),
    )
    .await
}

async fn supervised(pool: &KeyPool, spec: ScopeSpec) -> QuotaHandle {
    let handle = QuotaHandle::start(SupervisorSettings {
        stagger: Duration::ZERO,
        ..SupervisorSettings::default()
    })
    .unwrap();
    for (scope, spec) in pool.scope_specs(&spec) {
        handle.register_scope(scope, spec).await.unwrap();
    }
    handle
}

fn route(
    kind: BackendKind,
    server: &massgen::mock_provider::MockServerHandle,
    pool: &Arc<KeyPool>,
    quota: Option<&QuotaHandle>,
) -> Route {
    Route {
        provider: ProviderRef::start(actors(), provider(kind, server)),
        key: None,
        retry: quick_retry(),
        requester: Arc::from("agent-a"),
        quota: quota.map(|h| QuotaRoute {
            handle: h.clone(),
            candidates: Vec::new(),
            deadline: Some(Duration::from_secs(5)),
            run_deadline: None,
            output_cap: None,
            extra_scopes: Vec::new(),
        }),
        pool: Some(pool.clone()),
        models: None,
        usage: None,
        budget: None,
    }
}

#[tokio::test]
async fn a_429_fails_over_to_another_key_at_once_and_closes_the_limited_scope() {
    let rpm = Limit::new(Dimension::Requests, 1, Duration::from_secs(60)).unwrap();
    for kind in KINDS {
        let server = mock(MockLimits::uniform(vec![rpm]), "").await;
        let keys = vec![key("first"), key("second")];
        // Use up the first key's minute outside routing: the supervisor does not know.
        provider(kind, &server)
            .chat(&request(FIRST, true, false), Some(&keys[0]), None)
            .await
            .unwrap();
        let pool = Arc::new(KeyPool::new(
            &registry(),
            "mock",
            "mock-model",
            keys.clone(),
            ScopeKind::PerKey,
            None,
        ));
        let quota = supervised(&pool, ScopeSpec::default()).await;
        let rec = Retries::default();
        let started = std::time::Instant::now();
        let report = call(
            &route(kind, &server, &pool, Some(&quota)),
            || request(FIRST, true, false),
            None,
            0,
            &rec,
        )
        .await
        .unwrap();
        assert_eq!(report.calls, 2, "{kind:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{kind:?}: failover did not wait"
        );
        assert_eq!(rec.0.lock().unwrap()[0].2, Duration::ZERO);
        let snap = quota.snapshot().await.unwrap();
        let first = snap
            .scopes
            .iter()
            .find(|s| s.scope == pool.key_scope(&keys[0]).as_str())
            .unwrap();
        let cooling = first.cooldown_remaining_ms.unwrap_or(0);
        assert!(
            cooling > 50_000,
            "{kind:?}: the limited key rests until its retry time: {first:?}"
        );
        let second = snap
            .scopes
            .iter()
            .find(|s| s.scope == pool.key_scope(&keys[1]).as_str())
            .unwrap();
        // Usage is settled to what the provider reported.
        let reported = report.usage.total();
        let tokens = second.limits.iter().find(|l| l.dimension == "tokens");
        if let Some(t) = tokens {
            assert_eq!(t.used, reported, "{kind:?}");
        }
        assert_eq!(pool.keys()[1].usage().successes, 1);
        assert_eq!(pool.keys()[0].usage().rate_limited, 1);
        assert_eq!(server.stats().total.refused, 1);
    }
}

#[tokio::test]
async fn usage_is_settled_in_the_scope() {
    let tpm = Limit::new(Dimension::Tokens, 1_000_000, Duration::from_secs(60)).unwrap();
    let server = mock(MockLimits::unlimited(), "").await;
    let pool = Arc::new(KeyPool::new(
        &registry(),
        "mock",
        "mock-model",
        vec![key("a")],
        ScopeKind::PerKey,
        None,
    ));
    let quota = supervised(
        &pool,
        ScopeSpec {
            limits: vec![tpm],
            ..ScopeSpec::default()
        },
    )
    .await;
    for kind in KINDS {
        for stream in [false, true] {
            let before = used_tokens(&quota).await;
            let r = route(kind, &server, &pool, Some(&quota));
            let reserved = reserve::tokens(&r, &request(FIRST, true, stream));
            let report = call_first(&r, stream).await.unwrap();
            let after = used_tokens(&quota).await;
            let u = report.usage;
            assert!(u.total() > 0);
            assert!(
                reserved.input >= u.input_tokens,
                "{kind:?}: {reserved:?} {u:?}"
            );
            assert_eq!(reserved.output, 256);
            // Each dialect settles the way its provider counts: OpenAI-style input + cap at
            // arrival, Gemini the reported usage, Anthropic the input at arrival and the
            // actual output.
            let settled = match kind {
                BackendKind::Gemini => u.total(),
                BackendKind::Claude => reserved.input + u.output_tokens,
                _ => reserved.total(),
            };
            assert_eq!(after - before, settled, "{kind:?} stream={stream}");
        }
    }
}

async fn used_tokens(q: &QuotaHandle) -> u64 {
    let snap = q.snapshot().await.unwrap();
    snap.scopes[0]
        .limits
        .iter()
        .find(|l| l.dimension == "tokens")
        .unwrap()
        .used
}

#[tokio::test]
async fn a_refused_key_is_retired_and_the_others_carry_on() {
    for kind in KINDS {
        let server = mock(MockLimits::unlimited(), "401:key=test-key-bad-0123456789").await;
        let pool = Arc::new(KeyPool::new(
            &registry(),
            "mock",
            "mock-model",
            vec![key("bad"), key("good")],
            ScopeKind::PerKey,
            None,
        ));
        let quota = supervised(&pool, ScopeSpec::default()).await;
        let r = route(kind, &server, &pool, Some(&quota));
        let report = call_first(&r, false).await.unwrap();
        assert_eq!(report.calls, 2, "{kind:?}");
        let KeyHealth::Retired { reason } = pool.keys()[0].health() else {
            panic!("{kind:?}: the bad key should be retired");
        };
        assert!(
            reason.contains("****6789") && !reason.contains("test-key-bad"),
            "{reason}"
        );
        for _ in 0..3 {
            let report = call_first(&r, false).await.unwrap();
            assert_eq!(
                report.calls, 1,
                "{kind:?}: the retired key is not tried again"
            );
        }
        // When the only key left is refused too, the call fails with a clear message.
        pool.keys()[1].retire("test: refused").await;
        let err = call_first(&r, false).await.unwrap_err();
        assert!(err.to_string().contains("no usable key left"), "{err}");
    }
}

#[tokio::test]
async fn transient_failures_and_malformed_answers_are_retried_with_backoff() {
    for spec in [
        "500:first=2",
        "502:first=1,503:first=1",
        "malformed:first=1",
        "reset:first=1",
        "truncate:first=2",
    ] {
        for kind in KINDS {
            let server = mock(MockLimits::unlimited(), spec).await;
            let pool = Arc::new(KeyPool::new(
                &registry(),
                "mock",
                "mock-model",
                vec![key("a")],
                ScopeKind::PerKey,
                None,
            ));
            let quota = supervised(&pool, ScopeSpec::default()).await;
            let rec = Retries::default();
            let report = call(
                &route(kind, &server, &pool, Some(&quota)),
                || request(FIRST, true, true),
                None,
                0,
                &rec,
            )
            .await
            .unwrap_or_else(|e| panic!("{spec} {kind:?}: {e}"));
            assert!(report.calls >= 2, "{spec} {kind:?}");
            let delays: Vec<Duration> = rec.0.lock().unwrap().iter().map(|r| r.2).collect();
            assert!(
                delays.iter().all(|d| *d > Duration::ZERO),
                "{spec}: backoff, not a hot loop: {delays:?}"
            );
            let granted: u64 = quota
                .snapshot()
                .await
                .unwrap()
                .scopes
                .iter()
                .map(|s| s.granted_total)
                .sum();
            assert_eq!(
                granted,
                u64::from(report.calls),
                "{spec}: every retry went through the supervisor"
            );
        }
    }
}

#[tokio::test]
async fn retries_are_bounded() {
    let server = mock(MockLimits::unlimited(), "500:1.0").await;
    let pool = Arc::new(KeyPool::new(
        &registry(),
        "mock",
        "mock-model",
        vec![key("a")],
        ScopeKind::PerKey,
        None,
    ));
    let err = call_first(&route(BackendKind::OpenAi, &server, &pool, None), false)
        .await
        .unwrap_err();
    assert_eq!(err.calls(), 4);
    assert!(err.to_string().contains("HTTP 500"), "{err}");
}

#[tokio::test]
async fn without_a_supervisor_a_rate_limited_key_rests_while_another_serves() {
    let rpm = Limit::new(Dimension::Requests, 1, Duration::from_secs(60)).unwrap();
    let server = mock(MockLimits::uniform(vec![rpm]), "").await;
    let pool = Arc::new(KeyPool::new(
        &registry(),
        "mock",
        "mock-model",
        vec![key("x"), key("y")],
        ScopeKind::PerKey,
        None,
    ));
    let r = route(BackendKind::OpenAi, &server, &pool, None);
    // Two calls use up both keys' minute; the third is refused on both and must rest: it fails
    // after its attempts rather than hammering (bounded), and no key is retired.
    call_first(&r, false).await.unwrap();
    call_first(&r, false).await.unwrap();
    let third = tokio::time::timeout(Duration::from_millis(500), call_first(&r, false)).await;
    assert!(
        third.is_err(),
        "both keys rest ~60 s: the call waits instead of hammering"
    );
    assert_eq!(
        server.stats().total.refused,
        2,
        "one refusal per key, then rest"
    );
    assert!(pool.keys().iter().all(|k| k.is_live()));
    let _ = ProviderErrorKind::RateLimited;
}

#[tokio::test]
async fn a_gemini_daily_quota_closes_the_project_scope_for_every_key_of_it() {
    let rpd = Limit::new(Dimension::Requests, 1, Duration::from_secs(86_400)).unwrap();
    let server = massgen::mock_provider::serve(massgen::mock_provider::MockOptions {
        limits: MockLimits::uniform(vec![rpd]),
        keys_share_limits: true,
        ..massgen::mock_provider::MockOptions::default()
    })
    .await
    .unwrap();
    // Two keys of one project: one shared scope, so the second key is no way around the quota.
    let pool = Arc::new(KeyPool::new(
        &registry(),
        "gemini",
        "mock-model",
        vec![key("p1"), key("p2")],
        ScopeKind::PerAccount,
        None,
    ));
    let spec = ScopeSpec {
        daily_reset: Some(massgen::quota::DailyReset {
            hour: 0,
            minute: 0,
            tz: chrono_tz::America::Los_Angeles,
        }),
        ..ScopeSpec::default()
    };
    let quota = supervised(&pool, spec).await;
    let mut r = route(BackendKind::Gemini, &server, &pool, Some(&quota));
    if let Some(q) = r.quota.as_mut() {
        q.deadline = Some(Duration::from_millis(300));
    }
    call_first(&r, false).await.unwrap();
    let err = call_first(&r, false).await.unwrap_err();
    assert!(
        err.is_quota_deadline(),
        "the call waits for the reset, then hits its deadline: {err}"
    );
    let snap = quota.snapshot().await.unwrap();
    assert_eq!(snap.scopes.len(), 1);
    assert_eq!(
        snap.scopes[0].cooldown_reason.as_deref(),
        Some("daily quota exhausted")
    );
    let stats = server.stats();
    assert_eq!(
        (stats.total.admitted, stats.total.refused),
        (1, 1),
        "the other key was not sent: {stats:?}"
    );
}

#[tokio::test]
async fn a_call_that_never_reached_the_provider_is_not_counted() {
    // A port nobody listens on: every attempt's connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let provider = Arc::new(massgen::provider::openai::OpenAiCompatible::new(
        "openai",
        &format!("http://127.0.0.1:{port}/v1"),
        massgen::provider::signals::Dialect::OpenAi,
        massgen::provider::http::shared_client().unwrap(),
    ));
    let pool = Arc::new(KeyPool::new(
        &registry(),
        "mock",
        "mock-model",
        vec![key("a")],
        ScopeKind::PerKey,
        None,
    ));
    let rpm = Limit::new(Dimension::Requests, 1, Duration::from_secs(60)).unwrap();
    let tpm = Limit::new(Dimension::Tokens, 100_000, Duration::from_secs(60)).unwrap();
    let quota = supervised(
        &pool,
        ScopeSpec {
            limits: vec![rpm, tpm],
            ..ScopeSpec::default()
        },
    )
    .await;
    let r = Route {
        provider: ProviderRef::start(actors(), provider),
        key: None,
        retry: quick_retry(),
        requester: Arc::from("agent-a"),
        quota: Some(QuotaRoute {
            handle: quota.clone(),
            candidates: Vec::new(),
            deadline: Some(Duration::from_secs(5)),
            run_deadline: None,
            output_cap: None,
            extra_scopes: Vec::new(),
        }),
        pool: Some(pool.clone()),
        models: None,
        usage: None,
        budget: None,
    };
    let err = call_first(&r, false).await.unwrap_err();
    // All four attempts went out at once under 1 RPM: none of them was counted.
    let CallError::Provider { error, calls, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(*calls, 4, "{err}");
    assert!(error.not_sent, "{err}");
    let snap = quota.snapshot().await.unwrap();
    assert!(
        snap.scopes[0].limits.iter().all(|l| l.used == 0),
        "{snap:?}"
    );
}
