//! Cooldowns: periods when a scope admits nothing (startup, provider retry delays, daily resets).

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::DailyReset;
use super::time::instant_after;

/// A scope admits nothing before `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cooldown {
    /// The first instant the scope admits again.
    pub until: Instant,
    /// Why, in words for logs and progress (`startup`, `429 retry-after`, `daily quota`).
    pub reason: String,
}

/// A wall clock anchored to a monotonic instant, so wall-clock rules (daily resets) are computed
/// from the same injected time as everything else: `wall(t) = origin_wall + (t - origin)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    /// A monotonic instant.
    pub origin: Instant,
    /// The wall-clock time at `origin`.
    pub origin_wall: DateTime<Utc>,
}

impl WallClock {
    /// The wall-clock time at `now`.
    pub fn wall(&self, now: Instant) -> DateTime<Utc> {
        let since = now.saturating_duration_since(self.origin);
        chrono::Duration::from_std(since)
            .ok()
            .and_then(|d| self.origin_wall.checked_add_signed(d))
            .unwrap_or(self.origin_wall)
    }

    /// The monotonic instant at which the wall clock reads `at` (never before `now`).
    pub fn instant_at(&self, now: Instant, at: DateTime<Utc>) -> Instant {
        let wall_now = self.wall(now);
        let ahead = at
            .signed_duration_since(wall_now)
            .to_std()
            .unwrap_or(Duration::ZERO);
        instant_after(now, ahead)
    }
}

/// The first instant strictly after `now` at which the wall clock in `reset.tz` reads
/// `reset.hour:reset.minute`. Daylight-saving changes are handled: a time that occurs twice
/// resolves to its first occurrence, a time skipped by a spring-forward gap resolves to the first
/// valid minute after it.
pub fn next_daily_reset(now: DateTime<Utc>, reset: &DailyReset) -> DateTime<Utc> {
    let local = now.with_timezone(&reset.tz);
    let mut date = local.date_naive();
    for _ in 0..3 {
        if let Some(t) = local_time_on(date, reset) {
            if t > now {
                return t;
            }
        }
        match date.succ_opt() {
            Some(next) => date = next,
            None => break,
        }
    }
    now.checked_add_signed(chrono::Duration::days(1))
        .unwrap_or(now)
}

fn local_time_on(date: NaiveDate, reset: &DailyReset) -> Option<DateTime<Utc>> {
    let naive = date.and_hms_opt(u32::from(reset.hour), u32::from(reset.minute), 0)?;
    // Inside a spring-forward gap no local time exists: take the first minute after it.
    (0..=180).find_map(|m| {
        let candidate = naive.checked_add_signed(chrono::Duration::minutes(m))?;
        reset
            .tz
            .from_local_datetime(&candidate)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono_tz::America::Los_Angeles;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const MIDNIGHT_LA: DailyReset = DailyReset {
        hour: 0,
        minute: 0,
        tz: Los_Angeles,
    };

    #[test]
    fn midnight_pacific_in_winter_and_summer() {
        // PST is UTC-8, PDT is UTC-7.
        assert_eq!(
            next_daily_reset(utc("2026-01-15T20:00:00Z"), &MIDNIGHT_LA),
            utc("2026-01-16T08:00:00Z")
        );
        assert_eq!(
            next_daily_reset(utc("2026-07-15T20:00:00Z"), &MIDNIGHT_LA),
            utc("2026-07-16T07:00:00Z")
        );
        // Exactly at the reset: the next one, a day later.
        assert_eq!(
            next_daily_reset(utc("2026-07-16T07:00:00Z"), &MIDNIGHT_LA),
            utc("2026-07-17T07:00:00Z")
        );
    }

    #[test]
    fn dst_gap_and_overlap() {
        // 2026-03-08 02:30 does not exist in Los Angeles: first valid minute is 03:00 PDT.
        let r = DailyReset {
            hour: 2,
            minute: 30,
            tz: Los_Angeles,
        };
        assert_eq!(
            next_daily_reset(utc("2026-03-08T09:00:00Z"), &r),
            utc("2026-03-08T10:00:00Z")
        );
        // 2026-11-01 01:30 happens twice: the first (PDT, UTC-7) counts.
        let r = DailyReset {
            hour: 1,
            minute: 30,
            tz: Los_Angeles,
        };
        assert_eq!(
            next_daily_reset(utc("2026-11-01T07:00:00Z"), &r),
            utc("2026-11-01T08:30:00Z")
        );
    }

    #[test]
    fn wall_clock_maps_both_ways() {
        let origin = Instant::now();
        let clock = WallClock {
            origin,
            origin_wall: utc("2026-01-15T20:00:00Z"),
        };
        let later = origin + Duration::from_secs(3600);
        assert_eq!(clock.wall(later), utc("2026-01-15T21:00:00Z"));
        assert_eq!(
            clock.instant_at(origin, utc("2026-01-16T08:00:00Z")),
            origin + Duration::from_secs(12 * 3600)
        );
    }
}
