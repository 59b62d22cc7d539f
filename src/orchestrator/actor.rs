//! [`Orchestrator`]: the actor that schedules the protocol of one run.
//!
//! Phases: *rounds* (turns are given and their reports applied as they arrive), then the
//! *presentation* by the winner, then *finishing* (every agent is sent `Stop`, its reply gives
//! the final counters, and the [`Coordination`] goes out through the run's oneshot). The
//! orchestrator timeout is one `run_later` timer over the rounds and the presentation; an
//! [`Interrupt`] ends either at once. An agent whose mailbox closes mid-request (it panicked
//! outside its caught future, or its arbiter stopped) is reported as
//! [`RunEvent::ActorFailed`] and retired; the others go on.

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, MailboxError,
    Message, SpawnHandle, WrapFuture,
};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::protocol::{Slot, State};
use super::{Coordination, RunStatus};
use crate::agent::board::{AnonIds, AnswerBoard};
use crate::agent::events::{Emitter, RunEvent};
use crate::agent::{AgentActor, AgentSpec, Present, Stop, Turn, TurnReport};
use crate::config::OrchestratorConfig;
use crate::system::ActorSystem;

/// End the run now: the calls in flight are cancelled and the winner is picked from the votes
/// and answers that exist (during the presentation: the winner's latest answer is used).
/// No reply; the run's result comes through the oneshot given at start.
#[derive(Debug, Clone, Copy)]
pub struct Interrupt;

impl Message for Interrupt {
    type Result = ();
}

/// The caller gave up on the run: stop every agent and the orchestrator, deliver nothing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Abandon;

impl Message for Abandon {
    type Result = ();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Rounds,
    Presenting,
    Finishing,
}

/// The coordinator of one run (see the module docs).
pub struct Orchestrator {
    state: State,
    skip_presentation: bool,
    timeout: Duration,
    deadline: Instant,
    phase: Phase,
    status: RunStatus,
    notes: Vec<String>,
    winner: Option<usize>,
    reply: Option<oneshot::Sender<Coordination>>,
    presenting: Option<SpawnHandle>,
    timer: Option<SpawnHandle>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("agents", &self.state.slots.len())
            .field("phase", &self.phase)
            .field("generation", &self.state.board.generation)
            .finish()
    }
}

impl Orchestrator {
    /// Starts the agents of `specs` (config order) and their orchestrator on worker arbiters of
    /// `system`; the run begins at once and ends at `timeout`. The receiver yields the result
    /// (an error only if the orchestrator itself failed).
    pub fn start(
        system: &ActorSystem,
        specs: Vec<AgentSpec>,
        config: &OrchestratorConfig,
        timeout: Duration,
        emitter: Emitter,
    ) -> (Addr<Orchestrator>, oneshot::Receiver<Coordination>) {
        let started = Instant::now();
        let ids: Vec<String> = specs.iter().map(|s| s.config.id.clone()).collect();
        let board = AnswerBoard::new(Arc::new(AnonIds::new(&ids)));
        let (board_tx, board_rx) = watch::channel(Arc::new(board.clone()));
        let slots = specs
            .into_iter()
            .map(|spec| {
                let id = spec.config.id.clone();
                let addr = AgentActor::start_in(system, spec, board_rx.clone(), emitter.clone());
                Slot::new(id, addr)
            })
            .collect();
        let (reply, done) = oneshot::channel();
        let orchestrator = Orchestrator {
            state: State {
                slots,
                board,
                board_tx,
                records: Vec::new(),
                emitter,
            },
            skip_presentation: config.skip_final_presentation,
            timeout,
            deadline: crate::quota::time::tokio_instant_after(started, timeout),
            phase: Phase::Rounds,
            status: RunStatus::Completed,
            notes: Vec::new(),
            winner: None,
            reply: Some(reply),
            presenting: None,
            timer: None,
        };
        let addr = Orchestrator::start_in_arbiter(&system.worker(), move |_| orchestrator);
        (addr, done)
    }

