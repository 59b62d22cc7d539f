//! The MassGen coordination protocol: answers, votes, restarts, the winner and the final
//! presentation, one coordinator per run.
//!
//! Every live agent without a standing vote is given a turn. A new answer bumps the board's
//! generation, clears every vote and so sends the voters back to work; a vote made against an
//! older generation than the current one is discarded and its author runs again. The run is
//! done when every live agent has a standing vote (or when the orchestrator timeout expires).
//!
//! The coordinator is the actix actor [`Orchestrator`], one per run on a worker arbiter of the
//! runtime's [`ActorSystem`]; it owns the protocol state (board, answers, votes, restarts,
//! winner), sends [`Turn`](crate::agent::Turn) to the agents and handles their reports as they
//! arrive. [`coordinate`] is the async entry point: it starts the actor and the agents, turns
//! the caller's `stop` future into an [`Interrupt`] and awaits the [`Coordination`].

mod actor;
mod protocol;
mod records;

use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt;

pub use actor::{Interrupt, Orchestrator};
pub use records::{AgentStats, AnswerRecord, FinalAgentState, RunStatus, VoteRecord};

use crate::agent::AgentSpec;
use crate::agent::events::{Emitter, RunEvent};
use crate::config::OrchestratorConfig;
use crate::system::ActorSystem;

/// Characters of an answer shown in [`RunEvent::NewAnswer`] (then `…` if it goes on).
const PREVIEW_CHARS: usize = 120;

/// What the coordination produced (the runtime turns it into an outcome or an error).
#[derive(Debug, Clone)]
pub struct Coordination {
    /// Completed or timed out.
    pub status: RunStatus,
    /// The winner, when any answer exists.
    pub winner: Option<String>,
    /// The final answer, when any answer exists.
    pub final_answer: Option<String>,
    /// Votes standing at the end.
    pub votes: Vec<VoteRecord>,
    /// Every accepted answer, oldest first.
    pub answers: Vec<AnswerRecord>,
    /// Per agent, in config order.
    pub agents: Vec<AgentStats>,
    /// Things the user should know (timeouts, fallbacks).
    pub notes: Vec<String>,
    /// `(agent, reason, stopped by a quota deadline)` for every retired agent.
    pub failures: Vec<(String, String, bool)>,
}

/// Runs the protocol for `specs` (config order) on `question`, with every actor on `system`,
/// stopping at `timeout`, or as soon as `stop` completes (then the winner is picked from what
/// exists, with no presentation). `stop` stays in the caller's task; dropping the returned
/// future abandons the run (the agents are stopped, their calls cancelled).
pub async fn coordinate(
    system: &ActorSystem,
    specs: Vec<AgentSpec>,
    config: &OrchestratorConfig,
    timeout: Duration,
    emitter: Emitter,
    stop: impl Future<Output = ()>,
) -> Coordination {
    let ids: Vec<String> = specs.iter().map(|s| s.config.id.clone()).collect();
    let (addr, mut done) = Orchestrator::start(system, specs, config, timeout, emitter.clone());
    let mut guard = actor::AbandonOnDrop::new(addr);
    let stop = stop.fuse();
    tokio::pin!(stop);
    let result = tokio::select! {
        c = &mut done => c,
        () = &mut stop => {
            guard.interrupt();
            done.await
        }
    };
    guard.disarm();
    result.unwrap_or_else(|_| orchestrator_lost(&ids, &emitter))
}

/// The result when the orchestrator itself failed (it panicked, or its arbiter stopped): every
/// agent is reported failed with the reason, so the run ends with an error instead of a hang.
fn orchestrator_lost(ids: &[String], emitter: &Emitter) -> Coordination {
    let reason = "the orchestrator stopped unexpectedly".to_owned();
    emitter.emit(RunEvent::ActorFailed {
        actor: "orchestrator".to_owned(),
        reason: reason.clone(),
    });
    Coordination {
        status: RunStatus::Completed,
        winner: None,
        final_answer: None,
        votes: Vec::new(),
        answers: Vec::new(),
        agents: ids
            .iter()
            .map(|id| AgentStats {
                id: id.clone(),
                calls: 0,
                input_tokens: 0,
                output_tokens: 0,
                quota_wait: Duration::ZERO,
                answers: 0,
                state: FinalAgentState::Failed,
                failure: Some(reason.clone()),
            })
            .collect(),
        notes: Vec::new(),
        failures: ids
            .iter()
            .map(|id| (id.clone(), reason.clone(), false))
            .collect(),
    }
}

#[cfg(test)]
mod tests;
