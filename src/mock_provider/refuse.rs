//! Refusals and errors in each provider's real shapes: rate-limit answers (status, headers,
//! body), "request too large", and error bodies for injected statuses.
//!
//! Every 429 says exactly when the request would fit (the time until enough of the window has
//! left it): OpenAI-compatible as "Please try again in 644ms." (a Go duration rounded up to the
//! millisecond) plus `retry-after` (whole seconds, rounded up) and `retry-after-ms`; Anthropic
//! as `retry-after`; Gemini as `RetryInfo.retryDelay` (whole seconds, rounded up) with a
//! `QuotaFailure` whose `quotaId` says `PerDay` for windows of a day or more and `PerMinute`
//! for shorter ones.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::convo::MockDialect;
use super::headers::{go_duration, limit_headers};
use super::limits::{MockDimension, MockLimit, WindowState};
use super::render::Rendered;

/// Whole seconds, rounded up.
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// Milliseconds, rounded up.
pub fn ceil_millis(d: Duration) -> u128 {
    d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 > 0)
}

fn window_words(limit: &MockLimit) -> String {
    let short = match limit.dimension {
        MockDimension::Requests => "R",
        MockDimension::Tokens => "T",
        MockDimension::InputTokens => "IT",
        MockDimension::OutputTokens => "OT",
    };
    match limit.period.as_secs() {
        60 if limit.period.subsec_nanos() == 0 => format!("min ({short}PM)"),
        86_400 if limit.period.subsec_nanos() == 0 => format!("day ({short}PD)"),
        _ => go_duration(limit.period),
    }
}

fn openai_type(limit: &MockLimit) -> &'static str {
    match limit.dimension {
        MockDimension::Requests => "requests",
        _ => "tokens",
    }
}

/// What a refusal is about.
#[derive(Debug, Clone)]
pub struct Over<'a> {
    /// The dialect.
    pub dialect: MockDialect,
    /// Groq's wording and headers.
    pub groq: bool,
    /// The model.
    pub model: &'a str,
    /// The limit that refused.
    pub limit: MockLimit,
    /// How much of it is in use.
    pub used: u64,
    /// What the request asked for.
    pub requested: u64,
    /// When it would fit (`None`: never).
    pub retry_after: Option<Duration>,
}

/// The refusal of an over-limit request in its dialect's real shape.
pub fn refusal(o: &Over<'_>, states: &[WindowState], now: DateTime<Utc>) -> Rendered {
    let amount = o.limit.amount.get();
    let (used, requested, model) = (o.used, o.requested, o.model);
    let Some(wait) = o.retry_after else {
        return too_large(o.dialect, model, &o.limit, requested);
    };
    let mut headers = limit_headers(o.dialect, o.groq, states, now);
    let secs = ceil_secs(wait);
    match o.dialect {
        MockDialect::OpenAi => {
            headers.push(("retry-after".into(), secs.to_string()));
            headers.push(("retry-after-ms".into(), ceil_millis(wait).to_string()));
            let kind = openai_type(&o.limit);
            let per = window_words(&o.limit);
            let message = if o.groq {
                format!(
                    "Rate limit reached for model `{model}` in organization `org_mock` service tier `on_demand` on {kind} per {per}: Limit {amount}, Used {used}, Requested {requested}. Please try again in {}.",
                    go_duration(wait)
                )
            } else {
                format!(
                    "Rate limit reached for {model} in organization org-mock on {kind} per {per}: Limit {amount}, Used {used}, Requested {requested}. Please try again in {}.",
                    go_duration(wait)
                )
            };
            let body = json!({"error": {"message": message, "type": kind, "param": null, "code": "rate_limit_exceeded"}});
            Rendered::json(429, headers, &body)
        }
        MockDialect::Gemini => {
            let per = if o.limit.period >= Duration::from_secs(86_400) {
                "Day"
            } else {
                "Minute"
            };
            let (metric, id) = match o.limit.dimension {
                MockDimension::Requests => (
                    "generate_content_free_tier_requests",
                    format!("GenerateRequestsPer{per}PerProjectPerModel-FreeTier"),
                ),
                _ => (
                    "generate_content_free_tier_input_token_count",
                    format!("GenerateContentInputTokensPerModelPer{per}-FreeTier"),
                ),
            };
            let body = json!({"error": {
            "code": 429,
            "message": format!("You exceeded your current quota, please check your plan and billing details. * Quota exceeded for metric: generativelanguage.googleapis.com/{metric}, limit: {amount}, model: {model}\nPlease retry in {:.3}s.", wait.as_secs_f64()),
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                    "quotaMetric": format!("generativelanguage.googleapis.com/{metric}"),
                    "quotaId": id,
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": amount.to_string()}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                 "retryDelay": format!("{secs}s")}
            ]}});
            Rendered::json(429, headers, &body)
        }
        MockDialect::Anthropic => {
            headers.push(("retry-after".into(), secs.to_string()));
            let what = match o.limit.dimension {
                MockDimension::Requests => "requests",
                MockDimension::Tokens => "tokens",
                MockDimension::InputTokens => "input tokens",
                MockDimension::OutputTokens => "output tokens",
            };
            let message = format!(
                "This request would exceed the rate limit for your organization of {amount} {what} per {}. For details, refer to the rate limits documentation.",
                window_words(&o.limit)
            );
            let body =
                json!({"type": "error", "error": {"type": "rate_limit_error", "message": message}});
            Rendered::json(429, headers, &body)
        }
    }
}

fn too_large(dialect: MockDialect, model: &str, limit: &MockLimit, requested: u64) -> Rendered {
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
