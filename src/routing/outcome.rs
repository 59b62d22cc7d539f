//! How one call ended: [`CallReport`] when it succeeded, [`CallError`] when it gave up.

use std::time::Duration;

use crate::provider::{ChatRequest, ChatResponse, ProviderError, Usage};
use crate::supervisor::AcquireError;

/// A call that succeeded, possibly after retries.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The provider's answer.
    pub response: ChatResponse,
    /// Provider calls made (failed ones included).
    pub calls: u32,
    /// Usage over all attempts (failed attempts count what the provider reported, if anything).
    pub usage: Usage,
    /// Time spent waiting for quota permits.
    pub quota_wait: Duration,
    /// The request the answer is to, as sent (the caller's `build` may have made others that
    /// were not sent: one that outgrew its permit, say).
    pub sent: ChatRequest,
}

/// Why a call gave up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The provider failed with a non-retryable error, or retries ran out.
    #[error("{error} (after {calls} call(s))")]
    Provider {
        /// The last error.
        error: ProviderError,
        /// Provider calls made.
        calls: u32,
        /// Time spent waiting for quota permits.
        quota_wait: Duration,
    },
    /// The run's budget refused the call (it was not made).
    #[error("{refusal}")]
    Budget {
        /// Why.
        refusal: crate::usage::budget::BudgetRefusal,
        /// Provider calls made before.
        calls: u32,
        /// Time spent waiting for quota permits.
        quota_wait: Duration,
    },
    /// The quota supervisor gave no permit.
    #[error("quota: {error}")]
    Quota {
        /// Why.
        error: AcquireError,
        /// Provider calls made before.
        calls: u32,
        /// Time spent waiting for quota permits.
        quota_wait: Duration,
    },
}

impl CallError {
    /// Provider calls made before giving up.
    pub fn calls(&self) -> u32 {
        match self {
            CallError::Provider { calls, .. }
            | CallError::Quota { calls, .. }
            | CallError::Budget { calls, .. } => *calls,
        }
    }

    /// The budget limit that stopped the call, if one did.
    pub fn budget_exceeded(&self) -> Option<&crate::usage::budget::BudgetExceeded> {
        match self {
            CallError::Budget {
                refusal: crate::usage::budget::BudgetRefusal::Exceeded(e),
                ..
            } => Some(e),
            _ => None,
        }
    }

    /// Whether the quota deadline (acquire timeout) stopped the call.
    pub fn is_quota_deadline(&self) -> bool {
        matches!(
            self,
            CallError::Quota {
                error: AcquireError::DeadlineExceeded { .. },
                ..
            }
        )
    }

    /// Time spent waiting for quota before giving up.
    pub fn quota_wait(&self) -> Duration {
        match self {
            CallError::Provider { quota_wait, .. }
            | CallError::Quota { quota_wait, .. }
            | CallError::Budget { quota_wait, .. } => *quota_wait,
        }
    }
}
