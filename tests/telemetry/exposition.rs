//! The exposition after realistic recordings: families, label sets, values, promtool.

use std::collections::BTreeMap;
use std::time::Duration;

use massgen::provider::{ChatResponse, ProviderError, ProviderErrorKind, Usage};
use massgen::quota::{Dimension, RateLimitSignal, SignalKind};
use massgen::telemetry::{self, catalog, pool, provider, quota, run};

use super::{parse_exposition, promtool_check, type_of, value};

/// A realistic quota + provider + run sequence: two agents share Gemini Pro at 2 RPM, the third
/// call waits a minute, a 429 closes the scope, the team votes and finishes.
fn record_realistic_sequence() {
    let scope = "gemini/gemini-2.5-pro";
    quota::cooldown_started(scope, quota::CooldownReason::Startup);
    quota::permit_granted(scope, Duration::from_millis(0));
    quota::permit_granted(scope, Duration::from_millis(250));
    quota::in_flight(scope, 2);
    quota::queue_depth(scope, 1);
    quota::window_usage(scope, Dimension::Requests, Duration::from_secs(60), 2, 2);
    quota::window_usage(
        scope,
        Dimension::Tokens,
        Duration::from_secs(60),
        3000,
        32_000,
    );
    quota::limit_source(scope, Dimension::Requests, Duration::from_secs(60), false);
    quota::permit_granted(scope, Duration::from_secs(60));
    quota::queue_depth(scope, 0);
    quota::permit_denied(scope, quota::DenyReason::DeadlineExceeded);

    let ok = Ok(ChatResponse {
        usage: Some(Usage::new(1200, 300)),
        ..ChatResponse::default()
    });
    provider::call_finished("gemini", "gemini-2.5-pro", Duration::from_millis(800), &ok);
    provider::call_finished("gemini", "gemini-2.5-pro", Duration::from_millis(1200), &ok);
    let limited: Result<ChatResponse, ProviderError> = Err(ProviderError::new(
        ProviderErrorKind::RateLimited,
        "quota exceeded",
    )
    .with_status(429)
    .with_signal(
        RateLimitSignal::new(SignalKind::RateLimited).with_retry_after(Duration::from_secs(26)),
    ));
    provider::call_finished(
        "gemini",
        "gemini-2.5-pro",
        Duration::from_millis(90),
        &limited,
    );
    // One endpoint's actor: two answers (one a 5xx), then its circuit opens and refuses a
    // call without a request.
    let endpoint = "https://generativelanguage.googleapis.com/v1beta";
    provider::endpoint_call("gemini", endpoint, Duration::from_millis(800), None);
    provider::endpoint_call(
        "gemini",
        endpoint,
        Duration::from_millis(3000),
        Some(ProviderErrorKind::Transient),
    );
    provider::circuit_state("gemini", endpoint, massgen::provider::EndpointState::Open);
    provider::endpoint_error("gemini", endpoint, ProviderErrorKind::CircuitOpen);
    // The routing layer's view of that refused call: no request was made.
    let refused: Result<ChatResponse, ProviderError> =
        Err(ProviderError::new(ProviderErrorKind::CircuitOpen, "the circuit is open").never_sent());
    provider::call_finished("gemini", "gemini-2.5-pro", Duration::ZERO, &refused);
    quota::cooldown_started(scope, quota::CooldownReason::RateLimited);
    quota::cooldown_remaining(scope, 26.0);
    quota::limit_learned(scope);
    quota::scope_closed(scope, false);

    provider::agent_cost("a1", "gemini", "gemini-2.5-pro", 0.0045);
    provider::agent_cost("a1", "gemini", "gemini-2.5-pro", 0.0045);

    // A pool of two Gemini models: the first call is given Pro, is rate-limited and moves to
    // Flash; a later call finds both busy and waits.
    pool::model_selected("fast", "gemini", "gemini-2.5-pro");
    pool::model_rotated(
        "fast",
        "gemini/gemini-2.5-pro",
        "gemini/gemini-2.5-flash",
        pool::RotationReason::RateLimited,
    );
    pool::model_selected("fast", "gemini", "gemini-2.5-flash");
    pool::model_unavailable("fast");

    run::coordination_round();
    run::agent_turn(run::TurnOutcome::Answer);
    run::agent_turn(run::TurnOutcome::Answer);
    run::agent_turn(run::TurnOutcome::Retry);
    run::agent_turn(run::TurnOutcome::Vote);
    run::vote();
    run::agent_turn(run::TurnOutcome::Presented);
    run::run_duration(Duration::from_secs(95), run::RunStatusLabel::Completed);
}

