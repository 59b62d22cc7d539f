//! [`RateLimitSignal`]: what a provider said about its limits, in one provider-neutral shape.
//!
//! The `provider` adapters parse headers and error bodies (Retry-After, `x-ratelimit-*`,
//! `anthropic-ratelimit-*`, Gemini `RetryInfo`/`QuotaFailure`, "Limit 30000 ... try again in
//! 644ms") into this type; the supervisor applies it to a scope.

use std::time::Duration;

use super::{Dimension, Limit};

/// What kind of event the provider reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalKind {
    /// A 429 for a short-window limit: close the scope until `retry_after` (or a default backoff).
    RateLimited,
    /// A per-day quota is used up: close the scope until the next daily reset, even when the
    /// provider also sent a short retry delay.
    DailyQuotaExhausted,
    /// The provider is overloaded (Anthropic 529, 503): retry later, not a quota event.
    Overloaded,
    /// A spend cap or billing limit was reached: terminal until a human acts.
    SpendCapReached,
    /// The request alone is larger than a limit (413 / "Request too large"): never retry as is.
    RequestTooLarge {
        /// The limit the provider named, if any.
        limit: Option<u64>,
        /// The size the provider says was requested, if any.
        requested: Option<u64>,
    },
    /// No error: headers on a successful answer that describe remaining capacity.
    Observed,
}

/// Remaining capacity the provider reported for one dimension (`x-ratelimit-remaining-tokens`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remaining {
    /// Requests or tokens.
    pub dimension: Dimension,
    /// The provider's limit for this dimension, when it said (`x-ratelimit-limit-*`).
    pub limit: Option<u64>,
    /// How much is left in the provider's current window.
    pub remaining: u64,
    /// When the provider's window frees up (`x-ratelimit-reset-*`).
    pub reset_after: Option<Duration>,
    /// The window the limit is counted over, when known (minute for most; day for Groq requests).
    pub period: Option<Duration>,
}

/// One provider rate-limit event, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSignal {
    /// What happened.
    pub kind: SignalKind,
    /// How long the provider asked us to wait (Retry-After, retry-after-ms, RetryInfo.retryDelay,
    /// "try again in 644ms").
    pub retry_after: Option<Duration>,
    /// Limits the provider revealed (headers or "Limit 30000" messages). The supervisor adopts one
    /// only when it is lower than the configured limit of the same dimension and period.
    pub learned_limits: Vec<Limit>,
    /// Remaining capacity per dimension, from headers.
    pub remaining: Vec<Remaining>,
    /// The provider's own message, trimmed, for logs (never contains a key).
    pub message: Option<String>,
}

impl RateLimitSignal {
    /// A signal of `kind` with nothing else known.
    pub fn new(kind: SignalKind) -> Self {
        Self {
            kind,
            retry_after: None,
            learned_limits: Vec::new(),
            remaining: Vec::new(),
            message: None,
        }
    }

    /// The same signal with a retry delay.
    pub fn with_retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    /// Whether the provider counted this against quota (overloads and size errors do not).
    pub fn is_quota_event(&self) -> bool {
        matches!(
            self.kind,
            SignalKind::RateLimited | SignalKind::DailyQuotaExhausted | SignalKind::SpendCapReached
        )
    }
}
