//! The `QuotaSupervisor` actix actor: it alone owns the [`Ledger`], the wait queue and the
//! reservations of permits out. One mailbox carries every message in order (permit requests
//! enqueue with `try_send`/`send` and wait their turn when it is full; settlements, releases
//! and feedback with `do_send`, never refused and safe from a `Drop`). A burst of messages is
//! followed by one scheduling pass, and the actor sleeps on exactly one timer of its context:
//! the earliest instant a blocked head could be admitted or a deadline falls.

mod messages;
mod persist;
mod schedule;
mod status;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, AsyncContext, Context, SpawnHandle};
use tokio::sync::{broadcast, oneshot};

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
use crate::store::QuotaStore;
pub(crate) use messages::{Acquire, Feedback, GaveUp, Register, Released, Snapshot, TopUp};
pub(crate) use persist::Persist;
use schedule::{dead_error, misses_deadline};
pub(crate) use status::StoreStatus;

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

/// The actor's state: every scope's ledger, the wait queue, the reservations of permits out,
/// and the one timer the next wake-up needs.
pub(crate) struct QuotaSupervisor {
    ledger: Ledger,
    origin: Instant,
    default_deadline: Duration,
    mailbox_capacity: usize,
    queue: WaitQueue,
    reservations: HashMap<u64, (Reservation, Arc<[ScopeId]>), BuildHasherDefault<IdHasher>>,
    next_id: u64,
    events: broadcast::Sender<QuotaEvent>,
    precise_wake: bool,
    /// Something a waiter depends on changed since the last scheduling pass.
    dirty: bool,
    /// A scheduling pass is queued behind the messages now in the mailbox.
    pass_queued: bool,
    /// A caller left while waiting: the next pass first drops every waiter whose caller left,
    /// also those behind a blocked head that the pass itself would not reach.
    sweep: bool,
    /// The wake-up the last pass computed.
    wake: Option<Instant>,
    /// The timer set for `wake`.
    timer: Option<(Instant, SpawnHandle)>,
    /// The shared quota store, when one is in use (`None`: in memory, nothing shared).
    persist: Option<Persist>,
}

/// The supervisor's address as its permits hold it: one `Addr` per handle, shared by every
/// permit it obtains (cloning an `Addr` allocates; an `Arc` clone does not).
pub(crate) type Home = Arc<Addr<QuotaSupervisor>>;

/// How early a supervisor on its own thread wakes before a deadline to finish the wait with a
/// precise thread sleep.
const PRECISE_SLACK: Duration = Duration::from_millis(2);

impl Actor for QuotaSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Settlements not written yet: written now (unwritten, they would stay at their
        // estimates, which is safe but wasteful).
        self.flush();
    }
}

/// How a permit ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Release {
    /// Settled to the actual tokens.
    Settle(TokenCount),
    /// The provider did not count the call: out of every window.
    Uncount,
    /// Never sent: undone as if never granted (windows, pacing, stagger).
    Unsent,
}

impl QuotaSupervisor {
    pub(crate) fn new(
        settings: &SupervisorSettings,
        wall: WallClock,
        events: broadcast::Sender<QuotaEvent>,
        store: Box<dyn QuotaStore>,
    ) -> Self {
        Self {
            ledger: Ledger::new(settings.stagger, wall),
            origin: wall.origin,
            default_deadline: settings.default_deadline,
            mailbox_capacity: settings.mailbox_capacity.max(1),
            queue: WaitQueue::default(),
            reservations: HashMap::default(),
            next_id: 0,
            events,
            precise_wake: false,
            dirty: false,
            pass_queued: false,
            sweep: false,
            wake: None,
            timer: None,
            persist: store.is_shared().then(|| Persist::new(store)),
        }
    }

    /// Finish timer waits with a precise thread sleep: only for a supervisor that owns its
    /// thread (real time; blocking it briefly delays nobody else).
    pub(crate) fn with_precise_wake(mut self) -> Self {
        self.precise_wake = true;
        self
    }

    /// Queues one scheduling pass behind the messages already in the mailbox when something a
    /// waiter depends on changed: a burst of settlements and arrivals is scheduled once.
    fn touch(&mut self, ctx: &mut Context<Self>) {
        if self.dirty && !self.pass_queued {
            self.pass_queued = true;
            ctx.notify(messages::Pass);
        }
    }

    /// Grants what can go, refuses what expired, and sets the timer for the next wake-up.
    fn run_pass(&mut self, ctx: &mut Context<Self>) {
        self.pass_queued = false;
        if std::mem::take(&mut self.sweep) && self.queue.drop_closed() > 0 {
            self.dirty = true;
        }
        let wake = self.schedule();
        self.wake = wake;
        self.set_timer(wake, ctx);
    }

    /// One timer at a time, at the instant the last pass computed (kept when unchanged).
    fn set_timer(&mut self, wake: Option<Instant>, ctx: &mut Context<Self>) {
        if self.timer.as_ref().map(|(at, _)| *at) == wake {
            return;
        }
        if let Some((_, handle)) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        let Some(at) = wake else {
            return;
        };
        // tokio's timer rounds up to the next millisecond; on a thread of its own the
        // supervisor wakes a little early and sleeps the rest exactly.
        let early = if self.precise_wake {
            PRECISE_SLACK
        } else {
            Duration::ZERO
        };
        let fire = at.checked_sub(early).unwrap_or(at);
        let after = fire.saturating_duration_since(now());
        let handle = ctx.run_later(after, move |act, ctx| {
            act.timer = None;
            if act.quiet_poll(now()) {
                let wake = act.wake;
                act.set_timer(wake, ctx);
                return;
            }
            if act.precise_wake {
                let left = at.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    std::thread::sleep(left);
                }
            }
            act.dirty = true;
            act.run_pass(ctx);
        });
        self.timer = Some((at, handle));
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

