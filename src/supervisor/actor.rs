//! The `QuotaSupervisor` actor: one task that owns the [`Ledger`] and the wait queue, reads a
//! bounded mailbox (acquire, register, snapshot) and an unbounded control channel (settlements
//! and feedback, which must never be lost or block a `Drop`), and sleeps on exactly one timer:
//! the earliest instant a blocked head could be admitted or a deadline falls.

mod schedule;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};

use super::error::AcquireError;
use super::events::{QuotaEvent, millis};
use super::permit::{AcquireRequest, Permit};
use super::queue::{WaitQueue, Waiter};
use super::{QuotaSnapshot, SupervisorSettings};
use crate::quota::Blocker;
use crate::quota::time::instant_after;
use crate::quota::{
    Ledger, RateLimitSignal, Reservation, ScopeId, ScopeSpec, SignalEffect, TokenCount, Verdict,
    WallClock,
};
use schedule::{dead_error, misses_deadline};

/// Requests that wait for an answer.
pub(crate) enum Command {
    Register {
        id: ScopeId,
        spec: ScopeSpec,
        reply: oneshot::Sender<()>,
    },
    Acquire {
        req: AcquireRequest,
        reply: oneshot::Sender<Result<Permit, AcquireError>>,
    },
    Snapshot {
        reply: oneshot::Sender<QuotaSnapshot>,
    },
    /// Add tokens to a granted permit's reservation if they fit now.
    TopUp {
        id: u64,
        extra: TokenCount,
        reply: oneshot::Sender<bool>,
    },
}

/// Fire-and-forget messages.
#[derive(Debug)]
pub(crate) enum Control {
    Settle {
        id: u64,
        actual: TokenCount,
    },
    Feedback {
        scope: ScopeId,
        signal: RateLimitSignal,
    },
    /// A caller gave up while waiting: pass again so those behind it can go.
    GaveUp,
    /// The provider did not count the permit's call: take it out of every window.
    Uncount {
        id: u64,
    },
    /// The permit's request was never sent: undo it as if it had never been granted (windows,
    /// pacing, stagger).
    Unsent {
        id: u64,
    },
}

/// Hashes the supervisor's own sequential permit ids (a multiply spreads them over the table;
/// SipHash's protection against chosen keys is not needed for ids nobody else picks).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The current instant on tokio's clock (paused and advanced in tests).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The actor's state.
pub(crate) struct QuotaSupervisor {
    ledger: Ledger,
    origin: Instant,
    default_deadline: Duration,
    queue: WaitQueue,
    reservations: HashMap<u64, (Reservation, Arc<[ScopeId]>), BuildHasherDefault<IdHasher>>,
    next_id: u64,
    events: broadcast::Sender<QuotaEvent>,
    control_tx: mpsc::UnboundedSender<Control>,
    precise_wake: bool,
    /// Something a waiter depends on changed since the last scheduling pass.
    dirty: bool,
    /// The wake-up the last pass computed.
    wake: Option<Instant>,
}

/// How early a supervisor on its own thread wakes before a deadline to finish the wait with a
/// precise thread sleep.
const PRECISE_SLACK: Duration = Duration::from_millis(2);

impl QuotaSupervisor {
    pub(crate) fn new(
        settings: &SupervisorSettings,
        wall: WallClock,
        events: broadcast::Sender<QuotaEvent>,
        control_tx: mpsc::UnboundedSender<Control>,
    ) -> Self {
        Self {
            ledger: Ledger::new(settings.stagger, wall),
            origin: wall.origin,
            default_deadline: settings.default_deadline,
            queue: WaitQueue::default(),
            reservations: HashMap::default(),
            next_id: 0,
            events,
            control_tx,
            precise_wake: false,
            dirty: false,
            wake: None,
        }
    }

    /// Finish timer waits with a precise thread sleep: only for a supervisor that owns its
    /// thread (real time; blocking it briefly delays nobody else).
    pub(crate) fn with_precise_wake(mut self) -> Self {
        self.precise_wake = true;
        self
    }

