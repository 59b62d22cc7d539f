//! The `QuotaSupervisor` actor: owns every scope's quota state and wait queue, grants permits,
//! schedules wake-ups, applies provider feedback, and reports snapshots.
//!
//! Callers hold a [`QuotaHandle`]. Each [`QuotaHandle::acquire`] names candidate scope sets;
//! the supervisor grants the first candidate that fits (all scopes of it at once), or queues the
//! request by priority with aging and wakes it at the exact instant it becomes admissible. A
//! caller that gives up (drops the future) consumes nothing. The [`Permit`] settles to the
//! actual tokens, or to its estimate when dropped.
//!
//! The supervisor is an actix actor on the supervisor arbiter of an actor system
//! ([`crate::system::ActorSystem`]): on a thread of its own by default, or on the caller's arbiter under
//! paused time in tests. Its messages and replies are listed in `actor/messages.rs`.

mod actor;
mod error;
mod events;
mod handle;
mod permit;
mod queue;

use std::time::Duration;

use serde::Serialize;

pub use crate::quota::{LimitUsage, ScopeSnapshot};
use crate::store::StoreSpec;
pub use error::{AcquireError, SupervisorError};
pub use events::QuotaEvent;
pub use handle::QuotaHandle;
pub use permit::{AcquireRequest, Permit};
pub use queue::AGING_STEP;

/// How the supervisor behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorSettings {
    /// Where quota state lives: in memory (the default for the library: nothing kept or
    /// shared), or an SQLite file shared by every process that names it, opened when the
    /// supervisor starts.
    pub store: StoreSpec,
    /// How long an acquire waits at most when it names no deadline (120 s).
    pub default_deadline: Duration,
    /// Spacing of first requests of different requesters per scope (250 ms).
    pub stagger: Duration,
    /// How many messages may queue in the actor's mailbox before `acquire`, `register` and
    /// `snapshot` callers wait their turn to enqueue (4096; settlements never wait).
    pub mailbox_capacity: usize,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        Self {
            default_deadline: Duration::from_secs(120),
            stagger: Duration::from_millis(250),
            mailbox_capacity: 4096,
            store: StoreSpec::Memory,
        }
    }
}

/// Every scope's state.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaSnapshot {
    /// One entry per registered scope, in registration order.
    pub scopes: Vec<ScopeSnapshot>,
}
