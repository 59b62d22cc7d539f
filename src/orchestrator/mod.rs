//! The MassGen coordination protocol: answers, votes, restarts, the winner and the final
//! presentation, one coordinator per run.
//!
//! Every live agent without a standing vote is given a turn. A new answer bumps the board's
//! generation, clears every vote and so sends the voters back to work; a vote made against an
//! older generation than the current one is discarded and its author runs again. The run is
//! done when every live agent has a standing vote (or when the orchestrator timeout expires).

mod records;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;

pub use records::{AgentStats, AnswerRecord, FinalAgentState, RunStatus, VoteRecord};

use crate::agent::board::{AnonIds, AnswerBoard, AnswerEntry};
use crate::agent::checks::Decision;
use crate::agent::events::{AgentState, Emitter, RunEvent};
use crate::agent::{AgentHandle, AgentSpec, PresentationBrief, TurnOutcome, TurnReport};
use crate::config::OrchestratorConfig;

/// Characters of an answer shown in [`RunEvent::NewAnswer`].
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

struct Slot {
    handle: AgentHandle,
    live: bool,
    running: bool,
    vote: Option<(String, String)>,
    answers: u32,
    failure: Option<(String, bool)>,
}

struct State {
    slots: Vec<Slot>,
    board: AnswerBoard,
    board_tx: watch::Sender<Arc<AnswerBoard>>,
    records: Vec<AnswerRecord>,
    emitter: Emitter,
}

/// Runs the protocol for `specs` (config order) on `question`, stopping at `timeout`, or as soon
/// as `stop` completes (then the winner is picked from what exists, with no presentation).
pub async fn coordinate(
    specs: Vec<AgentSpec>,
    config: &OrchestratorConfig,
    timeout: Duration,
    emitter: Emitter,
    stop: impl Future<Output = ()>,
) -> Coordination {
    let started = tokio::time::Instant::now();
    let ids: Vec<String> = specs.iter().map(|s| s.config.id.clone()).collect();
    let board = AnswerBoard::new(Arc::new(AnonIds::new(&ids)));
    let (board_tx, board_rx) = watch::channel(Arc::new(board.clone()));
    let slots = specs
        .into_iter()
        .map(|spec| Slot {
            handle: AgentHandle::spawn(spec, board_rx.clone(), emitter.clone()),
            live: true,
            running: false,
            vote: None,
            answers: 0,
            failure: None,
        })
        .collect();
    let mut state = State {
        slots,
        board,
        board_tx,
        records: Vec::new(),
        emitter,
    };
    let deadline = crate::quota::time::tokio_instant_after(started, timeout);
    // One stop for the whole run: the rounds, then the presentation.
    let stop = stop.fuse();
    tokio::pin!(stop);
    let mut status = tokio::select! {
        rounds = tokio::time::timeout_at(deadline, state.run_rounds()) => match rounds {
            Ok(()) => RunStatus::Completed,
            Err(_) => RunStatus::TimedOut,
        },
        () = &mut stop => RunStatus::Interrupted,
    };
    let finished = status == RunStatus::Completed;
    let mut notes = Vec::new();
    if !finished {
        for slot in &state.slots {
            slot.handle.stop();
        }
        notes.push(match status {
            RunStatus::Interrupted => "the run was interrupted: the winner was picked from the \
                votes and answers that existed then, without a final presentation"
                .to_owned(),
            _ => format!(
                "orchestrator timeout of {timeout:.0?} expired: the winner was picked from the \
                 votes and answers that existed then"
            ),
        });
    }
    let (winner, by, votes) = state.pick_winner();
    let mut final_answer = None;
    if let Some(w) = &winner {
        state.emitter.emit(RunEvent::WinnerSelected {
            agent: ids[*w].clone(),
            votes,
            by: by.to_owned(),
        });
        let presentation = if finished && !config.skip_final_presentation {
            let presented = tokio::select! {
                p = state.present(*w, deadline, &mut notes) => Some(p),
                () = &mut stop => None,
            };
            presented.unwrap_or_else(|| {
                for slot in &state.slots {
                    slot.handle.stop();
                }
                status = RunStatus::Interrupted;
                notes.push(
                    "the run was interrupted during the final presentation: the winner's \
                     latest answer is the final answer"
                        .to_owned(),
                );
                None
            })
        } else {
            None
        };
        let presented = presentation.is_some();
        let text = presentation.or_else(|| state.latest_answer_of(&ids[*w]));
        if let Some(text) = &text {
            state.emitter.emit(RunEvent::FinalAnswer {
                agent: ids[*w].clone(),
                presented,
                chars: text.chars().count(),
            });
        }
        final_answer = text;
    }
    state.finish(status, winner.map(|w| ids[w].clone()), final_answer, notes)
}

