//! The mock provider server: the project's stand-in for the real APIs, written from their
//! documented wire formats. It speaks the OpenAI-compatible, Gemini and Anthropic dialects over
//! loopback and
//!
//! - reads each request natively, tool calls and tool results included ([`convo`]), and replies
//!   as a model following MassGen's protocol would ([`script`]): it votes when the first user
//!   message shows answers, answers otherwise (content that depends on the system text and
//!   model), acts on rejecting tool results, and treats prose calls as text;
//! - counts tokens as each provider does ([`tokens`]): OpenAI-compatible input with the model's
//!   tokenizer plus the sent output cap (the model's largest output when none was sent) at
//!   arrival, never refunded; Gemini the actual usage; Anthropic requests and input tokens at
//!   arrival and output tokens at `max_tokens`, adjusted to the actual output at completion;
//! - **enforces exact sliding-window limits** per (key, model) in requests, tokens, input and
//!   output tokens ([`limits`]), and answers with each provider's real headers ([`headers`]:
//!   Go-duration resets, Groq's per-day request headers, Anthropic's RFC 3339 instants) and 429
//!   shapes (`refuse.rs`);
//! - injects faults, hostile replies with absurd rate-limit values among them ([`faults`],
//!   [`hostile`]);
//! - reports what it saw (`GET /stats`: per key and model, per dialect, with the rejections it
//!   received) and every admission (`GET /admissions`, [`MockServerHandle::admissions`]), so a
//!   test can check from the server's side that no trailing window held more than its limit.
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1beta/models/{model}:generateContent`,
//! `POST /v1beta/models/{model}:streamGenerateContent` (SSE with `?alt=sse`),
//! `POST /v1/messages`, `GET /stats`, `GET /admissions`. Keys are read from
//! `Authorization: Bearer`, `x-goog-api-key` (or `?key=`) and `x-api-key`; the stats name keys
//! by [`ApiKey::short_id`](crate::keys::ApiKey::short_id), never by the secret.

pub mod convo;
pub mod faults;
pub mod headers;
pub mod hostile;
pub mod images;
pub mod limits;
mod records;
mod refuse;
mod render;
mod respond;
pub mod script;
mod server;
pub mod tokens;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

pub use convo::{MockDialect, MockRequest, Part, Role, ToolDecl, Turn, read_request};
pub use faults::{Fault, FaultRule, FaultSpec, FaultSpecError, Trigger};
pub use headers::go_duration;
pub use hostile::Hostile;
pub use limits::{Charge, MockDimension, MockLimit, MockLimits, MockLimitsError};
pub use records::{MockAdmission, MockEvent, MockOutcome};
pub use script::{Feedback, MockAnswer, ShownAnswer, answers_shown, classify, first_answer_id};
pub use server::{ADMISSION_LOG_CAP, MockServerHandle, serve};
pub use tokens::{Tokenizer, model_max_output, quarter_tokens};

/// A quarter of the characters, rounded up: the mock's count for Gemini and Anthropic.
pub fn count_tokens(text: &str) -> u64 {
    quarter_tokens(text)
}

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
    /// Groq's headers on the OpenAI-compatible route: `x-ratelimit-*-requests` describe the
    /// per-day request limit (also on for any model whose name contains `groq`).
    pub groq: bool,
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
            groq: false,
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
            groq: false,
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

/// What one dialect's route saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MockDialectCounts {
    /// Requests received (readable ones).
    pub requests: u64,
    /// Requests admitted by the limits.
    pub admitted: u64,
    /// Requests refused by a limit (429, or 413/400 when they can never fit).
    pub refused: u64,
    /// Requests answered with an injected fault.
    pub faulted: u64,
    /// Tokens charged against token windows (after settlement).
    pub tokens: u64,
    /// Input tokens of admitted requests.
    pub input_tokens: u64,
    /// Output tokens of admitted requests' answers.
    pub output_tokens: u64,
    /// Native tool results received in the last user-side content of a request.
    pub tool_results: u64,
    /// Requests that retry a rejected turn: the last user-side content rejects the previous
    /// reply, as a native tool result or as a prose user message.
    pub rejections: u64,
    /// Of those, rejections sent as native tool results.
    pub native_rejections: u64,
    /// Requests whose history holds a model reply written as prose (`[called name(...)]`).
    pub prose_calls: u64,
    /// Native tool calls replayed in requests' histories.
    pub replayed_calls: u64,
    /// Answers that voted.
    pub votes: u64,
    /// Answers that called `new_answer`.
    pub new_answers: u64,
    /// Answers in plain text.
    pub texts: u64,
}

/// What `GET /stats` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MockStats {
    /// Everything together.
    pub total: MockCounts,
    /// Per `key:<short id>/<model>` (`key:none/<model>` for requests without a key).
    pub by_key_model: BTreeMap<String, MockCounts>,
    /// Per dialect: `openai`, `gemini`, `anthropic`.
    pub by_dialect: BTreeMap<String, MockDialectCounts>,
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
