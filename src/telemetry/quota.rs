//! Typed recording of quota metrics: permits, waits, queues, windows and cooldowns.
//!
//! The `scope` label is a configured scope name (`gemini/gemini-2.5-pro`,
//! `openai/gpt-4o-mini/key:1a2b3c4d`, `shared:team-pool`): bounded by the configuration and never
//! a secret (keys appear only as their short hash).

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use super::catalog;
use crate::quota::Dimension;

/// Why a permit was not granted (the `reason` label of denied permits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// The estimate is above a limit: it can never fit.
    NeverFits,
    /// The caller's deadline passed while waiting.
    DeadlineExceeded,
    /// The scope is closed for good (spend cap).
    ScopeClosed,
    /// The request named a scope nobody registered.
    UnknownScope,
    /// The request named no candidate scopes.
    NoCandidates,
    /// The supervisor is gone.
    Stopped,
}

impl DenyReason {
    /// Every reason, in label order.
    pub const ALL: [DenyReason; 6] = [
        DenyReason::NeverFits,
        DenyReason::DeadlineExceeded,
        DenyReason::ScopeClosed,
        DenyReason::UnknownScope,
        DenyReason::NoCandidates,
        DenyReason::Stopped,
    ];

    /// The label value: `never_fits`, `deadline_exceeded`, `scope_closed`, `unknown_scope`,
    /// `no_candidates` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::NeverFits => "never_fits",
            DenyReason::DeadlineExceeded => "deadline_exceeded",
            DenyReason::ScopeClosed => "scope_closed",
            DenyReason::UnknownScope => "unknown_scope",
            DenyReason::NoCandidates => "no_candidates",
            DenyReason::Stopped => "stopped",
        }
    }

    /// Reads a reason from free text (an event's reason or an error's description), so that no
    /// free text ever becomes a label value. Unrecognised text maps to `None`.
    pub fn classify(text: &str) -> Option<DenyReason> {
        let t = text.to_ascii_lowercase().replace([' ', '-'], "_");
        let found = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
        if found(&["never_fit", "neverfits", "too_large", "above"]) {
            Some(DenyReason::NeverFits)
        } else if found(&["deadline", "timed_out", "timeout"]) {
            Some(DenyReason::DeadlineExceeded)
        } else if found(&["closed", "spend"]) {
            Some(DenyReason::ScopeClosed)
        } else if found(&["unknown"]) {
            Some(DenyReason::UnknownScope)
        } else if found(&["no_candidates", "nocandidates"]) {
            Some(DenyReason::NoCandidates)
        } else if found(&["stopped", "gone"]) {
            Some(DenyReason::Stopped)
        } else {
            None
        }
    }
}

/// Why a scope was closed for a while (the `reason` label of cooldowns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CooldownReason {
    /// The mandatory startup cooldown after a start or restart.
    Startup,
    /// A provider 429 with (or without) a retry delay.
    RateLimited,
    /// A per-day quota was used up: closed until the daily reset.
    DailyQuota,
    /// A spend cap: closed until a human acts.
    SpendCap,
    /// Anything else.
    Other,
}

impl CooldownReason {
    /// The label value: `startup`, `rate_limited`, `daily_quota`, `spend_cap` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            CooldownReason::Startup => "startup",
            CooldownReason::RateLimited => "rate_limited",
            CooldownReason::DailyQuota => "daily_quota",
            CooldownReason::SpendCap => "spend_cap",
            CooldownReason::Other => "other",
        }
    }

    /// Maps a cooldown's free-text reason onto the bounded set; unknown text is `Other`.
    pub fn classify(text: &str) -> CooldownReason {
        let t = text.to_ascii_lowercase();
        if t.contains("startup") || t.contains("start-up") {
            CooldownReason::Startup
        } else if t.contains("daily") || t.contains("per day") || t.contains("reset") {
            CooldownReason::DailyQuota
        } else if t.contains("spend") || t.contains("billing") {
            CooldownReason::SpendCap
        } else if t.contains("429")
            || t.contains("rate")
            || t.contains("retry")
            || t.contains("too many")
        {
            CooldownReason::RateLimited
        } else {
            CooldownReason::Other
        }
    }
}

