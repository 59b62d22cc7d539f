//! The scheduling pass: who goes now, who keeps waiting (and until when), whose deadline passed.

use std::time::Instant;

use super::QuotaSupervisor;
use super::persist::STORE_RETRY;
use crate::quota::time::instant_after;
use crate::quota::{Blocker, CandidateCheck, Ledger, Reservation, Verdict};
use crate::store::StoreError;
use crate::supervisor::error::AcquireError;
use crate::supervisor::events::{QuotaEvent, millis};
use crate::supervisor::queue::{Key, Waiter};

/// How soon a blocked candidate could go: timed ones before event-bound ones, earlier first.
type Readiness = (u8, Option<Instant>);

impl QuotaSupervisor {
    /// Grants what can go at `now`, refuses what expired, and returns the next wake-up.
    /// Passes over the queue only when something a waiter depends on changed (an arrival, a
    /// settlement in a scope with waiters, a signal, the timer), so traffic in scopes nobody
    /// waits for costs nothing however long the queue is.
    pub(super) fn schedule(&mut self) -> Option<Instant> {
        if self.queue.is_empty() {
            self.dirty = false;
            return None;
        }
        let now = super::now();
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
                let real = match (wake, self.queue.next_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                return self.poll_before(now, real);
            }
        }
    }

    /// One pass over the queue in service order. Returns the earliest instant a blocked head
    /// could go, and whether a grant was rolled back (capacity changed: pass again).
    fn pass(&mut self, now: Instant) -> (Option<Instant>, bool) {
        // With a shared store the whole pass is one transaction: what other processes admitted
        // is merged first, the grants are durable before any is delivered.
        if let Err(e) = self.store_begin(now) {
            self.store_failed(&e);
            return (Some(instant_after(now, STORE_RETRY)), false);
        }
        let n = self.ledger.len();
        let mut blocked = vec![false; n];
        let mut blocked_count = 0usize;
        let mut wake: Option<Instant> = None;
        let mut grants: Vec<(Key, usize, Reservation)> = Vec::new();
        let mut drops: Vec<Key> = Vec::new();
        let mut denials: Vec<(Key, usize, AcquireError)> = Vec::new();
        let mut announce: Vec<(Key, usize, Blocker, Option<Instant>)> = Vec::new();
        let mut late: Vec<Key> = Vec::new();
        for (key, w) in &self.queue.order {
            // Once every scope some waiter wants is held for an earlier waiter, nobody further
            // down can go: each of their candidates names a held scope.
            if blocked_count > 0 && blocked_count >= self.queue.active_scopes() {
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
            // Whether no candidate can go before the waiter's deadline (a time-bound wait that
            // ends after it, or a dead candidate): then it is refused at once and holds nothing.
            let mut all_late = true;
            for (ci, cand) in w.candidates.iter().enumerate() {
                if let Some(&s) = cand.iter().find(|&&s| blocked.get(s) == Some(&true)) {
                    queued_behind.get_or_insert(s);
                    continue;
                }
                let check = self.ledger.check(cand, now, w.est, &w.requester);
                if !misses_deadline(&check, w.deadline, &self.ledger) {
                    all_late = false;
                }
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
            } else if target.is_some() && all_late && queued_behind.is_none() {
                late.push(*key);
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
                if w.announced.as_deref() != Some(blocker.label().as_str()) {
                    announce.push((*key, scope.unwrap_or(0), blocker, at));
                }
            } else if let Some(s) = queued_behind {
                if w.announced.is_none() {
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
        for key in late {
            if let Some(w) = self.queue.remove(&key) {
                let (scope, err) = self.describe_deadline(&w, now);
                self.deny(w, scope, err);
            }
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
                w.announced = Some(blocker.label());
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
        let rows = self
            .store_grants(grants.iter().map(|g| &g.2))
            .and_then(|rows| self.store_commit(now).map(|()| rows));
        let mut rows = match rows {
            Ok(rows) => rows.into_iter(),
            Err(e) => {
                // Not durable: nothing is granted; the waiters keep their places.
                for (_, _, r) in &grants {
                    self.ledger.rollback(r);
                }
                if let StoreError::Conflict { holds, .. } = &e {
                    // Another process admitted first: hold the blocking scopes until their
                    // request fits on the store, and pass again at once (the next transaction
                    // reads what the others admitted).
                    if self.store_hold(holds, now) {
                        return (wake, true);
                    }
                }
                self.store_failed(&e);
                return (Some(instant_after(now, STORE_RETRY)), false);
            }
        };
        let mut rolled_back = false;
        for (key, ci, r) in grants {
            let ids = rows.next().unwrap_or_default();
            match self.queue.remove(&key) {
                Some(w) => rolled_back |= !self.deliver(w, ci, r, ids, now),
                None => {
                    self.ledger.rollback(&r);
                    self.store_forget(ids);
                }
            }
        }
        (wake, rolled_back)
    }

    /// The error for a waiter whose deadline passed: the scope and limit that held it back.
    pub(super) fn describe_deadline(&mut self, w: &Waiter, now: Instant) -> (usize, AcquireError) {
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
        let (limit, used, blocked_by) = match blocker {
            Blocker::Limit { limit, used } => (Some(limit), used, None),
            other => (None, in_flight, Some(other.to_string())),
        };
        let err = AcquireError::DeadlineExceeded {
            scope: self.scope_name(scope),
            limit,
            used,
            frees_in: at.map(|t| t.saturating_duration_since(now)),
            waited,
            blocked_by,
        };
        (scope, err)
    }
}

/// The error for a candidate that can never go (`Never` or `Closed`).
pub(super) fn dead_error(
    sup: &QuotaSupervisor,
    scope: Option<usize>,
    verdict: Verdict,
) -> AcquireError {
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

/// Whether a candidate cannot go at or before `deadline`: it is dead, or the earliest instant
/// it could go (a lower bound: nothing else admitted first) is after it. Only waits that nothing
/// but time can shorten count: a wait on a token limit of a scope with calls in flight may end
/// early when one settles below its estimate, and a wait for a free slot ends when a call
/// finishes; those wait for their deadline as before.
pub(super) fn misses_deadline(check: &CandidateCheck, deadline: Instant, ledger: &Ledger) -> bool {
    match &check.verdict {
        Verdict::Admit | Verdict::WaitForEvent { .. } => false,
        Verdict::WaitUntil { at, blocker } => {
            // Any token dimension: Gemini settles every token to usage and Anthropic its
            // output, both below the estimate (input and output tokens alike).
            let refundable = matches!(
                blocker,
                Blocker::Limit { limit, .. } if limit.dimension.is_tokens()
            ) && check
                .scope
                .and_then(|i| ledger.scope(i))
                .is_some_and(|s| s.in_flight() > 0);
            *at > deadline && !refundable
        }
        Verdict::Never { .. } | Verdict::Closed { .. } => true,
    }
}
