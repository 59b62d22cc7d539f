//! Pure quota logic: limits, exact sliding windows, reservations and settlement, cooldowns,
//! learned limits and pacing. No actors, no I/O, no YAML: time comes in as `Instant` arguments
//! (and a [`WallClock`] anchored to them for daily resets) so every decision can be replayed
//! exactly in tests.
//!
//! The vocabulary here ([`Limit`], [`ScopeId`], [`ScopeSpec`], [`RateLimitSignal`]) is shared by
//! the layers above: `config` builds specs, `provider` parses HTTP answers into signals, and the
//! `supervisor` actor owns the state through a [`Ledger`].

mod cooldown;
mod ledger;
mod scope;
mod signal;
pub mod time;
mod types;
mod verdict;
mod window;

pub use cooldown::{Cooldown, WallClock, next_daily_reset};
pub use ledger::{
    CandidateCheck, DEFAULT_DAILY_BACKOFF, DEFAULT_RETRY_AFTER, Ledger, Reservation, SignalEffect,
};
pub use scope::{LimitState, LimitUsage, ScopeSnapshot, ScopeState};
pub use signal::{
    MAX_LEARNED_AMOUNT, RESET_TOLERANCE, RateLimitSignal, Remaining, SignalKind, plausible_limit,
};
pub use types::{
    DailyReset, Dimension, Limit, LimitError, ScopeId, ScopeKind, ScopeSpec, TokenCount,
};
pub use verdict::{Blocker, Verdict};
pub use window::SlidingLog;
