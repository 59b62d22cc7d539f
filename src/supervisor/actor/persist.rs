//! The supervisor's side of a shared quota store: every scheduling pass that may grant runs in
//! one store transaction (pull what other processes changed, decide, write the grants, commit,
//! then deliver); settlements, releases, cooldowns and learned limits are written through in
//! batches. Absent (`None`) with the in-memory store: the supervisor then works exactly as it
//! does without one.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::time::{Duration, Instant};

use actix::{AsyncContext, Context};

use super::{IdHasher, QuotaSupervisor, messages};
use crate::quota::{Reservation, ScopeState, SignalEffect, TokenCount};
use crate::store::{Mirror, QuotaStore, StoreError, WindowLimit, Write, instant_of_ms, wall_ms};

/// How soon a pass that could not reach the store tries again (its waiters keep waiting, up to
/// their deadlines: nothing is granted that is not durable).
pub(super) const STORE_RETRY: Duration = Duration::from_millis(200);

/// How often waiters blocked by time also look at what other processes released: a release or
/// a settlement below its estimate elsewhere can only make them go sooner.
pub(super) const STORE_POLL: Duration = Duration::from_millis(500);

/// How long settlements and releases may wait to be written when no scheduling pass carries
/// them first.
pub(super) const FLUSH_DELAY: Duration = Duration::from_millis(10);

/// Every how many commits the foreign admissions that left every window are forgotten (a walk
/// over all of them).
const FORGET_EVERY: u32 = 256;

/// The store and what this process knows of it.
pub(crate) struct Persist {
    pub(super) store: Box<dyn QuotaStore>,
    mirror: Mirror,
    /// Scopes registered but whose state in the store is not loaded yet.
    unloaded: Vec<usize>,
    /// Writes waiting for the next transaction.
    pending: Vec<Write>,
    flush_queued: bool,
    /// The store rows of each permit out (one per scope).
    rows: HashMap<u64, Vec<i64>, BuildHasherDefault<IdHasher>>,
    /// Whether the last transaction failed (logged once per outage).
    failing: bool,
    /// When the timer is set for a poll of the store: the wake-up the queue itself needs.
    polled: Option<Option<Instant>>,
    /// Commits since foreign admissions that left every window were last forgotten.
    commits: u32,
    /// The last answer to a status request (`/status` is scraped in a loop).
    pub(super) status_cache: super::status::StatusCache,
    /// The limits last written for each scope (by ledger index), for stores that check
    /// admissions themselves.
    limits: Vec<Vec<WindowLimit>>,
}

/// Whether `sent` is what `s` enforces now.
fn same_limits(sent: &[WindowLimit], s: &ScopeState) -> bool {
    sent.len() == s.limits().len()
        && sent.iter().zip(s.limits()).all(|(w, l)| {
            w.dimension == l.effective.dimension
                && w.amount == l.effective.amount.get()
                && u128::try_from(w.window_ms).ok() == Some(l.log.period().as_millis())
        })
}

/// The limits `s` enforces now, as a store checks them.
fn window_limits(s: &ScopeState) -> Vec<WindowLimit> {
    s.limits()
        .iter()
        .map(|l| WindowLimit {
            dimension: l.effective.dimension,
            amount: l.effective.amount.get(),
            window_ms: i64::try_from(l.log.period().as_millis()).unwrap_or(i64::MAX),
        })
        .collect()
}

impl Persist {
    pub(crate) fn new(store: Box<dyn QuotaStore>) -> Self {
        Self {
            store,
            mirror: Mirror::new(),
            unloaded: Vec::new(),
            pending: Vec::new(),
            flush_queued: false,
            rows: HashMap::default(),
            failing: false,
            polled: None,
            commits: 0,
            status_cache: None,
            limits: Vec::new(),
        }
    }
}

