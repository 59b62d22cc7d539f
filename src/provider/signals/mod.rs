//! Rate-limit signal parsing: every way a provider says "slow down", turned into one
//! [`RateLimitSignal`] and a [`ProviderError`] of the right kind.
//!
//! - [`classify_error`] maps a non-2xx answer (status, headers, body) to a [`ProviderError`] with
//!   the parsed signal attached.
//! - [`observe`] reads the rate-limit headers of a successful answer into an `Observed` signal.

mod body;
mod headers;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

use super::{ProviderError, ProviderErrorKind};
use crate::quota::{RateLimitSignal, SignalKind};

pub use body::{BodyFacts, parse as parse_error_body};
pub use headers::{HeaderLimits, limits as header_limits, parse_go_duration, retry_after};

/// The API family an answer came from: decides which headers and body shapes to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI and OpenAI-compatible servers: `x-ratelimit-*` with requests per minute.
    OpenAi,
    /// Groq: `x-ratelimit-*` where the requests headers count per day.
    Groq,
    /// Gemini native REST: no rate-limit headers; `RESOURCE_EXHAUSTED` bodies.
    Gemini,
    /// Anthropic Messages: `anthropic-ratelimit-*` headers, typed error bodies, 529 overloads.
    Anthropic,
}

/// The `Observed` signal carried by the headers of a successful answer, if they said anything.
pub fn observe(
    dialect: Dialect,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Option<RateLimitSignal> {
    let found = header_limits(dialect, headers, now);
    if found.is_empty() {
        return None;
    }
    let mut signal = RateLimitSignal::new(SignalKind::Observed);
    signal.learned_limits = found.learned;
    signal.remaining = found.remaining;
    Some(signal)
}

/// Turns a failed HTTP answer into a [`ProviderError`] with its [`RateLimitSignal`]:
///
/// - a spend cap or billing quota (`insufficient_quota`, `enforced_spend_limit_reached`) ->
///   `SpendCap` + `SpendCapReached` (terminal), whatever the status;
/// - "Request too large" or 413 -> `RequestTooLarge` (never retried as is);
/// - 529 or `overloaded_error` -> `Overloaded` (not a quota event);
/// - 429 / `RESOURCE_EXHAUSTED` -> `RateLimited`; `DailyQuotaExhausted` when a Gemini per-day
///   quota was violated, even with a short `retryDelay`;
/// - 401/403 (and Gemini's 400 `API_KEY_INVALID`) -> `Auth`;
/// - 408, 5xx -> `Transient`; other 4xx -> `BadRequest`.
///
/// Retry waits come from `retry-after-ms`, `Retry-After`, `RetryInfo` or "try again in"; limits
/// from headers and messages.
pub fn classify_error(
    dialect: Dialect,
    status: u16,
    headers: &HeaderMap,
    body: &str,
    now: DateTime<Utc>,
) -> ProviderError {
    let facts = parse_error_body(body);
    let found = header_limits(dialect, headers, now);
    let message = facts
        .message
        .clone()
        .unwrap_or_else(|| format!("HTTP {status} with no error message"));
    let retry = retry_after(headers, now).or(facts.retry_after);

    let build = |kind: SignalKind| {
        let mut s = RateLimitSignal::new(kind);
        s.retry_after = retry;
        s.learned_limits = found.learned.clone();
        for l in &facts.learned {
            if !s.learned_limits.contains(l) {
                s.learned_limits.push(*l);
            }
        }
        s.remaining = found.remaining.clone();
        s.message = facts.message.clone();
        s
    };
    let err =
        |kind: ProviderErrorKind| ProviderError::new(kind, message.clone()).with_status(status);

    if facts.spend_cap {
        return err(ProviderErrorKind::SpendCap).with_signal(build(SignalKind::SpendCapReached));
    }
    if let Some((limit, requested)) = facts.too_large.or((status == 413).then_some((None, None))) {
        let mut s = build(SignalKind::RequestTooLarge { limit, requested });
        s.retry_after = None;
        return err(ProviderErrorKind::RequestTooLarge).with_signal(s);
    }
    if status == 529 || facts.overloaded {
        return err(ProviderErrorKind::Overloaded).with_signal(build(SignalKind::Overloaded));
    }
    let exhausted = facts.codes.iter().any(|c| c == "RESOURCE_EXHAUSTED");
    if status == 429 || exhausted {
        let kind = if facts.daily {
            SignalKind::DailyQuotaExhausted
        } else {
            SignalKind::RateLimited
        };
        return err(ProviderErrorKind::RateLimited).with_signal(build(kind));
    }
    let with_observed = |e: ProviderError| {
        if found.is_empty() {
            e
        } else {
            e.with_signal(build(SignalKind::Observed))
        }
    };
    match status {
        401 | 403 => with_observed(err(ProviderErrorKind::Auth)),
        400 if facts.bad_key => with_observed(err(ProviderErrorKind::Auth)),
        408 | 500..=599 => with_observed(err(ProviderErrorKind::Transient)),
        _ => with_observed(err(ProviderErrorKind::BadRequest)),
    }
}

#[cfg(test)]
mod tests;
