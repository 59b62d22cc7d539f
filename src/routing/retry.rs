//! [`RetryPolicy`]: bounded, jittered exponential backoff that honours the provider's
//! Retry-After.

use std::time::Duration;

use crate::provider::ProviderError;

/// How failed calls are retried: `max_attempts` in all, waiting `initial_backoff`, then
/// `multiplier` times longer each time up to `max_backoff`, each wait varied by `±jitter`.
/// A Retry-After from the provider replaces the computed wait when it is longer.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (the first call included). At least 1.
    pub max_attempts: u32,
    /// The first wait.
    pub initial_backoff: Duration,
    /// Growth factor of successive waits.
    pub multiplier: u32,
    /// The longest wait.
    pub max_backoff: Duration,
    /// Relative jitter in 0..1 (0.2 = ±20 %).
    pub jitter: f64,
    /// Longest time one attempt may take, connecting, waiting for the first byte and reading
    /// the whole answer or stream included; an attempt past it is cancelled and fails as a
    /// transient error. A [`crate::Runtime`] sets it from `timeout_settings.call_timeout_seconds`.
    pub call_timeout: Duration,
}

impl Default for RetryPolicy {
    /// Four attempts waiting 2 s, 6 s, 18 s (±20 %), at most 60 s each; 300 s per attempt.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_secs(2),
            multiplier: 3,
            max_backoff: Duration::from_secs(60),
            jitter: 0.2,
            call_timeout: crate::config::DEFAULT_CALL_TIMEOUT,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` after `attempt` (1-based) failed with `error`.
    pub fn delay(&self, attempt: u32, error: &ProviderError, rng: &mut fastrand::Rng) -> Duration {
        // Dropped by a restart of its provider actor (which is already back): go again now.
        if error.kind == crate::provider::ProviderErrorKind::Dropped {
            return Duration::ZERO;
        }
        let growth = self
            .multiplier
            .checked_pow(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let base = self
            .initial_backoff
            .saturating_mul(growth)
            .min(self.max_backoff);
        let factor = 1.0 + self.jitter * (rng.f64() * 2.0 - 1.0);
        let jittered =
            Duration::try_from_secs_f64(base.as_secs_f64() * factor.max(0.0)).unwrap_or(base);
        match error.retry_after() {
            Some(after) if after > jittered => after,
            _ => jittered,
        }
    }
}
