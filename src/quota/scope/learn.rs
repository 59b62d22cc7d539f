//! Learning limits from the provider: which revealed limits a scope adopts, the period a
//! rate-limit report teaches once the scope's own history is taken into account, and the usage
//! the provider reports that the scope's log does not hold yet.

use std::time::{Duration, Instant};

use super::{LimitState, ScopeState};
use crate::quota::signal::plausible_limit;
use crate::quota::time::ceil_secs;
use crate::quota::window::SlidingLog;
use crate::quota::{Limit, Remaining};

impl ScopeState {
    /// Adopts a limit the provider revealed when it is stricter in effect than what is enforced.
    /// Returns whether it was adopted:
    ///
    /// - same dimension and period as an enforced limit: adopted when its amount is lower;
    /// - a limit that an enforced one of the same dimension already implies (never more in any
    ///   window: `4 per 60 s` implies `4 per 10 s`) changes nothing, so a configured limit is
    ///   never loosened by a learned one of another period;
    /// - otherwise it is enforced in addition, seeded with the history the scope has.
    ///
    /// Zero and absurd limits never get here ([`Limit`] cannot be zero); implausible ones
    /// ([`plausible_limit`]) are ignored.
    pub fn learn(&mut self, limit: Limit, now: Instant) -> bool {
        if !plausible_limit(&limit) {
            return false;
        }
        let guard = self.spec.window_guard;
        if let Some(l) = self.limits.iter_mut().find(|l| {
            l.effective.dimension == limit.dimension && l.effective.period == limit.period
        }) {
            if limit.amount < l.effective.amount {
                l.effective = limit;
                return true;
            }
            return false;
        }
        if self
            .limits
            .iter()
            .any(|l| l.effective.dimension == limit.dimension && implies(&l.effective, &limit))
        {
            return false;
        }
        // Seed from the longest log of the same dimension that covers the new period.
        let log = self
            .limits
            .iter()
            .filter(|l| {
                l.effective.dimension == limit.dimension && l.effective.period >= limit.period
            })
            .min_by_key(|l| l.effective.period)
            .map(|l| l.log.narrowed(limit.period.saturating_add(guard), now))
            .unwrap_or_else(|| SlidingLog::new(limit.period.saturating_add(guard)));
        self.limits.push(LimitState {
            configured: None,
            effective: limit,
            log,
        });
        true
    }

    /// Adopts a limit taught by a rate-limit report (headers: limit, remaining, reset): like
    /// [`learn`](Self::learn), except that it is the provider's latest word on a limit it
    /// already taught: a learned-only limit of the same dimension and amount takes the new
    /// period (`4 per 60 s` taught before the reset showed the window, `4 per 10 s` after).
    /// A configured limit that implies it still wins.
    pub fn learn_reported(&mut self, limit: Limit, now: Instant) -> bool {
        if !plausible_limit(&limit) {
            return false;
        }
        if self.limits.iter().any(|l| {
            l.configured.is_some()
                && l.effective.dimension == limit.dimension
                && implies(&l.effective, &limit)
        }) {
            return false;
        }
        let guard = self.spec.window_guard;
        if let Some(l) = self.limits.iter_mut().find(|l| {
            l.configured.is_none()
                && l.effective.dimension == limit.dimension
                && l.effective.amount == limit.amount
        }) {
            if l.effective.period == limit.period {
                return false;
            }
            l.effective = limit;
            l.log = l.log.narrowed(limit.period.saturating_add(guard), now);
            return true;
        }
        self.learn(limit, now)
    }

    /// A limit taught by an exhausted report (`remaining` 0, reset `T`), its period widened by
    /// what the scope's own history says: the provider counted `limit.amount` in its window, and
    /// the oldest of those was admitted here no earlier than the admission that brings the
    /// scope's log to that amount; the window is at most `T` plus that admission's age (rounded
    /// up to a whole second, never beyond the documented period). Without such history the
    /// limit stays as the report alone taught it.
    pub fn widen_by_history(&self, base: Limit, report: &Remaining, now: Instant) -> Limit {
        let (Some(reset), Some(documented)) = (report.reset_after, report.period) else {
            return base;
        };
        if report.remaining != 0 || base.period >= documented {
            return base;
        }
        let oldest = self
            .limits
            .iter()
            .filter(|l| l.effective.dimension == base.dimension)
            .max_by_key(|l| l.log.period())
            .and_then(|l| l.log.instant_covering(base.amount.get()));
        let Some(oldest) = oldest else {
            return base;
        };
        let bound = ceil_secs(reset.saturating_add(now.saturating_duration_since(oldest)));
        let period = bound.min(documented).max(base.period);
        Limit::new(base.dimension, base.amount.get(), period).unwrap_or(base)
    }

    /// Makes the enforced limit of `limit`'s dimension and period hold at least what the
    /// provider reports as `used`, all freeing `reset` from `now`: what others sent with the
    /// same key, or what this scope admitted before it knew the limit, then counts here too.
    pub fn seed_reported(&mut self, limit: &Limit, used: u64, reset: Duration, now: Instant) {
        let Some(l) = self.limits.iter_mut().find(|l| {
            l.effective.dimension == limit.dimension && l.effective.period == limit.period
        }) else {
            return;
        };
        l.log.expire(now);
        let missing = used.saturating_sub(l.log.used());
        if missing == 0 {
            return;
        }
        let at = now
            .checked_add(reset)
            .and_then(|end| end.checked_sub(l.log.period()));
        if let Some(at) = at {
            if at.checked_add(l.log.period()).is_some_and(|end| end > now) {
                l.log.record(at, missing);
            }
        }
    }
}

/// Whether enforcing `a` guarantees `b` (same dimension): in any window of `b`'s period, `a`
/// admits no more than `b.amount`.
fn implies(a: &Limit, b: &Limit) -> bool {
    if a.period >= b.period {
        return a.amount <= b.amount;
    }
    let a_nanos = a.period.as_nanos().max(1);
    let windows = b.period.as_nanos().div_ceil(a_nanos);
    windows.saturating_mul(u128::from(a.amount.get())) <= u128::from(b.amount.get())
}
