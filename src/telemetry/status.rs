//! The `/status` JSON: live quota state per scope, derived from a [`QuotaSnapshot`].

use serde::{Deserialize, Serialize};

use super::quota::period_label;
use crate::store::StoreStatus;
use crate::supervisor::{LimitUsage, QuotaSnapshot, ScopeSnapshot, SupervisorError};

/// Whether a scope admits requests now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeState {
    /// Admits now.
    Open,
    /// A limit or the concurrency cap is full, or requests are queued.
    Saturated,
    /// Closed for a while (429 retry delay, daily reset, startup).
    CoolingDown,
    /// Closed until a human acts (spend cap).
    Closed,
}

/// One limit of a scope, with its usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitStatus {
    /// `requests` or `tokens`.
    pub dimension: String,
    /// The window: `1m`, `1d`, `10s`...
    pub period: String,
    /// The window in seconds.
    pub period_secs: f64,
    /// The limit in force.
    pub limit: u64,
    /// The configured limit (0 when the limit was only learned).
    pub configured_limit: u64,
    /// Whether the limit in force was learned from the provider.
    pub learned: bool,
    /// Admitted in the trailing window now.
    pub used: u64,
    /// `limit - used`, never below 0.
    pub remaining: u64,
    /// `used / limit` in percent, one decimal.
    pub utilization_pct: f64,
}

/// One scope's live state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeStatus {
    /// The scope's name.
    pub scope: String,
    /// Whether it admits now.
    pub state: ScopeState,
    /// Every limit with its usage.
    pub limits: Vec<LimitStatus>,
    /// Permits in flight.
    pub in_flight: u32,
    /// The concurrency cap, if any.
    pub concurrency: Option<u32>,
    /// Requests waiting.
    pub queue_depth: usize,
    /// Seconds until it admits again (0 when open or closed for good).
    pub cooldown_remaining_secs: f64,
    /// Why it is cooling down or closed.
    pub cooldown_reason: Option<String>,
    /// Limits learned from the provider, e.g. `tokens per 1m: 20000 (configured 32000)`.
    pub learned_limits: Vec<String>,
    /// Permits granted so far.
    pub granted_total: u64,
    /// Requests refused so far.
    pub denied_total: u64,
}

/// The whole `/status` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StatusReport {
    /// Every scope, in registration order.
    pub scopes: Vec<ScopeStatus>,
    /// Requests waiting, all scopes together.
    pub waiting_total: usize,
    /// Scopes cooling down or closed.
    pub closed_scopes: usize,
    /// Which quota state store is in use and what it holds per scope (every process sharing
    /// it included), over the windows of the scopes' limits. `scopes` above is this process's
    /// own view (its ledger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreStatus>,
    /// Why the store could not say what it holds, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    /// Every provider endpoint: circuit breaker, load, errors, latency.
    #[serde(default)]
    pub providers: Vec<super::ProviderStatus>,
    /// Every pool agents choose models from: each model's limits and availability.
    #[serde(default)]
    pub pools: Vec<super::PoolStatus>,
    /// Every provider key, masked, with its status (`active`, `cooldown`, `exhausted`,
    /// `disabled`).
    #[serde(default)]
    pub keys: Vec<super::KeyStatusView>,
    /// The latest routing and quota moves, oldest first (empty when nothing keeps them).
    #[serde(default)]
    pub routing: Vec<super::RoutingEntry>,
}

impl StatusReport {
    /// The report of a supervisor snapshot.
    pub fn from_snapshot(snapshot: &QuotaSnapshot) -> StatusReport {
        let scopes: Vec<ScopeStatus> = snapshot.scopes.iter().map(scope_status).collect();
        StatusReport {
            waiting_total: scopes.iter().map(|s| s.queue_depth).sum(),
            closed_scopes: scopes
                .iter()
                .filter(|s| matches!(s.state, ScopeState::CoolingDown | ScopeState::Closed))
                .count(),
            scopes,
            store: None,
            store_error: None,
            providers: Vec::new(),
            pools: Vec::new(),
            keys: Vec::new(),
            routing: Vec::new(),
        }
    }

    /// The same report with the provider endpoints `providers`.
    pub fn with_providers(mut self, providers: Vec<super::ProviderStatus>) -> StatusReport {
        self.providers = providers;
        self
    }

    /// Adds what the quota state store holds (or why it could not say).
    pub fn with_store(mut self, store: Result<StoreStatus, SupervisorError>) -> StatusReport {
        match store {
            Ok(s) => self.store = Some(s),
            Err(e) => self.store_error = Some(e.to_string()),
        }
        self
    }

    /// The report as JSON (for `/status`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}))
    }
}

