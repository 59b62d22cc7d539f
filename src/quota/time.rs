//! Checked time arithmetic for values that come from outside: a provider's Retry-After, reset
//! times and windows, a caller's deadline. Nothing here can panic or overflow: durations are
//! converted with checked conversions and clamped, and instants saturate at a far future.

use std::time::{Duration, Instant};

/// The longest wait any provider signal can impose: a week. Longer (or absurd) values are
/// clamped to it, so a scope told to wait "99999999999999999999h" reopens after a week instead of
/// never.
pub const MAX_PROVIDER_WAIT: Duration = Duration::from_secs(7 * 86_400);

/// One day: a per-day quota resets within it, so a per-day reset is clamped to it.
pub const ONE_DAY: Duration = Duration::from_secs(86_400);

/// What "never" is, as an instant offset: about 30 years (what tokio uses for a far timer).
pub const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `at + d`, saturating at a far future instant instead of panicking on overflow.
pub fn instant_after(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(FAR_FUTURE.min(d)))
        .unwrap_or(at)
}

/// `at + d` on tokio's clock, saturating like [`instant_after`].
pub fn tokio_instant_after(at: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(instant_after(at.into_std(), d))
}

/// A wait from a provider, clamped to [`MAX_PROVIDER_WAIT`].
pub fn clamp_wait(d: Duration) -> Duration {
    d.min(MAX_PROVIDER_WAIT)
}

/// `d` rounded up to a whole second.
pub fn ceil_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0)))
}

/// A number of seconds from outside turned into a wait: `None` for NaN and negative values,
/// infinity and values too large for a `Duration` clamp to [`MAX_PROVIDER_WAIT`] like any
/// other long wait.
pub fn wait_from_secs_f64(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    let d = Duration::try_from_secs_f64(secs).unwrap_or(MAX_PROVIDER_WAIT);
    Some(clamp_wait(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_seconds_are_refused_or_clamped() {
        assert_eq!(wait_from_secs_f64(f64::NAN), None);
        assert_eq!(wait_from_secs_f64(-1.0), None);
        assert_eq!(wait_from_secs_f64(f64::INFINITY), Some(MAX_PROVIDER_WAIT));
        assert_eq!(wait_from_secs_f64(1e20), Some(MAX_PROVIDER_WAIT));
        assert_eq!(wait_from_secs_f64(1.5), Some(Duration::from_millis(1500)));
        assert_eq!(wait_from_secs_f64(-0.0), Some(Duration::ZERO));
    }

    #[test]
    fn instants_saturate() {
        let now = Instant::now();
        let far = instant_after(now, Duration::MAX);
        assert!(far > now);
        assert_eq!(
            instant_after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }
}
