//! Typed recording of provider metrics: calls by status class, latency, rate-limit answers,
//! tokens and cost.
//!
//! Labels: `provider` is the backend family (`openai`, `gemini`, `claude`, `simulated`...),
//! `model` the configured model name; both are bounded by the configuration.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use super::{catalog, pricing};
use crate::provider::{ChatResponse, EndpointState, ProviderError, ProviderErrorKind, Usage};
use crate::quota::SignalKind;

/// How a provider call ended (the `status_class` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// A 2xx answer that parsed.
    Success,
    /// A 4xx answer (including 429).
    ClientError,
    /// A 5xx answer (including 529 overload).
    ServerError,
    /// No HTTP answer: connection failure, reset or timeout.
    Transport,
    /// An answer that could not be parsed.
    Malformed,
    /// The caller cancelled the call.
    Cancelled,
}

impl StatusClass {
    /// The label value: `2xx`, `4xx`, `5xx`, `transport`, `malformed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Transport => "transport",
            StatusClass::Malformed => "malformed",
            StatusClass::Cancelled => "cancelled",
        }
    }

    /// The class of an HTTP status code.
    pub fn from_status(status: u16) -> StatusClass {
        match status {
            200..=399 => StatusClass::Success,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    /// The class of a failed call: from its HTTP status when there was one, else from its kind
    /// (a backend without HTTP, like the simulated one, still lands in the class a real server
    /// would have answered with).
    pub fn from_error(err: &ProviderError) -> StatusClass {
        if err.kind == ProviderErrorKind::Cancelled {
            return StatusClass::Cancelled;
        }
        if let Some(status) = err.status {
            return StatusClass::from_status(status);
        }
        match err.kind {
            ProviderErrorKind::RateLimited
            | ProviderErrorKind::Auth
            | ProviderErrorKind::RequestTooLarge
            | ProviderErrorKind::SpendCap
            | ProviderErrorKind::BadRequest => StatusClass::ClientError,
            ProviderErrorKind::Overloaded => StatusClass::ServerError,
            ProviderErrorKind::Transient
            | ProviderErrorKind::Internal
            | ProviderErrorKind::Dropped
            | ProviderErrorKind::CircuitOpen => StatusClass::Transport,
            ProviderErrorKind::Malformed => StatusClass::Malformed,
            ProviderErrorKind::Cancelled => StatusClass::Cancelled,
        }
    }
}

/// The `kind` label of a rate-limit answer, or `None` for a signal that is not an error
/// (`Observed` headers on a successful answer).
pub fn rate_limit_kind(kind: &SignalKind) -> Option<&'static str> {
    match kind {
        SignalKind::RateLimited => Some("rate_limited"),
        SignalKind::DailyQuotaExhausted => Some("daily_quota_exhausted"),
        SignalKind::Overloaded => Some("overloaded"),
        SignalKind::SpendCapReached => Some("spend_cap_reached"),
        SignalKind::RequestTooLarge { .. } => Some("request_too_large"),
        SignalKind::Observed => None,
    }
}

/// One provider call ended with `status_class`.
pub fn request(provider: &str, model: &str, status_class: StatusClass) {
    counter!(
        catalog::PROVIDER_REQUESTS,
        "provider" => provider.to_owned(),
        "model" => model.to_owned(),
        "status_class" => status_class.as_str()
    )
    .increment(1);
}

/// One provider call took `elapsed`.
pub fn request_duration(provider: &str, model: &str, elapsed: Duration) {
    histogram!(
        catalog::PROVIDER_REQUEST_DURATION,
        "provider" => provider.to_owned(),
        "model" => model.to_owned()
    )
    .record(elapsed.as_secs_f64());
}

/// The provider answered with a rate-limit signal of `kind`. `Observed` (headers on a success)
/// is not a rate-limit answer and records nothing.
pub fn rate_limit_response(provider: &str, model: &str, kind: &SignalKind) {
    if let Some(kind) = rate_limit_kind(kind) {
        counter!(
            catalog::RATE_LIMIT_RESPONSES,
            "provider" => provider.to_owned(),
            "model" => model.to_owned(),
            "kind" => kind
        )
        .increment(1);
    }
}

/// The provider reported `input` prompt tokens and `output` completion tokens.
pub fn tokens(provider: &str, model: &str, input: u64, output: u64) {
    counter!(
        catalog::TOKENS,
        "provider" => provider.to_owned(),
        "model" => model.to_owned(),
        "direction" => "input"
    )
    .increment(input);
    counter!(
        catalog::TOKENS,
        "provider" => provider.to_owned(),
        "model" => model.to_owned(),
        "direction" => "output"
    )
    .increment(output);
}

/// A call cost `usd` dollars.
pub fn cost_usd(provider: &str, model: &str, usd: f64) {
    histogram!(
        catalog::COST,
        "provider" => provider.to_owned(),
        "model" => model.to_owned()
    )
    .record(usd.max(0.0));
}

