//! What the mock records of the requests it saw: how each was answered ([`MockEvent`]) and what
//! each admitted one weighed in the windows ([`MockAdmission`]).

use std::time::Instant;

use super::convo::MockDialect;
use super::faults::Fault;
use super::limits::Charge;

/// How the mock answered one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockOutcome {
    /// Admitted and answered normally.
    Admitted,
    /// Refused by a limit (429, or 413 when it can never fit).
    Refused,
    /// Answered with an injected fault.
    Faulted(Fault),
}

/// One request as the mock saw it (kept when [`MockOptions::record_events`] is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockEvent {
    /// When it arrived.
    pub at: Instant,
    /// `key:<short id>` or `key:none`.
    pub key: String,
    /// The model asked for.
    pub model: String,
    /// Tokens charged at arrival (zero unless admitted).
    pub tokens: u64,
    /// What the mock did.
    pub outcome: MockOutcome,
}

/// One admitted request, as charged against the windows (`GET /admissions`,
/// [`MockServerHandle::admissions`]). With the limits in force, a test can replay these to
/// check that no trailing window ever held more than its limit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MockAdmission {
    /// Arrival order, from 1.
    pub id: u64,
    /// When it arrived.
    #[serde(skip)]
    pub at: Instant,
    /// Microseconds from the server's start to its arrival.
    pub at_us: u64,
    /// The dialect.
    pub dialect: MockDialect,
    /// `key:<short id>` or `key:none`.
    pub key: String,
    /// The model.
    pub model: String,
    /// The windows it was charged in: `<key>/<model>`, or `project/<model>` when keys share
    /// limits.
    pub scope: String,
    /// What it weighed in each dimension when it was admitted.
    pub charged_at_arrival: Charge,
    /// What it weighs now (Anthropic's output tokens are adjusted at completion; otherwise the
    /// same as at arrival).
    pub charged: Charge,
    /// When the charge was adjusted to `charged` (`None`: never; it weighs
    /// `charged_at_arrival` throughout). Before that instant the windows held
    /// `charged_at_arrival`.
    #[serde(skip)]
    pub settled_at: Option<Instant>,
    /// Microseconds from the server's start to `settled_at`.
    pub settled_us: Option<u64>,
    /// The output cap the request sent, if any.
    pub max_output_sent: Option<u64>,
    /// `vote`, `new_answer` or `text`: what the mock answered.
    pub reply: String,
    /// Native tool results in the request's last user-side content.
    pub tool_results: u64,
    /// The rejection the request answers, if it retries a rejected turn (`duplicate`,
    /// `no_tool`, ...), and whether it came as a native tool result.
    pub rejection: Option<String>,
    /// Whether that rejection was a native tool result.
    pub native_rejection: bool,
    /// Model replies written as prose calls in its history.
    pub prose_calls: u64,
    /// The fault it was answered with, if any (`Debug` form).
    pub fault: Option<String>,
    /// The images it carried, in any dialect's form (each charged
    /// [`super::images::image_tokens`] input tokens).
    pub images: u64,
}

impl MockAdmission {
    /// What it weighed in the windows at `t` (its arrival weight until it was settled).
    pub fn weight_at(&self, t: Instant) -> Charge {
        match self.settled_at {
            Some(at) if at <= t => self.charged,
            _ => self.charged_at_arrival,
        }
    }
}
