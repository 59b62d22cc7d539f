//! The supervisor's messages, one [`Handler`] each. Every handler that changed something a
//! waiter depends on queues one scheduling pass behind the mailbox ([`QuotaSupervisor::touch`]),
//! so a burst of messages is scheduled once.
//!
//! | message      | sent by                          | reply                                   |
//! |--------------|----------------------------------|-----------------------------------------|
//! | `Register`   | `QuotaHandle::register_scope`    | `()` once the scope is registered       |
//! | `Acquire`    | `QuotaHandle::acquire` (`try_send`, `send` when the mailbox is full) | none; the permit or refusal goes to the caller-owned oneshot in the message |
//! | `TopUp`      | `QuotaHandle::top_up`            | whether the reservation grew            |
//! | `Released`   | `Permit` (settle, release, drop) | none (`do_send`: never lost, never blocks a `Drop`) |
//! | `Feedback`   | `QuotaHandle::feedback`          | none                                    |
//! | `GaveUp`     | an `acquire` future dropped while waiting | none                           |
//! | `Snapshot`   | `QuotaHandle::snapshot`          | every scope's state                     |
//! | `StoreStatus` | `QuotaHandle::store_status`     | what the quota store holds (`status.rs`) |
//! | `Pass`       | the supervisor itself            | none                                    |

use actix::{Context, Handler, Message, MessageResult};
use tokio::sync::oneshot;

use super::{Home, QuotaSupervisor, Release};
use crate::quota::{RateLimitSignal, ScopeId, ScopeSpec, TokenCount};
use crate::supervisor::QuotaSnapshot;
use crate::supervisor::error::AcquireError;
use crate::supervisor::permit::{AcquireRequest, Permit};

/// Registers (or replaces the spec of) a scope.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Register {
    pub id: ScopeId,
    pub spec: ScopeSpec,
}

/// Asks for a permit. The answer goes to `reply`, which the caller owns: a caller that gave up
/// has dropped its receiver, and `reply.is_closed()` then keeps it from consuming anything
/// (actix's own reply channel outlives a caller that timed out, so it cannot carry grants).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Acquire {
    pub req: AcquireRequest,
    pub reply: oneshot::Sender<Result<Permit, AcquireError>>,
    /// The address the permit settles through (the asking handle's).
    pub home: Home,
}

/// Adds `extra` tokens to a granted permit's reservation if they fit now.
#[derive(Message)]
#[rtype(result = "bool")]
pub(crate) struct TopUp {
    pub id: u64,
    pub extra: TokenCount,
}

/// A permit ended: settled, released uncounted or unsent.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Released {
    pub id: u64,
    pub how: Release,
}

/// A provider's rate-limit signal for a scope.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Feedback {
    pub scope: ScopeId,
    pub signal: RateLimitSignal,
}

/// A caller gave up while waiting: those queued behind it are reconsidered at once.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct GaveUp;

/// Every scope's limits, usage, queue depth and cooldown.
#[derive(Message)]
#[rtype(result = "QuotaSnapshot")]
pub(crate) struct Snapshot;

/// Writes the pending store writes, queued by the supervisor itself behind its mailbox.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Flush;

/// One scheduling pass, queued by the supervisor itself behind the messages in its mailbox.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Pass;

impl Handler<Register> for QuotaSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Register, ctx: &mut Context<Self>) {
        self.register(msg.id, msg.spec);
        self.touch(ctx);
        self.queue_flush(ctx);
    }
}

impl Handler<Acquire> for QuotaSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) {
        self.on_acquire(msg.req, msg.reply, msg.home);
        self.touch(ctx);
    }
}

impl Handler<TopUp> for QuotaSupervisor {
    type Result = bool;

    fn handle(&mut self, msg: TopUp, _: &mut Context<Self>) -> bool {
        self.top_up(msg.id, msg.extra)
    }
}

impl Handler<Released> for QuotaSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Released, ctx: &mut Context<Self>) {
        self.release(msg.id, msg.how);
        self.touch(ctx);
        self.queue_flush_later(ctx);
    }
}

impl Handler<Feedback> for QuotaSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Feedback, ctx: &mut Context<Self>) {
        self.feedback(&msg.scope, &msg.signal);
        self.touch(ctx);
        self.queue_flush(ctx);
    }
}

impl Handler<GaveUp> for QuotaSupervisor {
    type Result = ();

    fn handle(&mut self, _: GaveUp, ctx: &mut Context<Self>) {
        self.dirty = true;
        self.sweep = true;
        self.touch(ctx);
    }
}

impl Handler<Snapshot> for QuotaSupervisor {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, ctx: &mut Context<Self>) -> Self::Result {
        // What the messages before this one changed is scheduled first (callers that left
        // are out of the queue, grants made), so the snapshot shows it.
        if self.pass_queued {
            self.run_pass(ctx);
        }
        MessageResult(self.snapshot())
    }
}

impl Handler<Flush> for QuotaSupervisor {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {
        self.flush();
    }
}

impl Handler<Pass> for QuotaSupervisor {
    type Result = ();

    fn handle(&mut self, _: Pass, ctx: &mut Context<Self>) {
        self.run_pass(ctx);
    }
}
