//! Pure quota logic: limits, exact sliding windows, reservations and settlement, cooldowns,
//! learned limits and pacing. No actors, no I/O, no YAML: time comes in through [`Clock`]-free
//! `Instant` arguments so every decision can be replayed exactly in tests.
//!
//! The vocabulary here ([`Limit`], [`ScopeId`], [`ScopeSpec`], [`RateLimitSignal`]) is shared by
//! the layers above: `config` builds specs, `provider` parses HTTP answers into signals, and the
//! `supervisor` actor owns the state.

mod signal;
mod types;

pub use signal::{RateLimitSignal, Remaining, SignalKind};
pub use types::{DailyReset, Dimension, Limit, LimitError, ScopeId, ScopeKind, ScopeSpec};
