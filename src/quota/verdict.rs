//! What a scope says about a request right now: admit, wait until an instant, wait for a free
//! slot, never, or closed.

use std::fmt;
use std::time::Instant;

use super::Limit;

/// What holds a request back in one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// A window limit is full: `used` of `limit.amount` in the trailing period.
    Limit {
        /// The limit that blocks (the effective one: learned if lower than configured).
        limit: Limit,
        /// The amount inside the trailing window now.
        used: u64,
    },
    /// Every concurrency slot is taken: frees when a permit settles.
    Concurrency {
        /// The cap.
        cap: u32,
    },
    /// The scope is cooling down (startup, retry-after, daily reset).
    Cooldown {
        /// Why.
        reason: String,
    },
    /// Pacing spreads requests evenly over the window.
    Pacing,
    /// First requests of different requesters are staggered.
    Stagger,
    /// A request ahead in the queue waits for this scope (head-of-line).
    Queue,
}

impl Blocker {
    /// A short label for events and progress: `rpm`, `tpm`, `concurrency`, `cooldown: startup`...
    pub fn label(&self) -> String {
        match self {
            Blocker::Limit { limit, .. } => limit.short_name(),
            Blocker::Concurrency { .. } => "concurrency".to_owned(),
            Blocker::Cooldown { reason } => format!("cooldown: {reason}"),
            Blocker::Pacing => "pacing".to_owned(),
            Blocker::Stagger => "stagger".to_owned(),
            Blocker::Queue => "queue".to_owned(),
        }
    }
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Limit { limit, used } => write!(f, "{limit} (used {used})"),
            Blocker::Concurrency { cap } => write!(f, "{cap} concurrent calls in flight"),
            Blocker::Cooldown { reason } => write!(f, "cooldown ({reason})"),
            Blocker::Pacing => f.write_str("pacing"),
            Blocker::Stagger => f.write_str("staggered start"),
            Blocker::Queue => f.write_str("an earlier request in the queue"),
        }
    }
}

/// One scope's (or one candidate's) answer to "may this request go now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It fits now.
    Admit,
    /// It fits at `at` if nothing else is admitted first.
    WaitUntil {
        /// The earliest admissible instant.
        at: Instant,
        /// What holds it back until then.
        blocker: Blocker,
    },
    /// It waits for an event, not a time (a concurrency slot frees when a permit settles).
    /// `not_before` is the earliest instant it could go once the event happened.
    WaitForEvent {
        /// What it waits for.
        blocker: Blocker,
        /// Time-based constraints that hold in addition.
        not_before: Option<Instant>,
    },
    /// It can never fit: `requested` is above the limit.
    Never {
        /// The limit it exceeds.
        limit: Limit,
        /// What it asked for in that limit's dimension.
        requested: u64,
    },
    /// The scope is closed until a human acts (spend cap).
    Closed {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// Combines two scopes' verdicts for an all-or-none reservation: closed and never win, then
    /// waiting for an event, then the later instant.
    pub fn and(self, other: Verdict) -> Verdict {
        use Verdict::*;
        match (self, other) {
            (c @ Closed { .. }, _) | (_, c @ Closed { .. }) => c,
            (n @ Never { .. }, _) | (_, n @ Never { .. }) => n,
            (
                WaitForEvent {
                    blocker,
                    not_before: a,
                },
                WaitForEvent { not_before: b, .. },
            ) => WaitForEvent {
                blocker,
                not_before: a.max(b),
            },
            (
                WaitForEvent {
                    blocker,
                    not_before,
                },
                WaitUntil { at, .. },
            )
            | (
                WaitUntil { at, .. },
                WaitForEvent {
                    blocker,
                    not_before,
                },
            ) => WaitForEvent {
                blocker,
                not_before: Some(not_before.map_or(at, |n| n.max(at))),
            },
            (w @ WaitForEvent { .. }, Admit) | (Admit, w @ WaitForEvent { .. }) => w,
            (WaitUntil { at: a, blocker: x }, WaitUntil { at: b, blocker: y }) => {
                if b > a {
                    WaitUntil { at: b, blocker: y }
                } else {
                    WaitUntil { at: a, blocker: x }
                }
            }
            (w @ WaitUntil { .. }, Admit) | (Admit, w @ WaitUntil { .. }) => w,
            (Admit, Admit) => Admit,
        }
    }
}
