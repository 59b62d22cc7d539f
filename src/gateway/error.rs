//! Errors in OpenAI's shape: `{"error": {"message", "type", "code", "param"}}` with the HTTP
//! status the OpenAI API would use, and `Retry-After` on 429s.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::provider::ProviderErrorKind;
use crate::routing::CallError;
use crate::supervisor::AcquireError;
use crate::usage::budget::{BudgetRefusal, BudgetScope};

/// How long from `now` until the next 00:00 UTC (when day budgets start again).
fn until_utc_midnight(now: chrono::DateTime<chrono::Utc>) -> Duration {
    let ms = now.timestamp_millis().rem_euclid(86_400_000);
    Duration::from_millis(u64::try_from(86_400_000 - ms).unwrap_or(0))
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// OpenAI's `type` (`invalid_request_error`, `rate_limit_exceeded`...).
    pub kind: &'static str,
    /// OpenAI's `code` (`model_not_found`...), when there is one.
    pub code: Option<&'static str>,
    /// What went wrong, in words.
    pub message: String,
    /// When to ask again (`Retry-After`, whole seconds rounded up).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with `status`, `kind` and `message`.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            code: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// With OpenAI's `code`.
    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// A 400 for a request the gateway cannot read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// A 404 for a model the gateway does not serve.
    pub fn unknown_model(model: &str, served: &[&str]) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "The model `{}` does not exist here. Models served: {}",
                crate::config::shown(model),
                served.join(", ")
            ),
        )
        .code("model_not_found")
    }

    /// The answer to a call that gave up.
    pub fn from_call(error: &CallError) -> Self {
        match error {
            CallError::Quota { error, .. } => Self::from_quota(error),
            CallError::Budget { refusal, .. } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "insufficient_quota",
                    refusal.to_string(),
                )
                .code("insufficient_quota");
                // A day budget is new again at 00:00 UTC; other refusals do not pass by waiting.
                if let BudgetRefusal::Exceeded(x) = refusal
                    && x.scope == BudgetScope::Day
                {
                    e.retry_after = Some(until_utc_midnight(chrono::Utc::now()));
                }
                e
            }
            CallError::Provider { error, .. } => {
                let message = format!("upstream provider: {}", error.message);
                match error.kind {
                    ProviderErrorKind::RateLimited => {
                        let mut e = Self::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "rate_limit_exceeded",
                            message,
                        )
                        .code("rate_limit_exceeded");
                        e.retry_after = Some(error.retry_after().unwrap_or(Duration::from_secs(1)));
                        e
                    }
                    ProviderErrorKind::BadRequest => Self::bad_request(message),
                    ProviderErrorKind::RequestTooLarge => Self::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "invalid_request_error",
                        message,
                    ),
                    ProviderErrorKind::Overloaded | ProviderErrorKind::CircuitOpen => {
                        Self::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", message)
                    }
                    ProviderErrorKind::SpendCap => {
                        Self::new(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", message)
                            .code("insufficient_quota")
                    }
                    _ => Self::new(StatusCode::BAD_GATEWAY, "api_error", message),
                }
            }
        }
    }

    /// The answer to a quota refusal: 429 with the supervisor's wait as `Retry-After` when
    /// waiting longer could help.
    pub fn from_quota(error: &AcquireError) -> Self {
        match error {
            AcquireError::DeadlineExceeded { frees_in, .. } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_exceeded",
                    format!("quota: {error}"),
                )
                .code("rate_limit_exceeded");
                e.retry_after = Some(frees_in.unwrap_or(Duration::from_secs(1)));
                e
            }
            AcquireError::ScopeClosed { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                format!("quota: {error}"),
            )
            .code("insufficient_quota"),
            AcquireError::NeverFits { .. } => {
                Self::bad_request(format!("quota: {error}")).code("context_length_exceeded")
            }
            AcquireError::Stopped => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                format!("quota: {error}"),
            ),
            AcquireError::UnknownScope(_) | AcquireError::NoCandidates => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                format!("quota: {error}"),
            ),
        }
    }

    /// The body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "code": self.code,
            "param": null,
        }})
    }
}

/// Whole seconds, rounded up, at least 1: what `Retry-After` says.
pub fn retry_after_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(after) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs(after).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(100)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(42)), 42);
    }

    #[test]
    fn a_day_budget_refusal_says_to_come_back_at_midnight_utc() {
        use chrono::TimeZone;
        let at = |h, m, s| chrono::Utc.with_ymd_and_hms(2026, 12, 2, h, m, s).unwrap();
        assert_eq!(until_utc_midnight(at(23, 59, 0)), Duration::from_secs(60));
        assert_eq!(until_utc_midnight(at(0, 0, 0)), Duration::from_secs(86_400));
        assert_eq!(
            until_utc_midnight(at(12, 0, 0)),
            Duration::from_secs(43_200)
        );
        let refusal = |scope| CallError::Budget {
            refusal: BudgetRefusal::Exceeded(crate::usage::budget::BudgetExceeded {
                scope,
                limit_usd: 1.0,
                spent_usd: 1.0,
                in_flight_usd: 0.0,
                needed_usd: 0.1,
            }),
            calls: 0,
            quota_wait: Duration::ZERO,
        };
        let day = ApiError::from_call(&refusal(BudgetScope::Day));
        assert_eq!(day.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(day.code, Some("insufficient_quota"));
        assert!(
            day.retry_after
                .is_some_and(|d| d <= Duration::from_secs(86_400))
        );
        assert_eq!(
            ApiError::from_call(&refusal(BudgetScope::Run)).retry_after,
            None
        );
    }
}