/// A call of `agent` cost `usd` dollars by the usage ledger's price table (counted in
/// millionths of a dollar, rounded).
pub fn agent_cost(agent: &str, provider: &str, model: &str, usd: f64) {
    // Far below 2^53 millionths for any real cost; negative or NaN costs count nothing.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let micros = (usd * 1_000_000.0).round().max(0.0) as u64;
    counter!(
        catalog::COST_MICRODOLLARS,
        "agent" => agent.to_owned(),
        "provider" => provider.to_owned(),
        "model" => model.to_owned()
    )
    .increment(micros);
}

/// Records a call's usage: tokens always, cost when the model has a known price. Returns the cost
/// recorded, if any.
pub fn usage(provider: &str, model: &str, usage: Usage) -> Option<f64> {
    tokens(provider, model, usage.input_tokens, usage.output_tokens);
    let usd = pricing::lookup(provider, model)?.cost_of(usage);
    cost_usd(provider, model, usd);
    Some(usd)
}

/// Records everything one finished call tells: its status class, latency, rate-limit answer
/// (from the error's signal) and usage. The one call a routing layer needs after each attempt.
pub fn call_finished(
    provider: &str,
    model: &str,
    elapsed: Duration,
    result: &Result<ChatResponse, ProviderError>,
) {
    if let Err(e) = result
        && e.kind == ProviderErrorKind::CircuitOpen
    {
        // Refused by the endpoint's open circuit: no request was made (the endpoint's actor
        // counts it in `massgen_provider_errors_total{kind="circuit_open"}`).
        return;
    }
    request_duration(provider, model, elapsed);
    match result {
        Ok(resp) => {
            request(provider, model, StatusClass::Success);
            if let Some(u) = resp.usage {
                usage(provider, model, u);
            }
        }
        Err(err) => {
            request(provider, model, StatusClass::from_error(err));
            match &err.signal {
                Some(signal) => rate_limit_response(provider, model, &signal.kind),
                None if err.kind == ProviderErrorKind::RateLimited => {
                    rate_limit_response(provider, model, &SignalKind::RateLimited);
                }
                None if err.kind == ProviderErrorKind::Overloaded => {
                    rate_limit_response(provider, model, &SignalKind::Overloaded);
                }
                None => {}
            }
        }
    }
}

/// Records the circuit state of the endpoint `endpoint` (a base URL without credentials).
pub fn circuit_state(provider: &str, endpoint: &str, state: EndpointState) {
    gauge!(
        catalog::PROVIDER_CIRCUIT_STATE,
        "provider" => provider.to_owned(),
        "endpoint" => endpoint.to_owned()
    )
    .set(state.gauge());
}

/// Records a call the endpoint answered (or that timed out) after `elapsed`, failed with
/// `error` when given.
pub fn endpoint_call(
    provider: &str,
    endpoint: &str,
    elapsed: Duration,
    error: Option<ProviderErrorKind>,
) {
    histogram!(
        catalog::PROVIDER_LATENCY,
        "provider" => provider.to_owned(),
        "endpoint" => endpoint.to_owned()
    )
    .record(elapsed.as_secs_f64());
    if let Some(kind) = error {
        endpoint_error(provider, endpoint, kind);
    }
}

/// Counts a failed call of the endpoint by kind.
pub fn endpoint_error(provider: &str, endpoint: &str, kind: ProviderErrorKind) {
    counter!(
        catalog::PROVIDER_ERRORS,
        "provider" => provider.to_owned(),
        "endpoint" => endpoint.to_owned(),
        "kind" => kind.as_str()
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_follow_http_then_kind() {
        let e = ProviderError::new(ProviderErrorKind::RateLimited, "slow down").with_status(429);
        assert_eq!(StatusClass::from_error(&e), StatusClass::ClientError);
        let e = ProviderError::new(ProviderErrorKind::Overloaded, "busy").with_status(529);
        assert_eq!(StatusClass::from_error(&e), StatusClass::ServerError);
        let e = ProviderError::new(ProviderErrorKind::Transient, "reset");
        assert_eq!(StatusClass::from_error(&e), StatusClass::Transport);
        let e = ProviderError::new(ProviderErrorKind::Cancelled, "gone").with_status(499);
        assert_eq!(StatusClass::from_error(&e), StatusClass::Cancelled);
        assert_eq!(StatusClass::from_status(204).as_str(), "2xx");
    }

    #[test]
    fn observed_headers_are_not_rate_limit_answers() {
        assert_eq!(rate_limit_kind(&SignalKind::Observed), None);
        assert_eq!(
            rate_limit_kind(&SignalKind::DailyQuotaExhausted),
            Some("daily_quota_exhausted")
        );
    }
}
