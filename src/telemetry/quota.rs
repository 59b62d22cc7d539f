//! Typed recording of quota metrics: permits, waits, queues, windows and cooldowns.
//!
//! The `scope` label is a configured scope name (`gemini/gemini-2.5-pro`,
//! `openai/gpt-4o-mini/key:1a2b3c4d`, `shared:team-pool`): bounded by the configuration and never
//! a secret (keys appear only as their short hash).

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use super::catalog;
use crate::quota::Dimension;
use crate::supervisor::AcquireError;

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
    /// A reason this build does not know.
    Other,
}

impl DenyReason {
    /// Every reason, in label order.
    pub const ALL: [DenyReason; 7] = [
        DenyReason::NeverFits,
        DenyReason::DeadlineExceeded,
        DenyReason::ScopeClosed,
        DenyReason::UnknownScope,
        DenyReason::NoCandidates,
        DenyReason::Stopped,
        DenyReason::Other,
    ];

    /// The label value: `never_fits`, `deadline_exceeded`, `scope_closed`, `unknown_scope`,
    /// `no_candidates`, `stopped` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::NeverFits => "never_fits",
            DenyReason::DeadlineExceeded => "deadline_exceeded",
            DenyReason::ScopeClosed => "scope_closed",
            DenyReason::UnknownScope => "unknown_scope",
            DenyReason::NoCandidates => "no_candidates",
            DenyReason::Stopped => "stopped",
            DenyReason::Other => "other",
        }
    }

    /// The reason of a supervisor error.
    pub fn of(err: &AcquireError) -> DenyReason {
        match err {
            AcquireError::NeverFits { .. } => DenyReason::NeverFits,
            AcquireError::DeadlineExceeded { .. } => DenyReason::DeadlineExceeded,
            AcquireError::ScopeClosed { .. } => DenyReason::ScopeClosed,
            AcquireError::UnknownScope(_) => DenyReason::UnknownScope,
            AcquireError::NoCandidates => DenyReason::NoCandidates,
            AcquireError::Stopped => DenyReason::Stopped,
        }
    }

    /// Reads a reason from free text (a `QuotaEvent::Denied` reason, which is the error's
    /// one-sentence `Display`, or a label value), so that no free text ever becomes a label.
    /// Unrecognised text is `Other`.
    pub fn classify(text: &str) -> DenyReason {
        let t = text.to_ascii_lowercase().replace([' ', '-'], "_");
        let found = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
        if found(&["never_fit", "neverfits"]) {
            DenyReason::NeverFits
        } else if found(&["deadline", "gave_up", "timed_out"]) {
            DenyReason::DeadlineExceeded
        } else if found(&["is_closed", "scope_closed", "spend_cap"]) {
            DenyReason::ScopeClosed
        } else if found(&["not_registered", "unknown_scope"]) {
            DenyReason::UnknownScope
        } else if found(&["no_candidate"]) {
            DenyReason::NoCandidates
        } else if found(&["stopped"]) {
            DenyReason::Stopped
        } else {
            DenyReason::Other
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
    /// The provider is overloaded and asked to retry later (not a quota event).
    Overloaded,
    /// The provider's headers say nothing is left until its window resets.
    Exhausted,
    /// Anything else.
    Other,
}

impl CooldownReason {
    /// The label value: `startup`, `rate_limited`, `daily_quota`, `spend_cap`, `overloaded`,
    /// `exhausted` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            CooldownReason::Startup => "startup",
            CooldownReason::RateLimited => "rate_limited",
            CooldownReason::DailyQuota => "daily_quota",
            CooldownReason::SpendCap => "spend_cap",
            CooldownReason::Overloaded => "overloaded",
            CooldownReason::Exhausted => "exhausted",
            CooldownReason::Other => "other",
        }
    }

    /// Maps a cooldown's free-text reason onto the bounded set; unknown text is `Other`. The
    /// leading words decide (a spend-cap reason carries the provider's message after a colon).
    pub fn classify(text: &str) -> CooldownReason {
        let t = text.to_ascii_lowercase();
        if t.starts_with("spend") || t.starts_with("billing") {
            CooldownReason::SpendCap
        } else if t.contains("startup") || t.contains("start-up") {
            CooldownReason::Startup
        } else if t.contains("daily") || t.contains("per day") {
            CooldownReason::DailyQuota
        } else if t.contains("overload") {
            CooldownReason::Overloaded
        } else if t.contains(" left") || t.contains("remaining") {
            CooldownReason::Exhausted
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

/// Registered handles of one scope's hot-path metrics (grants, wait, queue depth), for callers
/// that record at permit rate: recording through a handle skips the per-call label allocation
/// and registry lookup of the free functions. Handles belong to the recorder in force when
/// [`ScopeMetrics::new`] ran.
#[derive(Debug, Clone)]
pub struct ScopeMetrics {
    granted: Counter,
    wait: Histogram,
    queue_depth: Gauge,
}

impl ScopeMetrics {
    /// Registers `scope`'s handles with the recorder in force.
    pub fn new(scope: &str) -> ScopeMetrics {
        ScopeMetrics {
            granted: counter!(catalog::PERMITS_GRANTED, "scope" => scope.to_owned()),
            wait: histogram!(catalog::PERMIT_WAIT, "scope" => scope.to_owned()),
            queue_depth: gauge!(catalog::QUEUE_DEPTH, "scope" => scope.to_owned()),
        }
    }

    /// Same as [`permit_granted`].
    pub fn permit_granted(&self, waited: Duration) {
        self.granted.increment(1);
        self.wait.record(waited.as_secs_f64());
    }

    /// Same as [`queue_depth`].
    pub fn queue_depth(&self, n: usize) {
        self.queue_depth.set(n as f64);
    }
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

/// Whether `scope` is closed until a human acts (spend cap).
pub fn scope_closed(scope: &str, closed: bool) {
    gauge!(catalog::SCOPE_CLOSED, "scope" => scope.to_owned()).set(if closed { 1.0 } else { 0.0 });
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
            CooldownReason::classify("spend cap reached: daily rate exceeded"),
            CooldownReason::SpendCap
        );
        assert_eq!(
            CooldownReason::classify("provider overloaded"),
            CooldownReason::Overloaded
        );
        assert_eq!(
            CooldownReason::classify("provider reports no tokens left"),
            CooldownReason::Exhausted
        );
        assert_eq!(DenyReason::classify("a poem"), DenyReason::Other);
        for r in DenyReason::ALL {
            assert_eq!(DenyReason::classify(r.as_str()), r);
        }
    }

    #[test]
    fn supervisor_error_sentences_classify_like_the_errors() {
        use crate::quota::{Limit, ScopeId};
        let scope = ScopeId::new("gemini/gemini-2.5-pro");
        let rpm = Limit::new(Dimension::Requests, 2, Duration::from_secs(60))
            .unwrap_or_else(|_| Limit::rpm(std::num::NonZeroU64::MIN));
        let errors = [
            AcquireError::NeverFits {
                scope: scope.clone(),
                limit: rpm,
                requested: 5,
            },
            AcquireError::DeadlineExceeded {
                scope: scope.clone(),
                limit: Some(rpm),
                used: 2,
                frees_in: Some(Duration::from_secs(3)),
                waited: Duration::from_secs(120),
                blocked_by: None,
            },
            AcquireError::DeadlineExceeded {
                scope: scope.clone(),
                limit: None,
                used: 1,
                frees_in: None,
                waited: Duration::from_secs(120),
                blocked_by: None,
            },
            AcquireError::DeadlineExceeded {
                scope: scope.clone(),
                limit: None,
                used: 0,
                frees_in: Some(Duration::from_secs(7)),
                waited: Duration::from_secs(120),
                blocked_by: Some("cooldown (startup)".to_owned()),
            },
            AcquireError::ScopeClosed {
                scope: scope.clone(),
                reason: "spend cap reached".to_owned(),
            },
            AcquireError::UnknownScope(scope),
            AcquireError::NoCandidates,
            AcquireError::Stopped,
        ];
        for err in errors {
            assert_eq!(
                DenyReason::classify(&err.to_string()),
                DenyReason::of(&err),
                "{err}"
            );
        }
    }
}
