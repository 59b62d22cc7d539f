//! Against the real supervisor and team runtime: scrapes during quota waits, bridges.

use std::num::NonZeroU64;
use std::time::Duration;

use massgen::config::{AgentConfig, SimulatedSettings, TeamConfig};
use massgen::quota::{Limit, RateLimitSignal, ScopeId, ScopeSpec, SignalKind};
use massgen::supervisor::{AcquireRequest, QuotaHandle, SupervisorSettings};
use massgen::telemetry::{
    self, MetricsServer, MetricsServerOptions, ScopeState, StatusReport, catalog,
};
use massgen::{RunEvent, Runtime, RuntimeOptions};

use super::{http_get, parse_exposition, promtool_check, value};

const SCOPE: &str = "gemini/gemini-2.5-pro";

/// Polls the supervisor's snapshot until `n` requests wait in `scope` (real time: the
/// supervisor runs on its own thread), failing after 30 s.
async fn until_waiting(quota: &QuotaHandle, scope: &str, n: usize) {
    let polled = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let snap = quota.snapshot().await.unwrap();
            if snap
                .scopes
                .iter()
                .any(|s| s.scope == scope && s.queue_depth >= n)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(polled.is_ok(), "{n} requests never queued in {scope}");
}

/// A run waiting on quota: Gemini Pro at 1 RPM, one call granted, a 429 closes the scope for
/// 600 s, two more agents queue. /metrics and /status over loopback show the wait.
#[tokio::test]
async fn scrape_during_a_quota_wait_shows_queue_and_cooldown() {
    let recorder = telemetry::local_recorder().unwrap();
    // Current-thread runtime: the bridge task and the server's handlers run on this thread.
    let _local = metrics::set_default_local_recorder(&recorder);

    let quota = QuotaHandle::start(SupervisorSettings::default()).unwrap();
    let mut events = quota.subscribe();
    let spec = ScopeSpec {
        limits: vec![Limit::rpm(NonZeroU64::MIN)],
        ..ScopeSpec::default()
    };
    quota
        .register_scope(ScopeId::new(SCOPE), spec)
        .await
        .unwrap();
    let request = |who: &str| AcquireRequest {
        deadline: Some(Duration::from_secs(3600)),
        ..AcquireRequest::new(vec![ScopeId::new(SCOPE)], 1500, who)
    };
    let first = quota.acquire(request("alice")).await.unwrap();
    first.settle(1400);
    quota.feedback(
        ScopeId::new(SCOPE),
        RateLimitSignal::new(SignalKind::RateLimited).with_retry_after(Duration::from_secs(600)),
    );
    let waiters: Vec<_> = ["bob", "carol"]
        .into_iter()
        .map(|who| {
            let quota = quota.clone();
            let req = request(who);
            tokio::spawn(async move { quota.acquire(req).await })
        })
        .collect();
    until_waiting(&quota, SCOPE, 2).await;
    // Everything before the snapshot's answer has been emitted: record it all.
    quota.snapshot().await.unwrap();
    while let Ok(event) = events.try_recv() {
        telemetry::record_quota_event(&event);
    }

    let server = MetricsServer::start(
        recorder.handle(),
        MetricsServerOptions::new("127.0.0.1:0".parse().unwrap()).with_quota(quota.clone()),
    )
    .await
    .unwrap();
    let (status, _, body) = http_get(server.local_addr(), "/metrics").await;
    assert_eq!(status, 200);
    let s = parse_exposition(&body);
    let scope = [("scope", SCOPE)];
    assert_eq!(value(&s, catalog::QUEUE_DEPTH, &scope), Some(2.0), "{body}");
    let cooldown = value(&s, catalog::COOLDOWN_REMAINING, &scope).unwrap();
    assert!(cooldown > 590.0 && cooldown <= 600.0, "{cooldown}");
    let rpm = [scope[0], ("dimension", "requests"), ("period", "1m")];
    assert_eq!(value(&s, catalog::WINDOW_USED, &rpm), Some(1.0));
    assert_eq!(value(&s, catalog::WINDOW_LIMIT, &rpm), Some(1.0));
    assert_eq!(value(&s, catalog::WINDOW_UTILIZATION, &rpm), Some(1.0));
    assert_eq!(value(&s, catalog::PERMITS_GRANTED, &scope), Some(1.0));
    assert_eq!(
        value(
            &s,
            catalog::COOLDOWNS,
            &[scope[0], ("reason", "rate_limited")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&s, catalog::SCOPE_CLOSED, &scope), Some(0.0));
    promtool_check(&body);

    let (status, _, body) = http_get(server.local_addr(), "/status").await;
    assert_eq!(status, 200);
    let report: StatusReport = serde_json::from_str(&body).unwrap();
    assert_eq!(report.waiting_total, 2);
    assert_eq!(report.closed_scopes, 1);
    let st = &report.scopes[0];
    assert_eq!(st.scope, SCOPE);
    assert_eq!(st.state, ScopeState::CoolingDown);
    assert_eq!(st.queue_depth, 2);
    assert!(st.cooldown_remaining_secs > 590.0, "{body}");
    assert_eq!(st.limits[0].used, 1);
    assert_eq!(st.limits[0].remaining, 0);
    assert_eq!(st.limits[0].utilization_pct, 100.0);
    assert_eq!(st.cooldown_reason.as_deref(), Some("429 rate limited"));
    // The in-memory store is named and holds nothing.
    let store = report.store.as_ref().unwrap();
    assert!(!store.shared && store.scopes.is_empty(), "{body}");

    for w in &waiters {
        w.abort();
    }
    server.shutdown().await.unwrap();
}

/// Denials, learned limits and a spend cap reach the counters with bounded reasons.
#[tokio::test]
async fn denials_learned_limits_and_spend_caps_are_counted() {
    let recorder = telemetry::local_recorder().unwrap();
    let _local = metrics::set_default_local_recorder(&recorder);
    let quota = QuotaHandle::start(SupervisorSettings::default()).unwrap();
    let bridge = telemetry::spawn_quota_bridge(&quota);
    let scope = ScopeId::new("openai/gpt-4o-mini/key:1a2b3c4d");
    let spec = ScopeSpec {
        limits: vec![Limit::tpm(NonZeroU64::new(32_000).unwrap())],
        ..ScopeSpec::default()
    };
    quota.register_scope(scope.clone(), spec).await.unwrap();
    let too_big = AcquireRequest::new(vec![scope.clone()], 50_000, "alice");
    assert!(quota.acquire(too_big).await.is_err());
    let mut learned = RateLimitSignal::new(SignalKind::Observed);
    learned.learned_limits = vec![Limit::tpm(NonZeroU64::new(20_000).unwrap())];
    quota.feedback(scope.clone(), learned);
    let mut cap = RateLimitSignal::new(SignalKind::SpendCapReached);
    cap.message = Some("You exceeded your current quota, check your plan".to_owned());
    quota.feedback(scope.clone(), cap);
    let closed = AcquireRequest::new(vec![scope.clone()], 100, "bob");
    assert!(quota.acquire(closed).await.is_err());

    let snapshot = quota.snapshot().await.unwrap();
    telemetry::apply_quota_snapshot(&snapshot);
    let report = StatusReport::from_snapshot(&snapshot);
    // The last handle gone, the supervisor stops and the bridge ends having seen everything.
    drop(quota);
    tokio::time::timeout(Duration::from_secs(30), bridge)
        .await
        .expect("the bridge ends when the supervisor stops")
        .unwrap();
    let text = recorder.handle().render();
    let s = parse_exposition(&text);
    let sc = [("scope", scope.as_str())];
    assert_eq!(
        value(
            &s,
            catalog::PERMITS_DENIED,
            &[sc[0], ("reason", "never_fits")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &s,
            catalog::PERMITS_DENIED,
            &[sc[0], ("reason", "scope_closed")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&s, catalog::LIMITS_LEARNED, &sc), Some(1.0));
    assert_eq!(
        value(&s, catalog::COOLDOWNS, &[sc[0], ("reason", "spend_cap")]),
        Some(1.0)
    );
    assert_eq!(value(&s, catalog::SCOPE_CLOSED, &sc), Some(1.0));
    let tpm = [sc[0], ("dimension", "tokens"), ("period", "1m")];
    assert_eq!(value(&s, catalog::WINDOW_LIMIT, &tpm), Some(20_000.0));
    assert_eq!(value(&s, catalog::LIMIT_LEARNED, &tpm), Some(1.0));
    assert!(
        !text.contains("exceeded your current quota"),
        "free text leaked: {text}"
    );
    promtool_check(&text);

    assert_eq!(report.scopes[0].state, ScopeState::Closed);
    assert_eq!(
        report.scopes[0].learned_limits,
        ["tokens per 1m: 20000 (configured 32000)"]
    );
}

/// A real team run (simulated backend, real time) held by a 100 s startup cooldown (within the
/// 120 s acquire deadline, so both agents wait instead of being refused at once): scraped over
/// loopback while both agents wait, then abandoned.
#[tokio::test]
async fn scrape_during_a_team_run_waiting_on_quota() {
    let recorder = telemetry::local_recorder().unwrap();
    let _local = metrics::set_default_local_recorder(&recorder);
    let quota = QuotaHandle::start(SupervisorSettings::default()).unwrap();
    let limits = massgen::config::ModelLimits {
        matched: "simulated/sim-1".to_owned(),
        limits: vec![Limit::rpm(NonZeroU64::new(2).unwrap())],
        startup_cooldown: Duration::from_secs(100),
        ..massgen::config::ModelLimits::default()
    };
    let mut table = std::collections::HashMap::new();
    table.insert(("simulated".to_owned(), "sim-1".to_owned()), limits);
    let options = RuntimeOptions {
        rate_limit: true,
        limits: Some(std::sync::Arc::new(table)),
        quota: Some(quota.clone()),
        ..RuntimeOptions::default()
    };
    let team = TeamConfig::new(vec![agent("alice"), agent("bob")]);
    let rt = std::sync::Arc::new(Runtime::new(team, options).unwrap());
    let run_bridge = telemetry::spawn_run_bridge(rt.subscribe());
    let running = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.run("Why is the sky blue?").await })
    };
    let scope = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(snap) = rt.quota_status().await {
                if let Some(s) = snap.scopes.iter().find(|s| s.queue_depth >= 2) {
                    return s.scope.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("both agents queue behind the startup cooldown");

    let server = MetricsServer::start(
        recorder.handle(),
        MetricsServerOptions::new("127.0.0.1:0".parse().unwrap()).with_quota(quota.clone()),
    )
    .await
    .unwrap();
    let (_, _, body) = http_get(server.local_addr(), "/metrics").await;
    let s = parse_exposition(&body);
    let sc = [("scope", scope.as_str())];
    assert_eq!(value(&s, catalog::QUEUE_DEPTH, &sc), Some(2.0), "{body}");
    let cooldown = value(&s, catalog::COOLDOWN_REMAINING, &sc).unwrap();
    assert!(cooldown > 50.0, "{cooldown}");
    assert_eq!(
        value(&s, catalog::COORDINATION_ROUNDS, &[]),
        Some(1.0),
        "{body}"
    );
    promtool_check(&body);
    let (_, _, body) = http_get(server.local_addr(), "/status").await;
    let report: StatusReport = serde_json::from_str(&body).unwrap();
    let st = report.scopes.iter().find(|s| s.scope == scope).unwrap();
    assert_eq!(st.state, ScopeState::CoolingDown);
    assert_eq!(st.queue_depth, 2);
    assert_eq!(st.cooldown_reason.as_deref(), Some("startup"));
    assert!(!running.is_finished());

    running.abort();
    server.shutdown().await.unwrap();
    run_bridge.abort();
}

fn agent(id: &str) -> AgentConfig {
    AgentConfig::simulated(
        id,
        SimulatedSettings {
            latency: Duration::from_millis(100),
            ..SimulatedSettings::default()
        },
    )
}

/// A whole simulated run through the run bridge: turns, votes, rounds and duration.
#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn simulated_run_metrics() {
    let recorder = telemetry::local_recorder().unwrap();
    let _local = metrics::set_default_local_recorder(&recorder);
    let team = TeamConfig::new(vec![agent("carol"), agent("alice"), agent("bob")]);
    let rt = Runtime::new(team, crate::actors::local()).unwrap();
    let mut watch = rt.subscribe();
    let bridge = telemetry::spawn_run_bridge(rt.subscribe());
    let out = rt.run("Why is the sky blue?").await.unwrap();
    drop(rt); // closes the event stream: the bridge has seen everything when it ends
    bridge.await.unwrap();
    let mut restarts = 0.0;
    let mut presented = 0.0;
    while let Ok(e) = watch.try_recv() {
        match e {
            RunEvent::Restart { .. } => restarts += 1.0,
            RunEvent::FinalAnswer {
                presented: true, ..
            } => presented += 1.0,
            _ => {}
        }
    }

    let text = recorder.handle().render();
    let s = parse_exposition(&text);
    let turns = |o: &str| value(&s, catalog::AGENT_TURNS, &[("outcome", o)]);
    assert_eq!(turns("answer"), Some(out.answers.len() as f64), "{text}");
    assert_eq!(turns("vote"), Some(out.votes.len() as f64));
    assert_eq!(turns("presented"), Some(presented));
    assert_eq!(presented, 1.0);
    assert_eq!(value(&s, catalog::VOTES, &[]), Some(3.0));
    assert_eq!(
        value(&s, catalog::COORDINATION_ROUNDS, &[]),
        Some(1.0 + restarts)
    );
    let done = [("status", "completed")];
    let count = format!("{}_count", catalog::RUN_DURATION);
    let sum = format!("{}_sum", catalog::RUN_DURATION);
    assert_eq!(value(&s, &count, &done), Some(1.0));
    assert_eq!(value(&s, &sum, &done), Some(out.duration.as_secs_f64()));
    let le1 = [("status", "completed"), ("le", "1")];
    assert_eq!(
        value(&s, &format!("{}_bucket", catalog::RUN_DURATION), &le1),
        Some(1.0)
    );
    promtool_check(&text);
}
