//! LLM providers behind one interface: the in-process `simulated` backend and (as they land) one
//! adapter module per API family — OpenAI-compatible chat completions, Gemini native REST,
//! Anthropic Messages. Each adapter turns a [`ChatRequest`] into its wire format and the answer
//! (whole or streamed) back into a [`ChatResponse`]; rate-limit answers become a
//! [`crate::quota::RateLimitSignal`] inside a [`ProviderError`].
//!
//! This layer knows nothing of teams, votes or quotas.

// `ProviderError` carries its parsed `RateLimitSignal` inline (a shared contract type): the
// error path is rare and not hot, so the larger `Err` variant is accepted here.
#![allow(clippy::result_large_err)]

pub mod actor;
pub mod anthropic;
mod build;
pub mod gemini;
pub mod http;
mod image;
pub mod openai;
pub mod signals;
pub mod simulated;
pub mod sse;
#[cfg(test)]
mod test_conversations;
mod types;

use std::sync::Arc;

pub use actor::{CircuitView, EndpointState, ProviderHealth, ProviderRef};
pub use build::{build_provider, build_provider_with, dialect_of};
pub use image::ImageInput;
pub use simulated::{SimServer, SimulatedProvider};
pub use types::{
    ChatRequest, ChatResponse, Message, Provider, ProviderError, ProviderErrorKind, RequestOptions,
    Role, StreamEvent, StreamSink, ToolCall, ToolResult, ToolSpec, Usage,
};

/// The provider serving `agent_id` for its configured backend: the simulated backend in-process,
/// every other kind over HTTP ([`build_provider`]); `None` when the backend cannot be built (an
/// OpenAI-compatible `chatcompletion` without a `base_url`). `team_ids` are every agent's id (the simulated backend
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
        _ => build_provider(backend).ok(),
    }
}