#[test]
fn exposition_has_the_expected_families_labels_and_values() {
    let recorder = telemetry::local_recorder().unwrap();
    metrics::with_local_recorder(&recorder, record_realistic_sequence);
    let text = recorder.handle().render();
    let s = parse_exposition(&text);
    let scope = [("scope", "gemini/gemini-2.5-pro")];
    let gm = [("provider", "gemini"), ("model", "gemini-2.5-pro")];

    assert_eq!(
        type_of(&text, catalog::PERMITS_GRANTED).as_deref(),
        Some("counter")
    );
    assert_eq!(value(&s, catalog::PERMITS_GRANTED, &scope), Some(3.0));
    assert_eq!(
        value(
            &s,
            catalog::PERMITS_DENIED,
            &[scope[0], ("reason", "deadline_exceeded")]
        ),
        Some(1.0)
    );
    // The wait histogram: real buckets, 2 grants under 1 s, the minute wait in the 60 s bucket.
    assert_eq!(
        type_of(&text, catalog::PERMIT_WAIT).as_deref(),
        Some("histogram")
    );
    let bucket = |le: &str| {
        value(
            &s,
            &format!("{}_bucket", catalog::PERMIT_WAIT),
            &[scope[0], ("le", le)],
        )
    };
    assert_eq!(bucket("0.001"), Some(1.0));
    assert_eq!(bucket("0.25"), Some(2.0));
    assert_eq!(bucket("30"), Some(2.0));
    assert_eq!(bucket("60"), Some(3.0));
    assert_eq!(bucket("+Inf"), Some(3.0));
    assert_eq!(
        value(&s, &format!("{}_count", catalog::PERMIT_WAIT), &scope),
        Some(3.0)
    );
    let wait_sum = value(&s, &format!("{}_sum", catalog::PERMIT_WAIT), &scope).unwrap();
    assert!((wait_sum - 60.25).abs() < 1e-9, "{wait_sum}");

    assert_eq!(value(&s, catalog::QUEUE_DEPTH, &scope), Some(0.0));
    let rpm = [scope[0], ("dimension", "requests"), ("period", "1m")];
    assert_eq!(value(&s, catalog::WINDOW_USED, &rpm), Some(2.0));
    assert_eq!(value(&s, catalog::WINDOW_LIMIT, &rpm), Some(2.0));
    assert_eq!(value(&s, catalog::WINDOW_UTILIZATION, &rpm), Some(1.0));
    assert_eq!(value(&s, catalog::LIMIT_LEARNED, &rpm), Some(0.0));
    let tpm = [scope[0], ("dimension", "tokens"), ("period", "1m")];
    assert_eq!(
        value(&s, catalog::WINDOW_UTILIZATION, &tpm),
        Some(3000.0 / 32_000.0)
    );
    assert_eq!(value(&s, catalog::COOLDOWN_REMAINING, &scope), Some(26.0));
    assert_eq!(
        value(&s, catalog::COOLDOWNS, &[scope[0], ("reason", "startup")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            catalog::COOLDOWNS,
            &[scope[0], ("reason", "rate_limited")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&s, catalog::LIMITS_LEARNED, &scope), Some(1.0));

    assert_eq!(
        value(
            &s,
            catalog::PROVIDER_REQUESTS,
            &[gm[0], gm[1], ("status_class", "2xx")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &s,
            catalog::PROVIDER_REQUESTS,
            &[gm[0], gm[1], ("status_class", "4xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            catalog::RATE_LIMIT_RESPONSES,
            &[gm[0], gm[1], ("kind", "rate_limited")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&s, catalog::TOKENS, &[gm[0], gm[1], ("direction", "input")]),
        Some(2400.0)
    );
    assert_eq!(
        value(
            &s,
            catalog::TOKENS,
            &[gm[0], gm[1], ("direction", "output")]
        ),
        Some(600.0)
    );
    // gemini-2.5-pro list price: 1.25 $/Mtok in, 10 $/Mtok out -> 0.0045 $ per call.
    let cost = value(&s, &format!("{}_sum", catalog::COST), &gm).unwrap();
    assert!((cost - 0.009).abs() < 1e-12, "{cost}");
    assert_eq!(
        value(
            &s,
            catalog::COST_MICRODOLLARS,
            &[("agent", "a1"), gm[0], gm[1]]
        ),
        Some(9000.0)
    );
    assert_eq!(
        value(
            &s,
            &format!("{}_count", catalog::PROVIDER_REQUEST_DURATION),
            &gm
        ),
        Some(3.0)
    );

    assert_eq!(
        value(&s, catalog::AGENT_TURNS, &[("outcome", "answer")]),
        Some(2.0)
    );
    assert_eq!(
        value(&s, catalog::AGENT_TURNS, &[("outcome", "retry")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, catalog::AGENT_TURNS, &[("outcome", "presented")]),
        Some(1.0)
    );
    let endpoint = [
        ("provider", "gemini"),
        (
            "endpoint",
            "https://generativelanguage.googleapis.com/v1beta",
        ),
    ];
    assert_eq!(
        value(&s, catalog::PROVIDER_CIRCUIT_STATE, &endpoint),
        Some(2.0)
    );
    assert_eq!(
        value(
            &s,
            &format!("{}_count", catalog::PROVIDER_LATENCY),
            &endpoint
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &s,
            catalog::PROVIDER_REQUESTS,
            &[
                ("provider", "gemini"),
                ("model", "gemini-2.5-pro"),
                ("status_class", "transport")
            ]
        ),
        None,
        "a call refused by an open circuit is no provider request"
    );
    for kind in ["transient", "circuit_open"] {
        let mut labels = endpoint.to_vec();
        labels.push(("kind", kind));
        assert_eq!(value(&s, catalog::PROVIDER_ERRORS, &labels), Some(1.0));
    }
    assert_eq!(
        type_of(&text, catalog::MODEL_ROTATIONS).as_deref(),
        Some("counter")
    );
    assert_eq!(
        value(
            &s,
            catalog::MODEL_SELECTED,
            &[("pool", "fast"), gm[0], gm[1]]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            catalog::MODEL_ROTATIONS,
            &[
                ("pool", "fast"),
                ("from", "gemini/gemini-2.5-pro"),
                ("to", "gemini/gemini-2.5-flash"),
                ("reason", "rate_limited")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&s, catalog::MODEL_UNAVAILABLE, &[("pool", "fast")]),
        Some(1.0)
    );
    assert_eq!(value(&s, catalog::COORDINATION_ROUNDS, &[]), Some(1.0));
    assert_eq!(value(&s, catalog::VOTES, &[]), Some(1.0));
    assert_eq!(
        value(
            &s,
            &format!("{}_count", catalog::RUN_DURATION),
            &[("status", "completed")]
        ),
        Some(1.0)
    );

    // Every family recorded is described, and no label value is free text.
    for name in catalog::ALL {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP line:\n{text}"
        );
    }
    let allowed = [
        "scope",
        "reason",
        "dimension",
        "period",
        "provider",
        "endpoint",
        "model",
        "status_class",
        "kind",
        "direction",
        "agent",
        "outcome",
        "status",
        "pool",
        "from",
        "to",
        "le",
    ];
    for sample in &s {
        for key in sample.labels.keys() {
            assert!(allowed.contains(&key.as_str()), "unexpected label {key}");
        }
    }
}

#[test]
fn exposition_passes_promtool() {
    let recorder = telemetry::local_recorder().unwrap();
    metrics::with_local_recorder(&recorder, record_realistic_sequence);
    promtool_check(&recorder.handle().render());
}

#[test]
fn simulated_backend_is_not_priced_and_observed_headers_are_not_429s() {
    let recorder = telemetry::local_recorder().unwrap();
    metrics::with_local_recorder(&recorder, || {
        let ok = Ok(ChatResponse {
            usage: Some(Usage::new(10, 5)),
            observed: Some(RateLimitSignal::new(SignalKind::Observed)),
            ..ChatResponse::default()
        });
        provider::call_finished("simulated", "sim-1", Duration::from_millis(1), &ok);
        provider::rate_limit_response("simulated", "sim-1", &SignalKind::Observed);
    });
    let text = recorder.handle().render();
    assert!(!text.contains(catalog::COST), "{text}");
    assert!(!text.contains(catalog::RATE_LIMIT_RESPONSES), "{text}");
    assert!(text.contains(catalog::TOKENS), "{text}");
}

/// The cached bridge and the one-off function record the same exposition for the same events.
#[test]
fn cached_bridge_matches_the_one_off_recording() {
    use massgen::supervisor::QuotaEvent;
    let events = vec![
        QuotaEvent::Waiting {
            requester: "bob".into(),
            scope: "groq/llama-3.3-70b-versatile".into(),
            limit: Some("rpm".into()),
            eta_ms: Some(1200),
            queue_depth: 3,
        },
        QuotaEvent::Granted {
            requester: "bob".into(),
            scopes: vec![
                "groq/llama-3.3-70b-versatile".into(),
                "groq/llama-3.3-70b-versatile/key:1a2b3c4d".into(),
            ],
            waited_ms: 1200,
        },
        QuotaEvent::Settled {
            scopes: vec!["groq/llama-3.3-70b-versatile".into()],
            estimate: 900,
            actual: 700,
        },
        QuotaEvent::Denied {
            requester: "carol".into(),
            scope: "groq/llama-3.3-70b-versatile".into(),
            reason: "gave up after 120.0 s waiting for scope `groq/llama-3.3-70b-versatile`: it was cooling down".into(),
        },
        QuotaEvent::CooldownStarted {
            scope: "groq/llama-3.3-70b-versatile".into(),
            reason: "429 rate limited".into(),
            duration_ms: 7_500,
        },
        QuotaEvent::LimitLearned {
            scope: "groq/llama-3.3-70b-versatile".into(),
            limit: "6000 tokens per 1m".into(),
        },
    ];
    let one_off = telemetry::local_recorder().unwrap();
    metrics::with_local_recorder(&one_off, || {
        for e in &events {
            telemetry::record_quota_event(e);
        }
    });
    let cached = telemetry::local_recorder().unwrap();
    metrics::with_local_recorder(&cached, || {
        let mut bridge = telemetry::QuotaMetricsBridge::new();
        for e in &events {
            bridge.record(e);
        }
    });
    // Same series and values; the cached bridge may also show series registered at zero (a
    // scope's queue depth before anything waited), and families render in any order.
    let a = one_off.handle().render();
    let b = cached.handle().render();
    let as_map = |text: &str| -> BTreeMap<String, f64> {
        parse_exposition(text)
            .into_iter()
            .map(|s| (format!("{}{:?}", s.name, s.labels), s.value))
            .collect()
    };
    let (ma, mb) = (as_map(&a), as_map(&b));
    for key in ma.keys().chain(mb.keys()) {
        let (va, vb) = (ma.get(key).copied(), mb.get(key).copied());
        assert_eq!(va.unwrap_or(0.0), vb.unwrap_or(0.0), "{key}");
    }
    assert!(ma.len() >= 40);
    let s = parse_exposition(&a);
    let key = [("scope", "groq/llama-3.3-70b-versatile/key:1a2b3c4d")];
    assert_eq!(value(&s, catalog::PERMITS_GRANTED, &key), Some(1.0));
    let groq = [("scope", "groq/llama-3.3-70b-versatile")];
    assert_eq!(value(&s, catalog::QUEUE_DEPTH, &groq), Some(3.0));
    assert_eq!(value(&s, catalog::COOLDOWN_REMAINING, &groq), Some(7.5));
    assert_eq!(
        value(
            &s,
            catalog::PERMITS_DENIED,
            &[groq[0], ("reason", "deadline_exceeded")]
        ),
        Some(1.0)
    );
    promtool_check(&a);
}
