//! The wait queue: requests ordered by priority with aging, FIFO within a level.
//!
//! Aging is built into the order key: a request of priority `p` that arrived at `t` ranks as if
//! it had arrived at `t - p * AGING_STEP`. A higher priority goes first, but a request that has
//! waited `AGING_STEP` longer than another ranks one level higher, so after `9 * AGING_STEP` a
//! priority-0 request is ahead of any newly arriving priority-9 request: no starvation, and the
//! order never has to be recomputed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::error::AcquireError;
use super::permit::Permit;
use crate::quota::{ScopeId, TokenCount};

/// One priority level is worth this much waiting.
pub const AGING_STEP: Duration = Duration::from_secs(5);

/// The queue order: (virtual arrival in nanoseconds since the supervisor's origin, sequence).
pub(crate) type Key = (i128, u64);

/// The reply port of a waiting caller. The caller owns the receiver; when it gives up, the
/// sender reports `is_closed()` and the waiter is skipped without consuming anything.
pub(crate) type Reply = oneshot::Sender<Result<Permit, AcquireError>>;

/// A request that could not go at once.
pub(crate) struct Waiter {
    pub candidates: Vec<Vec<usize>>,
    pub names: Vec<Vec<ScopeId>>,
    pub est: TokenCount,
    pub requester: Arc<str>,
    pub enqueued: Instant,
    pub deadline: Instant,
    pub reply: Reply,
    /// The address its permit will settle through.
    pub home: super::actor::Home,
    /// The blocking reason last announced in a `Waiting` event (`None`: not announced yet).
    pub announced: Option<String>,
}

impl Waiter {
    fn distinct_scopes(&self) -> Vec<usize> {
        let mut all: Vec<usize> = self.candidates.iter().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// Waiters in service order, their deadlines, and per-scope depths.
#[derive(Default)]
pub(crate) struct WaitQueue {
    pub order: BTreeMap<Key, Waiter>,
    deadlines: BTreeSet<(Instant, Key)>,
    depth: Vec<usize>,
    /// How many scopes have at least one waiter.
    active: usize,
    seq: u64,
}

impl WaitQueue {
    /// The order key of a request of `priority` arriving at `now`.
    pub fn key(&mut self, origin: Instant, now: Instant, priority: u8) -> Key {
        let since = i128::try_from(now.saturating_duration_since(origin).as_nanos()).unwrap_or(0);
        let boost = i128::from(priority.min(9)) * AGING_STEP.as_nanos() as i128;
        self.seq += 1;
        (since - boost, self.seq)
    }

    pub fn push(&mut self, key: Key, w: Waiter) {
        for s in w.distinct_scopes() {
            if self.depth.len() <= s {
                self.depth.resize(s + 1, 0);
            }
            if let Some(d) = self.depth.get_mut(s) {
                if *d == 0 {
                    self.active += 1;
                }
                *d += 1;
            }
        }
        self.deadlines.insert((w.deadline, key));
        self.order.insert(key, w);
    }

    pub fn remove(&mut self, key: &Key) -> Option<Waiter> {
        let w = self.order.remove(key)?;
        self.deadlines.remove(&(w.deadline, *key));
        for s in w.distinct_scopes() {
            if let Some(d) = self.depth.get_mut(s) {
                *d = d.saturating_sub(1);
                if *d == 0 {
                    self.active = self.active.saturating_sub(1);
                }
            }
        }
        Some(w)
    }

    /// Removes every waiter whose caller left (wherever it stands in the queue); returns how
    /// many.
    pub fn drop_closed(&mut self) -> usize {
        let gone: Vec<Key> = self
            .order
            .iter()
            .filter(|(_, w)| w.reply.is_closed())
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            self.remove(k);
        }
        gone.len()
    }

    /// Requests waiting for scope `s`.
    pub fn depth(&self, s: usize) -> usize {
        self.depth.get(s).copied().unwrap_or(0)
    }

    /// How many scopes some waiter wants.
    pub fn active_scopes(&self) -> usize {
        self.active
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// Keys of the waiters whose deadline is at or before `now`.
    pub fn expired(&self, now: Instant) -> Vec<Key> {
        self.deadlines
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, k)| *k)
            .collect()
    }
}
