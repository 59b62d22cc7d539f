//! [`QuotaEvent`]: everything the supervisor decides, for progress display, events.jsonl and
//! metrics.

use serde::Serialize;

/// One quota event. Serialized with an `event` tag: `{"event":"waiting",...}`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum QuotaEvent {
    /// A request cannot go now and joined the queue.
    Waiting {
        /// Who asked (agent id).
        requester: String,
        /// The scope that holds it back.
        scope: String,
        /// What blocks: `rpm`, `tpm`, `concurrency`, `cooldown: startup`, `stagger`, `queue`...
        limit: Option<String>,
        /// Milliseconds until it could go, when a time is known.
        eta_ms: Option<u64>,
        /// Requests waiting for that scope, this one included.
        queue_depth: usize,
    },
    /// A permit was granted.
    Granted {
        /// Who asked.
        requester: String,
        /// The scopes reserved in.
        scopes: Vec<String>,
        /// How long it waited, in milliseconds.
        waited_ms: u64,
    },
    /// A request was refused (never fits, deadline, closed scope).
    Denied {
        /// Who asked.
        requester: String,
        /// The scope that refused.
        scope: String,
        /// The error, in one sentence.
        reason: String,
    },
    /// A permit was settled to the actual usage.
    Settled {
        /// The scopes it held.
        scopes: Vec<String>,
        /// The reserved estimate.
        estimate: u64,
        /// The actual tokens.
        actual: u64,
    },
    /// A scope closed for a while (provider retry delay, daily quota, overload).
    CooldownStarted {
        /// The scope.
        scope: String,
        /// Why.
        reason: String,
        /// For how long, in milliseconds.
        duration_ms: u64,
    },
    /// A lower limit was learned from the provider and is now enforced.
    LimitLearned {
        /// The scope.
        scope: String,
        /// The limit, e.g. `30000 tokens per 1m`.
        limit: String,
    },
}

pub(crate) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
