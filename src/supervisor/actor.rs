//! The `QuotaSupervisor` actor: one task that owns the [`Ledger`] and the wait queue, reads a
//! bounded mailbox (acquire, register, snapshot) and an unbounded control channel (settlements
//! and feedback, which must never be lost or block a `Drop`), and sleeps on exactly one timer:
//! the earliest instant a blocked head could be admitted or a deadline falls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};

use super::error::AcquireError;
use super::events::{QuotaEvent, millis};
use super::permit::{AcquireRequest, Permit};
use super::queue::{Key, WaitQueue, Waiter};
use super::{QuotaSnapshot, SupervisorSettings};
use crate::quota::{
    Blocker, Ledger, RateLimitSignal, Reservation, ScopeId, ScopeSpec, SignalEffect, Verdict,
    WallClock,
};

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
}

/// Fire-and-forget messages.
#[derive(Debug)]
pub(crate) enum Control {
    Settle {
        id: u64,
        actual: u64,
    },
    Feedback {
        scope: ScopeId,
        signal: RateLimitSignal,
    },
    /// A caller gave up while waiting: pass again so those behind it can go.
    GaveUp,
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
    reservations: HashMap<u64, (Reservation, Arc<[ScopeId]>)>,
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

/// How soon a blocked candidate could go: timed ones before event-bound ones, earlier first.
type Readiness = (u8, Option<Instant>);

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
            reservations: HashMap::new(),
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
            wake = self.schedule(now());
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
                        estimate: r.est,
                        actual,
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
        for cand in &req.candidates {
            let mut idx = Vec::with_capacity(cand.len());
            for id in cand {
                match self.ledger.lookup(id) {
                    Some(i) => idx.push(i),
                    None => {
                        let _ = reply.send(Err(AcquireError::UnknownScope(id.clone())));
                        return;
                    }
                }
            }
            candidates.push(idx);
        }
        let waiter = Waiter {
            candidates,
            names: req.candidates,
            est: req.est_tokens,
            requester: req.requester,
            enqueued: now,
            deadline: now + req.deadline.unwrap_or(self.default_deadline),
            reply,
            announced: false,
        };
        let mut dead = None;
        let mut all_dead = true;
        for (ci, cand) in waiter.candidates.iter().enumerate() {
            let check = self.ledger.check(cand, now, waiter.est, &waiter.requester);
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
        let key = self.queue.key(self.origin, now, req.priority);
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

    /// Grants what can go at `now`, refuses what expired, and returns the next wake-up.
    /// Passes over the queue only when something a waiter depends on changed (an arrival, a
    /// settlement in a scope with waiters, a signal, the timer), so traffic in scopes nobody
    /// waits for costs nothing however long the queue is.
    fn schedule(&mut self, now: Instant) -> Option<Instant> {
        if self.queue.is_empty() {
            self.dirty = false;
            return None;
        }
        let due = self.wake.is_some_and(|w| w <= now);
        if !self.dirty && !due {
            return self.wake;
        }
        self.dirty = false;
        loop {
            let (wake, changed) = self.pass(now);
            let expired = self.queue.expired(now);
            let any_expired = !expired.is_empty();
            for key in expired {
                if let Some(w) = self.queue.remove(&key) {
                    if w.reply.is_closed() {
                        continue;
                    }
                    let (scope, err) = self.describe_deadline(&w, now);
                    self.deny(w, scope, err);
                }
            }
            if !changed && !any_expired {
                return match (wake, self.queue.next_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }

    /// One pass over the queue in service order. Returns the earliest instant a blocked head
    /// could go, and whether a grant was rolled back (capacity changed: pass again).
    fn pass(&mut self, now: Instant) -> (Option<Instant>, bool) {
        let n = self.ledger.len();
        let mut blocked = vec![false; n];
        let mut blocked_count = 0usize;
        let mut wake: Option<Instant> = None;
        let mut grants: Vec<(Key, usize, Reservation)> = Vec::new();
        let mut drops: Vec<Key> = Vec::new();
        let mut denials: Vec<(Key, usize, AcquireError)> = Vec::new();
        let mut announce: Vec<(Key, usize, Blocker, Option<Instant>)> = Vec::new();
        for (key, w) in &self.queue.order {
            if n > 0 && blocked_count >= n {
                break;
            }
            if w.reply.is_closed() {
                drops.push(*key);
                continue;
            }
            let mut target: Option<(Readiness, usize, Option<usize>, Blocker)> = None;
            let mut dead = None;
            let mut queued_behind = None;
            let mut granted = None;
            for (ci, cand) in w.candidates.iter().enumerate() {
                if let Some(&s) = cand.iter().find(|&&s| blocked.get(s) == Some(&true)) {
                    queued_behind.get_or_insert(s);
                    continue;
                }
                let check = self.ledger.check(cand, now, w.est, &w.requester);
                let (ready, blocker) = match check.verdict {
                    Verdict::Admit => {
                        granted = Some(ci);
                        break;
                    }
                    Verdict::WaitUntil { at, blocker } => ((0, Some(at)), blocker),
                    Verdict::WaitForEvent {
                        blocker,
                        not_before,
                    } => ((1, not_before), blocker),
                    v @ (Verdict::Never { .. } | Verdict::Closed { .. }) => {
                        dead.get_or_insert((check.scope, v));
                        continue;
                    }
                };
                if target.as_ref().is_none_or(|t| ready < t.0) {
                    target = Some((ready, ci, check.scope, blocker));
                }
            }
            if let Some(ci) = granted {
                if let Some(cand) = w.candidates.get(ci) {
                    let r = self.ledger.reserve(cand, now, w.est, &w.requester);
                    grants.push((*key, ci, r));
                }
            } else if let Some(((class, at), ci, scope, blocker)) = target {
                for &s in w.candidates.get(ci).into_iter().flatten() {
                    if let Some(b) = blocked.get_mut(s) {
                        if !*b {
                            *b = true;
                            blocked_count += 1;
                        }
                    }
                }
                if class == 0 {
                    wake = match (wake, at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                if !w.announced {
                    announce.push((*key, scope.unwrap_or(0), blocker, at));
                }
            } else if let Some(s) = queued_behind {
                if !w.announced {
                    announce.push((*key, s, Blocker::Queue, None));
                }
            } else if let Some((scope, verdict)) = dead {
                let err = dead_error(self, scope, verdict);
                denials.push((*key, scope.unwrap_or(0), err));
            }
        }
        for key in drops {
            self.queue.remove(&key);
        }
        for (key, scope, err) in denials {
            if let Some(w) = self.queue.remove(&key) {
                self.deny(w, scope, err);
            }
        }
        for (key, scope, blocker, at) in announce {
            let depth = self.queue.depth(scope);
            let name = self.scope_name(scope).to_string();
            if let Some(w) = self.queue.order.get_mut(&key) {
                w.announced = true;
                let requester = w.requester.to_string();
                self.emit(|| QuotaEvent::Waiting {
                    requester,
                    scope: name,
                    limit: Some(blocker.label()),
                    eta_ms: at.map(|t| millis(t.saturating_duration_since(now))),
                    queue_depth: depth,
                });
            }
        }
        let mut rolled_back = false;
        for (key, ci, r) in grants {
            match self.queue.remove(&key) {
                Some(w) => rolled_back |= !self.deliver(w, ci, r, now),
                None => self.ledger.rollback(&r),
            }
        }
        (wake, rolled_back)
    }

    /// The error for a waiter whose deadline passed: the scope and limit that held it back.
    fn describe_deadline(&mut self, w: &Waiter, now: Instant) -> (usize, AcquireError) {
        let waited = now.saturating_duration_since(w.enqueued);
        let mut best: Option<(Readiness, usize, Option<Instant>, Blocker)> = None;
        let mut fallback = w.candidates.iter().flatten().next().copied().unwrap_or(0);
        for cand in &w.candidates {
            let check = self.ledger.check(cand, now, w.est, &w.requester);
            let scope = check.scope.or(cand.first().copied()).unwrap_or(fallback);
            let (ready, blocker) = match check.verdict {
                Verdict::WaitUntil { at, blocker } => ((0, Some(at)), blocker),
                Verdict::WaitForEvent {
                    blocker,
                    not_before,
                } => ((1, not_before), blocker),
                Verdict::Admit => ((2, None), Blocker::Queue),
                Verdict::Never { .. } | Verdict::Closed { .. } => {
                    fallback = scope;
                    continue;
                }
            };
            if best.as_ref().is_none_or(|b| ready < b.0) {
                best = Some((ready, scope, ready.1, blocker));
            }
        }
        let (scope, at, blocker) = match best {
            Some((_, s, at, b)) => (s, at, b),
            None => (fallback, None, Blocker::Queue),
        };
        let in_flight = self
            .ledger
            .scope(scope)
            .map_or(0, |s| u64::from(s.in_flight()));
        let (limit, used) = match blocker {
            Blocker::Limit { limit, used } => (Some(limit), used),
            _ => (None, in_flight),
        };
        let err = AcquireError::DeadlineExceeded {
            scope: self.scope_name(scope),
            limit,
            used,
            frees_in: at.map(|t| t.saturating_duration_since(now)),
            waited,
        };
        (scope, err)
    }
}

/// The error for a candidate that can never go (`Never` or `Closed`).
fn dead_error(sup: &QuotaSupervisor, scope: Option<usize>, verdict: Verdict) -> AcquireError {
    let scope = sup.scope_name(scope.unwrap_or(0));
    match verdict {
        Verdict::Never { limit, requested } => AcquireError::NeverFits {
            scope,
            limit,
            requested,
        },
        Verdict::Closed { reason } => AcquireError::ScopeClosed { scope, reason },
        _ => AcquireError::ScopeClosed {
            scope,
            reason: "no candidate can be admitted".to_owned(),
        },
    }
}
