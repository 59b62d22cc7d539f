//! Refusals and errors in each provider's real shapes: rate-limit answers (status, headers,
//! body), "request too large", and error bodies for injected statuses.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use super::render::Rendered;
use super::script::MockDialect;
use crate::quota::{Dimension, Limit};

/// A duration as a Go duration string (`644ms`, `1.5s`), the way OpenAI writes resets.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{}ms", ms.max(1))
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Rate-limit headers of a successful answer or a refusal, for limits counted per minute (the
/// only window the real headers describe; others are left out rather than misdescribed).
pub fn limit_headers(
    dialect: MockDialect,
    remaining: &[(Limit, u64, Duration)],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (limit, left, reset) in remaining
        .iter()
        .filter(|(l, _, _)| l.period.as_secs() == 60)
    {
        let dim = limit.dimension.as_str();
        match dialect {
            MockDialect::OpenAi => {
                out.push((format!("x-ratelimit-limit-{dim}"), limit.amount.to_string()));
                out.push((format!("x-ratelimit-remaining-{dim}"), left.to_string()));
                out.push((format!("x-ratelimit-reset-{dim}"), go_duration(*reset)));
            }
            MockDialect::Anthropic => {
                let at = Utc::now() + chrono::Duration::from_std(*reset).unwrap_or_default();
                let base = format!("anthropic-ratelimit-{dim}");
                out.push((format!("{base}-limit"), limit.amount.to_string()));
                out.push((format!("{base}-remaining"), left.to_string()));
                out.push((
                    format!("{base}-reset"),
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ));
            }
            MockDialect::Gemini => {}
        }
    }
    out
}

fn window_words(limit: &Limit) -> String {
    match limit.period.as_secs() {
        60 => "min".to_owned(),
        86_400 => "day".to_owned(),
        _ => go_duration(limit.period),
    }
}

/// The refusal of an over-limit request in `dialect`'s real shape. `retry_after: None` means the
/// request can never fit (too large).
pub fn refusal(
    dialect: MockDialect,
    model: &str,
    limit: &Limit,
    used: u64,
    requested: u64,
    retry_after: Option<Duration>,
    remaining: &[(Limit, u64, Duration)],
) -> Rendered {
    let dim = limit.dimension.as_str();
    let amount = limit.amount.get();
    let Some(wait) = retry_after else {
        return too_large(dialect, model, limit, requested);
    };
    let mut headers = limit_headers(dialect, remaining);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    match dialect {
        MockDialect::OpenAi => {
            headers.push(("retry-after".into(), secs.to_string()));
            let ms = wait.as_millis() + u128::from(wait.subsec_nanos() % 1_000_000 > 0);
            headers.push(("retry-after-ms".into(), ms.to_string()));
            let message = format!(
                "Rate limit reached for {model} in organization org-mock on {dim} per {}: Limit {amount}, Used {used}, Requested {requested}. Please try again in {}.",
                window_words(limit),
                go_duration(wait)
            );
            let body = json!({"error": {"message": message, "type": dim, "param": null, "code": "rate_limit_exceeded"}});
            Rendered::json(429, headers, &body)
        }
        MockDialect::Gemini => {
            let per = match limit.period.as_secs() {
                60 => "Minute".to_owned(),
                86_400 => "Day".to_owned(),
                _ => go_duration(limit.period),
            };
            let what = match limit.dimension {
                Dimension::Requests => "GenerateRequests",
                Dimension::Tokens | Dimension::InputTokens | Dimension::OutputTokens => {
                    "GenerateContentInputTokens"
                }
            };
            let body = json!({"error": {
            "code": 429,
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                    "quotaMetric": format!("generativelanguage.googleapis.com/generate_content_{dim}"),
                    "quotaId": format!("{what}Per{per}PerProjectPerModel-Mock"),
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": amount.to_string()}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                 "retryDelay": format!("{}s", wait.as_secs_f64())}
            ]}});
            Rendered::json(429, headers, &body)
        }
        MockDialect::Anthropic => {
            headers.push(("retry-after".into(), secs.to_string()));
            let message = format!(
                "This request would exceed the rate limit for your organization of {amount} {dim} per {}. For details, refer to the rate limits documentation.",
                window_words(limit)
            );
            let body =
                json!({"type": "error", "error": {"type": "rate_limit_error", "message": message}});
            Rendered::json(429, headers, &body)
        }
    }
}

fn too_large(dialect: MockDialect, model: &str, limit: &Limit, requested: u64) -> Rendered {
    let amount = limit.amount.get();
    let dim = limit.dimension.as_str();
    match dialect {
        MockDialect::OpenAi => {
            let message = format!(
                "Request too large for model `{model}` in organization org-mock on {dim} per {}: Limit {amount}, Requested {requested}, please reduce your message size and try again.",
                window_words(limit)
            );
            Rendered::json(
                413,
                Vec::new(),
                &json!({"error": {"message": message, "type": dim, "code": "rate_limit_exceeded"}}),
            )
        }
        MockDialect::Gemini => Rendered::json(
            400,
            Vec::new(),
            &json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                "message": format!("Request too large: Limit {amount}, Requested {requested}.")}}),
        ),
        MockDialect::Anthropic => Rendered::json(
            413,
            Vec::new(),
            &json!({"type": "error", "error": {"type": "request_too_large",
                "message": format!("Request too large: Limit {amount}, Requested {requested}.")}}),
        ),
    }
}

/// An injected error status in `dialect`'s shape (a bare 429 carries no retry information).
pub fn error_status(dialect: MockDialect, status: u16) -> Rendered {
    let (message, openai_type, gemini_status, anthropic_type) = match status {
        401 => (
            "Incorrect API key provided.",
            "invalid_request_error",
            "UNAUTHENTICATED",
            "authentication_error",
        ),
        403 => (
            "The key may not use this model.",
            "invalid_request_error",
            "PERMISSION_DENIED",
            "permission_error",
        ),
        429 => (
            "Too many requests.",
            "requests",
            "RESOURCE_EXHAUSTED",
            "rate_limit_error",
        ),
        503 => (
            "The model is overloaded. Please try again later.",
            "server_error",
            "UNAVAILABLE",
            "api_error",
        ),
        529 => (
            "Overloaded",
            "server_error",
            "UNAVAILABLE",
            "overloaded_error",
        ),
        s if s >= 500 => (
            "The server had an error while processing your request.",
            "server_error",
            "INTERNAL",
            "api_error",
        ),
        _ => (
            "The request was refused.",
            "invalid_request_error",
            "INVALID_ARGUMENT",
            "invalid_request_error",
        ),
    };
    let body = match dialect {
        MockDialect::OpenAi => {
            let code = if status == 401 {
                json!("invalid_api_key")
            } else {
                Value::Null
            };
            json!({"error": {"message": message, "type": openai_type, "param": null, "code": code}})
        }
        MockDialect::Gemini => {
            json!({"error": {"code": status, "message": message, "status": gemini_status}})
        }
        MockDialect::Anthropic => {
            json!({"type": "error", "error": {"type": anthropic_type, "message": message}})
        }
    };
    Rendered::json(status, Vec::new(), &body)
}