/// The window of a snapshot limit as a `Duration` (0 for nonsense values).
pub(crate) fn period_of(l: &LimitUsage) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(l.period_secs).unwrap_or_default()
}

/// Whether a snapshot says the scope is closed for good (a reason and no end).
pub(crate) fn is_closed(s: &ScopeSnapshot) -> bool {
    s.cooldown_reason.is_some() && s.cooldown_remaining_ms.is_none()
}

fn limit_status(l: &LimitUsage) -> LimitStatus {
    let pct = if l.limit == 0 {
        0.0
    } else {
        (l.used as f64 / l.limit as f64 * 1000.0).round() / 10.0
    };
    LimitStatus {
        dimension: l.dimension.to_owned(),
        period: period_label(period_of(l)),
        period_secs: l.period_secs,
        limit: l.limit,
        configured_limit: l.configured_limit,
        learned: l.learned,
        used: l.used,
        remaining: l.limit.saturating_sub(l.used),
        utilization_pct: pct,
    }
}

fn scope_status(s: &ScopeSnapshot) -> ScopeStatus {
    let limits: Vec<LimitStatus> = s.limits.iter().map(limit_status).collect();
    let cooling = s.cooldown_remaining_ms.filter(|ms| *ms > 0);
    let full =
        limits.iter().any(|l| l.remaining == 0) || s.concurrency.is_some_and(|c| s.in_flight >= c);
    let state = if is_closed(s) {
        ScopeState::Closed
    } else if cooling.is_some() {
        ScopeState::CoolingDown
    } else if full || s.queue_depth > 0 {
        ScopeState::Saturated
    } else {
        ScopeState::Open
    };
    let learned_limits = limits
        .iter()
        .filter(|l| l.learned)
        .map(|l| {
            let configured = if l.configured_limit == 0 {
                "not configured".to_owned()
            } else {
                format!("configured {}", l.configured_limit)
            };
            format!(
                "{} per {}: {} ({configured})",
                l.dimension, l.period, l.limit
            )
        })
        .collect();
    ScopeStatus {
        scope: s.scope.clone(),
        state,
        limits,
        in_flight: s.in_flight,
        concurrency: s.concurrency,
        queue_depth: s.queue_depth,
        cooldown_remaining_secs: cooling.map_or(0.0, |ms| ms as f64 / 1000.0),
        cooldown_reason: s.cooldown_reason.clone(),
        learned_limits,
        granted_total: s.granted_total,
        denied_total: s.denied_total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(dimension: &'static str, limit: u64, configured: u64, used: u64) -> LimitUsage {
        LimitUsage {
            dimension,
            period_secs: 60.0,
            limit,
            configured_limit: configured,
            learned: limit != configured,
            used,
            utilization: used as f64 / limit as f64,
        }
    }

    fn scope(name: &str) -> ScopeSnapshot {
        ScopeSnapshot {
            scope: name.to_owned(),
            limits: vec![limit("requests", 2, 2, 1)],
            in_flight: 0,
            concurrency: None,
            queue_depth: 0,
            cooldown_remaining_ms: None,
            cooldown_reason: None,
            granted_total: 1,
            denied_total: 0,
        }
    }

    #[test]
    fn states_and_learned_limits_are_derived() {
        let open = scope("a");
        let mut waiting = scope("b");
        waiting.queue_depth = 2;
        let mut cooling = scope("c");
        cooling.cooldown_remaining_ms = Some(26_000);
        cooling.cooldown_reason = Some("429 rate limited".to_owned());
        cooling.limits.push(limit("tokens", 20_000, 32_000, 5_000));
        let mut closed = scope("d");
        closed.cooldown_reason = Some("spend cap reached".to_owned());
        let report = StatusReport::from_snapshot(&QuotaSnapshot {
            scopes: vec![open, waiting, cooling, closed],
        });
        let states: Vec<ScopeState> = report.scopes.iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            [
                ScopeState::Open,
                ScopeState::Saturated,
                ScopeState::CoolingDown,
                ScopeState::Closed
            ]
        );
        assert_eq!(report.waiting_total, 2);
        assert_eq!(report.closed_scopes, 2);
        let c = &report.scopes[2];
        assert_eq!(c.cooldown_remaining_secs, 26.0);
        assert_eq!(
            c.learned_limits,
            ["tokens per 1m: 20000 (configured 32000)"]
        );
        assert_eq!(c.limits[1].utilization_pct, 25.0);
        assert_eq!(c.limits[1].remaining, 15_000);
        assert_eq!(report.scopes[0].limits[0].utilization_pct, 50.0);
        let json = report.to_json();
        assert_eq!(json["scopes"][2]["state"], "cooling_down");
        assert_eq!(json["scopes"][0]["limits"][0]["period"], "1m");
    }
}