impl State {
    /// Gives turns until every live agent has a standing vote (or none is live).
    async fn run_rounds(&mut self) {
        let mut pending = FuturesUnordered::new();
        loop {
            for (i, slot) in self.slots.iter_mut().enumerate() {
                if slot.live && !slot.running && slot.vote.is_none() {
                    slot.running = true;
                    let rx = slot.handle.turn();
                    pending.push(async move { (i, rx.await) });
                }
            }
            let Some((i, report)) = pending.next().await else {
                return;
            };
            self.slots[i].running = false;
            match report {
                Ok(report) => self.apply(i, report),
                Err(_) => self.retire(i, "the agent stopped unexpectedly".to_owned(), false),
            }
        }
    }

    fn id(&self, i: usize) -> String {
        self.slots[i].handle.id().to_owned()
    }

    fn apply(&mut self, i: usize, report: TurnReport) {
        match report.outcome {
            TurnOutcome::Decided(Decision::Answer(content)) => self.accept_answer(i, content),
            TurnOutcome::Decided(Decision::Vote { for_agent, reason }) => {
                if report.generation != self.board.generation {
                    self.emitter.emit(RunEvent::VotesDiscarded {
                        agents: vec![self.id(i)],
                        reason: "stale".to_owned(),
                    });
                    self.emitter.state(&self.id(i), AgentState::Restarting);
                    return;
                }
                self.emitter.emit(RunEvent::Vote {
                    agent: self.id(i),
                    for_agent: for_agent.clone(),
                    reason: reason.clone(),
                });
                self.emitter.state(
                    &self.id(i),
                    AgentState::Voted {
                        for_agent: for_agent.clone(),
                    },
                );
                self.slots[i].vote = Some((for_agent, reason));
            }
            TurnOutcome::Failed {
                reason,
                quota_deadline,
            } => self.retire(i, reason, quota_deadline),
        }
    }

