//! Typed recording of team-run metrics: agent turns, coordination rounds, votes, run duration.

use std::time::Duration;

use metrics::{counter, histogram};

use super::catalog;

/// How an agent turn ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TurnOutcome {
    /// The agent gave a new answer.
    Answer,
    /// The agent voted.
    Vote,
    /// The winner presented the final answer.
    Presented,
    /// The turn failed a check (no tool call, invalid vote...) and is tried again.
    Retry,
    /// The turn failed for good; the agent is retired.
    Failed,
}

impl TurnOutcome {
    /// The label value: `answer`, `vote`, `presented`, `retry` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnOutcome::Answer => "answer",
            TurnOutcome::Vote => "vote",
            TurnOutcome::Presented => "presented",
            TurnOutcome::Retry => "retry",
            TurnOutcome::Failed => "failed",
        }
    }
}

/// How a run ended (the `status` label of the run duration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatusLabel {
    /// Every live agent voted and the winner presented.
    Completed,
    /// The orchestrator timeout ended the run.
    TimedOut,
    /// The run ended without an answer.
    Failed,
}

impl RunStatusLabel {
    /// The label value: `completed`, `timed_out` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatusLabel::Completed => "completed",
            RunStatusLabel::TimedOut => "timed_out",
            RunStatusLabel::Failed => "failed",
        }
    }
}

/// An agent turn ended with `outcome`.
pub fn agent_turn(outcome: TurnOutcome) {
    counter!(catalog::AGENT_TURNS, "outcome" => outcome.as_str()).increment(1);
}

/// A coordination round began (the first of a run, or one started by a new answer).
pub fn coordination_round() {
    counter!(catalog::COORDINATION_ROUNDS).increment(1);
}

/// An agent voted.
pub fn vote() {
    counter!(catalog::VOTES).increment(1);
}

/// A run ended with `status` after `elapsed`.
pub fn run_duration(elapsed: Duration, status: RunStatusLabel) {
    histogram!(catalog::RUN_DURATION, "status" => status.as_str()).record(elapsed.as_secs_f64());
}
