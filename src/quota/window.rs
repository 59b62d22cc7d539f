//! [`SlidingLog`]: the exact sliding log of `(time, weight)` behind every limit.
//!
//! An entry recorded at `t` counts in every trailing window that contains `t`: at instant `now`
//! the window of length `period` is `(now - period, now]`, so the entry stops counting exactly at
//! `t + period`. Entries recorded at the same instant are merged, and entries that left the window
//! are dropped, so memory is bounded by the distinct instants inside one period.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::time::instant_after;

/// The admitted weights of one limit inside its trailing window, oldest first.
#[derive(Debug, Clone)]
pub struct SlidingLog {
    period: Duration,
    entries: VecDeque<(Instant, u64)>,
    total: u64,
}

impl SlidingLog {
    /// An empty log for windows of `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            entries: VecDeque::new(),
            total: 0,
        }
    }

    /// The window length.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Drops every entry that no longer counts in the window ending at `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(t, w)) = self.entries.front() {
            if t.checked_add(self.period).is_some_and(|end| end <= now) {
                self.entries.pop_front();
                self.total = self.total.saturating_sub(w);
            } else {
                break;
            }
        }
    }

    /// The weight inside the window as of the last [`expire`](Self::expire).
    pub fn used(&self) -> u64 {
        self.total
    }

    /// How many distinct instants the log holds (its memory, in entries).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the log holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records `weight` at `at`, merging with an entry at the same instant.
    pub fn record(&mut self, at: Instant, weight: u64) {
        match self.entries.back_mut() {
            Some(back) if back.0 == at => back.1 = back.1.saturating_add(weight),
            Some(back) if back.0 > at => {
                // An out-of-order instant: insert in place (`adjust` keeps `total`).
                self.adjust(at, weight, 0);
                return;
            }
            _ => self.entries.push_back((at, weight)),
        }
        self.total = self.total.saturating_add(weight);
    }

    /// Adds `add` and removes `sub` at the entry recorded at `at` (settlement of a reservation).
    /// A refund never takes an entry below zero; an extra charge for an entry that already left
    /// the window is inserted and dropped again by the next [`expire`](Self::expire).
    pub fn adjust(&mut self, at: Instant, add: u64, sub: u64) {
        // Settlements usually concern the latest entries: look there before searching.
        let len = self.entries.len();
        let recent = (len.saturating_sub(4)..len)
            .rev()
            .find(|&i| self.entries.get(i).is_some_and(|e| e.0 == at));
        let found = match recent {
            Some(i) => Ok(i),
            None => self.entries.binary_search_by_key(&at, |e| e.0),
        };
        match found {
            Ok(i) => {
                if let Some(entry) = self.entries.get_mut(i) {
                    let before = entry.1;
                    let after = before.saturating_add(add).saturating_sub(sub);
                    entry.1 = after;
                    self.total = self.total.saturating_add(after).saturating_sub(before);
                    if after == 0 {
                        self.entries.remove(i);
                    }
                }
            }
            Err(i) => {
                let extra = add.saturating_sub(sub);
                if extra > 0 {
                    self.entries.insert(i, (at, extra));
                    self.total = self.total.saturating_add(extra);
                }
            }
        }
    }

    /// The earliest instant at or after `now` when `weight` more fits under `limit`, assuming no
    /// further admissions: `None` when `weight` alone exceeds `limit` (it never fits).
    /// Call [`expire`](Self::expire) with `now` first.
    pub fn earliest_fit(&self, now: Instant, weight: u64, limit: u64) -> Option<Instant> {
        if weight > limit {
            return None;
        }
        let excess = (self.total.saturating_add(weight)).saturating_sub(limit);
        if excess == 0 {
            return Some(now);
        }
        let mut freed = 0u64;
        for &(t, w) in &self.entries {
            freed = freed.saturating_add(w);
            if freed >= excess {
                return Some(instant_after(t, self.period).max(now));
            }
        }
        // Unreachable while `total` equals the sum of the entries; the latest expiry is safe.
        self.entries
            .back()
            .map(|&(t, _)| instant_after(t, self.period).max(now))
    }

    /// The instant of the newest entry.
    pub fn latest(&self) -> Option<Instant> {
        self.entries.back().map(|e| e.0)
    }

    /// The latest instant from which the log holds at least `amount` (the newest entries,
    /// summed back to it), or `None` when the whole log holds less.
    pub fn instant_covering(&self, amount: u64) -> Option<Instant> {
        let mut sum = 0u64;
        for &(t, w) in self.entries.iter().rev() {
            sum = sum.saturating_add(w);
            if sum >= amount {
                return Some(t);
            }
        }
        None
    }

    /// A copy with window `period`, holding what of this log still counts in it at `now`; used to
    /// seed a limit learned from a provider with the history the scope already has, and to keep
    /// the history when a scope's window guard changes.
    pub fn narrowed(&self, period: Duration, now: Instant) -> Self {
        let mut log = Self::new(period);
        for &(t, w) in &self.entries {
            log.entries.push_back((t, w));
            log.total = log.total.saturating_add(w);
        }
        log.expire(now);
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_stops_counting_exactly_one_period_later() {
        let t0 = Instant::now();
        let mut log = SlidingLog::new(Duration::from_secs(60));
        log.record(t0, 1);
        log.record(t0, 1);
        assert_eq!(log.len(), 1, "equal instants merge");
        log.expire(t0 + Duration::from_secs(59));
        assert_eq!(log.used(), 2);
        assert_eq!(
            log.earliest_fit(t0 + Duration::from_secs(59), 1, 2),
            Some(t0 + Duration::from_secs(60))
        );
        log.expire(t0 + Duration::from_secs(60));
        assert_eq!(log.used(), 0);
        assert!(log.is_empty());
    }

    #[test]
    fn refund_and_extra_charge_apply_at_the_entry() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        let mut log = SlidingLog::new(Duration::from_secs(60));
        log.record(t0, 100);
        log.record(t1, 50);
        log.adjust(t0, 0, 70);
        assert_eq!(log.used(), 80);
        log.adjust(t1, 25, 0);
        assert_eq!(log.used(), 105);
        // 105 used (30 at t0, 75 at t1), limit 120: 45 more needs the t0 entry to leave, 60 more
        // needs both.
        assert_eq!(
            log.earliest_fit(t1, 45, 120),
            Some(t0 + Duration::from_secs(60))
        );
        assert_eq!(
            log.earliest_fit(t1, 60, 120),
            Some(t1 + Duration::from_secs(60))
        );
        assert_eq!(log.earliest_fit(t1, 121, 120), None);
    }
}
