//! The `keys` array of `/status`: every provider key, masked to its last four characters, with
//! one status the dashboard shows: `active`, `cooldown`, `exhausted` or `disabled`.

use serde::{Deserialize, Serialize};

use super::status::{ScopeState, ScopeStatus};
use crate::keys::{CircuitState, KeyHealth, KeyStatus};

/// One provider key in `/status` (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyStatusView {
    /// Its short id (as in per-key quota scope names, metrics and `/admin/keys/{id}`).
    pub id: String,
    /// `…` and its last four characters (only `…` for a key under 12 characters).
    pub key: String,
    /// Where it came from (an env var name or a config path).
    pub origin: String,
    /// `active`, `cooldown` (an admin's rest, an open circuit, or its quota scope cooling
    /// down), `exhausted` (refused by the provider, or a limit of its quota scope used up for
    /// now) or `disabled` (by an admin).
    pub status: String,
    /// Why it is not active, when it is not.
    pub reason: Option<String>,
    /// Calls sent with it so far.
    pub calls: u64,
    /// Calls answered with a rate limit.
    pub rate_limited: u64,
    /// Other failed calls.
    pub failures: u64,
}

impl KeyStatusView {
    /// The view of `key`, with the quota scopes of the runtime (a per-key scope names the key's
    /// short id after `key:`).
    pub fn new(key: &KeyStatus, scopes: &[ScopeStatus], now_ms: i64) -> KeyStatusView {
        let marker = format!("key:{}", key.id);
        let own: Vec<&ScopeStatus> = scopes
            .iter()
            .filter(|s| s.scope.split('/').any(|part| part == marker))
            .collect();
        let (status, reason) = derive(key, &own, now_ms);
        KeyStatusView {
            id: key.id.clone(),
            key: format!("…{}", key.key.trim_start_matches('*')),
            origin: key.origin.clone(),
            status: status.to_owned(),
            reason,
            calls: key.usage.calls,
            rate_limited: key.usage.rate_limited,
            failures: key.usage.failures,
        }
    }
}

fn derive(key: &KeyStatus, own: &[&ScopeStatus], now_ms: i64) -> (&'static str, Option<String>) {
    if key.disabled {
        return ("disabled", Some("disabled by an admin".to_owned()));
    }
    if let KeyHealth::Retired { reason } = &key.health {
        return ("exhausted", Some(reason.clone()));
    }
    if let Some(until) = key.cooling_until_ms.filter(|u| *u > now_ms) {
        let secs = (until - now_ms) as f64 / 1000.0;
        return (
            "cooldown",
            Some(format!("resting by an admin's order, {secs:.0}s left")),
        );
    }
    if key.circuit != CircuitState::Closed {
        return ("cooldown", Some("circuit open after failures".to_owned()));
    }
    for s in own {
        match s.state {
            ScopeState::CoolingDown => {
                let why = s
                    .cooldown_reason
                    .clone()
                    .unwrap_or_else(|| "cooling down".into());
                return (
                    "cooldown",
                    Some(format!("{why}, {:.0}s left", s.cooldown_remaining_secs)),
                );
            }
            ScopeState::Closed => {
                return (
                    "exhausted",
                    Some(s.cooldown_reason.clone().unwrap_or_else(|| "closed".into())),
                );
            }
            _ => {}
        }
        if let Some(l) = s.limits.iter().find(|l| l.remaining == 0) {
            return (
                "exhausted",
                Some(format!(
                    "{} per {} used up ({}/{})",
                    l.dimension, l.period, l.used, l.limit
                )),
            );
        }
    }
    ("active", None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::telemetry::LimitStatus;

    fn key() -> KeyStatus {
        let api = crate::keys::ApiKey::new("sk-test-0000000000001234", "TEST_KEY");
        KeyStatus::new(&api)
    }

    fn scope(name: &str, used: u64, state: ScopeState) -> ScopeStatus {
        ScopeStatus {
            scope: name.to_owned(),
            state,
            limits: vec![LimitStatus {
                dimension: "requests".into(),
                period: "1m".into(),
                period_secs: 60.0,
                limit: 2,
                configured_limit: 2,
                learned: false,
                used,
                remaining: 2 - used,
                utilization_pct: used as f64 * 50.0,
            }],
            in_flight: 0,
            concurrency: None,
            queue_depth: 0,
            cooldown_remaining_secs: 0.0,
            cooldown_reason: None,
            learned_limits: Vec::new(),
            granted_total: used,
            denied_total: 0,
        }
    }

    #[test]
    fn statuses_follow_admin_state_health_and_the_keys_own_scope() {
        let k = key();
        let own = format!("openai/gpt/key:{}", k.id);
        let free = [scope(&own, 1, ScopeState::Open)];
        let v = KeyStatusView::new(&k, &free, 0);
        assert_eq!((v.status.as_str(), v.key.as_str()), ("active", "…1234"));
        let full = [scope(&own, 2, ScopeState::Saturated)];
        assert_eq!(KeyStatusView::new(&k, &full, 0).status, "exhausted");
        // Another key's full scope says nothing about this one.
        let other = [scope("openai/gpt/key:ffff", 2, ScopeState::Saturated)];
        assert_eq!(KeyStatusView::new(&k, &other, 0).status, "active");
        let mut cooling = scope(&own, 1, ScopeState::CoolingDown);
        cooling.cooldown_reason = Some("429".into());
        assert_eq!(KeyStatusView::new(&k, &[cooling], 0).status, "cooldown");
        let mut rest = k.clone();
        rest.cooling_until_ms = Some(10_000);
        assert_eq!(KeyStatusView::new(&rest, &free, 0).status, "cooldown");
        assert_eq!(KeyStatusView::new(&rest, &free, 20_000).status, "active");
        let mut off = k.clone();
        off.disabled = true;
        assert_eq!(KeyStatusView::new(&off, &full, 0).status, "disabled");
        let mut retired = k;
        retired.health = KeyHealth::Retired {
            reason: "401".into(),
        };
        assert_eq!(KeyStatusView::new(&retired, &free, 0).status, "exhausted");
    }
}
