//! [`KeyHandle`]: one API key's live state — health (healthy, or retired after 401/403 with the
//! reason), usage counters and the last error. Shared as `Arc<KeyHandle>` by every call that may
//! use the key.
//!
//! The state is a few counters updated in O(1) under a short lock that is never held across an
//! await, so a plain mutex serves as the key's actor: every update is one serialized message
//! without a mailbox hop on the call path.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::provider::{ProviderError, ProviderErrorKind, Usage};

use super::ApiKey;

/// Whether a key may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHealth {
    /// Usable.
    Healthy,
    /// Refused by the provider (401/403, invalid key): never used again in this process.
    Retired {
        /// Why, in words that name the key only by its masked form.
        reason: String,
    },
}

/// What one key did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyUsage {
    /// Calls sent with the key.
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls answered with a rate limit or quota error.
    pub rate_limited: u64,
    /// Other failed calls.
    pub failures: u64,
    /// Input tokens the provider reported.
    pub input_tokens: u64,
    /// Output tokens the provider reported.
    pub output_tokens: u64,
}

#[derive(Debug)]
struct KeyState {
    health: KeyHealth,
    usage: KeyUsage,
    last_error: Option<String>,
}

/// One API key and its live state.
#[derive(Debug)]
pub struct KeyHandle {
    key: ApiKey,
    state: Mutex<KeyState>,
}

impl KeyHandle {
    /// A healthy key with no usage.
    pub fn new(key: ApiKey) -> Self {
        Self {
            key,
            state: Mutex::new(KeyState {
                health: KeyHealth::Healthy,
                usage: KeyUsage::default(),
                last_error: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, KeyState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key (its secret is only reachable through [`ApiKey::expose`]).
    pub fn key(&self) -> &ApiKey {
        &self.key
    }

    /// Whether the key may be used.
    pub fn is_live(&self) -> bool {
        self.lock().health == KeyHealth::Healthy
    }

    /// The key's health.
    pub fn health(&self) -> KeyHealth {
        self.lock().health.clone()
    }

    /// Usage so far.
    pub fn usage(&self) -> KeyUsage {
        self.lock().usage
    }

    /// The last error seen with this key (never contains the secret).
    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    /// Retires the key for good with `reason`.
    pub fn retire(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut s = self.lock();
        s.last_error = Some(reason.clone());
        s.health = KeyHealth::Retired { reason };
    }

    /// Records a call that succeeded with `usage`.
    pub fn record_success(&self, usage: Option<Usage>) {
        let mut s = self.lock();
        s.usage.calls += 1;
        s.usage.successes += 1;
        if let Some(u) = usage {
            s.usage.input_tokens = s.usage.input_tokens.saturating_add(u.input_tokens);
            s.usage.output_tokens = s.usage.output_tokens.saturating_add(u.output_tokens);
        }
    }

    /// Records a failed call. An auth error (401/403) retires the key with a message that names
    /// it by origin and masked form; returns whether it did.
    pub fn record_error(&self, error: &ProviderError) -> bool {
        let mut s = self.lock();
        s.usage.calls += 1;
        if matches!(
            error.kind,
            ProviderErrorKind::RateLimited | ProviderErrorKind::SpendCap
        ) {
            s.usage.rate_limited += 1;
        } else {
            s.usage.failures += 1;
        }
        s.last_error = Some(error.to_string());
        if error.kind == ProviderErrorKind::Auth {
            s.health = KeyHealth::Retired {
                reason: format!(
                    "the key {} ({}) was refused and is retired: {error}",
                    self.key,
                    self.key.origin()
                ),
            };
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_retire_with_a_masked_message() {
        let k = KeyHandle::new(ApiKey::new("sk-secret-abcdefgh1234", "env OPENAI_API_KEY"));
        assert!(k.is_live());
        let transient = ProviderError::new(ProviderErrorKind::Transient, "reset");
        assert!(!k.record_error(&transient));
        assert!(k.is_live());
        let auth = ProviderError::new(ProviderErrorKind::Auth, "invalid key").with_status(401);
        assert!(k.record_error(&auth));
        assert!(!k.is_live());
        let KeyHealth::Retired { reason } = k.health() else {
            unreachable!("retired above")
        };
        assert!(reason.contains("****1234") && reason.contains("env OPENAI_API_KEY"));
        assert!(!reason.contains("secret-abcd"), "{reason}");
        assert_eq!(k.usage().calls, 2);
        assert_eq!(k.usage().failures, 2);
    }

    #[test]
    fn usage_counts() {
        let k = KeyHandle::new(ApiKey::new("k", "t"));
        k.record_success(Some(Usage::new(10, 5)));
        k.record_error(&ProviderError::new(ProviderErrorKind::RateLimited, "429"));
        let u = k.usage();
        assert_eq!(
            (u.calls, u.successes, u.rate_limited, u.input_tokens),
            (2, 1, 1, 10)
        );
    }
}
