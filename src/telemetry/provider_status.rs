//! The `providers` array of `/status`: each provider endpoint's circuit breaker, load, errors
//! and latency, from its actor's [`ProviderHealth`].

use serde::{Deserialize, Serialize};

use crate::provider::ProviderHealth;

/// One provider endpoint in `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProviderStatus {
    /// `KIND ENDPOINT`, e.g. `openai https://api.openai.com/v1`.
    pub name: String,
    /// The backend family (`openai`, `gemini`, `claude`, `simulated`, ...).
    pub kind: String,
    /// The base URL without credentials, query or fragment (`in-process` for a provider
    /// without one).
    pub base_url: String,
    /// The agents it serves.
    pub agents: Vec<String>,
    /// The circuit breaker: `closed`, `open` or `half_open`.
    pub state: String,
    /// When an open circuit turns half-open (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Milliseconds until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_for_ms: Option<u64>,
    /// Calls running or waiting for a slot now.
    pub in_flight: u64,
    /// Calls answered (successes and failures).
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Calls refused without a request because the circuit was open.
    pub rejected: u64,
    /// Share of failed calls over the recent window (0 to 1).
    pub error_rate: Option<f64>,
    /// Latency percentiles over the recent window, in milliseconds.
    pub latency_p50_ms: Option<u64>,
    /// See `latency_p50_ms`.
    pub latency_p95_ms: Option<u64>,
    /// See `latency_p50_ms`.
    pub latency_p99_ms: Option<u64>,
    /// Times the actor was restarted after a panic.
    pub restarts: u64,
}

impl ProviderStatus {
    /// The entry of an endpoint whose actor answered `health`, serving `agents`.
    pub fn from_health(health: &ProviderHealth, agents: Vec<String>) -> ProviderStatus {
        let until = health.circuit_open_ms.and_then(|ms| {
            let left = chrono::Duration::milliseconds(i64::try_from(ms).ok()?);
            let at = chrono::Utc::now().checked_add_signed(left)?;
            Some(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        });
        ProviderStatus {
            name: format!("{} {}", health.provider, health.endpoint),
            kind: health.provider.clone(),
            base_url: health.endpoint.clone(),
            agents,
            state: health.circuit.as_str().to_owned(),
            until,
            open_for_ms: health.circuit_open_ms,
            in_flight: health.in_flight,
            calls: health.calls,
            errors: health.failures,
            rejected: health.rejected,
            error_rate: health.error_rate,
            latency_p50_ms: health.latency_p50_ms,
            latency_p95_ms: health.latency_p95_ms,
            latency_p99_ms: health.latency_p99_ms,
            restarts: health.restarts,
        }
    }
}
