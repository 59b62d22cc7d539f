//! One actor per team member: builds prompts, calls its model through `routing`, parses tool
//! calls and applies the turn checks (up to three attempts per turn).
//!
//! The actor is a tokio task that owns the agent's behaviour and is reached through an
//! [`AgentHandle`] (an mpsc mailbox; each request carries a oneshot for the reply), in the style
//! of "Actors with Tokio": it runs inside whatever tokio runtime the embedding app uses.

pub mod board;
pub mod checks;
pub mod conversation;
pub mod events;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use self::board::{AnswerBoard, system_message, turn_message};
use self::checks::{Decision, check_turn};
use self::conversation::{Rejected, turn_messages, turn_tools};
use self::events::{AgentState, Emitter, RunEvent};
use crate::config::{AgentConfig, OrchestratorConfig};
use crate::provider::{ChatRequest, Message};
use crate::routing::{self, CallError, CallObserver, Route};

/// Attempts per turn before the agent is retired.
pub const MAX_TURN_ATTEMPTS: u32 = 3;

/// Quota priority of the final presentation: the supervisor's top level (0..=9). Exploration
/// turns use the agent's priority capped at [`MAX_TURN_PRIORITY`], so the presentation is
/// always served before exploration turns waiting on the same quota.
pub const PRESENTATION_PRIORITY: u8 = 9;

/// The highest quota priority an exploration turn uses.
pub const MAX_TURN_PRIORITY: u8 = PRESENTATION_PRIORITY - 1;

/// Counters of one agent's calls, shared with the orchestrator (readable after the run even if
/// the actor was stopped mid-call).
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
}

/// What the winner needs to present the final answer.
#[derive(Debug, Clone)]
pub struct PresentationBrief {
    /// Each vote as `(voter anonymous id, voted-for anonymous id, reason)`.
    pub votes: Vec<(String, String, String)>,
}

enum AgentMsg {
    Turn {
        reply: oneshot::Sender<TurnReport>,
    },
    Present {
        brief: PresentationBrief,
        reply: oneshot::Sender<Result<String, String>>,
    },
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

/// The address of a running agent actor. Dropping it stops the actor after its current
/// request; [`AgentHandle::stop`] stops it at once.
#[derive(Debug)]
pub struct AgentHandle {
    id: String,
    tx: mpsc::Sender<AgentMsg>,
    task: JoinHandle<()>,
    stats: Arc<Mutex<CallStats>>,
}

impl AgentHandle {
    /// Starts the actor on the current tokio runtime.
    pub fn spawn(
        spec: AgentSpec,
        board: watch::Receiver<Arc<AnswerBoard>>,
        emitter: Emitter,
    ) -> Self {
        let (tx, rx) = mpsc::channel(4);
        let stats = Arc::new(Mutex::new(CallStats::default()));
        let id = spec.config.id.clone();
        let actor = AgentActor {
            spec,
            board,
            emitter,
            stats: stats.clone(),
        };
        let task = tokio::spawn(actor.run(rx));
        Self {
            id,
            tx,
            task,
            stats,
        }
    }

    /// The agent's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Asks for one turn; the receiver yields the report (or an error if the actor stopped).
    pub fn turn(&self) -> oneshot::Receiver<TurnReport> {
        let (reply, rx) = oneshot::channel();
        // The mailbox holds 4 and the orchestrator never has more than one request out per
        // agent; a closed actor drops `reply`, which the receiver sees as an error.
        let _ = self.tx.try_send(AgentMsg::Turn { reply });
        rx
    }

    /// Asks the agent to present the final answer.
    pub fn present(&self, brief: PresentationBrief) -> oneshot::Receiver<Result<String, String>> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.try_send(AgentMsg::Present { brief, reply });
        rx
    }

    /// The agent's call counters so far.
    pub fn stats(&self) -> CallStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the actor now, cancelling any call in flight (its quota permit settles on drop).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A turn so far: the board the request that was sent was built from, the replies refused so
/// far, and the latest builds with their boards (routing may build again after a grant and,
/// when that grew past the permit too often, send the earlier build).
struct TurnState {
    board: Arc<AnswerBoard>,
    rejected: Vec<Rejected>,
    builds: std::collections::VecDeque<(u64, Arc<AnswerBoard>)>,
}

/// A fingerprint of a conversation, to tell which of a turn's builds was sent.
fn fingerprint(messages: &[Message]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for m in messages {
        m.content.hash(&mut h);
        m.tool_calls.len().hash(&mut h);
        for c in &m.tool_calls {
            c.id.hash(&mut h);
            c.raw_arguments.hash(&mut h);
        }
    }
    h.finish()
}

/// Builds remembered per turn: the one routing may fall back to and the latest.
const BUILDS_KEPT: usize = 2;

impl TurnState {
    fn new(board: Arc<AnswerBoard>) -> Self {
        Self {
            board,
            rejected: Vec::new(),
            builds: std::collections::VecDeque::with_capacity(BUILDS_KEPT),
        }
    }