    /// Ends permit `id`'s reservation the way `how` says.
    fn release(&mut self, id: u64, how: Release) {
        let Some((r, names)) = self.reservations.remove(&id) else {
            return;
        };
        self.store_release(
            id,
            match how {
                Release::Settle(actual) => Some(actual),
                Release::Uncount | Release::Unsent => None,
            },
        );
        let actual = match how {
            Release::Settle(actual) => {
                self.ledger.settle(&r, actual);
                self.dirty |= r.scopes.iter().any(|&s| self.queue.depth(s) > 0);
                actual.total()
            }
            Release::Uncount => {
                self.ledger.uncount(&r);
                self.dirty |= r.scopes.iter().any(|&s| self.queue.depth(s) > 0);
                0
            }
            Release::Unsent => {
                self.ledger.rollback(&r);
                self.dirty = true;
                0
            }
        };
        self.emit(|| QuotaEvent::Settled {
            scopes: names.iter().map(ToString::to_string).collect(),
            estimate: r.est.total(),
            actual,
        });
    }

    /// Applies a provider signal to `scope`.
    fn feedback(&mut self, scope: &ScopeId, signal: &RateLimitSignal) {
        let Some(i) = self.ledger.lookup(scope) else {
            tracing::warn!(%scope, "quota feedback for an unregistered scope ignored");
            return;
        };
        self.dirty = true;
        let now = now();
        for effect in self.ledger.apply_signal(i, signal, now) {
            self.store_effect(i, &effect, now);
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

    fn register(&mut self, id: ScopeId, spec: ScopeSpec) {
        let i = self.ledger.register(id, spec, now());
        self.store_register(i);
        self.dirty = true;
    }

    fn snapshot(&mut self) -> QuotaSnapshot {
        let now = now();
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
        QuotaSnapshot { scopes }
    }

    fn top_up(&mut self, id: u64, extra: TokenCount) -> bool {
        let now = now();
        if self.shared_store() {
            // A top-up is a grant of more tokens: decided on fresh data, durable before it is
            // answered.
            if let Err(e) = self.store_begin(now) {
                self.store_failed(&e);
                return false;
            }
        }
        let grown = match self.reservations.get_mut(&id) {
            Some((r, _)) => self.ledger.top_up(r, extra, now).then_some(r.est),
            None => None,
        };
        match grown {
            Some(est) => self.store_top_up(id, est, now),
            None => {
                if let Err(e) = self.store_commit(now) {
                    self.store_failed(&e);
                }
                false
            }
        }
    }

    fn on_acquire(
        &mut self,
        req: AcquireRequest,
        reply: oneshot::Sender<Result<Permit, AcquireError>>,
        home: Home,
    ) {
        // A caller that gave up while its request sat in the mailbox consumes nothing.
        if reply.is_closed() {
            return;
        }
        let now = now();
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
            home,
            announced: None,
        };
        let mut dead = None;
        let mut all_dead = true;
        // Whether no candidate can go before the deadline: refused at once, then.
        let mut all_late = true;
        // What holds the live candidates back (the first, or one known to free sooner),
        // announced at once so every waiter is seen waiting (the scheduling pass stops early in
        // long queues and may not reach it soon).
        let mut first_wait: Option<(usize, Blocker, Option<Instant>)> = None;
        for (ci, cand) in waiter.candidates.iter().enumerate() {
            let check = self.ledger.check(cand, now, waiter.est, &waiter.requester);
            let scope = check.scope.or(cand.first().copied()).unwrap_or(0);
            match &check.verdict {
                // With a shared store every grant goes through a store transaction: an
                // admissible request waits for the pass behind this burst, unannounced.
                Verdict::Admit if self.persist.is_some() => {}
                Verdict::Admit => {
                    first_wait.get_or_insert((scope, Blocker::Queue, None));
                }
                // A later candidate free sooner is the wait announced: the earliest time known.
                Verdict::WaitUntil { at, blocker } => match &first_wait {
                    Some((_, _, Some(t))) if *at >= *t => {}
                    Some((_, _, None)) => {}
                    _ => first_wait = Some((scope, blocker.clone(), Some(*at))),
                },
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
                Verdict::Admit
                    if self.persist.is_none() && cand.iter().all(|&s| self.queue.depth(s) == 0) =>
                {
                    let r = self
                        .ledger
                        .reserve(cand, now, waiter.est, &waiter.requester);
                    self.deliver(waiter, ci, r, Vec::new(), now);
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
    fn deliver(
        &mut self,
        w: Waiter,
        ci: usize,
        r: Reservation,
        rows: Vec<i64>,
        now: Instant,
    ) -> bool {
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
            Arc::clone(&w.home),
        );
        self.reservations.insert(id, (r, names));
        match w.reply.send(Ok(permit)) {
            Ok(()) => {
                self.store_delivered(id, rows);
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
                self.store_forget(rows);
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
