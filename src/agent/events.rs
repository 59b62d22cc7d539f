//! [`RunEvent`]: everything that happens during a run, in one stream. The agents and the
//! orchestrator emit through an [`Emitter`], which broadcasts to subscribers and hands each
//! event to the run's [`EventLog`] (the run directory's `events.jsonl`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::supervisor::QuotaEvent;

/// What one agent is doing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentState {
    /// A model call is in progress.
    Thinking,
    /// Waiting for a quota permit on `scope`, blocked by `limit`, expected in `eta_ms`.
    WaitingQuota {
        /// The scope that blocks.
        scope: String,
        /// The blocking limit (`rpm`, `tpm`...), when known.
        limit: Option<String>,
        /// Expected wait in milliseconds.
        eta_ms: u64,
    },
    /// The agent's new answer was accepted under `label` (`agent2.1`).
    Answered {
        /// The answer's anonymous label.
        label: String,
    },
    /// The agent voted for `for_agent` (a real id).
    Voted {
        /// The agent voted for.
        for_agent: String,
    },
    /// New answers arrived: the agent runs again.
    Restarting,
    /// The agent failed and was retired from the run.
    Failed {
        /// Why.
        reason: String,
    },
    /// The agent won and is writing the final answer.
    Presenting,
    /// The run is over for this agent.
    Done,
}

/// One event of a run. Serialized with an `event` tag in snake case, one JSON object per line
/// in `events.jsonl` (with a `t_ms` field added: milliseconds since the run started).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run began.
    RunStarted {
        /// The question.
        question: String,
        /// Agent ids in config order.
        agents: Vec<String>,
        /// Whether calls go through the quota supervisor.
        rate_limit: bool,
        /// The run directory, when one is written.
        run_dir: Option<PathBuf>,
    },
    /// An agent changed state.
    AgentState {
        /// The agent.
        agent: String,
        /// Its new state.
        state: AgentState,
    },
    /// An agent's new answer was accepted.
    NewAnswer {
        /// The agent.
        agent: String,
        /// Its anonymous label (`agent2.1`).
        label: String,
        /// The first 120 characters of the answer, then `…` if it goes on.
        preview: String,
        /// Where the answer was written, when there is a run directory.
        path: Option<PathBuf>,
    },
    /// A vote was accepted.
    Vote {
        /// The voter.
        agent: String,
        /// The agent voted for (real id).
        for_agent: String,
        /// The voter's reason.
        reason: String,
    },
    /// Votes were thrown away: cleared by a new answer, or cast against stale answers.
    VotesDiscarded {
        /// The agents whose votes were discarded.
        agents: Vec<String>,
        /// `new_answer` or `stale`.
        reason: String,
    },
    /// Agents that had finished run again because new answers arrived.
    Restart {
        /// The restarted agents.
        agents: Vec<String>,
        /// The agent whose answer triggered the restart.
        trigger: String,
    },
    /// A quota event from the supervisor (nested under `quota`, which carries its own `event`
    /// tag: `{"event":"quota","quota":{"event":"waiting",...}}`).
    Quota {
        /// The supervisor's event.
        quota: QuotaEvent,
    },
    /// A turn (or one provider call within it) is tried again.
    TurnRetry {
        /// The agent.
        agent: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Why it failed.
        reason: String,
    },
    /// A pooled call was granted a model of its pool (the first attempt of the call).
    ModelSelected {
        /// The agent.
        agent: String,
        /// The pool.
        pool: String,
        /// The provider of the chosen model (as the limits file names it).
        provider: String,
        /// The chosen model.
        model: String,
    },
    /// A pooled call moved to another model after a rate limit, overload or failure.
    ModelRotated {
        /// The agent.
        agent: String,
        /// The pool.
        pool: String,
        /// `<provider>/<model>` it left.
        from: String,
        /// `<provider>/<model>` it moved to.
        to: String,
        /// Why (the error kind: `rate_limited`, `overloaded`, ...).
        reason: String,
    },
    /// No model of a pool could take a call at once: emitted as it starts waiting for the
    /// earliest freeing one (`eta_ms`: how long, as the supervisor knew then), or when none is
    /// capable (`eta_ms` absent; also absent for a wait whose end no limit can tell, such as a
    /// concurrency slot).
    NoModelAvailable {
        /// The agent.
        agent: String,
        /// The pool.
        pool: String,
        /// Milliseconds until a model frees, when known.
        eta_ms: Option<u64>,
    },
    /// An actor stopped unexpectedly (a panic, or its mailbox closed mid-request). For an
    /// agent the orchestrator retires it (an `agent_state` `failed` follows) and the run goes on
    /// with the others; a provider actor that panicked in a call was restarted, and that call's
    /// agent was told.
    ActorFailed {
        /// Which actor: `agent:<id>`, `provider:<name>` or `orchestrator`.
        actor: String,
        /// What happened, for the user (a panic's message is included).
        reason: String,
    },
    /// The winner was chosen.
    WinnerSelected {
        /// The winner.
        agent: String,
        /// Votes it received.
        votes: usize,
        /// `votes` or `latest_answer`.
        by: String,
    },
    /// The final answer is known.
    FinalAnswer {
        /// The agent whose answer it is.
        agent: String,
        /// Whether the winner presented it in a final call (otherwise its answer is used as is).
        presented: bool,
        /// Length in characters.
        chars: usize,
    },
    /// A call would have passed a spending limit (`rate_limit.budget`): it was not made, and
    /// the run ends with the best answer so far.
    BudgetExceeded {
        /// `run` or `day`.
        scope: String,
        /// The limit, in US dollars.
        limit_usd: f64,
        /// Spent against it so far, in US dollars.
        spent_usd: f64,
    },
    /// The run ended.
    RunFinished {
        /// `completed`, `timed_out`, `interrupted`, `budget_exceeded` or `failed`.
        status: String,
        /// The winner, if any.
        winner: Option<String>,
        /// How long the run took, in milliseconds.
        duration_ms: u64,
    },
}

/// Where a run records its events and answers (implemented by the run directory).
pub trait EventLog: Send + Sync {
    /// Records `event`, which happened `t` after the run started.
    fn record(&self, t: Duration, event: &RunEvent);
    /// Stores answer number `n` (1-based) of `agent`; returns where it went.
    fn answer(&self, agent: &str, n: u32, content: &str) -> Option<PathBuf>;
}

/// Sends events to subscribers and to the run's log. Cheap to clone.
#[derive(Clone)]
pub struct Emitter {
    tx: broadcast::Sender<RunEvent>,
    log: Option<Arc<dyn EventLog>>,
    start: Instant,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("logging", &self.log.is_some())
            .finish()
    }
}

impl Emitter {
    /// An emitter broadcasting on `tx` and recording to `log`; times count from now.
    pub fn new(tx: broadcast::Sender<RunEvent>, log: Option<Arc<dyn EventLog>>) -> Self {
        Self {
            tx,
            log,
            start: Instant::now(),
        }
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Emits `event`. Having no subscriber is fine.
    pub fn emit(&self, event: RunEvent) {
        if let Some(log) = &self.log {
            log.record(self.elapsed(), &event);
        }
        let _ = self.tx.send(event);
    }

    /// Emits an [`RunEvent::AgentState`].
    pub fn state(&self, agent: &str, state: AgentState) {
        self.emit(RunEvent::AgentState {
            agent: agent.to_owned(),
            state,
        });
    }

    /// Stores an answer in the log, if there is one.
    pub fn store_answer(&self, agent: &str, n: u32, content: &str) -> Option<PathBuf> {
        self.log.as_ref().and_then(|l| l.answer(agent, n, content))
    }
}
