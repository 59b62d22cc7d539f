//! What is known of one API key — health, circuit, usage, last error ([`KeyStatus`]) — and how
//! each call's outcome changes it. The key's actor applies these changes (it alone writes the
//! status) and publishes the result to every [`super::KeyHandle`].

use std::time::Duration;

use crate::provider::{ProviderError, ProviderErrorKind, Usage};

use super::ApiKey;

/// Whether a key may be used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum KeyHealth {
    /// Usable.
    Healthy,
    /// Refused by the provider (401/403, invalid key): never used again by the runtime.
    Retired {
        /// Why, in words that name the key only by its masked form.
        reason: String,
    },
}

/// A key's circuit breaker: after repeated transport, 5xx or timeout failures a key rests
/// for a while, then one call decides whether it is used again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Used normally.
    Closed,
    /// Resting after [`CircuitSettings::failures_to_open`] failures in a row: skipped while
    /// another key is usable.
    Open,
    /// The rest is over: the next call (one at a time) decides; a success closes the circuit,
    /// another such failure opens it again.
    HalfOpen,
}

/// When a key's circuit opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitSettings {
    /// Transport, 5xx or timeout failures in a row that open the circuit (at least 1).
    pub failures_to_open: u32,
    /// How long an open circuit rests before a trial call.
    pub open_for: Duration,
}

