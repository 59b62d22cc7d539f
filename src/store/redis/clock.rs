//! The offset between this process's wall clock and the Redis server's `TIME`, kept as the
//! bounds the last round trip proves, so every conversion errs on the safe side.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// This process's wall clock (anchored to the monotonic clock at open, like the supervisor's
/// own) and what it knows of the server's.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    origin: Instant,
    origin_wall_ns: i128,
    /// The least `server - local` can be (ms).
    lo: i64,
    /// The most `server - local` can be (ms).
    hi: i64,
}

impl Clock {
    pub(super) fn new() -> Self {
        let ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(0));
        Self {
            origin: Instant::now(),
            origin_wall_ns: ns,
            lo: 0,
            hi: 0,
        }
    }

    fn now_ns(&self) -> i128 {
        let since = i128::try_from(self.origin.elapsed().as_nanos()).unwrap_or(i128::MAX / 2);
        self.origin_wall_ns.saturating_add(since)
    }

    /// Local wall-clock ms now, rounded down.
    pub(super) fn floor_ms(&self) -> i64 {
        i64::try_from(self.now_ns().div_euclid(1_000_000)).unwrap_or(i64::MAX)
    }

    /// Local wall-clock ms now, rounded up.
    pub(super) fn ceil_ms(&self) -> i64 {
        let ns = self.now_ns();
        let ms = ns.div_euclid(1_000_000) + i128::from(ns.rem_euclid(1_000_000) > 0);
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// A round trip that started at local `before` (rounded down) and ended at `after` (rounded
    /// up) read the server's clock as `server` (ms, rounded up): the true offset lies within
    /// `[server - 1 - after, server - before]`. One more millisecond on each side covers the
    /// difference between this clock's anchor and the supervisor's (each rounds to ms).
    pub(super) fn measure(&mut self, before: i64, after: i64, server: i64) {
        self.lo = server.saturating_sub(after).saturating_sub(2);
        self.hi = server.saturating_sub(before).saturating_add(1);
    }

    /// A server instant on this process's wall clock, as late as it can be: an admission made
    /// elsewhere never leaves a window here before it leaves the server's, a cooldown never
    /// ends here before it ends there.
    pub(super) fn to_local(self, server_ms: i64) -> i64 {
        server_ms.saturating_sub(self.lo)
    }

    /// A local instant on the server's clock, as late as it can be (ends of cooldowns).
    pub(super) fn to_server_late(self, local_ms: i64) -> i64 {
        local_ms.saturating_add(self.hi)
    }

    /// A local instant on the server's clock, as early as it can be (where loading starts).
    pub(super) fn to_server_early(self, local_ms: i64) -> i64 {
        local_ms.saturating_add(self.lo)
    }

    /// The width of the uncertainty, ms.
    #[cfg(test)]
    pub(super) fn spread(&self) -> i64 {
        self.hi.saturating_sub(self.lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_err_late() {
        let mut c = Clock::new();
        // Server 5 s ahead; the round trip took 2 ms.
        c.measure(1_000, 1_002, 6_001);
        assert!(c.to_local(6_001) >= 1_002);
        assert!(c.to_server_late(1_000) >= 6_001);
        assert!(c.to_server_early(1_002) <= 6_001);
        assert!(c.spread() <= 6);
        assert!(c.ceil_ms() >= c.floor_ms());
    }
}
