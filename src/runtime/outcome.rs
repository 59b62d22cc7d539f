//! What [`super::Runtime::run`] returns: a [`RunOutcome`] or a [`RunError`].

use std::path::PathBuf;
use std::time::Duration;

use crate::orchestrator::{AgentStats, AnswerRecord, RunStatus, VoteRecord};

/// Exit code of a run stopped by a spending limit (`rate_limit.budget`), with or without an
/// answer.
pub const EXIT_BUDGET: i32 = 5;

/// A run that produced an answer.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Completed, or timed out with the best answer that existed.
    pub status: RunStatus,
    /// The agent whose answer won.
    pub winner: Option<String>,
    /// The final answer (the winner's presentation, or its latest answer).
    pub final_answer: String,
    /// Votes standing at the end.
    pub votes: Vec<VoteRecord>,
    /// Every accepted answer, oldest first.
    pub answers: Vec<AnswerRecord>,
    /// Per-agent figures, in config order.
    pub agents: Vec<AgentStats>,
    /// Wall time of the run.
    pub duration: Duration,
    /// The run directory, when one was written.
    pub run_dir: Option<PathBuf>,
    /// `final_answer.md` in the run directory, when one was written.
    pub answer_file: Option<PathBuf>,
    /// Things the user should know (timeouts, fallbacks, retired agents).
    pub notes: Vec<String>,
}

/// A run that produced no answer, or could not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// Every agent failed.
    #[error("no agent succeeded: {}{}", list(failures), dir_hint(run_dir))]
    AllAgentsFailed {
        /// `(agent, reason)` for each agent.
        failures: Vec<(String, String)>,
        /// The run directory (answers written before the failures are there).
        run_dir: Option<PathBuf>,
    },
    /// Quota deadlines kept every agent from answering.
    #[error(
        "quota limits kept every agent waiting past the acquire deadline: {}{}",
        list(failures),
        dir_hint(run_dir)
    )]
    QuotaDeadline {
        /// `(agent, reason)` for each agent.
        failures: Vec<(String, String)>,
        /// The run directory.
        run_dir: Option<PathBuf>,
    },
    /// The run ended without any answer (e.g. the orchestrator timeout expired first).
    #[error("no answer: {reason}{}", dir_hint(run_dir))]
    NoAnswer {
        /// Why.
        reason: String,
        /// The run directory.
        run_dir: Option<PathBuf>,
    },
    /// A spending limit stopped the run before any answer existed.
    #[error("{message}: no agent had answered yet{}", dir_hint(run_dir))]
    BudgetExceeded {
        /// What limit, and the figures.
        message: String,
        /// The run directory.
        run_dir: Option<PathBuf>,
    },
    /// The run was interrupted before any answer existed.
    #[error("interrupted before any agent answered{}", dir_hint(run_dir))]
    Interrupted {
        /// The run directory (status.json and events.jsonl say where it stood).
        run_dir: Option<PathBuf>,
    },
    /// An agent has no provider: its backend has no adapter in this build.
    #[error(
        "agent {agent}: backend `{backend}` is not available in this build (give it a provider \
         with Runtime::with_provider)"
    )]
    MissingProvider {
        /// The agent.
        agent: String,
        /// Its backend type.
        backend: String,
    },
    /// The run directory could not be written.
    #[error("cannot write the run directory: {0}")]
    RunDir(String),
    /// The quota supervisor refused to set up a scope.
    #[error("quota setup failed: {0}")]
    Quota(String),
}

impl RunError {
    /// The process exit code for this error: 3 when no agent succeeded or no answer came,
    /// 4 when quota deadlines prevented any answer, [`EXIT_BUDGET`] (5) when a spending limit
    /// stopped the run, 130 when interrupted before any answer, 1 for
    /// internal failures. (0 means success
    /// and 2 a configuration error; the CLI uses those.)
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::AllAgentsFailed { .. } | RunError::NoAnswer { .. } => 3,
            RunError::QuotaDeadline { .. } => 4,
            RunError::BudgetExceeded { .. } => EXIT_BUDGET,
            RunError::Interrupted { .. } => 130,
            RunError::MissingProvider { .. } | RunError::RunDir(_) | RunError::Quota(_) => 1,
        }
    }

    /// The run directory, when one was written.
    pub fn run_dir(&self) -> Option<&PathBuf> {
        match self {
            RunError::AllAgentsFailed { run_dir, .. }
            | RunError::QuotaDeadline { run_dir, .. }
            | RunError::NoAnswer { run_dir, .. }
            | RunError::BudgetExceeded { run_dir, .. }
            | RunError::Interrupted { run_dir } => run_dir.as_ref(),
            _ => None,
        }
    }
}

fn list(failures: &[(String, String)]) -> String {
    failures
        .iter()
        .map(|(a, r)| format!("{a}: {r}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn dir_hint(dir: &Option<PathBuf>) -> String {
    dir.as_ref()
        .map(|d| format!(" (run directory: {})", d.display()))
        .unwrap_or_default()
}