    fn accept_answer(&mut self, i: usize, content: String) {
        let agent = self.id(i);
        let slot = &mut self.slots[i];
        slot.answers += 1;
        let revision = slot.answers;
        let anon = self.board.ids.anon(&agent).unwrap_or("agent?").to_owned();
        let label = format!("{anon}.{revision}");
        let path = self.emitter.store_answer(&agent, revision, &content);
        self.board.generation += 1;
        self.board.answers.push(AnswerEntry {
            agent: agent.clone(),
            anon,
            label: label.clone(),
            revision,
            content: content.clone(),
        });
        self.board_tx.send_replace(Arc::new(self.board.clone()));
        self.records.push(AnswerRecord {
            agent: agent.clone(),
            label: label.clone(),
            content: content.clone(),
            t_ms: u64::try_from(self.emitter.elapsed().as_millis()).unwrap_or(u64::MAX),
            path: path.clone(),
        });
        self.emitter.emit(RunEvent::NewAnswer {
            agent: agent.clone(),
            label: label.clone(),
            preview: content.chars().take(PREVIEW_CHARS).collect(),
            path,
        });
        self.emitter.state(&agent, AgentState::Answered { label });
        let voters: Vec<String> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.vote.take().map(|_| s.handle.id().to_owned()))
            .collect();
        if !voters.is_empty() {
            self.emitter.emit(RunEvent::VotesDiscarded {
                agents: voters.clone(),
                reason: "new_answer".to_owned(),
            });
            for v in &voters {
                self.emitter.state(v, AgentState::Restarting);
            }
            self.emitter.emit(RunEvent::Restart {
                agents: voters,
                trigger: agent,
            });
        }
    }

    fn retire(&mut self, i: usize, reason: String, quota_deadline: bool) {
        let slot = &mut self.slots[i];
        slot.live = false;
        slot.vote = None;
        slot.failure = Some((reason.clone(), quota_deadline));
        self.emitter
            .state(&self.id(i), AgentState::Failed { reason });
    }

    /// The winner's slot, how it was chosen, and its vote count.
    fn pick_winner(&self) -> (Option<usize>, &'static str, usize) {
        let mut counts = vec![0usize; self.slots.len()];
        for slot in &self.slots {
            if let Some((target, _)) = &slot.vote {
                if let Some(t) = self.slots.iter().position(|s| s.handle.id() == target) {
                    counts[t] += 1;
                }
            }
        }
        // Most votes; ties go to the earlier agent in config order.
        let best = counts
            .iter()
            .enumerate()
            .fold(None, |best: Option<(usize, usize)>, (i, &c)| match best {
                Some((_, bc)) if bc >= c => best,
                _ if c > 0 => Some((i, c)),
                _ => best,
            });
        if let Some((i, c)) = best {
            return (Some(i), "votes", c);
        }
        let latest = self
            .board
            .answers
            .last()
            .and_then(|a| self.slots.iter().position(|s| s.handle.id() == a.agent));
        (latest, "latest_answer", 0)
    }

    fn latest_answer_of(&self, agent: &str) -> Option<String> {
        self.board.own(agent).last().map(|a| a.content.clone())
    }

    async fn present(
        &mut self,
        w: usize,
        deadline: tokio::time::Instant,
        notes: &mut Vec<String>,
    ) -> Option<String> {
        let ids = &self.board.ids;
        let anon = |real: &str| ids.anon(real).unwrap_or(real).to_owned();
        let votes = self
            .slots
            .iter()
            .filter_map(|s| {
                let (target, reason) = s.vote.as_ref()?;
                Some((anon(s.handle.id()), anon(target), reason.clone()))
            })
            .collect();
        let slot = &self.slots[w];
        if !slot.live {
            notes.push(format!(
                "{} failed before presenting: its latest answer is used as is",
                slot.handle.id()
            ));
            return None;
        }
        let rx = slot.handle.present(PresentationBrief { votes });
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(text))) => Some(text),
            Ok(Ok(Err(reason))) => {
                notes.push(format!(
                    "the final presentation failed ({reason}): the winner's latest answer is used as is"
                ));
                None
            }
            Ok(Err(_)) => {
                notes.push("the final presentation was cut short: the winner's latest answer is used as is".to_owned());
                None
            }
            Err(_) => {
                slot.handle.stop();
                notes.push(
                    "the orchestrator timeout expired during the final presentation: the \
                     winner's latest answer is used as is"
                        .to_owned(),
                );
                None
            }
        }
    }

    fn finish(
        self,
        status: RunStatus,
        winner: Option<String>,
        final_answer: Option<String>,
        notes: Vec<String>,
    ) -> Coordination {
        let mut agents = Vec::new();
        let mut votes = Vec::new();
        let mut failures = Vec::new();
        for slot in &self.slots {
            slot.handle.stop();
            let id = slot.handle.id().to_owned();
            let stats = slot.handle.stats();
            let state = match (&slot.failure, &slot.vote, slot.answers) {
                (Some(_), _, _) => FinalAgentState::Failed,
                (None, Some(_), _) => FinalAgentState::Voted,
                (None, None, n) if n > 0 => FinalAgentState::Answered,
                _ => FinalAgentState::Working,
            };
            if let Some((target, reason)) = &slot.vote {
                votes.push(VoteRecord {
                    agent: id.clone(),
                    for_agent: target.clone(),
                    reason: reason.clone(),
                });
            }
            if let Some((reason, quota)) = &slot.failure {
                failures.push((id.clone(), reason.clone(), *quota));
            }
            if slot.live {
                self.emitter.state(&id, AgentState::Done);
            }
            agents.push(AgentStats {
                id,
                calls: stats.calls,
                input_tokens: stats.input_tokens,
                output_tokens: stats.output_tokens,
                quota_wait: stats.quota_wait,
                answers: slot.answers,
                state,
                failure: slot.failure.as_ref().map(|(r, _)| r.clone()),
            });
        }
        Coordination {
            status,
            winner,
            final_answer,
            votes,
            answers: self.records,
            agents,
            notes,
            failures,
        }
    }
}
