//! [`RateLimitSignal`]: what a provider said about its limits, in one provider-neutral shape.
//!
//! The `provider` adapters parse headers and error bodies (Retry-After, `x-ratelimit-*`,
//! `anthropic-ratelimit-*`, Gemini `RetryInfo`/`QuotaFailure`, "Limit 30000 ... try again in
//! 644ms") into this type; the supervisor applies it to a scope.

use std::time::Duration;

use super::time::{MAX_PROVIDER_WAIT, ceil_secs};
use super::{Dimension, Limit};

/// The largest amount a provider can teach: anything above (or zero) is taken for garbage and
/// ignored with a warning. No real tier comes near a trillion requests or tokens per window.
pub const MAX_LEARNED_AMOUNT: u64 = 1_000_000_000_000;

/// How far a reported reset may fall short of what a limit of the documented period predicts
/// and still be taken as agreeing with it: the reset is measured a little after the provider
/// counted the request, and rounded.
pub const RESET_TOLERANCE: Duration = Duration::from_secs(1);

/// Whether a limit the provider revealed is believable: a non-zero amount up to
/// [`MAX_LEARNED_AMOUNT`] over a period of at most [`MAX_PROVIDER_WAIT`].
pub fn plausible_limit(limit: &Limit) -> bool {
    limit.amount.get() <= MAX_LEARNED_AMOUNT && limit.period <= MAX_PROVIDER_WAIT
}

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

impl Remaining {
    /// The limit this report teaches, with a period that agrees with the reset it carries, or
    /// `None` when the report is inconclusive or implausible:
    ///
    /// - no limit, a zero or absurd limit ([`MAX_LEARNED_AMOUNT`]), or more remaining than the
    ///   limit: nothing is learned;
    /// - no reset time: the documented period (`period`);
    /// - used up (`remaining` 0) with a reset `T`: everything is back after `T`, so the
    ///   provider's window is no longer than `T`: the period is `T` rounded up to a whole second
    ///   (4 left 0, reset 9.5 s -> 4 per 10 s), or the documented period when `T` comes within
    ///   [`RESET_TOLERANCE`] of it (a reset of 59.3 s on a per-minute limit is the minute);
    /// - capacity left with a reset `T`: a limit of the documented period `P` that refills as it
    ///   goes gives `used` back no sooner than `used / limit * P`. A reset at least that long
    ///   (within [`RESET_TOLERANCE`]) agrees: `P` is learned. A shorter one says the window is
    ///   shorter than `P` but not how much: nothing is learned until an exhausted report tells.
    pub fn learned_limit(&self) -> Option<Limit> {
        let amount = self.limit?;
        let documented = self.period?;
        if amount == 0 || amount > MAX_LEARNED_AMOUNT || self.remaining > amount {
            return None;
        }
        let period = match self.reset_after {
            None => documented,
            Some(reset) if self.remaining == 0 => {
                if reset.is_zero() {
                    return None;
                }
                if reset.saturating_add(RESET_TOLERANCE) >= documented {
                    documented
                } else {
                    ceil_secs(reset)
                }
            }
            Some(reset) => {
                let used = amount - self.remaining;
                let nanos =
                    documented.as_nanos().saturating_mul(u128::from(used)) / u128::from(amount);
                let refill = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
                if reset.saturating_add(RESET_TOLERANCE) < refill {
                    return None;
                }
                documented
            }
        };
        Limit::new(self.dimension, amount, period)
            .ok()
            .filter(plausible_limit)
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn report(limit: u64, remaining: u64, reset_ms: Option<u64>, period: Duration) -> Remaining {
        Remaining {
            dimension: Dimension::Requests,
            limit: Some(limit),
            remaining,
            reset_after: reset_ms.map(Duration::from_millis),
            period: Some(period),
        }
    }

    fn learned(r: &Remaining) -> Option<(u64, u64)> {
        r.learned_limit()
            .map(|l| (l.amount.get(), l.period.as_secs()))
    }

    #[test]
    fn an_exhausted_report_teaches_the_window_its_reset_shows() {
        assert_eq!(learned(&report(4, 0, Some(9_500), MINUTE)), Some((4, 10)));
        assert_eq!(learned(&report(4, 0, Some(10_000), MINUTE)), Some((4, 10)));
        // Within a second of the documented period: the documented period.
        assert_eq!(learned(&report(4, 0, Some(59_300), MINUTE)), Some((4, 60)));
        assert_eq!(learned(&report(4, 0, Some(600_000), MINUTE)), Some((4, 60)));
        // A zero reset with nothing left says nothing.
        assert_eq!(learned(&report(4, 0, Some(0), MINUTE)), None);
    }

    #[test]
    fn a_report_with_capacity_left_keeps_the_documented_period_when_it_agrees() {
        // Groq: 30 of 14 400 per day used, back in 2m59.56s (a day's refill of 30 is 180 s).
        let day = Duration::from_secs(86_400);
        assert_eq!(
            learned(&report(14_400, 14_370, Some(179_560), day)),
            Some((14_400, 86_400))
        );
        // OpenAI: 1 of 500 per minute used, back in 120 ms.
        assert_eq!(
            learned(&report(500, 499, Some(120), MINUTE)),
            Some((500, 60))
        );
        // 1 of 4 per minute used would take 15 s to come back, not 9.9 s: inconclusive.
        assert_eq!(learned(&report(4, 3, Some(9_900), MINUTE)), None);
        // No reset: the documented period.
        assert_eq!(learned(&report(4, 3, None, MINUTE)), Some((4, 60)));
    }

    #[test]
    fn garbage_reports_teach_nothing() {
        assert_eq!(learned(&report(0, 0, None, MINUTE)), None);
        assert_eq!(
            learned(&report(MAX_LEARNED_AMOUNT + 1, 0, None, MINUTE)),
            None
        );
        assert_eq!(learned(&report(4, 5, None, MINUTE)), None);
        let mut no_limit = report(4, 0, None, MINUTE);
        no_limit.limit = None;
        assert_eq!(learned(&no_limit), None);
        assert_eq!(learned(&report(4, 0, None, Duration::MAX)), None);
    }
}