impl Default for CircuitSettings {
    /// Five failures in a row open the circuit for 30 s.
    fn default() -> Self {
        Self {
            failures_to_open: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

/// What one key did so far (across every agent and run that used it).
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

/// One key's state as its actor last published it. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyStatus {
    /// The key, masked (`****` and at most its last four characters).
    pub key: String,
    /// Its short id (as in quota scope names and metrics).
    pub id: String,
    /// Where it came from (an env var name or a config path).
    pub origin: String,
    /// Healthy or retired.
    pub health: KeyHealth,
    /// The circuit breaker.
    pub circuit: CircuitState,
    /// Transport, 5xx or timeout failures since the last other answer.
    pub consecutive_failures: u32,
    /// Whether a half-open circuit's trial call is in flight.
    pub trial_in_flight: bool,
    /// Usage counters.
    pub usage: KeyUsage,
    /// The last error seen with the key.
    pub last_error: Option<String>,
    /// Disabled by an admin (`POST /admin/keys/{id}/disable`): skipped like a retired key
    /// until enabled again.
    pub disabled: bool,
    /// Resting by an admin's order (`POST /admin/keys/{id}/cooldown`) until this wall-clock
    /// time (ms since the epoch): skipped like a retired key until then.
    pub cooling_until_ms: Option<i64>,
}

impl KeyStatus {
    /// A healthy key with no usage.
    pub fn new(key: &ApiKey) -> Self {
        Self {
            key: key.masked(),
            id: key.short_id(),
            origin: key.origin().to_owned(),
            health: KeyHealth::Healthy,
            circuit: CircuitState::Closed,
            consecutive_failures: 0,
            trial_in_flight: false,
            usage: KeyUsage::default(),
            last_error: None,
            disabled: false,
            cooling_until_ms: None,
        }
    }

    /// Whether the key may be used now: not retired, not disabled and not in a forced
    /// cooldown.
    pub fn is_live(&self) -> bool {
        self.health == KeyHealth::Healthy && !self.disabled && self.cooling_until_ms.is_none()
    }

    /// Why the key may not be used now (`None` when it may): its retirement reason, or that an
    /// admin disabled it or made it rest. Names the key by its masked form only.
    pub fn unusable_reason(&self) -> Option<String> {
        if let KeyHealth::Retired { reason } = &self.health {
            return Some(reason.clone());
        }
        if self.disabled {
            return Some(format!(
                "the key {} ({}) is disabled by an admin",
                self.key, self.origin
            ));
        }
        self.cooling_until_ms.map(|until| {
            let left_ms = until.saturating_sub(chrono::Utc::now().timestamp_millis());
            format!(
                "the key {} ({}) rests for {}s more by an admin's order",
                self.key,
                self.origin,
                (left_ms.max(0) + 999) / 1000
            )
        })
    }

    /// Whether the key is live and its circuit lets a call through now: closed, or half-open
    /// with no trial in flight.
    pub fn is_available(&self) -> bool {
        self.is_live()
            && match self.circuit {
                CircuitState::Closed => true,
                CircuitState::HalfOpen => !self.trial_in_flight,
                CircuitState::Open => false,
            }
    }

    /// Records a call that succeeded with `usage`: the circuit closes.
    pub(super) fn succeeded(&mut self, usage: Option<Usage>) {
        self.usage.calls += 1;
        self.usage.successes += 1;
        if let Some(u) = usage {
            self.usage.input_tokens = self.usage.input_tokens.saturating_add(u.input_tokens);
            self.usage.output_tokens = self.usage.output_tokens.saturating_add(u.output_tokens);
        }
        self.close();
    }

    /// Records a failed call with `key`; returns whether the circuit opened now. An auth error
    /// (401/403) retires the key with a message that names it by origin and masked form.
    pub(super) fn failed(
        &mut self,
        key: &ApiKey,
        error: &ProviderError,
        circuit: &CircuitSettings,
    ) -> bool {
        if matches!(
            error.kind,
            ProviderErrorKind::Dropped | ProviderErrorKind::CircuitOpen
        ) {
            // Dropped in this process, maybe before it was ever sent, or refused by the
            // endpoint's open circuit without a request: not a call of the key's.
            return false;
        }
        self.usage.calls += 1;
        if matches!(
            error.kind,
            ProviderErrorKind::RateLimited | ProviderErrorKind::SpendCap
        ) {
            self.usage.rate_limited += 1;
        } else {
            self.usage.failures += 1;
        }
        self.last_error = Some(error.to_string());
        match error.kind {
            ProviderErrorKind::Auth => {
                self.retire(format!(
                    "the key {key} ({}) was refused and is retired: {error}",
                    key.origin()
                ));
                false
            }
            // The endpoint failed to answer: counts towards opening the circuit.
            ProviderErrorKind::Transient | ProviderErrorKind::Overloaded => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let open = match self.circuit {
                    CircuitState::Closed => {
                        self.consecutive_failures >= circuit.failures_to_open.max(1)
                    }
                    CircuitState::HalfOpen => true,
                    CircuitState::Open => false,
                };
                if open {
                    self.circuit = CircuitState::Open;
                    self.trial_in_flight = false;
                }
                open
            }
            // Not the key's doing: a panic in this process, a call dropped by a restart, a
            // caller that left.
            ProviderErrorKind::Internal
            | ProviderErrorKind::Dropped
            | ProviderErrorKind::CircuitOpen
            | ProviderErrorKind::Cancelled => false,
            // The provider answered: the way to it works.
            ProviderErrorKind::RateLimited
            | ProviderErrorKind::SpendCap
            | ProviderErrorKind::RequestTooLarge
            | ProviderErrorKind::BadRequest
            | ProviderErrorKind::Malformed => {
                self.close();
                false
            }
        }
    }

    /// Retires the key for good with `reason`.
    pub(super) fn retire(&mut self, reason: String) {
        self.last_error = Some(reason.clone());
        self.health = KeyHealth::Retired { reason };
    }

    fn close(&mut self) {
        self.consecutive_failures = 0;
        self.circuit = CircuitState::Closed;
        self.trial_in_flight = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(key: &ApiKey) -> KeyStatus {
        KeyStatus::new(key)
    }

    #[test]
    fn auth_errors_retire_with_a_masked_message() {
        let key = ApiKey::new("sk-secret-abcdefgh1234", "env OPENAI_API_KEY");
        let mut k = status(&key);
        let c = CircuitSettings::default();
        assert!(k.is_live());
        let transient = ProviderError::new(ProviderErrorKind::Transient, "reset");
        k.failed(&key, &transient, &c);
        assert!(k.is_live());
        let auth = ProviderError::new(ProviderErrorKind::Auth, "invalid key").with_status(401);
        k.failed(&key, &auth, &c);
        assert!(!k.is_live() && !k.is_available());
        let KeyHealth::Retired { reason } = &k.health else {
            unreachable!("retired above")
        };
        assert!(reason.contains("****1234") && reason.contains("env OPENAI_API_KEY"));
        assert!(!reason.contains("secret-abcd"), "{reason}");
        let shown = serde_json::to_string(&k).unwrap_or_default();
        assert!(
            !shown.contains("secret-abcd") && shown.contains("retired"),
            "{shown}"
        );
        assert_eq!((k.usage.calls, k.usage.failures), (2, 2));
    }

    #[test]
    fn usage_counts() {
        let key = ApiKey::new("k", "t");
        let mut k = status(&key);
        k.succeeded(Some(Usage::new(10, 5)));
        let limited = ProviderError::new(ProviderErrorKind::RateLimited, "429");
        k.failed(&key, &limited, &CircuitSettings::default());
        let u = k.usage;
        assert_eq!(
            (
                u.calls,
                u.successes,
                u.rate_limited,
                u.input_tokens,
                u.output_tokens
            ),
            (2, 1, 1, 10, 5)
        );
    }

    #[test]
    fn failures_in_a_row_open_the_circuit_and_other_answers_reset_the_count() {
        let key = ApiKey::new("k", "t");
        let mut k = status(&key);
        let c = CircuitSettings {
            failures_to_open: 3,
            ..CircuitSettings::default()
        };
        let down = ProviderError::new(ProviderErrorKind::Transient, "503").with_status(503);
        let limited = ProviderError::new(ProviderErrorKind::RateLimited, "429");
        assert!(!k.failed(&key, &down, &c));
        assert!(!k.failed(&key, &down, &c));
        // A 429 is an answer: the streak starts over.
        assert!(!k.failed(&key, &limited, &c));
        assert_eq!(k.consecutive_failures, 0);
        assert!(!k.failed(&key, &down, &c));
        assert!(!k.failed(&key, &down, &c));
        assert!(k.failed(&key, &down, &c), "the third in a row opens it");
        assert_eq!(k.circuit, CircuitState::Open);
        assert!(k.is_live() && !k.is_available());
        // Half-open: a failed trial opens it again, a success closes it.
        k.circuit = CircuitState::HalfOpen;
        k.trial_in_flight = true;
        assert!(!k.is_available());
        assert!(k.failed(&key, &down, &c));
        assert_eq!(k.circuit, CircuitState::Open);
        k.circuit = CircuitState::HalfOpen;
        k.succeeded(None);
        assert_eq!(k.circuit, CircuitState::Closed);
        assert!(k.is_available());
    }
}
