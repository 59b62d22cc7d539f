//! [`ProviderRef`]: the handle callers hold to a provider actor.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Supervisor};
use tokio::sync::{oneshot, watch};

use super::circuit::{CircuitSettings, CircuitView};
use super::{Chat, DEFAULT_MAX_IN_FLIGHT, Health, ProviderActor, ProviderHealth, stopped};
use crate::keys::ApiKey;
use crate::provider::{ChatRequest, ChatResponse, Provider, ProviderError, StreamSink};
use crate::system::ActorSystem;

/// A handle to one provider actor: cheap to clone, `Send + Sync`, usable from any thread.
#[derive(Clone)]
pub struct ProviderRef {
    pub(super) addr: Addr<ProviderActor>,
    name: Arc<str>,
    endpoint: Arc<str>,
    circuit: watch::Receiver<CircuitView>,
}

impl fmt::Debug for ProviderRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderRef")
            .field("provider", &self.name)
            .field("endpoint", &self.endpoint)
            .field("connected", &self.addr.connected())
            .finish()
    }
}

impl ProviderRef {
    /// Starts a supervised actor for `provider` on one of `system`'s worker arbiters, serving
    /// at most [`DEFAULT_MAX_IN_FLIGHT`] calls at once.
    pub fn start(system: &ActorSystem, provider: Arc<dyn Provider>) -> ProviderRef {
        Self::start_with(system, provider, DEFAULT_MAX_IN_FLIGHT)
    }

    /// Like [`ProviderRef::start`] with at most `max_in_flight` calls at once (at least one).
    pub fn start_with(
        system: &ActorSystem,
        provider: Arc<dyn Provider>,
        max_in_flight: usize,
    ) -> ProviderRef {
        Self::start_on(
            &system.worker(),
            provider,
            None,
            max_in_flight,
            CircuitSettings::default(),
        )
    }

    /// Starts the actor of the HTTP endpoint at `base_url` (shown without credentials in its
    /// health and metrics) with the circuit breaker `circuit`.
    pub fn start_endpoint(
        system: &ActorSystem,
        provider: Arc<dyn Provider>,
        base_url: Option<&str>,
        circuit: CircuitSettings,
    ) -> ProviderRef {
        Self::start_on(
            &system.worker(),
            provider,
            base_url,
            DEFAULT_MAX_IN_FLIGHT,
            circuit,
        )
    }

    /// Starts the actor on `arbiter` (the thread of the one agent it serves, say).
    pub(crate) fn start_on(
        arbiter: &actix_rt::ArbiterHandle,
        provider: Arc<dyn Provider>,
        base_url: Option<&str>,
        max_in_flight: usize,
        circuit: CircuitSettings,
    ) -> ProviderRef {
        let name: Arc<str> = Arc::from(provider.name());
        let endpoint: Arc<str> = Arc::from(base_url.map_or("in-process".to_owned(), display_url));
        let actor = ProviderActor::new(provider, endpoint.clone(), max_in_flight, circuit);
        let circuit = actor.breaker.subscribe();
        let addr = Supervisor::start_in_arbiter(arbiter, move |_| actor);
        ProviderRef {
            addr,
            name,
            endpoint,
            circuit,
        }
    }

    /// The backend family of the provider (as [`Provider::name`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint: its base URL without credentials, query or fragment, or `in-process`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The endpoint's circuit breaker as its actor last published it (no message sent). A
    /// circuit that does not [`CircuitView::admits`] answers a call at once with
    /// [`crate::provider::ProviderErrorKind::CircuitOpen`], without a request.
    pub fn circuit(&self) -> CircuitView {
        *self.circuit.borrow()
    }

    /// Runs one call on the actor. Dropping the returned future cancels the call. A call that
    /// takes longer than `timeout` once it has a slot fails as a transient error; an actor that
    /// stopped (a panic in another call, a runtime shutting down) fails it at once as a
    /// transient error, never a hang.
    pub async fn chat(
        &self,
        request: Arc<ChatRequest>,
        key: Option<ApiKey>,
        sink: Option<StreamSink>,
        timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
        let (reply, answer) = oneshot::channel();
        // Unconditionally queued: a full mailbox never refuses a call; a stopped actor drops
        // the message and with it `reply`, which ends the wait below.
        self.addr.do_send(Chat {
            request,
            key,
            sink,
            timeout,
            reply,
            span: tracing::Span::current(),
        });
        answer.await.unwrap_or_else(|_| Err(stopped(&self.name)))
    }

    /// The actor's figures now (an error when the actor is gone for good).
    pub async fn health(&self) -> Result<ProviderHealth, ProviderError> {
        self.addr
            .send(Health)
            .await
            .map_err(|_| stopped(&self.name))
    }

    /// Whether two handles reach the same actor.
    pub fn same_actor(&self, other: &ProviderRef) -> bool {
        self.addr == other.addr
    }
}

/// `url` without credentials (`user:pass@`), query or fragment, for health, logs and metrics.
pub(crate) fn display_url(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let url = url.get(..cut).unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::display_url;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            display_url("https://user:secret@api.example.com:8443/v1?key=abc#x"),
            "https://api.example.com:8443/v1"
        );
        assert_eq!(
            display_url("http://127.0.0.1:9/v1"),
            "http://127.0.0.1:9/v1"
        );
    }
}
