//! LLM providers behind one interface: the in-process `simulated` backend and (as they land) one
//! adapter module per API family — OpenAI-compatible chat completions, Gemini native REST,
//! Anthropic Messages. Each adapter turns a [`ChatRequest`] into its wire format and the answer
//! (whole or streamed) back into a [`ChatResponse`]; rate-limit answers become a
//! [`crate::quota::RateLimitSignal`] inside a [`ProviderError`].
//!
//! This layer knows nothing of teams, votes or quotas.

mod types;

pub use types::{
    ChatRequest, ChatResponse, Message, Provider, ProviderError, ProviderErrorKind, Role,
    StreamEvent, StreamSink, ToolCall, ToolSpec, Usage,
};

pub mod signals;
