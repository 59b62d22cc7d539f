//! TEMPORARY copy of the usage ledger's interface (owned by `src/store/usage.rs` on another
//! branch), so the Redis implementation compiles here. At merge: delete this file and import
//! `crate::store::usage::{UsageRecord, UsageStore}` in `usage.rs` instead.

use crate::store::StoreError;

/// One provider call, as the usage ledger keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UsageRecord {
    /// Wall-clock ms since the epoch, when the call ended.
    pub at_ms: i64,
    /// The run.
    pub run_id: String,
    /// The agent.
    pub agent: String,
    /// e.g. "openai", "gemini", "claude", "simulated".
    pub provider: String,
    /// The model.
    pub model: String,
    /// Key fingerprint (never the key), "" when none.
    pub key: String,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// From the built-in price table; None when the model is unknown.
    pub cost_usd: Option<f64>,
    /// "ok", "rate_limited", "error:<kind>", "cancelled" ...
    pub outcome: String,
    /// How long the call took.
    pub latency_ms: u64,
}

/// Where usage records are kept (the same place as the quota state).
pub trait UsageStore: Send {
    /// Appends records (one transaction / round trip for the batch).
    fn append(&mut self, records: &[UsageRecord]) -> Result<(), StoreError>;
    /// Every record with `at_ms >= since_ms`, oldest first.
    fn since(&mut self, since_ms: i64) -> Result<Vec<UsageRecord>, StoreError>;
}
