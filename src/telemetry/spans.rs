//! The span vocabulary every layer uses, so logs and traces line up across the crate.
//!
//! | span | opened by | fields (filled later: `*`) |
//! |---|---|---|
//! | `run` | runtime, one per run | `run_id`, `agents`, `status*`, `winner*` |
//! | `agent_turn` | agent actor, one per LLM turn | `agent`, `turn`, `outcome*` |
//! | `permit_wait` | routing, around `acquire` | `requester`, `est_tokens`, `priority`, `scope*`, `waited_ms*` |
//! | `provider_call` | routing, around one provider attempt | `provider`, `model`, `key_id`, `attempt`, `status_class*`, `input_tokens*`, `output_tokens*`, `latency_ms*` |
//!
//! Fields marked `*` are declared empty and recorded when known
//! (`span.record("outcome", "vote")`). Values follow the metric labels' rules: ids, names from
//! the configuration, numbers and enum labels — never a secret or a prompt.

use tracing::Span;
use tracing::field::Empty;

/// Name of the span around a whole run.
pub const RUN: &str = "run";
/// Name of the span around one agent turn.
pub const AGENT_TURN: &str = "agent_turn";
/// Name of the span around waiting for a quota permit.
pub const PERMIT_WAIT: &str = "permit_wait";
/// Name of the span around one provider call attempt.
pub const PROVIDER_CALL: &str = "provider_call";

/// The span of a run: `run_id` (e.g. the run directory's timestamp) and team size.
pub fn run(run_id: &str, agents: usize) -> Span {
    tracing::info_span!("run", run_id, agents, status = Empty, winner = Empty)
}

/// The span of agent `agent`'s turn number `turn` (1-based).
pub fn agent_turn(agent: &str, turn: u32) -> Span {
    tracing::info_span!("agent_turn", agent, turn, outcome = Empty)
}

/// The span of waiting for a permit.
pub fn permit_wait(requester: &str, est_tokens: u64, priority: u8) -> Span {
    tracing::info_span!(
        "permit_wait",
        requester,
        est_tokens,
        priority,
        scope = Empty,
        waited_ms = Empty
    )
}

/// The span of one provider call attempt. `key_id` is a key's short hash or configured name.
pub fn provider_call(provider: &str, model: &str, key_id: Option<&str>, attempt: u32) -> Span {
    tracing::info_span!(
        "provider_call",
        provider,
        model,
        key_id = key_id.unwrap_or("-"),
        attempt,
        status_class = Empty,
        input_tokens = Empty,
        output_tokens = Empty,
        latency_ms = Empty
    )
}