impl QuotaSupervisor {
    /// Opens a transaction and brings the ledger up to date: what other processes changed,
    /// the state of scopes registered since, and this process's pending writes.
    pub(super) fn store_begin(&mut self, now: Instant) -> Result<(), StoreError> {
        let Some(p) = self.persist.as_mut() else {
            return Ok(());
        };
        let changes = p.store.begin()?;
        p.mirror.apply(&mut self.ledger, changes, now);
        let wall = *self.ledger.wall_clock();
        let now_ms = wall_ms(&wall, now);
        let unloaded = std::mem::take(&mut p.unloaded);
        let mut result = Ok(());
        for (n, &i) in unloaded.iter().enumerate() {
            let Some(s) = self.ledger.scope(i) else {
                continue;
            };
            let name = s.id().as_str().to_owned();
            let horizon = i64::try_from(s.horizon().as_millis()).unwrap_or(i64::MAX);
            let short = i64::try_from(s.short_horizon().as_millis()).unwrap_or(i64::MAX);
            let startup_until = s
                .cooldown()
                .filter(|c| c.reason == "startup")
                .map_or(now_ms, |c| wall_ms(&wall, c.until));
            let loaded = p
                .store
                .load_scope(&name, now_ms.saturating_sub(horizon), now_ms)
                .and_then(|changes| {
                    p.mirror.apply(&mut self.ledger, changes, now);
                    p.store.write(&Write::Scope {
                        scope: name,
                        horizon_ms: horizon,
                        short_horizon_ms: short,
                        started_ms: now_ms,
                        startup_until_ms: startup_until,
                    })
                });
            if let Err(e) = loaded {
                p.unloaded.extend_from_slice(&unloaded[n..]);
                result = Err(e);
                break;
            }
        }
        if result.is_ok() {
            for (n, w) in p.pending.iter().enumerate() {
                if let Err(e) = p.store.write(w) {
                    tracing::debug!(write = n, "quota store write failed");
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_err() {
            p.store.abort();
        }
        result
    }

    /// Writes the rows of `grants` (one per scope of each) in the open transaction.
    pub(super) fn store_grants<'a>(
        &mut self,
        grants: impl Iterator<Item = &'a Reservation>,
    ) -> Result<Vec<Vec<i64>>, StoreError> {
        let Some(p) = self.persist.as_mut() else {
            return Ok(Vec::new());
        };
        let wall = *self.ledger.wall_clock();
        let mut out = Vec::new();
        for r in grants {
            let at_ms = wall_ms(&wall, r.at);
            let mut ids = Vec::with_capacity(r.scopes.len());
            for &i in &r.scopes {
                let Some(s) = self.ledger.scope(i) else {
                    continue;
                };
                if p.limits.get(i).is_none_or(|sent| !same_limits(sent, s)) {
                    let limits = window_limits(s);
                    if p.limits.len() <= i {
                        p.limits.resize(i + 1, Vec::new());
                    }
                    let w = Write::Limits {
                        scope: s.id().as_str().to_owned(),
                        limits: limits.clone(),
                    };
                    if let Err(e) = p.store.write(&w) {
                        p.store.abort();
                        return Err(e);
                    }
                    if let Some(slot) = p.limits.get_mut(i) {
                        *slot = limits;
                    }
                }
                let w = Write::Admit {
                    scope: s.id().as_str().to_owned(),
                    at_ms,
                    input: r.est.input,
                    output: r.est.output,
                };
                match p.store.write(&w) {
                    Ok(Some(id)) => ids.push(id),
                    Ok(None) => {}
                    Err(e) => {
                        p.store.abort();
                        return Err(e);
                    }
                }
            }
            out.push(ids);
        }
        Ok(out)
    }

    /// Commits the open transaction; the pending writes it carried are done.
    pub(super) fn store_commit(&mut self, now: Instant) -> Result<(), StoreError> {
        let Some(p) = self.persist.as_mut() else {
            return Ok(());
        };
        let wall = *self.ledger.wall_clock();
        p.store.commit(wall_ms(&wall, now))?;
        p.pending.clear();
        p.commits = p.commits.wrapping_add(1);
        if p.commits % FORGET_EVERY == 0 && !p.mirror.is_empty() {
            p.mirror.forget_expired(&self.ledger, now);
        }
        if p.failing {
            p.failing = false;
            tracing::info!(store = %p.store.describe(), "the quota state store works again");
        }
        Ok(())
    }

    /// Logs a store failure (once per outage). A conflict is no failure: the store works.
    pub(super) fn store_failed(&mut self, e: &StoreError) {
        if matches!(e, StoreError::Conflict { .. }) {
            tracing::debug!(error = %e, "the quota state store refused a grant");
            return;
        }
        if let Some(p) = self.persist.as_mut() {
            if !p.failing {
                p.failing = true;
                tracing::error!(error = %e, "the quota state store failed: nothing is granted until it works again");
            }
        }
    }

    /// The wake-up to set: `real`, or sooner a look at the store while calls wait (a release
    /// or a settlement below its estimate in another process can only let them go sooner).
    pub(super) fn poll_before(&mut self, now: Instant, real: Option<Instant>) -> Option<Instant> {
        let waiting = !self.queue.is_empty();
        let Some(p) = self.persist.as_mut() else {
            return real;
        };
        let poll = crate::quota::time::instant_after(now, STORE_POLL);
        if waiting && real.is_none_or(|r| poll < r) {
            p.polled = Some(real);
            Some(poll)
        } else {
            p.polled = None;
            real
        }
    }

    /// At a poll's timer: when no other process wrote since, sets the next poll (or the real
    /// wake-up) and returns `true`: no pass is needed.
    pub(super) fn quiet_poll(&mut self, now: Instant) -> bool {
        let Some(p) = self.persist.as_mut() else {
            return false;
        };
        let Some(real) = p.polled else {
            return false;
        };
        if real.is_some_and(|r| r <= now) || p.store.changed_elsewhere() {
            return false;
        }
        self.wake = self.poll_before(now, real);
        true
    }

    /// A shared store refused the pass's grants: each blocking scope is held here (a local
    /// cooldown, not written to the store) until its request fits there, at least 1 ms.
    /// Returns whether any scope is held (else the pass must not simply run again).
    pub(super) fn store_hold(&mut self, holds: &[(String, i64)], now: Instant) -> bool {
        let mut held = false;
        let wall = *self.ledger.wall_clock();
        let min = crate::quota::time::instant_after(now, Duration::from_millis(1));
        for (scope, at_ms) in holds {
            let Some(i) = self
                .ledger
                .lookup(&crate::quota::ScopeId::new(scope.clone()))
            else {
                continue;
            };
            let until = instant_of_ms(&wall, *at_ms).max(min);
            if let Some(s) = self.ledger.scope_mut(i) {
                s.cool_down(until, "store".to_owned());
                held = true;
            }
        }
        held
    }

    /// Whether a shared store is in use (grants then go through a store transaction).
    pub(super) fn shared_store(&self) -> bool {
        self.persist.is_some()
    }

    /// Remembers the rows of a delivered permit.
    pub(super) fn store_delivered(&mut self, id: u64, rows: Vec<i64>) {
        if let Some(p) = self.persist.as_mut() {
            if !rows.is_empty() {
                p.rows.insert(id, rows);
            }
        }
    }

    /// Releases rows of a grant that was never delivered.
    pub(super) fn store_forget(&mut self, rows: Vec<i64>) {
        if let Some(p) = self.persist.as_mut() {
            p.pending
                .extend(rows.into_iter().map(|id| Write::Remove { id }));
        }
    }

    /// Writes through a permit's end: its rows settle to `tokens`, or go (`None`).
    pub(super) fn store_release(&mut self, id: u64, tokens: Option<TokenCount>) {
        let Some(p) = self.persist.as_mut() else {
            return;
        };
        let Some(rows) = p.rows.remove(&id) else {
            return;
        };
        p.pending.extend(rows.into_iter().map(|id| match tokens {
            Some(t) => Write::Tokens {
                id,
                input: t.input,
                output: t.output,
            },
            None => Write::Remove { id },
        }));
    }

    /// Writes through a permit's grown reservation in the transaction the top-up was decided
    /// in, and commits it. Returns whether it is durable.
    pub(super) fn store_top_up(&mut self, id: u64, tokens: TokenCount, now: Instant) -> bool {
        let Some(p) = self.persist.as_mut() else {
            return true;
        };
        let rows = p.rows.get(&id).cloned().unwrap_or_default();
        let mut written = Ok(None);
        for id in rows {
            written = p.store.write(&Write::Tokens {
                id,
                input: tokens.input,
                output: tokens.output,
            });
            if written.is_err() {
                p.store.abort();
                break;
            }
        }
        match written.and_then(|_| self.store_commit(now)) {
            Ok(()) => true,
            Err(e) => {
                self.store_failed(&e);
                false
            }
        }
    }

    /// Writes through what a provider signal did to scope `i`.
    pub(super) fn store_effect(&mut self, i: usize, effect: &SignalEffect, now: Instant) {
        let Some(p) = self.persist.as_mut() else {
            return;
        };
        let Some(s) = self.ledger.scope(i) else {
            return;
        };
        let wall = *self.ledger.wall_clock();
        let scope = s.id().as_str().to_owned();
        match effect {
            SignalEffect::Cooldown { until, reason, .. } => p.pending.push(Write::Cooldown {
                scope,
                until_ms: wall_ms(&wall, *until),
                reason: reason.clone(),
            }),
            SignalEffect::Learned(limit) => p.pending.push(Write::Learned {
                scope,
                limit: *limit,
                at_ms: wall_ms(&wall, now),
            }),
            SignalEffect::Closed(_) => {}
        }
    }

    /// A newly registered scope's state in the store is loaded by the next transaction.
    pub(super) fn store_register(&mut self, i: usize) {
        if let Some(p) = self.persist.as_mut() {
            if !p.unloaded.contains(&i) {
                p.unloaded.push(i);
            }
        }
    }

    /// Queues one flush of the pending writes behind the messages in the mailbox.
    pub(super) fn queue_flush(&mut self, ctx: &mut Context<Self>) {
        if let Some(p) = self.persist.as_mut() {
            let work = !p.pending.is_empty() || !p.unloaded.is_empty();
            if work && !p.flush_queued {
                p.flush_queued = true;
                ctx.notify(messages::Flush);
            }
        }
    }

    /// Queues one flush of the pending writes [`FLUSH_DELAY`] from now, unless one is queued:
    /// for settlements and releases, which only ever lower what other processes count (they
    /// may wait a moment, and the next scheduling pass carries them anyway).
    pub(super) fn queue_flush_later(&mut self, ctx: &mut Context<Self>) {
        if let Some(p) = self.persist.as_mut() {
            if !p.pending.is_empty() && !p.flush_queued {
                p.flush_queued = true;
                ctx.run_later(FLUSH_DELAY, |act, _| act.flush());
            }
        }
    }

    /// Writes the pending writes (and loads new scopes) in one transaction.
    pub(super) fn flush(&mut self) {
        let now = super::now();
        if let Some(p) = self.persist.as_mut() {
            p.flush_queued = false;
            if p.pending.is_empty() && p.unloaded.is_empty() {
                return;
            }
        }
        if let Err(e) = self.store_begin(now).and_then(|()| self.store_commit(now)) {
            self.store_failed(&e);
        }
    }
}
