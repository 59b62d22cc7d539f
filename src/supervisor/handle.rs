//! [`QuotaHandle`]: the `Send + Sync + Clone` face of the supervisor, usable from any tokio
//! application or from plain threads.

use std::fmt;

use std::sync::Arc;

use actix::dev::SendError;
use actix::{Actor, Addr};
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, oneshot};

use super::actor::{
    Acquire, Feedback, GaveUp, Home, QuotaSupervisor, Register, Snapshot, StoreStatus, TopUp, now,
};
use super::error::{AcquireError, SupervisorError};
use super::events::QuotaEvent;
use super::permit::{AcquireRequest, Permit};
use super::{QuotaSnapshot, SupervisorSettings};
use crate::quota::{RateLimitSignal, ScopeId, ScopeSpec, TokenCount, WallClock};
use crate::system::ActorSystem;

/// Tells the supervisor when an `acquire` future is dropped while it waits, so requests queued
/// behind it are reconsidered at once instead of at the next timer.
struct GiveUpGuard<'a>(Option<&'a Addr<QuotaSupervisor>>);

impl Drop for GiveUpGuard<'_> {
    fn drop(&mut self) {
        if let Some(addr) = self.0.take() {
            addr.do_send(GaveUp);
        }
    }
}

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_BUFFER: usize = 4096;

/// A cheap, cloneable handle to one quota supervisor actor. `Send + Sync`: usable from any
/// tokio application (multi-thread or current-thread) and from plain threads. The supervisor
/// stops when the last handle and the last permit are dropped; an owned actor system's threads
/// stop when the last handle of it is dropped.
#[derive(Clone)]
pub struct QuotaHandle {
    addr: Home,
    events: broadcast::Sender<QuotaEvent>,
    system: ActorSystem,
}

impl fmt::Debug for QuotaHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaHandle")
            .field("stopped", &!self.addr.connected())
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

impl QuotaHandle {
    /// Starts the supervisor on an actor system of its own (one thread the handle owns): works
    /// from a plain `#[tokio::main]` app, from sync code, anywhere. Time is real time.
    pub fn start(settings: SupervisorSettings) -> Result<QuotaHandle, SupervisorError> {
        let system = ActorSystem::start_with_workers(0)
            .map_err(|e| SupervisorError::Start(e.to_string()))?;
        Self::start_in(&system, settings)
    }

    /// Starts the supervisor on `system`'s supervisor arbiter (an owned system: its own thread,
    /// real time, precise wake-ups; the current system: the caller's arbiter and clock).
    /// Fails when the settings' store cannot be opened.
    pub fn start_in(
        system: &ActorSystem,
        settings: SupervisorSettings,
    ) -> Result<QuotaHandle, SupervisorError> {
        let wall = if system.is_owned() {
            WallClock {
                origin: std::time::Instant::now(),
                origin_wall: Utc::now(),
            }
        } else {
            WallClock {
                origin: now(),
                origin_wall: Utc::now(),
            }
        };
        Self::spawn(system, &settings, wall)
    }

    /// Starts the supervisor on the *current* actix arbiter (`#[actix_rt::test]`, an actix
    /// System) so tokio's paused/advanced time drives it exactly.
    pub fn start_local(settings: SupervisorSettings) -> Result<QuotaHandle, SupervisorError> {
        Self::start_local_with_wall_clock(settings, Utc::now())
    }

    /// Like [`start_local`](Self::start_local), with the wall clock reading `wall_now` at the
    /// current tokio instant: daily resets then follow tokio's (paused) time exactly.
    pub fn start_local_with_wall_clock(
        settings: SupervisorSettings,
        wall_now: DateTime<Utc>,
    ) -> Result<QuotaHandle, SupervisorError> {
        let system = ActorSystem::current().map_err(|_| SupervisorError::NoArbiter)?;
        let wall = WallClock {
            origin: now(),
            origin_wall: wall_now,
        };
        Self::spawn(&system, &settings, wall)
    }

