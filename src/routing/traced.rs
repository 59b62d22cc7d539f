//! The two awaits of an LLM call — waiting for a permit and the provider call itself — wrapped
//! in their tracing spans (`permit_wait`, `provider_call`) and recorded in the metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::keys::ApiKey;
use crate::provider::{ChatRequest, ChatResponse, ProviderError, ProviderRef, StreamSink};
use crate::supervisor::{AcquireError, AcquireRequest, Permit, QuotaHandle};
use crate::telemetry::{provider::StatusClass, spans};
use crate::usage::UsageTap;

/// Acquires a permit inside a `permit_wait` span that records the granted scope and the wait.
pub(crate) async fn acquire(
    handle: &QuotaHandle,
    request: AcquireRequest,
) -> Result<Permit, AcquireError> {
    let span = spans::permit_wait(&request.requester, request.est_tokens, request.priority);
    let result = handle.acquire(request).instrument(span.clone()).await;
    if let Ok(permit) = &result {
        if let Some(scope) = permit.scopes().first() {
            span.record("scope", scope.as_str());
        }
        span.record(
            "waited_ms",
            u64::try_from(permit.waited().as_millis()).unwrap_or(u64::MAX),
        );
    }
    result
}

/// One provider attempt inside a `provider_call` span; its status, latency and usage go to the
/// span and to the provider metrics, and the call to the usage ledger (through `usage`). The provider actor cancels an attempt that takes longer
/// than `timeout` (the whole call: connecting, first byte, every chunk of a stream) and answers
/// it as a transient error; dropping this future cancels the attempt.
pub(crate) async fn chat(
    provider: &ProviderRef,
    request: Arc<ChatRequest>,
    key: Option<&ApiKey>,
    sink: Option<&StreamSink>,
    attempt: u32,
    timeout: Duration,
    usage: Option<&UsageTap>,
) -> Result<ChatResponse, ProviderError> {
    // Recorded when the call ends, or as cancelled (at its reserved tokens) if this future is
    // dropped before.
    let recorder = usage.map(|u| u.start_request(provider.name(), &request, key));
    let key_id = key.map(ApiKey::short_id);
    let span = spans::provider_call(provider.name(), &request.model, key_id.as_deref(), attempt);
    let sent = Instant::now();
    let model = request.model.clone();
    let result = provider
        .chat(request, key.cloned(), sink.cloned(), timeout)
        .instrument(span.clone())
        .await;
    let elapsed = sent.elapsed();
    if let Some(r) = recorder {
        r.finish(&result);
    }
    crate::telemetry::provider::call_finished(provider.name(), &model, elapsed, &result);
    let class = match &result {
        Ok(_) => StatusClass::Success,
        Err(e) => StatusClass::from_error(e),
    };
    span.record("status_class", class.as_str());
    span.record(
        "latency_ms",
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    );
    if let Ok(ChatResponse { usage: Some(u), .. }) = &result {
        span.record("input_tokens", u.input_tokens);
        span.record("output_tokens", u.output_tokens);
    }
    span.in_scope(|| match &result {
        Ok(_) => tracing::debug!("provider call finished"),
        Err(e) => tracing::info!(error = %e, "provider call failed"),
    });
    result
}
