//! tracing formats, filters and the quota-event log lines.

use massgen::telemetry::{self, LogFormat};

use super::Buffer;

#[test]
fn json_logs_carry_span_fields_and_the_filter_applies() {
    let buf = Buffer::default();
    let filter = telemetry::build_filter(0, None).unwrap();
    let sub = telemetry::subscriber(LogFormat::Json, filter, buf.clone(), true);
    tracing::subscriber::with_default(sub, || {
        let span = telemetry::spans::provider_call("gemini", "gemini-2.5-pro", Some("1a2b3c4d"), 2);
        let _g = span.enter();
        tracing::info!(target: "massgen::routing", retry_after_ms = 26_000u64, "rate limited");
        tracing::debug!(target: "massgen::routing", "hidden at verbosity 0");
        tracing::info!(target: "hyper", "hidden: libraries log warnings only");
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["retry_after_ms"], 26_000);
    assert_eq!(line["span"]["name"], telemetry::spans::PROVIDER_CALL);
    assert_eq!(line["span"]["key_id"], "1a2b3c4d");
    assert_eq!(line["span"]["attempt"], 2);
}

#[test]
fn pretty_logs_are_plain_lines() {
    let buf = Buffer::default();
    let filter = telemetry::build_filter(1, None).unwrap();
    let sub = telemetry::subscriber(LogFormat::Pretty, filter, buf.clone(), false);
    tracing::subscriber::with_default(sub, || {
        let span = telemetry::spans::agent_turn("agent_a", 3);
        let _g = span.enter();
        tracing::debug!(target: "massgen::agent", "turn started");
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("agent_turn"), "{out}");
    assert!(out.contains("agent=\"agent_a\" turn=3"), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "no colour codes when not asked: {out}"
    );
    assert!(out.contains("turn started"), "{out}");
    assert!(!out.trim_start().starts_with('{'), "{out}");
}

/// Rate-limit events are logged at info with the numbers a user needs; grants stay at debug.
#[test]
fn quota_events_are_logged_with_their_numbers() {
    use massgen::supervisor::QuotaEvent;
    let buf = Buffer::default();
    let filter = telemetry::build_filter(0, None).unwrap();
    let sub = telemetry::subscriber(LogFormat::Json, filter, buf.clone(), false);
    tracing::subscriber::with_default(sub, || {
        telemetry::log_quota_event(&QuotaEvent::Waiting {
            requester: "bob".into(),
            scope: "gemini/gemini-2.5-pro".into(),
            limit: Some("rpm".into()),
            eta_ms: Some(59_999),
            queue_depth: 2,
        });
        telemetry::log_quota_event(&QuotaEvent::Granted {
            requester: "bob".into(),
            scopes: vec!["gemini/gemini-2.5-pro".into()],
            waited_ms: 59_999,
        });
        telemetry::log_quota_event(&QuotaEvent::CooldownStarted {
            scope: "gemini/gemini-2.5-pro".into(),
            reason: "429 rate limited".into(),
            duration_ms: 26_000,
        });
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(lines[0]["scope"], "gemini/gemini-2.5-pro");
    assert_eq!(lines[0]["limit"], "rpm");
    assert_eq!(lines[0]["eta_ms"], 59_999);
    assert_eq!(lines[0]["queue_depth"], 2);
    assert_eq!(lines[1]["kind"], "rate_limited");
    assert_eq!(lines[1]["duration_ms"], 26_000);
    assert!(
        lines[1]["message"]
            .as_str()
            .unwrap()
            .contains("429 rate limited"),
        "{out}"
    );
}
