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
        BackendKind::Groq
        | BackendKind::ChatCompletion
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
            openai_dialect(kind, base_url),
            client,
        )),
    })
}

/// The rate-limit dialect of an OpenAI-compatible endpoint: Groq's (requests per day) for the
/// `groq` type and for a generic `chatcompletion` endpoint on Groq's host, OpenAI's otherwise.
pub fn openai_dialect(kind: BackendKind, base_url: &str) -> Dialect {
    let on_groq = BackendKind::chatcompletion_key_env(base_url).0 == "GROQ_API_KEY";
    match kind {
        BackendKind::Groq => Dialect::Groq,
        BackendKind::ChatCompletion if on_groq => Dialect::Groq,
        _ => Dialect::OpenAi,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generic_endpoint_on_groqs_host_reads_groqs_headers() {
        let groq = "https://api.groq.com/openai/v1";
        assert_eq!(openai_dialect(BackendKind::Groq, groq), Dialect::Groq);
        assert_eq!(
            openai_dialect(BackendKind::ChatCompletion, groq),
            Dialect::Groq
        );
        assert_eq!(
            openai_dialect(BackendKind::ChatCompletion, "http://127.0.0.1:8000/v1"),
            Dialect::OpenAi
        );
        assert_eq!(openai_dialect(BackendKind::OpenAi, groq), Dialect::OpenAi);
    }
}
