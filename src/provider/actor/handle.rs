//! [`ProviderRef`]: the handle callers hold to a provider actor.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Supervisor};
use tokio::sync::oneshot;

use super::{Chat, DEFAULT_MAX_IN_FLIGHT, Health, ProviderActor, ProviderHealth, stopped};
use crate::keys::ApiKey;
use crate::provider::{ChatRequest, ChatResponse, Provider, ProviderError, StreamSink};
use crate::system::ActorSystem;

/// A handle to one provider actor: cheap to clone, `Send + Sync`, usable from any thread.
#[derive(Clone)]
pub struct ProviderRef {
    pub(super) addr: Addr<ProviderActor>,
    name: Arc<str>,
}

impl fmt::Debug for ProviderRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderRef")
            .field("provider", &self.name)
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
        let name: Arc<str> = Arc::from(provider.name());
        let addr = Supervisor::start_in_arbiter(&system.worker(), move |_| {
            ProviderActor::new(provider, max_in_flight)
        });
        ProviderRef { addr, name }
    }

    /// The backend family of the provider (as [`Provider::name`]).
    pub fn name(&self) -> &str {
        &self.name
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
