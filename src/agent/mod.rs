//! One actor per team member: builds prompts, calls its model through `routing`, parses tool
//! calls and applies the turn checks (up to three attempts per turn).
//!
//! [`AgentActor`] is an actix actor started on a worker arbiter of the runtime's
//! [`ActorSystem`](crate::system::ActorSystem) (agents spread over one arbiter per core). Its
//! messages: [`Turn`] -> [`TurnReport`], [`Present`] -> `Result<String, String>`, [`Stop`] and
//! [`Stats`] -> [`CallStats`]. A turn or presentation runs as a future of the actor's context,
//! so the mailbox stays open while the call is out: `Stop` cancels it at once. What an agent
//! does lives in `turn` (the actor only schedules it).

mod actor;
pub mod board;
pub mod checks;
pub mod conversation;
pub mod events;
pub mod model_moves;
mod turn;

use std::sync::Arc;
use std::time::Duration;

pub use self::actor::{AgentActor, Present, Stats, Stop, Turn};
use self::checks::Decision;
use crate::config::{AgentConfig, OrchestratorConfig};
use crate::routing::Route;

/// Attempts per turn before the agent is retired.
pub const MAX_TURN_ATTEMPTS: u32 = 3;

/// Quota priority of the final presentation: the supervisor's top level (0..=9). Exploration
/// turns use the agent's priority capped at [`MAX_TURN_PRIORITY`], so the presentation is
/// always served before exploration turns waiting on the same quota.
pub const PRESENTATION_PRIORITY: u8 = 9;

/// The highest quota priority an exploration turn uses.
pub const MAX_TURN_PRIORITY: u8 = PRESENTATION_PRIORITY - 1;

/// Counters of one agent's calls. Every [`TurnReport`] carries them, and [`Stop`] and [`Stats`]
/// answer with them, so the orchestrator has them even for an agent stopped mid-call (a call
/// cut short by the stop is not counted: it never returned).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallStats {
    /// Provider calls made (failed ones included).
    pub calls: u32,
    /// Prompt tokens reported.
    pub input_tokens: u64,
    /// Completion tokens reported.
    pub output_tokens: u64,
    /// Time spent waiting for quota permits.
    pub quota_wait: Duration,
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    /// A valid decision.
    Decided(Decision),
    /// The agent failed (provider error, or three failed checks): retire it.
    Failed {
        /// Why, for the user.
        reason: String,
        /// Whether a quota deadline stopped it.
        quota_deadline: bool,
    },
}

/// The answer to a turn request.
#[derive(Debug, Clone)]
pub struct TurnReport {
    /// The board generation the decision was made against.
    pub generation: u64,
    /// What happened.
    pub outcome: TurnOutcome,
    /// The agent's counters after this turn (every turn so far).
    pub stats: CallStats,
}

/// What the winner needs to present the final answer.
#[derive(Debug, Clone)]
pub struct PresentationBrief {
    /// Each vote as `(voter anonymous id, voted-for anonymous id, reason)`.
    pub votes: Vec<(String, String, String)>,
}

/// Everything an agent actor needs.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// The agent's configuration.
    pub config: AgentConfig,
    /// How its calls are made.
    pub route: Route,
    /// The protocol settings (checks and prompt wording).
    pub orchestrator: OrchestratorConfig,
    /// The question.
    pub question: Arc<str>,
}

#[cfg(test)]
mod tests;

/// The bar an agent votes by: its own `voting_sensitivity` (MassGen lets an agent set one), else
/// the orchestrator's.
pub fn voting_sensitivity(
    agent: &AgentConfig,
    orchestrator: &OrchestratorConfig,
) -> crate::config::VotingSensitivity {
    agent
        .voting_sensitivity
        .unwrap_or(orchestrator.voting_sensitivity)
}
