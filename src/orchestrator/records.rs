//! What a run produced: answers, votes, per-agent figures and the status.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// How a run ended when it produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every live agent voted (or the only answer was taken) and a winner was chosen.
    Completed,
    /// The orchestrator timeout expired; the winner was picked from what existed then.
    TimedOut,
    /// The run was stopped from outside (Ctrl-C, SIGTERM, an embedding app); the winner was
    /// picked from what existed then, with no final presentation.
    Interrupted,
    /// A call would have passed a spending limit (`rate_limit.budget`): the run was stopped
    /// like an interrupted one and the winner picked from what existed then.
    BudgetExceeded,
}

impl RunStatus {
    /// `completed`, `timed_out`, `interrupted` or `budget_exceeded`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Completed => "completed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Interrupted => "interrupted",
            RunStatus::BudgetExceeded => "budget_exceeded",
        }
    }
}

/// One accepted answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerRecord {
    /// The author (real id).
    pub agent: String,
    /// Its anonymous label (`agent2.1`).
    pub label: String,
    /// The text.
    pub content: String,
    /// Milliseconds after the run started.
    pub t_ms: u64,
    /// Where it was written, when there is a run directory.
    pub path: Option<PathBuf>,
}

/// One vote that stood at the end of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoteRecord {
    /// The voter (real id).
    pub agent: String,
    /// The agent voted for (real id).
    pub for_agent: String,
    /// The voter's reason.
    pub reason: String,
}

/// Where one agent ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalAgentState {
    /// It voted.
    Voted,
    /// It had answered but not voted when the run stopped.
    Answered,
    /// It was still working (or had not answered) when the run stopped.
    Working,
    /// It failed and was retired.
    Failed,
}

/// One agent's figures for the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStats {
    /// The agent.
    pub id: String,
    /// Provider calls made (failed ones and the presentation included).
    pub calls: u32,
    /// Prompt tokens reported.
    pub input_tokens: u64,
    /// Completion tokens reported.
    pub output_tokens: u64,
    /// Time spent waiting for quota permits (serialized as `quota_wait_ms`).
    #[serde(rename = "quota_wait_ms", serialize_with = "as_millis")]
    pub quota_wait: Duration,
    /// Answers accepted.
    pub answers: u32,
    /// Where it ended up.
    pub state: FinalAgentState,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

fn as_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