    /// Gives a turn to every live agent without a standing vote that is not already running;
    /// the rounds are over when none is running.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        for i in 0..self.state.slots.len() {
            let slot = &self.state.slots[i];
            if !slot.live || slot.running.is_some() || slot.vote.is_some() {
                continue;
            }
            let request = slot.addr.send(Turn);
            let handle = ctx.spawn(
                request
                    .into_actor(self)
                    .map(move |report, act, ctx| act.on_report(i, report, ctx)),
            );
            self.state.slots[i].running = Some(handle);
        }
        if self.state.slots.iter().all(|s| s.running.is_none()) {
            self.end_rounds(RunStatus::Completed, ctx);
        }
    }

    fn on_report(
        &mut self,
        i: usize,
        report: Result<TurnReport, MailboxError>,
        ctx: &mut Context<Self>,
    ) {
        if self.phase != Phase::Rounds {
            return;
        }
        self.state.slots[i].running = None;
        match report {
            Ok(report) => {
                self.state.slots[i].stats = report.stats;
                self.state.apply(i, report);
            }
            Err(e) => {
                self.actor_failed(i, &format!("its mailbox closed during a turn ({e})"));
                self.state
                    .retire(i, "the agent stopped unexpectedly".to_owned(), false);
            }
        }
        self.dispatch(ctx);
    }

    fn actor_failed(&self, i: usize, reason: &str) {
        self.state.emitter.emit(RunEvent::ActorFailed {
            actor: format!("agent:{}", self.state.slots[i].id),
            reason: reason.to_owned(),
        });
    }

    fn on_deadline(&mut self, ctx: &mut Context<Self>) {
        self.timer = None;
        match self.phase {
            Phase::Rounds => self.end_rounds(RunStatus::TimedOut, ctx),
            Phase::Presenting => {
                let w = self.stop_presenting(ctx);
                self.notes.push(
                    "the orchestrator timeout expired during the final presentation: the \
                     winner's latest answer is used as is"
                        .to_owned(),
                );
                self.stop_agents(vec![w], ctx, move |act, ctx| act.conclude(w, None, ctx));
            }
            Phase::Finishing => {}
        }
    }

    /// The rounds are over: with `status` other than completed the agents are stopped (their
    /// calls cancelled) before the winner is picked.
    fn end_rounds(&mut self, status: RunStatus, ctx: &mut Context<Self>) {
        self.phase = Phase::Finishing;
        self.status = status;
        for slot in &mut self.state.slots {
            if let Some(handle) = slot.running.take() {
                ctx.cancel_future(handle);
            }
        }
        if status == RunStatus::Completed {
            self.after_rounds(ctx);
            return;
        }
        self.notes.push(match status {
            RunStatus::Interrupted => "the run was interrupted: the winner was picked from the \
                votes and answers that existed then, without a final presentation"
                .to_owned(),
            _ => format!(
                "orchestrator timeout of {:.0?} expired: the winner was picked from the votes \
                 and answers that existed then",
                self.timeout
            ),
        });
        self.stop_agents(self.all(), ctx, Self::after_rounds);
    }

    fn after_rounds(&mut self, ctx: &mut Context<Self>) {
        let (winner, by, votes) = self.state.pick_winner();
        self.winner = winner;
        let Some(w) = winner else {
            self.finish(None, None, ctx);
            return;
        };
        self.state.emitter.emit(RunEvent::WinnerSelected {
            agent: self.state.id(w),
            votes,
            by: by.to_owned(),
        });
        if self.status == RunStatus::Completed && !self.skip_presentation {
            self.present(w, ctx);
        } else {
            self.conclude(w, None, ctx);
        }
    }

    fn present(&mut self, w: usize, ctx: &mut Context<Self>) {
        let brief = self.state.brief();
        let slot = &self.state.slots[w];
        if !slot.live {
            self.notes.push(format!(
                "{} failed before presenting: its latest answer is used as is",
                slot.id
            ));
            self.conclude(w, None, ctx);
            return;
        }
        self.phase = Phase::Presenting;
        let request = slot.addr.send(Present { brief });
        self.presenting = Some(
            ctx.spawn(request.into_actor(self).map(move |result, act, ctx| {
                if act.phase != Phase::Presenting {
                    return;
                }
                act.phase = Phase::Finishing;
                act.presenting = None;
                let text = match result {
                    Ok(Ok(text)) => Some(text),
                    Ok(Err(reason)) => {
                        act.notes.push(format!(
                            "the final presentation failed ({reason}): the winner's latest \
                             answer is used as is"
                        ));
                        None
                    }
                    Err(e) => {
                        act.actor_failed(
                            w,
                            &format!("its mailbox closed during the final presentation ({e})"),
                        );
                        act.notes.push(
                            "the final presentation was cut short: the winner's latest answer \
                             is used as is"
                                .to_owned(),
                        );
                        None
                    }
                };
                act.conclude(w, text, ctx);
            })),
        );
    }

    /// Leaves the presentation phase; the winner's slot.
    fn stop_presenting(&mut self, ctx: &mut Context<Self>) -> usize {
        self.phase = Phase::Finishing;
        if let Some(handle) = self.presenting.take() {
            ctx.cancel_future(handle);
        }
        self.winner.unwrap_or_default()
    }

    /// The final answer is the presentation, else the winner's latest answer.
    fn conclude(&mut self, w: usize, presentation: Option<String>, ctx: &mut Context<Self>) {
        let presented = presentation.is_some();
        let agent = self.state.id(w);
        let text = presentation.or_else(|| self.state.latest_answer_of(&agent));
        if let Some(text) = &text {
            self.state.emitter.emit(RunEvent::FinalAnswer {
                agent: agent.clone(),
                presented,
                chars: text.chars().count(),
            });
        }
        self.finish(Some(agent), text, ctx);
    }

    /// Stops every agent (collecting their final counters), delivers the result and stops.
    fn finish(
        &mut self,
        winner: Option<String>,
        final_answer: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        self.phase = Phase::Finishing;
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        self.stop_agents(self.all(), ctx, move |act, ctx| {
            let notes = std::mem::take(&mut act.notes);
            let c = act
                .state
                .coordination(act.status, winner, final_answer, notes);
            if let Some(reply) = act.reply.take() {
                let _ = reply.send(c);
            }
            ctx.stop();
        });
    }

    fn all(&self) -> Vec<usize> {
        (0..self.state.slots.len()).collect()
    }

    /// Sends `Stop` to the agents of `which` not yet stopped and, once every one answered (with
    /// its final counters) or is gone, runs `then`. Nothing else is handled meanwhile.
    fn stop_agents(
        &mut self,
        which: Vec<usize>,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        let mut stops = Vec::new();
        for i in which {
            let slot = &mut self.state.slots[i];
            if slot.stopped {
                continue;
            }
            slot.stopped = true;
            let request = slot.addr.send(Stop);
            stops.push(async move { (i, request.await) });
        }
        ctx.wait(futures_util::future::join_all(stops).into_actor(self).map(
            move |replies, act, ctx| {
                for (i, reply) in replies {
                    // A gone agent keeps the counters of its last report.
                    if let Ok(stats) = reply {
                        act.state.slots[i].stats = stats;
                    }
                }
                then(act, ctx);
            },
        ));
    }
}

