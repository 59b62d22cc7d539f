//! [`Mirror`]: merges what other processes wrote to the store into this process's ledger, as
//! foreign admissions counted exactly like its own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Change;
use crate::quota::{Ledger, ScopeId, TokenCount, WallClock};

/// Wall-clock milliseconds since the Unix epoch at `at`, rounded **up**: an admission read back
/// from the store never counts from earlier than it was made, so it never leaves a window early.
pub fn wall_ms(wall: &WallClock, at: Instant) -> i64 {
    let t = wall.wall(at);
    let ms = t.timestamp_millis();
    if t.timestamp_subsec_nanos() % 1_000_000 > 0 {
        ms.saturating_add(1)
    } else {
        ms
    }
}

/// The instant at which `wall` reads `ms`. An instant too far in the past to represent maps to
/// the earliest one that is (it then counts longer than it should: never shorter).
pub fn instant_of_ms(wall: &WallClock, ms: i64) -> Instant {
    let origin_ns = i128::from(wall.origin_wall.timestamp())
        .saturating_mul(1_000_000_000)
        .saturating_add(i128::from(wall.origin_wall.timestamp_subsec_nanos()));
    let delta = i128::from(ms).saturating_mul(1_000_000) - origin_ns;
    let d = Duration::from_nanos(u64::try_from(delta.unsigned_abs()).unwrap_or(u64::MAX));
    if delta >= 0 {
        crate::quota::time::instant_after(wall.origin, d)
    } else {
        wall.origin.checked_sub(d).unwrap_or(wall.origin)
    }
}

#[derive(Debug, Clone, Copy)]
struct Foreign {
    scope: usize,
    at: Instant,
    requests: u64,
    tokens: TokenCount,
}

/// The foreign admissions this process merged into its ledger, by row id, so a row seen twice
/// (loaded with its scope, then pulled as a change) is merged once, and a settlement or release
/// elsewhere changes exactly what was merged.
#[derive(Debug, Default)]
pub struct Mirror {
    foreign: HashMap<i64, Foreign>,
}

impl Mirror {
    /// An empty mirror.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many foreign admissions are merged now.
    pub fn len(&self) -> usize {
        self.foreign.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.foreign.is_empty()
    }

    /// Merges `changes` into `ledger` at `now`. Changes for scopes the ledger does not know are
    /// skipped (they are loaded when the scope is registered). Returns whether anything changed.
    pub fn apply(&mut self, ledger: &mut Ledger, changes: Vec<Change>, now: Instant) -> bool {
        let wall = *ledger.wall_clock();
        let mut changed = false;
        for change in changes {
            match change {
                Change::Admission {
                    id,
                    scope,
                    at_ms,
                    requests,
                    input,
                    output,
                } => {
                    let Some(i) = ledger.lookup(&ScopeId::new(scope)) else {
                        continue;
                    };
                    let tokens = TokenCount::new(input, output);
                    match self.foreign.get_mut(&id) {
                        Some(f) if f.tokens == tokens && f.requests == requests => {}
                        Some(f) if f.requests != requests => {
                            // A bucket grew: out at what it held, in at what it holds.
                            if let Some(s) = ledger.scope_mut(f.scope) {
                                s.remove_foreign(f.at, f.requests, f.tokens);
                                s.record_foreign(f.at, requests, tokens);
                            }
                            f.requests = requests;
                            f.tokens = tokens;
                            changed = true;
                        }
                        Some(f) => {
                            if let Some(s) = ledger.scope_mut(f.scope) {
                                s.resettle_foreign(f.at, f.tokens, tokens);
                            }
                            f.tokens = tokens;
                            changed = true;
                        }
                        None => {
                            let at = instant_of_ms(&wall, at_ms);
                            if let Some(s) = ledger.scope_mut(i) {
                                s.record_foreign(at, requests, tokens);
                            }
                            self.foreign.insert(
                                id,
                                Foreign {
                                    scope: i,
                                    at,
                                    requests,
                                    tokens,
                                },
                            );
                            changed = true;
                        }
                    }
                }
                Change::Removed { id } => {
                    if let Some(f) = self.foreign.remove(&id) {
                        if let Some(s) = ledger.scope_mut(f.scope) {
                            s.remove_foreign(f.at, f.requests, f.tokens);
                        }
                        changed = true;
                    }
                }
                Change::Cooldown {
                    scope,
                    until_ms,
                    reason,
                } => {
                    let Some(i) = ledger.lookup(&ScopeId::new(scope)) else {
                        continue;
                    };
                    let until = instant_of_ms(&wall, until_ms);
                    if until > now {
                        if let Some(s) = ledger.scope_mut(i) {
                            s.cool_down(until, reason);
                            changed = true;
                        }
                    }
                }
                Change::Learned { scope, limit } => {
                    let Some(i) = ledger.lookup(&ScopeId::new(scope)) else {
                        continue;
                    };
                    if let Some(s) = ledger.scope_mut(i) {
                        changed |= s.learn(limit, now);
                    }
                }
            }
        }
        changed
    }

    /// Forgets foreign admissions that no longer count in any window of their scope at `now`
    /// (the ledger's logs dropped them already).
    pub fn forget_expired(&mut self, ledger: &Ledger, now: Instant) {
        self.foreign.retain(|_, f| {
            ledger
                .scope(f.scope)
                .is_some_and(|s| f.at.checked_add(s.horizon()).is_none_or(|end| end > now))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn milliseconds_round_up_and_map_back() {
        let origin = Instant::now();
        let Some(origin_wall) = Utc.timestamp_opt(1_700_000_000, 500_000).single() else {
            return;
        };
        let wall = WallClock {
            origin,
            origin_wall,
        };
        // 0.5 ms past a whole millisecond: rounded up.
        assert_eq!(wall_ms(&wall, origin), 1_700_000_000_001);
        let back = instant_of_ms(&wall, 1_700_000_000_001);
        assert_eq!(back, origin + Duration::from_micros(500));
        let before = instant_of_ms(&wall, 1_699_999_999_999);
        assert_eq!(origin - before, Duration::from_micros(1500));
    }
}