    fn built(&mut self, messages: &[Message], board: Arc<AnswerBoard>) {
        if self.builds.len() == BUILDS_KEPT {
            self.builds.pop_front();
        }
        self.builds
            .push_back((fingerprint(messages), Arc::clone(&board)));
        self.board = board;
    }

    /// Makes `board` the one `sent` was built from.
    fn sent(&mut self, sent: &ChatRequest) {
        let sent = fingerprint(&sent.messages);
        if let Some((_, board)) = self.builds.iter().rev().find(|(f, _)| *f == sent) {
            self.board = Arc::clone(board);
        }
    }
}

struct AgentActor {
    spec: AgentSpec,
    board: watch::Receiver<Arc<AnswerBoard>>,
    emitter: Emitter,
    stats: Arc<Mutex<CallStats>>,
}

struct RetryEvents<'a> {
    emitter: &'a Emitter,
    agent: &'a str,
}

impl CallObserver for RetryEvents<'_> {
    fn retrying(&self, attempt: u32, reason: &str, delay: Duration) {
        self.emitter.emit(RunEvent::TurnRetry {
            agent: self.agent.to_owned(),
            attempt,
            reason: if delay.is_zero() {
                format!("provider call failed: {reason}; retrying now")
            } else {
                format!(
                    "provider call failed: {reason}; retrying in {:.1}s",
                    delay.as_secs_f64()
                )
            },
        });
    }
}

impl AgentActor {
    async fn run(mut self, mut rx: mpsc::Receiver<AgentMsg>) {
        let mut turns: u32 = 0;
        while let Some(msg) = rx.recv().await {
            match msg {
                AgentMsg::Turn { reply } => {
                    turns += 1;
                    let span = crate::telemetry::spans::agent_turn(self.id(), turns);
                    let report = self.turn().instrument(span.clone()).await;
                    span.record(
                        "outcome",
                        match &report.outcome {
                            TurnOutcome::Decided(Decision::Answer(_)) => "answer",
                            TurnOutcome::Decided(_) => "vote",
                            TurnOutcome::Failed { .. } => "failed",
                        },
                    );
                    let _ = reply.send(report);
                }
                AgentMsg::Present { brief, reply } => {
                    let result = self.present(&brief).await;
                    let _ = reply.send(result);
                }
            }
        }
    }

    fn id(&self) -> &str {
        &self.spec.config.id
    }

    fn request(
        &self,
        messages: Vec<Message>,
        tools: Vec<crate::provider::ToolSpec>,
    ) -> ChatRequest {
        let backend = &self.spec.config.backend;
        ChatRequest {
            model: backend.model.clone(),
            messages,
            tools,
            temperature: backend.temperature,
            max_tokens: backend.max_tokens,
            stream: false,
            options: backend.options.clone(),
        }
    }

