//! The protocol's rules, apart from scheduling: a turn's report applied to the board and the
//! votes, retirement, the winner, the presentation brief and the final record.

use std::sync::Arc;

use actix::{Addr, SpawnHandle};
use tokio::sync::watch;

use super::{
    AgentStats, AnswerRecord, Coordination, FinalAgentState, PREVIEW_CHARS, RunStatus, VoteRecord,
};
use crate::agent::board::{AnswerBoard, AnswerEntry};
use crate::agent::checks::Decision;
use crate::agent::events::{AgentState, Emitter, RunEvent};
use crate::agent::{AgentActor, CallStats, PresentationBrief, TurnOutcome, TurnReport};

/// One team member as the orchestrator sees it.
pub(super) struct Slot {
    pub(super) id: String,
    pub(super) addr: Addr<AgentActor>,
    pub(super) live: bool,
    /// The turn in flight: the future that handles its report.
    pub(super) running: Option<SpawnHandle>,
    pub(super) vote: Option<(String, String)>,
    pub(super) answers: u32,
    pub(super) failure: Option<(String, bool)>,
    /// The agent's counters as last reported (turn reports, then its reply to `Stop`).
    pub(super) stats: CallStats,
    /// `Stop` was sent.
    pub(super) stopped: bool,
}

impl Slot {
    pub(super) fn new(id: String, addr: Addr<AgentActor>) -> Self {
        Self {
            id,
            addr,
            live: true,
            running: None,
            vote: None,
            answers: 0,
            failure: None,
            stats: CallStats::default(),
            stopped: false,
        }
    }
}

/// The run's protocol state, owned by the orchestrator actor.
pub(super) struct State {
    pub(super) slots: Vec<Slot>,
    pub(super) board: AnswerBoard,
    pub(super) board_tx: watch::Sender<Arc<AnswerBoard>>,
    pub(super) records: Vec<AnswerRecord>,
    pub(super) emitter: Emitter,
}

impl State {
    pub(super) fn id(&self, i: usize) -> String {
        self.slots[i].id.clone()
    }

    pub(super) fn apply(&mut self, i: usize, report: TurnReport) {
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
            preview: preview(&content),
            path,
        });
        self.emitter.state(&agent, AgentState::Answered { label });
        let voters: Vec<String> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.vote.take().map(|_| s.id.clone()))
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

    pub(super) fn retire(&mut self, i: usize, reason: String, quota_deadline: bool) {
        let slot = &mut self.slots[i];
        slot.live = false;
        slot.vote = None;
        slot.failure = Some((reason.clone(), quota_deadline));
        self.emitter
            .state(&self.id(i), AgentState::Failed { reason });
    }

    /// The winner's slot, how it was chosen, and its vote count.
    pub(super) fn pick_winner(&self) -> (Option<usize>, &'static str, usize) {
        let mut counts = vec![0usize; self.slots.len()];
        for slot in &self.slots {
            if let Some((target, _)) = &slot.vote {
                if let Some(t) = self.slots.iter().position(|s| s.id == *target) {
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
            .and_then(|a| self.slots.iter().position(|s| s.id == a.agent));
        (latest, "latest_answer", 0)
    }

    pub(super) fn latest_answer_of(&self, agent: &str) -> Option<String> {
        self.board.own(agent).last().map(|a| a.content.clone())
    }

    /// What the winner is told: every standing vote, under anonymous ids.
    pub(super) fn brief(&self) -> PresentationBrief {
        let ids = &self.board.ids;
        let anon = |real: &str| ids.anon(real).unwrap_or(real).to_owned();
        let votes = self
            .slots
            .iter()
            .filter_map(|s| {
                let (target, reason) = s.vote.as_ref()?;
                Some((anon(&s.id), anon(target), reason.clone()))
            })
            .collect();
        PresentationBrief { votes }
    }

    /// The result, from every slot's final state (the agents are stopped by then); emits
    /// `done` for the agents still live.
    pub(super) fn coordination(
        &mut self,
        status: RunStatus,
        winner: Option<String>,
        final_answer: Option<String>,
        notes: Vec<String>,
    ) -> Coordination {
        let mut agents = Vec::new();
        let mut votes = Vec::new();
        let mut failures = Vec::new();
        for slot in &self.slots {
            let id = slot.id.clone();
            let stats = slot.stats;
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
            answers: std::mem::take(&mut self.records),
            agents,
            notes,
            failures,
        }
    }
}

/// The first [`PREVIEW_CHARS`] characters of an answer, ending with `…` when it goes on.
fn preview(content: &str) -> String {
    let mut chars = content.chars();
    let mut shown: String = chars.by_ref().take(PREVIEW_CHARS).collect();
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod preview_tests {
    use super::{PREVIEW_CHARS, preview};

    #[test]
    fn a_long_answer_is_cut_with_an_ellipsis_a_short_one_is_whole() {
        assert_eq!(preview("Paris."), "Paris.");
        let exact = "é".repeat(PREVIEW_CHARS);
        assert_eq!(preview(&exact), exact);
        let long = format!("{exact}more");
        assert_eq!(preview(&long), format!("{exact}…"));
    }
}
