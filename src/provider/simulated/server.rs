//! [`SimServer`]: the account-wide request limits of the simulated provider. A real provider
//! counts requests per model over every caller of one account; the simulated one does the same
//! over every simulated model of a runtime (`simulated.model_rpm`), refusing a request over the
//! limit with a 429 that carries what real APIs send: Retry-After (when the oldest request of
//! the trailing minute leaves it) and the limit with nothing remaining.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU64;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::quota::{Dimension, Limit, RateLimitSignal, Remaining, SignalKind};

/// The window a `model_rpm` limit is counted over.
const MINUTE: Duration = Duration::from_secs(60);

/// Requests admitted per model over the trailing minute.
#[derive(Debug, Default)]
pub struct SimServer {
    admitted: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SimServer {
    /// A server with nothing admitted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits one request to `model`, allowed `rpm` per trailing minute: `Ok` with what is left,
    /// or the signal of the 429 a provider over its limit sends.
    pub fn admit(&self, model: &str, rpm: u32) -> Result<u64, RateLimitSignal> {
        let now = Instant::now();
        let mut all = self
            .admitted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let times = all.entry(model.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
        {
            times.pop_front();
        }
        let limit = u64::from(rpm.max(1));
        if (times.len() as u64) < limit {
            times.push_back(now);
            return Ok(limit - times.len() as u64);
        }
        let oldest = times.front().copied().unwrap_or(now);
        let wait = MINUTE.saturating_sub(now.saturating_duration_since(oldest));
        let mut signal = RateLimitSignal::new(SignalKind::RateLimited).with_retry_after(wait);
        if let Some(amount) = NonZeroU64::new(limit) {
            signal.learned_limits.push(Limit::rpm(amount));
        }
        signal.remaining.push(Remaining {
            dimension: Dimension::Requests,
            limit: Some(limit),
            remaining: 0,
            reset_after: Some(wait),
            period: Some(MINUTE),
        });
        signal.message = Some(format!(
            "simulated 429: {model} allows {limit} requests per minute; try again in {} ms",
            wait.as_millis()
        ));
        Err(signal)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refuses_past_the_limit_until_the_oldest_leaves_the_minute() {
        let server = SimServer::new();
        assert_eq!(server.admit("m", 2).unwrap(), 1);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(server.admit("m", 2).unwrap(), 0);
        let refused = server.admit("m", 2).unwrap_err();
        assert_eq!(refused.retry_after, Some(Duration::from_secs(50)));
        assert_eq!(
            refused.learned_limits,
            vec![Limit::rpm(NonZeroU64::new(2).unwrap())]
        );
        // Other models count on their own.
        assert!(server.admit("other", 1).is_ok());
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(server.admit("m", 2).is_ok());
        assert!(server.admit("m", 2).is_err());
    }
}