impl Actor for Orchestrator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let wait = self.deadline.saturating_duration_since(Instant::now());
        self.timer = Some(ctx.run_later(wait, |act, ctx| act.on_deadline(ctx)));
        self.dispatch(ctx);
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        // Abandoned, or failed: no agent outlives its run.
        for slot in &self.state.slots {
            if !slot.stopped {
                slot.addr.do_send(Stop);
            }
        }
    }
}

impl Handler<Interrupt> for Orchestrator {
    type Result = ();

    fn handle(&mut self, _: Interrupt, ctx: &mut Context<Self>) {
        match self.phase {
            Phase::Rounds => self.end_rounds(RunStatus::Interrupted, ctx),
            Phase::Presenting => {
                let w = self.stop_presenting(ctx);
                self.status = RunStatus::Interrupted;
                self.notes.push(
                    "the run was interrupted during the final presentation: the winner's \
                     latest answer is the final answer"
                        .to_owned(),
                );
                self.stop_agents(self.all(), ctx, move |act, ctx| act.conclude(w, None, ctx));
            }
            Phase::Finishing => {}
        }
    }
}

impl Handler<Abandon> for Orchestrator {
    type Result = ();

    fn handle(&mut self, _: Abandon, ctx: &mut Context<Self>) {
        self.reply = None;
        ctx.stop();
    }
}

/// Abandons the run if the caller's future is dropped before the result arrived.
pub(super) struct AbandonOnDrop {
    addr: Option<Addr<Orchestrator>>,
}

impl AbandonOnDrop {
    pub(super) fn new(addr: Addr<Orchestrator>) -> Self {
        Self { addr: Some(addr) }
    }

    pub(super) fn interrupt(&self) {
        if let Some(addr) = &self.addr {
            addr.do_send(Interrupt);
        }
    }

    pub(super) fn disarm(&mut self) {
        self.addr = None;
    }
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if let Some(addr) = self.addr.take() {
            addr.do_send(Abandon);
        }
    }
}
