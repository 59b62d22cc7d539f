//! Learning limits from the provider: which revealed limits a scope adopts, the period a
//! rate-limit report teaches once the scope's own history is taken into account, and the usage
//! the provider reports that the scope's log does not hold yet.

use std::time::{Duration, Instant};

use super::{LimitState, ScopeState};
use crate::quota::signal::{RESET_TOLERANCE, plausible_limit};
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
    /// A configured limit that implies it, or of the same amount over a period within the window
    /// guard and [`RESET_TOLERANCE`] of it (the report's period is an upper estimate), still
    /// wins.
    pub fn learn_reported(&mut self, limit: Limit, now: Instant) -> bool {
        if !plausible_limit(&limit) {
            return false;
        }
        let guard = self.spec.window_guard;
        if self.limits.iter().any(|l| {
            l.configured.is_some()
                && l.effective.dimension == limit.dimension
                && (implies(&l.effective, &limit) || explains(&l.effective, &limit, guard))
        }) {
            return false;
        }
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

    /// Whether an enforced limit of `dimension` is full in its own window at `now` and holds at
    /// least `used`, what the provider says it counted: then nothing the provider counts is
    /// unknown here, and the ledger already holds the next request until that limit's oldest
    /// admission frees, which is no later than the provider frees one.
    pub fn holds_all_of(
        &mut self,
        dimension: crate::quota::Dimension,
        used: u64,
        now: Instant,
    ) -> bool {
        self.limits
            .iter_mut()
            .filter(|l| l.effective.dimension == dimension)
            .any(|l| {
                l.log.expire(now);
                let held = l.log.used();
                held >= used && held >= l.effective.amount.get()
            })
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

/// Whether a configured limit `a` already explains a report that taught `b`: the same amount
/// over a period that differs by no more than the window guard and [`RESET_TOLERANCE`]. A
/// report's period is inferred from a reset read one response later and widened by the scope's
/// history, so it comes out a little longer than the true window; that is no reason to distrust
/// the configured one.
fn explains(a: &Limit, b: &Limit, guard: Duration) -> bool {
    a.amount == b.amount
        && b.period
            <= a.period
                .saturating_add(guard)
                .saturating_add(RESET_TOLERANCE)
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
