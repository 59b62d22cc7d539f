//! LLM providers behind one interface: the in-process `simulated` backend and (as they land) one
//! adapter module per API family — OpenAI-compatible chat completions, Gemini native REST,
//! Anthropic Messages. Each adapter turns a [`ChatRequest`] into its wire format and the answer
//! (whole or streamed) back into a [`ChatResponse`]; rate-limit answers become a
//! [`crate::quota::RateLimitSignal`] inside a [`ProviderError`].
//!
//! This layer knows nothing of teams, votes or quotas.

pub mod simulated;
mod types;

use std::sync::Arc;

pub use simulated::SimulatedProvider;
pub use types::{
    ChatRequest, ChatResponse, Message, Provider, ProviderError, ProviderErrorKind, Role,
    StreamEvent, StreamSink, ToolCall, ToolSpec, Usage,
};

/// The provider serving `agent_id` for its configured backend, or `None` when this build has no
/// adapter for the backend's kind yet. `team_ids` are every agent's id (the simulated backend
/// maps `vote_for` to anonymous ids with them).
pub fn for_agent(
    agent_id: &str,
    backend: &crate::config::BackendConfig,
    team_ids: &[String],
) -> Option<Arc<dyn Provider>> {
    match backend.kind {
        crate::config::BackendKind::Simulated => Some(Arc::new(SimulatedProvider::new(
            agent_id,
            backend.simulated.clone(),
            team_ids,
        ))),
        _ => None,
    }
}
