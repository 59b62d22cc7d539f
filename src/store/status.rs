//! [`StoreStatus`]: what a quota store holds now, per scope, for `/status` and `--validate`.
//! Field names are stable (snake_case JSON).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// What a store holds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StoreStatus {
    /// Which store, e.g. `SQLite file /home/me/.local/state/massgen-rs/state.db`.
    pub store: String,
    /// Whether other processes may share it.
    pub shared: bool,
    /// When the figures were taken, wall-clock milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Every scope the store holds something for, by name.
    pub scopes: Vec<ScopeStored>,
}

/// What a store holds for one scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ScopeStored {
    /// The scope's name, e.g. `gemini/gemini-2.5-pro`.
    pub scope: String,
    /// Admissions kept (requests, released ones excluded), whatever their age.
    pub admissions: u64,
    /// Rows the store keeps for them (fewer than `admissions` once day windows are compacted).
    pub rows: u64,
    /// Admissions summed over each requested period ending now.
    pub windows: Vec<WindowUse>,
    /// Cooldowns not over yet.
    pub cooldowns: Vec<CooldownStored>,
    /// Limits learned from the provider.
    pub learned: Vec<LearnedStored>,
    /// When the latest startup cooldown of the scope ends, if it is not over.
    pub startup_until_ms: Option<i64>,
}

/// Admissions of one scope inside the window `(now - period_ms, now]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WindowUse {
    /// The window, in milliseconds.
    pub period_ms: i64,
    /// Requests admitted in it.
    pub requests: u64,
    /// Input tokens they hold (reservations until settled).
    pub input_tokens: u64,
    /// Output tokens they hold.
    pub output_tokens: u64,
}

/// A cooldown kept in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CooldownStored {
    /// Why (`429 rate limited`, `daily quota`...).
    pub reason: String,
    /// When it ends, RFC 3339 (UTC).
    pub until: String,
    /// When it ends, wall-clock milliseconds.
    pub until_ms: i64,
}

impl CooldownStored {
    /// A cooldown ending at `until_ms`.
    pub fn new(reason: String, until_ms: i64) -> Self {
        Self {
            reason,
            until: rfc3339(until_ms),
            until_ms,
        }
    }
}

/// A limit learned from a provider, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedStored {
    /// `requests`, `tokens`, `input_tokens` or `output_tokens`.
    pub dimension: String,
    /// How much per period.
    pub amount: u64,
    /// The period, in milliseconds.
    pub period_ms: i64,
}

impl StoreStatus {
    /// The status of a store that keeps nothing (the in-memory store).
    pub fn empty(store: String, shared: bool, at_ms: i64) -> Self {
        Self {
            store,
            shared,
            at_ms,
            scopes: Vec::new(),
        }
    }

    /// The scope named `name`, if the store holds anything for it.
    pub fn scope(&self, name: &str) -> Option<&ScopeStored> {
        self.scopes.iter().find(|s| s.scope == name)
    }
}

impl ScopeStored {
    /// The use in the window of `period_ms`, if it was asked for.
    pub fn window(&self, period_ms: i64) -> Option<&WindowUse> {
        self.windows.iter().find(|w| w.period_ms == period_ms)
    }
}

/// Wall-clock milliseconds as RFC 3339 (UTC, milliseconds); out-of-range values as the number.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_stable_snake_case() {
        let status = StoreStatus {
            store: "SQLite file state.db".into(),
            shared: true,
            at_ms: 1_770_000_000_000,
            scopes: vec![ScopeStored {
                scope: "s".into(),
                admissions: 2,
                rows: 1,
                windows: vec![WindowUse {
                    period_ms: 60_000,
                    requests: 2,
                    input_tokens: 10,
                    output_tokens: 4,
                }],
                cooldowns: vec![CooldownStored::new("429".into(), 1_770_000_026_000)],
                learned: vec![LearnedStored {
                    dimension: "tokens".into(),
                    amount: 20_000,
                    period_ms: 60_000,
                }],
                startup_until_ms: None,
            }],
        };
        let json = serde_json::to_value(&status).unwrap_or_default();
        let scope = &json["scopes"][0];
        assert_eq!(scope["windows"][0]["input_tokens"], 10);
        assert_eq!(scope["cooldowns"][0]["until"], "2026-02-02T02:40:26.000Z");
        assert_eq!(scope["learned"][0]["period_ms"], 60_000);
        assert!(scope["startup_until_ms"].is_null());
        let back: StoreStatus = serde_json::from_value(json).unwrap_or_default();
        assert_eq!(back, status);
    }
}