    fn spawn(
        system: &ActorSystem,
        settings: &SupervisorSettings,
        wall: WallClock,
    ) -> Result<Self, SupervisorError> {
        let store = settings.store.open()?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let mut sup = QuotaSupervisor::new(settings, wall, events.clone(), store);
        if system.is_owned() {
            sup = sup.with_precise_wake();
        }
        let addr = QuotaSupervisor::start_in_arbiter(system.quota_arbiter(), move |_| sup);
        Ok(QuotaHandle {
            addr: Arc::new(addr),
            events,
            system: system.clone(),
        })
    }

    /// The actor system the supervisor runs on (a runtime given this handle puts its own
    /// actors there too).
    pub fn system(&self) -> &ActorSystem {
        &self.system
    }

    /// Registers (or replaces the spec of) a scope. Idempotent for an equal spec.
    pub async fn register_scope(
        &self,
        id: ScopeId,
        spec: ScopeSpec,
    ) -> Result<(), SupervisorError> {
        self.addr
            .send(Register { id, spec })
            .await
            .map_err(|_| SupervisorError::Stopped)
    }

    /// Waits for a permit; fails at once for NeverFits/unknown scope, or at the deadline.
    /// Dropping the returned future gives up: nothing is consumed, even when the permit was
    /// granted and on its way.
    pub async fn acquire(&self, req: AcquireRequest) -> Result<Permit, AcquireError> {
        let (reply, rx) = oneshot::channel();
        let msg = Acquire {
            req,
            reply,
            home: Arc::clone(&self.addr),
        };
        // From here on, leaving tells the supervisor, so those queued behind are reconsidered
        // at once (a spare `GaveUp` costs a pass over the queue and nothing else).
        let mut guard = GiveUpGuard(Some(&self.addr));
        // The answer comes on `rx` (actix's own reply channel would be a second hop). A full
        // mailbox makes the caller wait its turn to enqueue, as `send` does.
        match self.addr.try_send(msg) {
            Ok(()) => {}
            Err(SendError::Full(msg)) => self
                .addr
                .send(msg)
                .await
                .map_err(|_| AcquireError::Stopped)?,
            Err(SendError::Closed(_)) => {
                guard.0 = None;
                return Err(AcquireError::Stopped);
            }
        }
        let answer = rx.await;
        guard.0 = None;
        let mut permit = answer.map_err(|_| AcquireError::Stopped)??;
        permit.mark_received();
        Ok(permit)
    }

    /// Grows `permit`'s reservation to `needed` (input and output apart) in every scope it
    /// holds, atomically, if the difference fits in every token window now; the permit then
    /// carries the larger estimate. Returns whether the permit now covers `needed` (always when
    /// it already did). A `false` means the request must not be sent under this permit: release
    /// it uncounted and acquire again.
    pub async fn top_up(&self, permit: &mut Permit, needed: TokenCount) -> bool {
        let extra = needed.excess_over(permit.tokens());
        if extra.is_zero() {
            return true;
        }
        let grown = self
            .addr
            .send(TopUp {
                id: permit.id(),
                extra,
            })
            .await
            .unwrap_or(false);
        if grown {
            permit.grew(extra);
        }
        grown
    }

    /// Applies a provider signal to a scope (fire and forget).
    pub fn feedback(&self, scope: ScopeId, signal: RateLimitSignal) {
        // A stopped supervisor has nothing left to inform.
        self.addr.do_send(Feedback { scope, signal });
    }

    /// Every scope's limits, usage, queue depth and cooldown.
    pub async fn snapshot(&self) -> Result<QuotaSnapshot, SupervisorError> {
        self.addr
            .send(Snapshot)
            .await
            .map_err(|_| SupervisorError::Stopped)
    }

    /// What the quota state store holds now, per scope: admissions over the windows of every
    /// registered scope's limits, cooldowns, learned limits (for `/status`). Answered from the
    /// supervisor's own store connection without its write lock, and reused for a second.
    pub async fn store_status(&self) -> Result<crate::store::StoreStatus, SupervisorError> {
        self.addr
            .send(StoreStatus)
            .await
            .map_err(|_| SupervisorError::Stopped)?
            .map_err(SupervisorError::from)
    }

    /// Every quota event (waits with ETA and the blocking limit, grants, denials, cooldowns,
    /// learned limits) for progress display, events.jsonl and metrics.
    pub fn subscribe(&self) -> broadcast::Receiver<QuotaEvent> {
        self.events.subscribe()
    }
}