    async fn call<F>(
        &self,
        build: F,
        priority: u8,
    ) -> Result<(crate::provider::ChatResponse, ChatRequest), CallError>
    where
        F: Fn() -> ChatRequest,
    {
        let observer = RetryEvents {
            emitter: &self.emitter,
            agent: self.id(),
        };
        let result = routing::call(&self.spec.route, build, None, priority, &observer).await;
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(report) => {
                stats.calls += report.calls;
                stats.input_tokens = stats.input_tokens.saturating_add(report.usage.input_tokens);
                stats.output_tokens = stats
                    .output_tokens
                    .saturating_add(report.usage.output_tokens);
                stats.quota_wait += report.quota_wait;
            }
            Err(e) => {
                stats.calls += e.calls();
                stats.quota_wait += e.quota_wait();
            }
        }
        result.map(|r| (r.response, r.sent))
    }

    /// The next request of a turn, built from the board as it is now (routing calls this again
    /// once the quota permit is granted, so a request that waited shows the answers that
    /// arrived meanwhile): the question with the current answers, then the refused replies.
    /// Turns are not streamed, so no request is ever in flight when answers arrive and no
    /// UPDATE message is needed.
    fn turn_request(&self, system: &Message, state: &Mutex<TurnState>) -> ChatRequest {
        let latest = self.board.borrow().clone();
        let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
        let messages = turn_messages(system, &self.spec.question, &latest, &st.rejected);
        let tools = turn_tools(
            &latest,
            self.id(),
            &self.spec.orchestrator,
            !st.rejected.is_empty(),
        );
        st.built(&messages, latest);
        self.request(messages, tools)
    }

    /// One turn, from a fresh context (a restarted agent starts over, as in MassGen).
    async fn turn(&mut self) -> TurnReport {
        let board = self.board.borrow_and_update().clone();
        let system = system_message(
            self.spec.config.system_message.as_deref(),
            voting_sensitivity(&self.spec.config, &self.spec.orchestrator),
        );
        let state = Mutex::new(TurnState::new(board));
        let priority = self.spec.config.priority.min(MAX_TURN_PRIORITY);
        let mut last_feedback = String::new();
        for attempt in 1..=MAX_TURN_ATTEMPTS {
            self.emitter.state(self.id(), AgentState::Thinking);
            let result = self
                .call(|| self.turn_request(&system, &state), priority)
                .await;
            let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Ok((_, sent)) = &result {
                st.sent(sent);
            }
            let generation = st.board.generation;
            let response = match result {
                Ok((r, _)) => r,
                Err(e) => {
                    return TurnReport {
                        generation,
                        outcome: TurnOutcome::Failed {
                            reason: e.to_string(),
                            quota_deadline: e.is_quota_deadline(),
                        },
                    };
                }
            };
            let checked = check_turn(&response, &st.board, self.id(), &self.spec.orchestrator);
            // An answer is also checked against answers that arrived while the call was out:
            // one repeating them would only restart everyone. (A vote stands on the answers it
            // saw; the orchestrator discards it if they changed.)
            let latest = self.board.borrow().clone();
            let (checked, generation) = match checked {
                Ok(Decision::Answer(_)) if latest.generation != generation => (
                    check_turn(&response, &latest, self.id(), &self.spec.orchestrator),
                    latest.generation,
                ),
                other => (other, generation),
            };
            match checked {
                Ok(decision) => {
                    return TurnReport {
                        generation,
                        outcome: TurnOutcome::Decided(decision),
                    };
                }
                Err(rejection) => {
                    let feedback = rejection.to_string();
                    if attempt < MAX_TURN_ATTEMPTS {
                        self.emitter.emit(RunEvent::TurnRetry {
                            agent: self.id().to_owned(),
                            attempt,
                            reason: feedback.clone(),
                        });
                        st.rejected
                            .push(Rejected::new(&response, rejection, generation));
                    }
                    last_feedback = feedback;
                }
            }
        }
        let generation = state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .board
            .generation;
        TurnReport {
            generation,
            outcome: TurnOutcome::Failed {
                reason: format!(
                    "no valid turn after {MAX_TURN_ATTEMPTS} attempts: {last_feedback}"
                ),
                quota_deadline: false,
            },
        }
    }

    async fn present(&mut self, brief: &PresentationBrief) -> Result<String, String> {
        self.emitter.state(self.id(), AgentState::Presenting);
        let mut votes = String::new();
        for (voter, target, reason) in &brief.votes {
            votes.push_str(&format!("- {voter} voted for {target}: {reason}\n"));
        }
        if votes.is_empty() {
            votes.push_str("(no votes)\n");
        }
        let own = self.spec.config.system_message.as_deref();
        let mut system = own.map(|s| format!("{s}\n\n")).unwrap_or_default();
        system.push_str(
            "Your answer was chosen by the team. Present the final answer to the ORIGINAL \
             MESSAGE: use the best parts of every answer and the voters' reasons. Write the \
             answer itself; do not call tools.",
        );
        // Built when sent, like every call, from the answers as they are then.
        let build = || {
            let board = self.board.borrow().clone();
            let user = format!(
                "{}\n\n<VOTES>\n{votes}<END OF VOTES>",
                turn_message(&self.spec.question, &board).content
            );
            self.request(
                vec![Message::system(system.clone()), Message::user(user)],
                Vec::new(),
            )
        };
        let (response, _) = self
            .call(build, PRESENTATION_PRIORITY)
            .await
            .map_err(|e| e.to_string())?;
        let text = response.text.trim();
        if text.is_empty() {
            return Err("the presentation came back empty".to_owned());
        }
        Ok(text.to_owned())
    }
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
