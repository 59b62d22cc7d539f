//! [`QuotaHandle`]: the `Send + Sync + Clone` face of the supervisor, usable from any tokio
//! application or from plain threads.

use std::fmt;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::actor::{Command, Control, QuotaSupervisor, now};
use super::error::{AcquireError, SupervisorError};
use super::events::QuotaEvent;
use super::permit::{AcquireRequest, Permit};
use super::{QuotaSnapshot, SupervisorSettings};
use crate::quota::{RateLimitSignal, ScopeId, ScopeSpec, TokenCount, WallClock};

/// Tells the supervisor when an `acquire` future is dropped while it waits, so requests queued
/// behind it are reconsidered at once instead of at the next timer.
struct GiveUpGuard<'a>(Option<&'a mpsc::UnboundedSender<Control>>);

impl Drop for GiveUpGuard<'_> {
    fn drop(&mut self) {
        if let Some(control) = self.0.take() {
            let _ = control.send(Control::GaveUp);
        }
    }
}

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_BUFFER: usize = 4096;

/// A cheap, cloneable handle to one quota supervisor. The supervisor stops when the last handle
/// is dropped (permits still alive then settle into nothing).
#[derive(Clone)]
pub struct QuotaHandle {
    cmd: mpsc::Sender<Command>,
    control: mpsc::UnboundedSender<Control>,
    events: broadcast::Sender<QuotaEvent>,
}

impl fmt::Debug for QuotaHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaHandle")
            .field("stopped", &self.cmd.is_closed())
            .finish_non_exhaustive()
    }
}

type Parts = (
    QuotaHandle,
    QuotaSupervisor,
    mpsc::Receiver<Command>,
    mpsc::UnboundedReceiver<Control>,
);

fn build(settings: &SupervisorSettings, wall: WallClock) -> Parts {
    let (cmd, cmd_rx) = mpsc::channel(settings.mailbox_capacity.max(1));
    let (control, control_rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let sup = QuotaSupervisor::new(settings, wall, events.clone(), control.clone());
    let handle = QuotaHandle {
        cmd,
        control,
        events,
    };
    (handle, sup, cmd_rx, control_rx)
}

impl QuotaHandle {
    /// Starts the actor system on a thread the handle owns: works from a plain
    /// `#[tokio::main]` app, from sync code, anywhere. Time is real time.
    pub fn start(settings: SupervisorSettings) -> Result<QuotaHandle, SupervisorError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| SupervisorError::Start(e.to_string()))?;
        let wall = WallClock {
            origin: std::time::Instant::now(),
            origin_wall: Utc::now(),
        };
        let (handle, sup, cmd_rx, control_rx) = build(&settings, wall);
        let sup = sup.with_precise_wake();
        std::thread::Builder::new()
            .name("quota-supervisor".to_owned())
            .spawn(move || rt.block_on(sup.run(cmd_rx, control_rx)))
            .map_err(|e| SupervisorError::Start(e.to_string()))?;
        Ok(handle)
    }

    /// Starts the supervisor inside the *current* tokio runtime (current-thread, e.g. a test
    /// with paused time, or an actix System) so tokio's paused/advanced time drives it exactly.
    pub fn start_local(settings: SupervisorSettings) -> Result<QuotaHandle, SupervisorError> {
        Self::start_local_with_wall_clock(settings, Utc::now())
    }

    /// Like [`start_local`](Self::start_local), with the wall clock reading `wall_now` at the
    /// current tokio instant: daily resets then follow tokio's (paused) time exactly.
    pub fn start_local_with_wall_clock(
        settings: SupervisorSettings,
        wall_now: DateTime<Utc>,
    ) -> Result<QuotaHandle, SupervisorError> {
        tokio::runtime::Handle::try_current().map_err(|_| SupervisorError::NoRuntime)?;
        let wall = WallClock {
            origin: now(),
            origin_wall: wall_now,
        };
        let (handle, sup, cmd_rx, control_rx) = build(&settings, wall);
        tokio::spawn(sup.run(cmd_rx, control_rx));
        Ok(handle)
    }

    /// Registers (or replaces the spec of) a scope. Idempotent for an equal spec.
    pub async fn register_scope(
        &self,
        id: ScopeId,
        spec: ScopeSpec,
    ) -> Result<(), SupervisorError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Register { id, spec, reply })
            .await
            .map_err(|_| SupervisorError::Stopped)?;
        rx.await.map_err(|_| SupervisorError::Stopped)
    }

    /// Waits for a permit; fails at once for NeverFits/unknown scope, or at the deadline.
    /// Dropping the returned future gives up: nothing is consumed.
    pub async fn acquire(&self, req: AcquireRequest) -> Result<Permit, AcquireError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Acquire { req, reply })
            .await
            .map_err(|_| AcquireError::Stopped)?;
        let mut guard = GiveUpGuard(Some(&self.control));
        let answer = rx.await;
        guard.0 = None;
        answer.map_err(|_| AcquireError::Stopped)?
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
        let (reply, rx) = oneshot::channel();
        let sent = self
            .cmd
            .send(Command::TopUp {
                id: permit.id(),
                extra,
                reply,
            })
            .await;
        if sent.is_err() {
            return false;
        }
        let grown = rx.await.unwrap_or(false);
        if grown {
            permit.grew(extra);
        }
        grown
    }

    /// Applies a provider signal to a scope (fire and forget).
    pub fn feedback(&self, scope: ScopeId, signal: RateLimitSignal) {
        // A closed channel means the supervisor is gone: there is nothing left to inform.
        let _ = self.control.send(Control::Feedback { scope, signal });
    }

    /// Every scope's limits, usage, queue depth and cooldown.
    pub async fn snapshot(&self) -> Result<QuotaSnapshot, SupervisorError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Snapshot { reply })
            .await
            .map_err(|_| SupervisorError::Stopped)?;
        rx.await.map_err(|_| SupervisorError::Stopped)
    }

    /// Every quota event (waits with ETA and the blocking limit, grants, denials, cooldowns,
    /// learned limits) for progress display, events.jsonl and metrics.
    pub fn subscribe(&self) -> broadcast::Receiver<QuotaEvent> {
        self.events.subscribe()
    }
}