/// The `period` label of a window: `1m`, `1d`, `1h`, `10s`, `1500ms`.
pub fn period_label(period: Duration) -> String {
    let ms = period.as_millis();
    let units: [(u128, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    for (size, unit) in units {
        if ms >= size && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A permit was granted in `scope` after waiting `waited`.
pub fn permit_granted(scope: &str, waited: Duration) {
    counter!(catalog::PERMITS_GRANTED, "scope" => scope.to_owned()).increment(1);
    histogram!(catalog::PERMIT_WAIT, "scope" => scope.to_owned()).record(waited.as_secs_f64());
}

/// A permit was refused in `scope` for `reason`.
pub fn permit_denied(scope: &str, reason: DenyReason) {
    counter!(catalog::PERMITS_DENIED, "scope" => scope.to_owned(), "reason" => reason.as_str())
        .increment(1);
}

/// `n` requests are waiting in `scope`'s queue now.
pub fn queue_depth(scope: &str, n: usize) {
    gauge!(catalog::QUEUE_DEPTH, "scope" => scope.to_owned()).set(n as f64);
}

/// `n` permits of `scope` are in flight now.
pub fn in_flight(scope: &str, n: u32) {
    gauge!(catalog::IN_FLIGHT, "scope" => scope.to_owned()).set(f64::from(n));
}

/// The trailing window of one limit of `scope` holds `used` of `limit`: sets the used, limit and
/// utilization gauges (utilization is `used / limit`, 0 when the limit is 0).
pub fn window_usage(scope: &str, dimension: Dimension, period: Duration, used: u64, limit: u64) {
    let period = period_label(period);
    let labels = [
        ("scope", scope.to_owned()),
        ("dimension", dimension.as_str().to_owned()),
        ("period", period),
    ];
    let utilization = if limit == 0 {
        0.0
    } else {
        used as f64 / limit as f64
    };
    gauge!(catalog::WINDOW_USED, &labels).set(used as f64);
    gauge!(catalog::WINDOW_LIMIT, &labels).set(limit as f64);
    gauge!(catalog::WINDOW_UTILIZATION, &labels).set(utilization);
}

/// Whether the limit in force for this window was learned from the provider (lower than the
/// configured one).
pub fn limit_source(scope: &str, dimension: Dimension, period: Duration, learned: bool) {
    let labels = [
        ("scope", scope.to_owned()),
        ("dimension", dimension.as_str().to_owned()),
        ("period", period_label(period)),
    ];
    gauge!(catalog::LIMIT_LEARNED, &labels).set(if learned { 1.0 } else { 0.0 });
}

/// `scope` admits nothing for another `secs` seconds (0 when open).
pub fn cooldown_remaining(scope: &str, secs: f64) {
    gauge!(catalog::COOLDOWN_REMAINING, "scope" => scope.to_owned()).set(secs.max(0.0));
}

/// A cooldown started in `scope`.
pub fn cooldown_started(scope: &str, reason: CooldownReason) {
    counter!(catalog::COOLDOWNS, "scope" => scope.to_owned(), "reason" => reason.as_str())
        .increment(1);
}

/// The supervisor adopted a lower limit for `scope` that a provider revealed.
pub fn limit_learned(scope: &str) {
    counter!(catalog::LIMITS_LEARNED, "scope" => scope.to_owned()).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_labels_are_short_and_exact() {
        assert_eq!(period_label(Duration::from_secs(60)), "1m");
        assert_eq!(period_label(Duration::from_secs(86_400)), "1d");
        assert_eq!(period_label(Duration::from_secs(3600)), "1h");
        assert_eq!(period_label(Duration::from_secs(90)), "90s");
        assert_eq!(period_label(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn free_text_maps_to_bounded_reasons() {
        assert_eq!(
            CooldownReason::classify("startup cooldown"),
            CooldownReason::Startup
        );
        assert_eq!(
            CooldownReason::classify("429 retry-after 26s"),
            CooldownReason::RateLimited
        );
        assert_eq!(
            CooldownReason::classify("daily quota exhausted until reset"),
            CooldownReason::DailyQuota
        );
        assert_eq!(
            CooldownReason::classify("spend cap reached"),
            CooldownReason::SpendCap
        );
        assert_eq!(CooldownReason::classify("who knows"), CooldownReason::Other);
        assert_eq!(
            DenyReason::classify("deadline exceeded"),
            Some(DenyReason::DeadlineExceeded)
        );
        assert_eq!(
            DenyReason::classify("never fits"),
            Some(DenyReason::NeverFits)
        );
        assert_eq!(DenyReason::classify("a poem"), None);
        for r in DenyReason::ALL {
            assert_eq!(DenyReason::classify(r.as_str()), Some(r));
        }
    }
}