    /// Serves until every handle is dropped.
    pub(crate) async fn run(
        mut self,
        mut cmd_rx: mpsc::Receiver<Command>,
        mut control_rx: mpsc::UnboundedReceiver<Control>,
    ) {
        let mut wake: Option<Instant> = None;
        loop {
            let precise = self.precise_wake;
            let timer = async move {
                match wake {
                    Some(t) => {
                        // tokio's timer rounds up to the next millisecond; on a thread of its
                        // own the supervisor wakes a little early and sleeps the rest exactly.
                        let early = if precise {
                            PRECISE_SLACK
                        } else {
                            Duration::ZERO
                        };
                        let at = t.checked_sub(early).unwrap_or(t);
                        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                        if precise {
                            let left = t.saturating_duration_since(Instant::now());
                            if !left.is_zero() {
                                std::thread::sleep(left);
                            }
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                Some(c) = control_rx.recv() => self.on_control(c),
                cmd = cmd_rx.recv() => match cmd {
                    Some(c) => self.on_command_in_order(c, &mut control_rx),
                    None => break,
                },
                () = timer => self.dirty = true,
            }
            // Take whatever else is ready, then schedule once.
            while let Ok(c) = control_rx.try_recv() {
                self.on_control(c);
            }
            for _ in 0..256 {
                match cmd_rx.try_recv() {
                    Ok(c) => self.on_command_in_order(c, &mut control_rx),
                    Err(_) => break,
                }
            }
            wake = self.schedule();
            self.wake = wake;
        }
    }

    fn emit(&self, event: impl FnOnce() -> QuotaEvent) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(event());
        }
    }

    fn scope_name(&self, i: usize) -> ScopeId {
        self.ledger
            .scope(i)
            .map_or_else(|| ScopeId::new("?"), |s| s.id().clone())
    }

    fn on_control(&mut self, c: Control) {
        match c {
            Control::Settle { id, actual } => {
                if let Some((r, names)) = self.reservations.remove(&id) {
                    self.ledger.settle(&r, actual);
                    self.dirty |= r.scopes.iter().any(|&s| self.queue.depth(s) > 0);
                    self.emit(|| QuotaEvent::Settled {
                        scopes: names.iter().map(ToString::to_string).collect(),
                        estimate: r.est.total(),
                        actual: actual.total(),
                    });
                }
            }
            Control::Uncount { id } => {
                if let Some((r, names)) = self.reservations.remove(&id) {
                    self.ledger.uncount(&r);
                    self.dirty |= r.scopes.iter().any(|&s| self.queue.depth(s) > 0);
                    self.emit(|| QuotaEvent::Settled {
                        scopes: names.iter().map(ToString::to_string).collect(),
                        estimate: r.est.total(),
                        actual: 0,
                    });
                }
            }
            Control::Unsent { id } => {
                if let Some((r, names)) = self.reservations.remove(&id) {
                    self.ledger.rollback(&r);
                    self.dirty = true;
                    self.emit(|| QuotaEvent::Settled {
                        scopes: names.iter().map(ToString::to_string).collect(),
                        estimate: r.est.total(),
                        actual: 0,
                    });
                }
            }
            Control::GaveUp => self.dirty = true,
            Control::Feedback { scope, signal } => {
                let Some(i) = self.ledger.lookup(&scope) else {
                    tracing::warn!(%scope, "quota feedback for an unregistered scope ignored");
                    return;
                };
                self.dirty = true;
                for effect in self.ledger.apply_signal(i, &signal, now()) {
                    let name = scope.to_string();
                    self.emit(|| match effect {
                        SignalEffect::Cooldown {
                            duration, reason, ..
                        } => QuotaEvent::CooldownStarted {
                            scope: name,
                            reason,
                            duration_ms: millis(duration),
                        },
                        SignalEffect::Learned(limit) => QuotaEvent::LimitLearned {
                            scope: name,
                            limit: limit.to_string(),
                        },
                        SignalEffect::Closed(reason) => QuotaEvent::CooldownStarted {
                            scope: name,
                            reason,
                            duration_ms: u64::MAX,
                        },
                    });
                }
            }
        }
    }

    /// Applies every settlement and signal sent before `c` first: a caller that settles and then
    /// acquires again must see its refund (the two travel on different channels).
    fn on_command_in_order(
        &mut self,
        c: Command,
        control_rx: &mut mpsc::UnboundedReceiver<Control>,
    ) {
        while let Ok(ctl) = control_rx.try_recv() {
            self.on_control(ctl);
        }
        self.on_command(c);
    }

    fn on_command(&mut self, c: Command) {
        let now = now();
        match c {
            Command::Register { id, spec, reply } => {
                self.ledger.register(id, spec, now);
                self.dirty = true;
                let _ = reply.send(());
            }
            Command::Snapshot { reply } => {
                let scopes = (0..self.ledger.len())
                    .filter_map(|i| {
                        let depth = self.queue.depth(i);
                        self.ledger.scope_mut(i).map(|s| {
                            let mut snap = s.snapshot(now);
                            snap.queue_depth = depth;
                            snap
                        })
                    })
                    .collect();
                let _ = reply.send(QuotaSnapshot { scopes });
            }
            Command::Acquire { req, reply } => self.on_acquire(req, reply, now),
            Command::TopUp { id, extra, reply } => {
                let grown = match self.reservations.get_mut(&id) {
                    Some((r, _)) => self.ledger.top_up(r, extra, now),
                    None => false,
                };
                let _ = reply.send(grown);
            }
        }
    }

    fn on_acquire(
        &mut self,
        req: AcquireRequest,
        reply: oneshot::Sender<Result<Permit, AcquireError>>,
        now: Instant,
    ) {
        if req.candidates.is_empty() {
            let _ = reply.send(Err(AcquireError::NoCandidates));
            return;
        }
        let mut candidates = Vec::with_capacity(req.candidates.len());
        let mut names = Vec::with_capacity(req.candidates.len());
        for cand in &req.candidates {
            // A scope named twice in one candidate is reserved once.
            let mut idx = Vec::with_capacity(cand.len());
            let mut ids = Vec::with_capacity(cand.len());
            for id in cand {
                match self.ledger.lookup(id) {
                    Some(i) if idx.contains(&i) => {}
                    Some(i) => {
                        idx.push(i);
                        ids.push(id.clone());
                    }
                    None => {
                        let _ = reply.send(Err(AcquireError::UnknownScope(id.clone())));
                        return;
                    }
                }
            }
            candidates.push(idx);
            names.push(ids);
        }
        let wait = req.deadline.unwrap_or(self.default_deadline);
        let waiter = Waiter {
            candidates,
            names,
            est: req.tokens(),
            requester: req.requester,
            enqueued: now,
            deadline: instant_after(now, wait),
            reply,
            announced: None,
        };
        let mut dead = None;
        let mut all_dead = true;
        // Whether no candidate can go before the deadline: refused at once, then.
        let mut all_late = true;
        // What holds the first live candidate back, announced at once so every waiter is seen
        // waiting (the scheduling pass stops early in long queues and may not reach it soon).
        let mut first_wait: Option<(usize, Blocker, Option<Instant>)> = None;
        for (ci, cand) in waiter.candidates.iter().enumerate() {
            let check = self.ledger.check(cand, now, waiter.est, &waiter.requester);
            let scope = check.scope.or(cand.first().copied()).unwrap_or(0);
            match &check.verdict {
                Verdict::Admit => {
                    first_wait.get_or_insert((scope, Blocker::Queue, None));
                }
                Verdict::WaitUntil { at, blocker } => {
                    first_wait.get_or_insert((scope, blocker.clone(), Some(*at)));
                }
                Verdict::WaitForEvent { blocker, .. } => {
                    first_wait.get_or_insert((scope, blocker.clone(), None));
                }
                _ => {}
            }
            if !misses_deadline(&check, waiter.deadline, &self.ledger) {
                all_late = false;
            }
            match check.verdict {
                // Nobody waits for these scopes: going now overtakes no one.
                Verdict::Admit if cand.iter().all(|&s| self.queue.depth(s) == 0) => {
                    let r = self
                        .ledger
                        .reserve(cand, now, waiter.est, &waiter.requester);
                    self.deliver(waiter, ci, r, now);
                    return;
                }
                Verdict::Never { .. } | Verdict::Closed { .. } => {
                    if dead.is_none() {
                        dead = Some((check.scope, check.verdict));
                    }
                }
                _ => all_dead = false,
            }
        }
        if all_dead {
            if let Some((scope, verdict)) = dead {
                self.deny(waiter, scope.unwrap_or(0), dead_error(self, scope, verdict));
                return;
            }
        }
        if all_late {
            let (scope, err) = self.describe_deadline(&waiter, now);
            self.deny(waiter, scope, err);
            return;
        }
        let key = self.queue.key(self.origin, now, req.priority);
        let mut waiter = waiter;
        if let Some((scope, blocker, at)) = first_wait {
            let label = blocker.label();
            let name = self.scope_name(scope).to_string();
            let requester = waiter.requester.to_string();
            let depth = self.queue.depth(scope) + 1;
            self.emit(|| QuotaEvent::Waiting {
                requester,
                scope: name,
                limit: Some(label.clone()),
                eta_ms: at.map(|t| millis(t.saturating_duration_since(now))),
                queue_depth: depth,
            });
            waiter.announced = Some(label);
        }
        self.queue.push(key, waiter);
        self.dirty = true;
    }

    /// Hands a permit to a waiter; if the caller already left, rolls the reservation back.
    /// Returns whether the permit was delivered.
    fn deliver(&mut self, w: Waiter, ci: usize, r: Reservation, now: Instant) -> bool {
        let id = self.next_id;
        self.next_id += 1;
        let waited = now.saturating_duration_since(w.enqueued);
        let mut all = w.names;
        let names: Arc<[ScopeId]> = if ci < all.len() {
            Arc::from(all.swap_remove(ci))
        } else {
            Arc::from(Vec::new())
        };
        let permit = Permit::new(
            id,
            ci,
            Arc::clone(&names),
            w.est,
            waited,
            self.control_tx.clone(),
        );
        self.reservations.insert(id, (r, names));
        match w.reply.send(Ok(permit)) {
            Ok(()) => {
                if let Some((_, names)) = self.reservations.get(&id) {
                    self.emit(|| QuotaEvent::Granted {
                        requester: w.requester.to_string(),
                        scopes: names.iter().map(ToString::to_string).collect(),
                        waited_ms: millis(waited),
                    });
                }
                true
            }
            Err(back) => {
                if let Ok(p) = back {
                    p.disarm();
                }
                if let Some((r, _)) = self.reservations.remove(&id) {
                    self.ledger.rollback(&r);
                }
                false
            }
        }
    }

    fn deny(&mut self, w: Waiter, scope: usize, err: AcquireError) {
        if let Some(s) = self.ledger.scope_mut(scope) {
            s.denied_total += 1;
        }
        let scope_name = self.scope_name(scope).to_string();
        self.emit(|| QuotaEvent::Denied {
            requester: w.requester.to_string(),
            scope: scope_name,
            reason: err.to_string(),
        });
        let _ = w.reply.send(Err(err));
    }
}
