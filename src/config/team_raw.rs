//! Stage one of loading a team file: raw serde types that mirror the YAML and refuse unknown
//! keys. Nothing here is validated beyond YAML types; `team.rs` turns these into runtime types.

use serde::Deserialize;
use serde_yaml::Value;

/// The whole team file. Its sections are deserialized one by one (each agent on its own), so
/// that a problem in one does not hide the problems of the others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTeam {
    pub(crate) agents: Option<Vec<Value>>,
    pub(crate) agent: Option<Value>,
    pub(crate) orchestrator: Option<Value>,
    pub(crate) timeout_settings: Option<Value>,
    pub(crate) ui: Option<Value>,
    pub(crate) rate_limit: Option<Value>,
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
    /// MassGen's per-agent override of `orchestrator.voting_sensitivity`.
    pub(crate) voting_sensitivity: Option<String>,
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
    /// Provider options passed through to requests (see `provider::RequestOptions`).
    pub(crate) top_p: Option<f64>,
    pub(crate) top_k: Option<i64>,
    /// MassGen's (Responses API) form: `{effort: medium, summary: auto}`.
    pub(crate) reasoning: Option<RawReasoning>,
    /// The chat completions form of `reasoning.effort`.
    pub(crate) reasoning_effort: Option<String>,
    /// MassGen's (Responses API) form: `{verbosity: medium}`.
    pub(crate) text: Option<RawText>,
    /// The chat completions form of `text.verbosity`.
    pub(crate) verbosity: Option<String>,
    pub(crate) parallel_tool_calls: Option<bool>,
    pub(crate) betas: Option<Vec<String>>,
    pub(crate) chat_template_kwargs: Option<Value>,
    pub(crate) extra_body: Option<Value>,
    /// `type: pool` (ours): the pool's name, and how many models one call may move through.
    pub(crate) pool: Option<String>,
    pub(crate) max_models: Option<i64>,
}

/// `agents[i].backend.reasoning`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReasoning {
    pub(crate) effort: Option<String>,
    /// Reasoning summaries exist in the Responses API only: accepted, with a warning.
    pub(crate) summary: Option<Value>,
}

/// `agents[i].backend.text`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawText {
    pub(crate) verbosity: Option<String>,
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
    pub(crate) model_rpm: Option<std::collections::BTreeMap<String, i64>>,
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
}

/// `timeout_settings:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub(crate) orchestrator_timeout_seconds: Option<f64>,
    /// Our addition: the whole-call limit of one provider call.
    pub(crate) call_timeout_seconds: Option<f64>,
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
    pub(crate) state: Option<String>,
    pub(crate) prices: Option<String>,
    pub(crate) store: Option<serde_yaml::Value>,
    pub(crate) circuit: Option<RawCircuit>,
    pub(crate) budget: Option<RawBudget>,
    pub(crate) pools: Option<String>,
}

/// `rate_limit.circuit:` (ours): the circuit breaker of every provider endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCircuit {
    pub(crate) failures: Option<u32>,
    pub(crate) open_for: Option<serde_yaml::Value>,
}

/// `rate_limit.budget:` (ours).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudget {
    pub(crate) per_run_usd: Option<f64>,
    pub(crate) per_day_usd: Option<f64>,
    pub(crate) allow_unpriced: Option<bool>,
}
