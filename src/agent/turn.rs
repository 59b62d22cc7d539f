//! An agent's behaviour: prompt building, the provider call through `routing`, tool-call
//! parsing and the turn checks (up to three attempts per turn), and the final presentation.
//! The agent's actor ([`super::AgentActor`]) runs one of these at a time.

use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::board::{AnswerBoard, system_message, turn_message};
use super::checks::{Decision, check_turn};
use super::conversation::{Rejected, turn_messages, turn_tools};
use super::events::{AgentState, Emitter, RunEvent};
use super::{
    AgentSpec, CallStats, MAX_TURN_ATTEMPTS, MAX_TURN_PRIORITY, PRESENTATION_PRIORITY,
    PresentationBrief, TurnOutcome, TurnReport, voting_sensitivity,
};
use crate::provider::{ChatRequest, Message};
use crate::routing::{self, CallError, CallObserver};

/// A turn so far: the board the request that was sent was built from, the replies refused so
/// far, and the latest builds with their boards (routing may build again after a grant and,
/// when that grew past the permit too often, send the earlier build).
pub(crate) struct TurnState {
    pub(crate) board: Arc<AnswerBoard>,
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
    pub(crate) fn new(board: Arc<AnswerBoard>) -> Self {
        Self {
            board,
            rejected: Vec::new(),
            builds: std::collections::VecDeque::with_capacity(BUILDS_KEPT),
        }
    }

    pub(crate) fn built(&mut self, messages: &[Message], board: Arc<AnswerBoard>) {
        if self.builds.len() == BUILDS_KEPT {
            self.builds.pop_front();
        }
        self.builds
            .push_back((fingerprint(messages), Arc::clone(&board)));
        self.board = board;
    }

    /// Makes `board` the one `sent` was built from.
    pub(crate) fn sent(&mut self, sent: &ChatRequest) {
        let sent = fingerprint(&sent.messages);
        if let Some((_, board)) = self.builds.iter().rev().find(|(f, _)| *f == sent) {
            self.board = Arc::clone(board);
        }
    }
}

/// What an agent does, apart from its mailbox: the turn and the presentation. Owned by the
/// agent's actor (behind an `Rc`, on the actor's arbiter thread) and borrowed by the one future
/// of a turn or presentation in flight; the counters live here so a call counted before the
/// actor was stopped stays counted.
pub(crate) struct AgentWork {
    pub(crate) spec: AgentSpec,
    board: watch::Receiver<Arc<AnswerBoard>>,
    pub(crate) emitter: Emitter,
    stats: Cell<CallStats>,
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

impl AgentWork {
    pub(crate) fn new(
        spec: AgentSpec,
        board: watch::Receiver<Arc<AnswerBoard>>,
        emitter: Emitter,
    ) -> Self {
        Self {
            spec,
            board,
            emitter,
            stats: Cell::new(CallStats::default()),
        }
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> CallStats {
        self.stats.get()
    }

    /// The generation of the answers as they are now.
    pub(crate) fn generation(&self) -> u64 {
        self.board.borrow().generation
    }

    pub(crate) fn id(&self) -> &str {
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
        let mut stats = self.stats.get();
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
                // A provider actor that panicked was restarted; the run hears of it here,
                // from the caller it failed (the actor serves every run of the runtime).
                if let CallError::Provider { error, .. } = e {
                    if error.kind == crate::provider::ProviderErrorKind::Internal {
                        self.emitter.emit(RunEvent::ActorFailed {
                            actor: format!("provider:{}", self.spec.route.provider.name()),
                            reason: error.message.clone(),
                        });
                    }
                }
            }
        }
        self.stats.set(stats);
        if result
            .as_ref()
            .is_err_and(|e| e.budget_exceeded().is_some())
        {
            // The run's budget refused the call and stops the run (the refusal is the run's
            // stop signal): this agent is not failing, it waits to be stopped with the others
            // so its answers still count.
            std::future::pending::<()>().await;
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
    pub(crate) async fn turn(&self) -> TurnReport {
        let board = self.board.borrow().clone();
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
                        stats: self.stats(),
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
                        stats: self.stats(),
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
            stats: self.stats(),
        }
    }

    pub(crate) async fn present(&self, brief: &PresentationBrief) -> Result<String, String> {
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
