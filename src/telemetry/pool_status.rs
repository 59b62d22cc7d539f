//! The pools part of `/status` (what the seed plans call `getPoolStatus`): per pool, each
//! model with the utilization of each of its limits, and the models that cannot take a call
//! now with why and when they return.

use serde::{Deserialize, Serialize};

use super::status::{ScopeState, ScopeStatus};
use crate::provider::{CircuitView, EndpointState};

/// One pool as its agents use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// The pool's name (`fast`, `smart`, ...).
    pub pool: String,
    /// The agents whose calls choose among its models.
    pub agents: Vec<String>,
    /// Its models (one per key), in the pool's order.
    pub models: Vec<ModelStatus>,
    /// How many of them could take a call now.
    pub available: usize,
    /// Entries of the pool left out (no key, no endpoint), with why.
    pub left_out: Vec<LeftOutStatus>,
}

/// A pool entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeftOutStatus {
    /// `<provider>/<model>`.
    pub model: String,
    /// Why.
    pub reason: String,
}

/// One model of a pool now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelStatus {
    /// The provider (as the pool names it).
    pub provider: String,
    /// The model.
    pub model: String,
    /// The key's masked form, when it has one.
    pub key: Option<String>,
    /// Whether a call could go to it now.
    pub available: bool,
    /// Why not, when it cannot.
    pub unavailable_reason: Option<String>,
    /// Seconds until it can take calls again, when known.
    pub available_in_secs: Option<f64>,
    /// Its endpoint's circuit breaker.
    pub circuit: EndpointState,
    /// Its quota scope with the usage of each limit (`None` when rate limiting is off).
    pub quota: Option<ScopeStatus>,
}

impl ModelStatus {
    /// The status of a model whose endpoint circuit is `circuit` and whose quota scope is
    /// `quota`, at `now`.
    pub fn new(
        provider: &str,
        model: &str,
        key: Option<String>,
        circuit: CircuitView,
        quota: Option<&ScopeStatus>,
        now: std::time::Instant,
    ) -> ModelStatus {
        let mut out = ModelStatus {
            provider: provider.to_owned(),
            model: model.to_owned(),
            key,
            available: true,
            unavailable_reason: None,
            available_in_secs: None,
            circuit: circuit.state,
            quota: quota.cloned(),
        };
        if !circuit.admits() {
            out.available = false;
            out.unavailable_reason = Some(match circuit.state {
                EndpointState::Open => "endpoint circuit open".to_owned(),
                _ => "endpoint circuit half-open, its probe in flight".to_owned(),
            });
            out.available_in_secs = circuit
                .until
                .map(|u| secs(u.saturating_duration_since(now)));
            return out;
        }
        let Some(q) = quota else {
            return out;
        };
        match q.state {
            ScopeState::Open => {}
            ScopeState::CoolingDown => {
                out.available = false;
                out.unavailable_reason =
                    Some(q.cooldown_reason.clone().unwrap_or("cooling down".into()));
                out.available_in_secs = Some(q.cooldown_remaining_secs);
            }
            ScopeState::Closed => {
                out.available = false;
                out.unavailable_reason = Some(q.cooldown_reason.clone().unwrap_or("closed".into()));
            }
            ScopeState::Saturated => {
                out.available = false;
                let full = q.limits.iter().find(|l| l.remaining == 0);
                out.unavailable_reason = Some(match (full, q.concurrency) {
                    (Some(l), _) => format!("{} per {} full ({})", l.dimension, l.period, l.limit),
                    (None, Some(c)) if q.in_flight >= c => format!("{c} calls in flight"),
                    _ => format!("{} requests queued", q.queue_depth),
                });
            }
        }
        out
    }
}

fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
