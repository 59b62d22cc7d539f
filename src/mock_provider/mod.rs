//! The mock provider server: speaks the OpenAI-compatible, Gemini and Anthropic dialects over
//! loopback, answers with tool calls that drive the MassGen protocol, **enforces exact limits**
//! per (key, model) with each provider's real 429 shapes and headers, injects faults on request,
//! and counts what it admitted and refused (`GET /stats`).
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1beta/models/{model}:generateContent`,
//! `POST /v1beta/models/{model}:streamGenerateContent` (SSE with `?alt=sse`),
//! `POST /v1/messages`, `GET /stats`. Keys are read from `Authorization: Bearer`,
//! `x-goog-api-key` (or `?key=`) and `x-api-key`; the stats name keys by
//! [`ApiKey::short_id`](crate::keys::ApiKey::short_id), never by the secret.

mod faults;
mod limits;
mod refuse;
mod render;
mod script;
mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

pub use faults::{Fault, FaultRule, FaultSpec, FaultSpecError, Trigger};
pub use limits::{MockLimits, MockLimitsError};
pub use script::{MockDialect, count_tokens, first_answer_id};
pub use server::{MockEvent, MockOutcome, MockServerHandle, serve};

/// How the mock server runs.
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Where to listen; port 0 picks a free port (see [`MockServerHandle::addr`]).
    pub listen: SocketAddr,
    /// Limits enforced per (key, model).
    pub limits: MockLimits,
    /// Delay before every answer.
    pub latency: Duration,
    /// Faults to inject.
    pub faults: FaultSpec,
    /// Keep a log of every request's arrival and outcome ([`MockServerHandle::events`]).
    pub record_events: bool,
    /// Count every key in one window per model, as Gemini counts per project (default: each key
    /// has its own windows, as OpenAI-compatible providers count per key).
    pub keys_share_limits: bool,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            limits: MockLimits::unlimited(),
            latency: Duration::ZERO,
            faults: FaultSpec::none(),
            record_events: false,
            keys_share_limits: false,
        }
    }
}

impl MockOptions {
    /// Options from the `mock-provider` flags: `--listen ADDR`, `--limits FILE` (its text, see
    /// [`MockLimits::parse_yaml`]), `--latency MS`, `--faults SPEC` (see [`FaultSpec::parse`]).
    pub fn from_flags(
        listen: &str,
        limits_yaml: Option<&str>,
        latency_ms: Option<u64>,
        faults: Option<&str>,
    ) -> Result<Self, MockOptionsError> {
        let listen = listen.parse().map_err(|_| {
            MockOptionsError(format!(
                "--listen `{listen}` is not IP:PORT, e.g. 127.0.0.1:8090"
            ))
        })?;
        let limits = match limits_yaml {
            Some(text) => {
                MockLimits::parse_yaml(text).map_err(|e| MockOptionsError(e.to_string()))?
            }
            None => MockLimits::unlimited(),
        };
        let faults = match faults {
            Some(spec) => FaultSpec::parse(spec).map_err(|e| MockOptionsError(e.to_string()))?,
            None => FaultSpec::none(),
        };
        Ok(Self {
            listen,
            limits,
            latency: Duration::from_millis(latency_ms.unwrap_or(0)),
            faults,
            record_events: false,
            keys_share_limits: false,
        })
    }
}

/// Invalid `mock-provider` flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MockOptionsError(pub String);

/// Counts of one (key, model) or of the whole server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MockCounts {
    /// Requests admitted by the limits (including those then given a fault).
    pub admitted: u64,
    /// Requests refused with a rate-limit answer (429, or 413 when they can never fit).
    pub refused: u64,
    /// Admitted requests answered with an injected fault (plus auth refusals).
    pub faulted: u64,
    /// Tokens charged for admitted requests.
    pub tokens: u64,
}

impl MockCounts {
    fn add(&mut self, other: &MockCounts) {
        self.admitted += other.admitted;
        self.refused += other.refused;
        self.faulted += other.faulted;
        self.tokens += other.tokens;
    }
}

/// What `GET /stats` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MockStats {
    /// Everything together.
    pub total: MockCounts,
    /// Per `key:<short id>/<model>` (`key:none/<model>` for requests without a key).
    pub by_key_model: BTreeMap<String, MockCounts>,
}

impl MockStats {
    fn record(&mut self, label: String, f: impl Fn(&mut MockCounts)) {
        let mut one = MockCounts::default();
        f(&mut one);
        self.total.add(&one);
        self.by_key_model.entry(label).or_default().add(&one);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn flags() {
        let o = MockOptions::from_flags(
            "127.0.0.1:0",
            Some("default: {rpm: 3}"),
            Some(5),
            Some("500:0.1"),
        )
        .unwrap();
        assert_eq!(o.latency, Duration::from_millis(5));
        assert_eq!(o.limits.for_model("m").len(), 1);
        assert_eq!(o.faults.rules.len(), 1);
        assert!(MockOptions::from_flags("localhost", None, None, None).is_err());
        assert!(MockOptions::from_flags("127.0.0.1:0", Some("[1"), None, None).is_err());
        assert!(MockOptions::from_flags("127.0.0.1:0", None, None, Some("x")).is_err());
    }
}
