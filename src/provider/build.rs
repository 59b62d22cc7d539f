//! Building the HTTP provider of a configured backend.

use std::sync::Arc;

use super::anthropic::Anthropic;
use super::gemini::Gemini;
use super::http::shared_client;
use super::openai::OpenAiCompatible;
use super::signals::Dialect;
use super::{Provider, ProviderError, ProviderErrorKind};
use crate::config::{BackendConfig, BackendKind};

/// The HTTP provider for `backend` (every kind but `simulated`), sharing the process-wide HTTP
/// client. The base URL is the configured one, else the kind's default.
pub fn build_provider(backend: &BackendConfig) -> Result<Arc<dyn Provider>, ProviderError> {
    build_provider_with(backend, shared_client()?)
}

/// Like [`build_provider`] with a caller-chosen `client` (own timeouts, tests).
pub fn build_provider_with(
    backend: &BackendConfig,
    client: reqwest::Client,
) -> Result<Arc<dyn Provider>, ProviderError> {
    let kind = backend.kind;
    let base_url = backend
        .base_url
        .as_deref()
        .or(kind.default_base_url())
        .ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::BadRequest,
                format!("backend type `{}` needs a base_url", kind.as_str()),
            )
        })?;
    Ok(match kind {
        BackendKind::Simulated => {
            return Err(ProviderError::new(
                ProviderErrorKind::BadRequest,
                "the simulated backend runs in-process and has no HTTP provider",
            ));
        }
        BackendKind::Gemini => Arc::new(Gemini::new(base_url, client)),
        BackendKind::Claude => Arc::new(Anthropic::new(base_url, client)),
        BackendKind::Groq => Arc::new(OpenAiCompatible::new(
            kind.as_str(),
            base_url,
            Dialect::Groq,
            client,
        )),
        BackendKind::ChatCompletion
        | BackendKind::OpenAi
        | BackendKind::Together
        | BackendKind::OpenRouter
        | BackendKind::Cerebras
        | BackendKind::Fireworks
        | BackendKind::Vllm
        | BackendKind::LmStudio
        | BackendKind::Sglang
        | BackendKind::Grok
        | BackendKind::Zai
        | BackendKind::Moonshot
        | BackendKind::NvidiaNim
        | BackendKind::Nebius
        | BackendKind::Qwen
        | BackendKind::Poe => Arc::new(OpenAiCompatible::new(
            kind.as_str(),
            base_url,
            Dialect::OpenAi,
            client,
        )),
    })
}

/// The rate-limit dialect of a backend kind (which headers and bodies it sends).
pub fn dialect_of(kind: BackendKind) -> Dialect {
    match kind {
        BackendKind::Gemini => Dialect::Gemini,
        BackendKind::Claude => Dialect::Anthropic,
        BackendKind::Groq => Dialect::Groq,
        _ => Dialect::OpenAi,
    }
}
