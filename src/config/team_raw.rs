//! Stage one of loading a team file: raw serde types that mirror the YAML and refuse unknown
//! keys. Nothing here is validated beyond YAML types; `team.rs` turns these into runtime types.

use serde::Deserialize;
use serde_yaml::Value;

/// The whole team file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTeam {
    pub(crate) agents: Option<Vec<RawAgent>>,
    pub(crate) agent: Option<RawAgent>,
    pub(crate) orchestrator: Option<RawOrchestrator>,
    pub(crate) timeout_settings: Option<RawTimeouts>,
    pub(crate) ui: Option<RawUi>,
    pub(crate) rate_limit: Option<RawRateLimit>,
    /// MassGen-style top-level switch; same as `rate_limit.enable_rate_limit`.
    pub(crate) enable_rate_limit: Option<bool>,
}

/// One agent (also the shape of a profile, which may not name `id` or `profile`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub(crate) id: Option<String>,
    pub(crate) backend: Option<RawBackend>,
    pub(crate) system_message: Option<String>,
    pub(crate) priority: Option<i64>,
    pub(crate) profile: Option<String>,
    /// Free text, used by profiles to say what they are for.
    #[serde(rename = "description")]
    pub(crate) _description: Option<String>,
}

/// `agents[i].backend`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackend {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) base_url: Option<String>,
    pub(crate) api_key: Option<String>,
    pub(crate) api_keys: Option<Vec<String>>,
    pub(crate) temperature: Option<f64>,
    pub(crate) max_tokens: Option<i64>,
    pub(crate) enable_rate_limit: Option<bool>,
    pub(crate) simulated: Option<RawSimulated>,
}

/// `agents[i].backend.simulated`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSimulated {
    pub(crate) latency_ms: Option<u64>,
    pub(crate) seed: Option<u64>,
    pub(crate) answer_rounds: Option<i64>,
    pub(crate) vote_for: Option<String>,
    pub(crate) output_tokens: Option<i64>,
    pub(crate) fail: Option<RawFail>,
}

/// `agents[i].backend.simulated.fail`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFail {
    pub(crate) on_calls: Option<Vec<i64>>,
    pub(crate) always: Option<bool>,
    pub(crate) rate: Option<f64>,
    pub(crate) kind: Option<String>,
    pub(crate) retry_after_ms: Option<u64>,
}

/// `orchestrator:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOrchestrator {
    pub(crate) voting_sensitivity: Option<String>,
    pub(crate) max_new_answers_per_agent: Option<i64>,
    pub(crate) answer_novelty_requirement: Option<String>,
    pub(crate) skip_final_presentation: Option<bool>,
    /// MassGen's restart settings: accepted and ignored (documented).
    #[serde(rename = "coordination")]
    pub(crate) _coordination: Option<Value>,
    /// MassGen's fairness cap: accepted and ignored (documented).
    #[serde(rename = "fairness_lead_cap_answers")]
    pub(crate) _fairness_lead_cap_answers: Option<Value>,
}

/// `timeout_settings:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub(crate) orchestrator_timeout_seconds: Option<f64>,
    /// Our addition: the whole-call limit of one provider call.
    pub(crate) call_timeout_seconds: Option<f64>,
    /// MassGen's per-round timeouts: accepted and ignored (documented).
    #[serde(rename = "initial_round_timeout_seconds")]
    pub(crate) _initial_round_timeout_seconds: Option<Value>,
    /// MassGen's per-round timeouts: accepted and ignored (documented).
    #[serde(rename = "subsequent_round_timeout_seconds")]
    pub(crate) _subsequent_round_timeout_seconds: Option<Value>,
    /// MassGen's per-round timeouts: accepted and ignored (documented).
    #[serde(rename = "round_timeout_grace_seconds")]
    pub(crate) _round_timeout_grace_seconds: Option<Value>,
}

/// `ui:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUi {
    pub(crate) display_type: Option<String>,
    pub(crate) logging_enabled: Option<bool>,
}

/// `rate_limit:` (ours).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub(crate) enable_rate_limit: Option<bool>,
    pub(crate) limits_file: Option<String>,
    pub(crate) acquire_timeout_seconds: Option<f64>,
}
