//! Fixture tests: real-shaped error answers of each provider -> error kind and signal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::*;
use crate::quota::{Dimension, Limit};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Loads `tests/fixtures/providers/errors/<name>.json` and classifies it.
fn classify(dialect: Dialect, name: &str) -> ProviderError {
    let path = format!(
        "{}/tests/fixtures/providers/errors/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect(&path);
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let status = u16::try_from(fixture["status"].as_u64().unwrap()).unwrap();
    let mut headers = HeaderMap::new();
    for (k, v) in fixture["headers"].as_object().unwrap() {
        headers.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
        );
    }
    let body = match &fixture["body"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    classify_error(dialect, status, &headers, &body, now())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn openai_tpm_message_teaches_limit_and_retry_after_header_wins() {
    let e = classify(Dialect::OpenAi, "openai_tpm_429");
    assert_eq!(e.kind, ProviderErrorKind::RateLimited);
    assert_eq!(e.status, Some(429));
    let s = e.signal.unwrap();
    assert_eq!(s.kind, SignalKind::RateLimited);
    assert_eq!(s.retry_after, Some(secs(1)));
    let tpm = Limit::new(Dimension::Tokens, 30_000, secs(60)).unwrap();
    assert!(s.learned_limits.contains(&tpm), "{:?}", s.learned_limits);
    let tokens = s
        .remaining
        .iter()
        .find(|r| r.dimension == Dimension::Tokens)
        .unwrap();
    assert_eq!(tokens.remaining, 63);
    assert_eq!(tokens.reset_after, Some(Duration::from_millis(644)));
}

#[test]
fn openai_message_retry_used_without_header() {
    let body = r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-1 on tokens per min (TPM): Limit 30000, Used 29937, Requested 385. Please try again in 644ms. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","code":"rate_limit_exceeded"}}"#;
    let e = classify_error(Dialect::OpenAi, 429, &HeaderMap::new(), body, now());
    let s = e.signal.unwrap();
    assert_eq!(s.retry_after, Some(Duration::from_millis(644)));
    assert_eq!(
        s.learned_limits,
        vec![Limit::new(Dimension::Tokens, 30_000, secs(60)).unwrap()]
    );
}

#[test]
fn groq_requests_per_day() {
    let e = classify(Dialect::Groq, "groq_rpd_429");
    let s = e.signal.unwrap();
    assert_eq!(s.kind, SignalKind::RateLimited);
    assert_eq!(s.retry_after, Some(secs(180)));
    let rpd = Limit::new(Dimension::Requests, 14_400, secs(86_400)).unwrap();
    assert_eq!(s.learned_limits.iter().filter(|l| **l == rpd).count(), 1);
    assert!(
        !s.learned_limits
            .iter()
            .any(|l| l.dimension == Dimension::Requests && l.period == secs(60))
    );
}

#[test]
fn request_too_large_is_never_retried() {
    let e = classify(Dialect::Groq, "groq_too_large_413");
    assert_eq!(e.kind, ProviderErrorKind::RequestTooLarge);
    assert!(!e.is_retryable());
    let s = e.signal.unwrap();
    assert_eq!(
        s.kind,
        SignalKind::RequestTooLarge {
            limit: Some(6000),
            requested: Some(14_368)
        }
    );
    assert!(!s.is_quota_event());
}

#[test]
fn spend_caps_are_terminal() {
    for name in ["openai_insufficient_quota_429", "spend_limit_429"] {
        let e = classify(Dialect::OpenAi, name);
        assert_eq!(e.kind, ProviderErrorKind::SpendCap, "{name}");
        assert!(!e.is_retryable());
        assert_eq!(e.signal.unwrap().kind, SignalKind::SpendCapReached);
    }
}

#[test]
fn gemini_per_minute_quota() {
    let e = classify(Dialect::Gemini, "gemini_rpm_429");
    assert_eq!(e.kind, ProviderErrorKind::RateLimited);
    let s = e.signal.unwrap();
    assert_eq!(s.kind, SignalKind::RateLimited);
    assert_eq!(s.retry_after, Some(secs(26)));
    assert_eq!(
        s.learned_limits,
        vec![Limit::new(Dimension::Requests, 10, secs(60)).unwrap()]
    );
}

#[test]
fn gemini_per_day_quota_closes_until_reset_despite_short_delay() {
    let e = classify(Dialect::Gemini, "gemini_rpd_429");
    let s = e.signal.unwrap();
    assert_eq!(s.kind, SignalKind::DailyQuotaExhausted);
    assert_eq!(s.retry_after, Some(secs(4)));
    assert_eq!(
        s.learned_limits,
        vec![Limit::new(Dimension::Requests, 50, secs(86_400)).unwrap()]
    );
}

#[test]
fn gemini_invalid_key_is_auth() {
    let e = classify(Dialect::Gemini, "gemini_bad_key_400");
    assert_eq!(e.kind, ProviderErrorKind::Auth);
    assert!(e.message.contains("API key not valid"));
}

#[test]
fn anthropic_rate_limit_with_headers() {
    let e = classify(Dialect::Anthropic, "anthropic_rate_limit_429");
    assert_eq!(e.kind, ProviderErrorKind::RateLimited);
    let s = e.signal.unwrap();
    assert_eq!(s.retry_after, Some(secs(12)));
    // No request left and all 50 back in 12 s: the window is no longer than 12 s, whatever the
    // documented minute says (a per-minute limit could not be whole again that soon).
    let requests = Limit::new(Dimension::Requests, 50, secs(12)).unwrap();
    assert!(
        s.learned_limits.contains(&requests),
        "{:?}",
        s.learned_limits
    );
    assert!(
        !s.learned_limits
            .contains(&Limit::rpm(50.try_into().unwrap()))
    );
    // The combined `tokens-*` headers name the most restrictive token limit of the moment,
    // not a limit on input plus output: nothing of the token dimensions is learned from them.
    assert!(
        s.learned_limits
            .iter()
            .all(|l| l.dimension == Dimension::Requests),
        "{:?}",
        s.learned_limits
    );
    assert_eq!(s.remaining[0].remaining, 0);
    assert_eq!(s.remaining[0].reset_after, Some(secs(12)));
}

#[test]
fn anthropic_overload_is_not_a_quota_event() {
    let e = classify(Dialect::Anthropic, "anthropic_overloaded_529");
    assert_eq!(e.kind, ProviderErrorKind::Overloaded);
    assert!(e.is_retryable());
    let s = e.signal.unwrap();
    assert_eq!(s.kind, SignalKind::Overloaded);
    assert!(!s.is_quota_event());
}

#[test]
fn anthropic_auth_keeps_observed_headers() {
    let e = classify(Dialect::Anthropic, "anthropic_auth_401");
    assert_eq!(e.kind, ProviderErrorKind::Auth);
    assert_eq!(e.message, "invalid x-api-key");
    assert_eq!(e.signal.unwrap().kind, SignalKind::Observed);
}

#[test]
fn bare_statuses() {
    let h = HeaderMap::new();
    let kind =
        |status: u16, body: &str| classify_error(Dialect::OpenAi, status, &h, body, now()).kind;
    assert_eq!(kind(500, ""), ProviderErrorKind::Transient);
    assert_eq!(kind(503, "<html>busy</html>"), ProviderErrorKind::Transient);
    assert_eq!(kind(404, "{}"), ProviderErrorKind::BadRequest);
    assert_eq!(kind(403, ""), ProviderErrorKind::Auth);
    let bare_429 = classify_error(Dialect::OpenAi, 429, &h, "", now());
    assert_eq!(bare_429.kind, ProviderErrorKind::RateLimited);
    let s = bare_429.signal.unwrap();
    assert_eq!(s.retry_after, None);
    assert!(s.learned_limits.is_empty());
    assert_eq!(bare_429.message, "HTTP 429 with no error message");
}

#[test]
fn observed_headers_on_success() {
    let mut h = HeaderMap::new();
    h.insert(
        "x-ratelimit-limit-tokens",
        HeaderValue::from_static("20000"),
    );
    h.insert(
        "x-ratelimit-remaining-tokens",
        HeaderValue::from_static("19000"),
    );
    h.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("3s"));
    let s = observe(Dialect::OpenAi, &h, now()).unwrap();
    assert_eq!(s.kind, SignalKind::Observed);
    assert_eq!(s.remaining[0].remaining, 19_000);
    assert!(observe(Dialect::Gemini, &h, now()).is_none());
    assert!(observe(Dialect::OpenAi, &HeaderMap::new(), now()).is_none());
}
