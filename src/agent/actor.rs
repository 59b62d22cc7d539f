//! [`AgentActor`]: the actix actor of one team member, and its messages.
//!
//! A [`Turn`] or [`Present`] runs as a future of the actor's context (`ResponseActFuture`), so
//! the mailbox keeps serving while the call is out: [`Stop`] stops the context, which drops
//! that future at once (a quota permit it held settles or rolls back through its `Drop`) and
//! drops its reply (the caller sees `MailboxError::Closed`). A panic inside the future is
//! caught: the request fails with the panic's message, a [`RunEvent::ActorFailed`] is emitted
//! and the actor stops once the reply is out (its state can no longer be trusted).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, Context, Handler, Message, MessageResult,
    ResponseActFuture, WrapFuture,
};
use futures_util::FutureExt;
use tokio::sync::watch;
use tracing::Instrument;

use super::board::AnswerBoard;
use super::checks::Decision;
use super::events::{Emitter, RunEvent};
use super::turn::AgentWork;
use super::{AgentSpec, CallStats, PresentationBrief, TurnOutcome, TurnReport};
use crate::system::ActorSystem;

/// Take one turn on the board as it is now. Reply: the [`TurnReport`]. If the agent is stopped
/// before the turn ends, the reply is dropped (the caller sees `MailboxError::Closed`).
#[derive(Debug, Clone, Copy)]
pub struct Turn;

impl Message for Turn {
    type Result = TurnReport;
}

/// Present the final answer (the agent won). Reply: the text, or why there is none. Dropped
/// like [`Turn`]'s if the agent is stopped first.
#[derive(Debug, Clone)]
pub struct Present {
    /// The votes and their reasons, under anonymous ids.
    pub brief: PresentationBrief,
}

impl Message for Present {
    type Result = Result<String, String>;
}

/// Stop now, cancelling any call in flight. Reply: the final [`CallStats`].
#[derive(Debug, Clone, Copy)]
pub struct Stop;

impl Message for Stop {
    type Result = CallStats;
}

/// Reply: the agent's [`CallStats`] so far.
#[derive(Debug, Clone, Copy)]
pub struct Stats;

impl Message for Stats {
    type Result = CallStats;
}

/// One team member. Its state (the behaviour, the board it reads, its counters) is owned by
/// the actor and lives on the actor's arbiter thread.
pub struct AgentActor {
    work: Rc<AgentWork>,
    turns: u32,
}

impl std::fmt::Debug for AgentActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentActor")
            .field("id", &self.work.id())
            .field("turns", &self.turns)
            .finish()
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;
}

impl AgentActor {
    /// Starts the agent of `spec` on the next worker arbiter of `system`; it reads the answers
    /// from `board` and reports through `emitter`.
    pub fn start_in(
        system: &ActorSystem,
        spec: AgentSpec,
        board: watch::Receiver<Arc<AnswerBoard>>,
        emitter: Emitter,
    ) -> Addr<AgentActor> {
        Self::start_in_arbiter(&system.worker(), move |_| AgentActor {
            work: Rc::new(AgentWork::new(spec, board, emitter)),
            turns: 0,
        })
    }

    /// A panic caught in `what`: reported, and the actor stops once the reply is out.
    fn crashed(&self, what: &str, panic: &(dyn Any + Send), ctx: &mut Context<Self>) -> String {
        let reason = format!("the agent panicked during {what}: {}", panic_message(panic));
        self.work.emitter.emit(RunEvent::ActorFailed {
            actor: format!("agent:{}", self.work.id()),
            reason: reason.clone(),
        });
        ctx.stop();
        reason
    }
}

/// The message of a panic payload (`panic!("...")` carries a `&str` or a `String`).
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

impl Handler<Turn> for AgentActor {
    type Result = ResponseActFuture<Self, TurnReport>;

    fn handle(&mut self, _: Turn, _: &mut Context<Self>) -> Self::Result {
        self.turns += 1;
        let span = crate::telemetry::spans::agent_turn(self.work.id(), self.turns);
        let work = Rc::clone(&self.work);
        let turn = async move { work.turn().await }.instrument(span.clone());
        Box::pin(AssertUnwindSafe(turn).catch_unwind().into_actor(self).map(
            move |result, act, ctx| {
                let report = result.unwrap_or_else(|panic| TurnReport {
                    generation: act.work.generation(),
                    outcome: TurnOutcome::Failed {
                        reason: act.crashed("a turn", &*panic, ctx),
                        quota_deadline: false,
                    },
                    stats: act.work.stats(),
                });
                span.record(
                    "outcome",
                    match &report.outcome {
                        TurnOutcome::Decided(Decision::Answer(_)) => "answer",
                        TurnOutcome::Decided(_) => "vote",
                        TurnOutcome::Failed { .. } => "failed",
                    },
                );
                report
            },
        ))
    }
}

impl Handler<Present> for AgentActor {
    type Result = ResponseActFuture<Self, Result<String, String>>;

    fn handle(&mut self, msg: Present, _: &mut Context<Self>) -> Self::Result {
        let work = Rc::clone(&self.work);
        let present = async move { work.present(&msg.brief).await };
        Box::pin(
            AssertUnwindSafe(present)
                .catch_unwind()
                .into_actor(self)
                .map(|result, act, ctx| {
                    result
                        .unwrap_or_else(|panic| Err(act.crashed("the presentation", &*panic, ctx)))
                }),
        )
    }
}

impl Handler<Stop> for AgentActor {
    type Result = MessageResult<Stop>;

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) -> Self::Result {
        // The context ends in this very poll: the turn or presentation in flight is dropped.
        ctx.stop();
        MessageResult(self.work.stats())
    }
}

impl Handler<Stats> for AgentActor {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.work.stats())
    }
}
