//! The provider actor: one actix actor per configured endpoint, owning the adapter
//! (`Arc<dyn Provider>`), the endpoint's concurrency limit, the per-call timeout and the
//! endpoint's health figures. Callers hold a [`ProviderRef`].
//!
//! - **One per endpoint**: HTTP backends get one actor per distinct (backend kind, base URL),
//!   shared by every agent of a runtime that uses it; the in-process simulated backend one per
//!   agent (it is built per agent); a provider given with `Runtime::with_provider` one of its
//!   own ([`endpoints`]).
//! - **Concurrent calls**: a [`Chat`] message spawns the call into the actor's context, so the
//!   mailbox keeps flowing while calls are in flight; at most `max_in_flight` calls
//!   ([`DEFAULT_MAX_IN_FLIGHT`] unless chosen) run at once, the others wait for a slot.
//! - **Cancellation**: the reply goes through a caller-owned oneshot; the call races the
//!   sender's `closed()`, so a caller that gives up (its timeout, a stopped agent, a dropped
//!   future) cancels the provider call, HTTP request included.
//! - **Timeouts**: the message carries the call's timeout; a call past it (connecting, first
//!   byte, every chunk of a stream) is cancelled and answered as a transient error.
//! - **Supervision**: a panic inside the adapter is caught, answered to its caller as a
//!   non-retryable [`ProviderErrorKind::Internal`] error that quotes the panic, and the actor
//!   stops; actix's `Supervised` restarts it at once (same adapter, same figures, `restarts`
//!   counted). Calls that were in flight on the stopped actor are dropped: their callers get a
//!   "stopped before answering" error of kind `Dropped` (retried at once, not held against
//!   their key), never a hang.
//! - **Circuit breaker**: repeated transport errors, 5xx and timeouts open the endpoint's
//!   circuit; while open, calls are refused at once without a request, then one probe decides
//!   ([`circuit`]). [`ProviderRef::circuit`] reads the state without a message.
//! - **Health**: the [`Health`] message answers a [`ProviderHealth`] snapshot.

mod call;
pub mod circuit;
pub mod endpoints;
mod handle;
mod health;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use actix::MessageResult;
use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message};
use actix::{Supervised, WrapFuture};
use tokio::sync::{Semaphore, oneshot};

use super::{ChatRequest, ChatResponse, Provider, ProviderError, ProviderErrorKind, StreamSink};
use crate::keys::ApiKey;

pub use circuit::{CircuitSettings, CircuitView, EndpointState};
pub use handle::ProviderRef;
pub use health::{ProviderHealth, RECENT_CALLS};

use circuit::{Admission, Breaker, Outcome};

/// Calls one endpoint serves at once unless told otherwise: far above what any provider's
/// rate limits admit, so the quota supervisor, not this cap, normally decides; it bounds the
/// sockets and memory a runaway caller could claim.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Mailbox capacity of a provider actor: callers use `do_send`, so this only sizes the queue.
const MAILBOX_CAPACITY: usize = 4096;

/// One provider call. The answer goes to `reply`; when `reply`'s receiver is dropped before
/// the answer, the call is cancelled.
#[derive(Debug)]
pub struct Chat {
    /// The request, shared with the caller (no copy per attempt).
    pub request: Arc<ChatRequest>,
    /// The key to send, for backends that need one.
    pub key: Option<ApiKey>,
    /// Where streamed events go, for streamed requests.
    pub sink: Option<StreamSink>,
    /// Longest time the call may take once it has a slot.
    pub timeout: Duration,
    /// The caller's reply channel.
    pub reply: oneshot::Sender<Result<ChatResponse, ProviderError>>,
    /// The span the call runs in (the caller's `provider_call` span), so the adapter's logs
    /// stay under it.
    pub span: tracing::Span,
}

impl Message for Chat {
    type Result = ();
}

/// Asks for the actor's [`ProviderHealth`].
#[derive(Debug, Clone, Copy)]
pub struct Health;

impl Message for Health {
    type Result = ProviderHealth;
}

/// The actor of one provider endpoint (see the module docs).
pub struct ProviderActor {
    provider: Arc<dyn Provider>,
    endpoint: Arc<str>,
    slots: Arc<Semaphore>,
    health: ProviderHealth,
    breaker: Breaker,
}

impl std::fmt::Debug for ProviderActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderActor")
            .field("provider", &self.provider.name())
            .field("health", &self.health)
            .finish()
    }
}

impl ProviderActor {
    /// An actor serving `provider` at `endpoint` (its base URL without credentials) with at
    /// most `max_in_flight` calls at once (at least one) and the circuit breaker `circuit`.
    pub(crate) fn new(
        provider: Arc<dyn Provider>,
        endpoint: Arc<str>,
        max_in_flight: usize,
        circuit: CircuitSettings,
    ) -> Self {
        let max_in_flight = max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            health: ProviderHealth::new(provider.name(), &endpoint, max_in_flight),
            provider,
            endpoint,
            slots: Arc::new(Semaphore::new(max_in_flight)),
            breaker: Breaker::new(circuit),
        }
    }

    /// Publishes the breaker's state to the health figures and the metrics.
    fn circuit_changed(&mut self) {
        let view = self.breaker.view();
        self.health.circuit = view.state;
        self.health.circuit_until = view.until;
        // On the runtime's clock (tokio's, paused in tests), as the breaker keeps it.
        self.health.circuit_open_ms = self.breaker.until().map(|u| {
            let left = u.saturating_duration_since(tokio::time::Instant::now());
            u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
        });
        crate::telemetry::provider::circuit_state(self.provider.name(), &self.endpoint, view.state);
    }

    /// Turns the circuit half-open when its cooldown ends (again after a restart, which drops
    /// the context's timers).
    fn arm_cooldown(&mut self, ctx: &mut Context<Self>) {
        if let Some(until) = self.breaker.until() {
            let wait = until.saturating_duration_since(tokio::time::Instant::now());
            ctx.run_later(wait, |act, _ctx| {
                act.breaker.tick();
                act.circuit_changed();
            });
        }
    }
}

impl Actor for ProviderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.circuit_changed();
        self.arm_cooldown(ctx);
    }
}

impl Supervised for ProviderActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Every call the stopped context held was dropped with it.
        self.health.in_flight = 0;
        self.health.restarts += 1;
        // A probe in flight was dropped with the context: the next call may probe.
        self.breaker.restarted();
        tracing::warn!(
            provider = self.provider.name(),
            restarts = self.health.restarts,
            "the provider actor stopped after a panic and was restarted"
        );
    }
}

impl Handler<Chat> for ProviderActor {
    type Result = ();

    fn handle(&mut self, msg: Chat, ctx: &mut Self::Context) {
        if msg.reply.is_closed() {
            // The caller left while the message waited in the mailbox: nothing is sent.
            self.health.abandoned += 1;
            return;
        }
        let admission = self.breaker.admit();
        if admission == Admission::Refused {
            self.health.rejected += 1;
            let error = self.breaker.refusal(&self.endpoint);
            crate::telemetry::provider::endpoint_error(
                self.provider.name(),
                &self.endpoint,
                error.kind,
            );
            let _ = msg.reply.send(Err(error));
            self.circuit_changed();
            return;
        }
        let probe = admission == Admission::Probe;
        if probe {
            self.circuit_changed();
        }
        self.health.in_flight += 1;
        let work = call::run(self.provider.clone(), self.slots.clone(), msg);
        ctx.spawn(work.into_actor(self).map(
            move |finished, act: &mut Self, ctx: &mut Context<Self>| {
                let panicked = matches!(finished, call::Finished::Panicked { .. });
                let outcome = match &finished {
                    call::Finished::Answered { kind, elapsed, .. } => {
                        crate::telemetry::provider::endpoint_call(
                            act.provider.name(),
                            &act.endpoint,
                            *elapsed,
                            *kind,
                        );
                        Outcome::of(*kind)
                    }
                    call::Finished::Abandoned | call::Finished::Panicked { .. } => Outcome::Neutral,
                };
                if let Some(cooldown) = act.breaker.record(outcome, probe) {
                    tracing::warn!(
                        provider = act.provider.name(),
                        endpoint = %act.endpoint,
                        cooldown_s = cooldown.as_secs_f64(),
                        "the endpoint failed repeatedly: its circuit is open"
                    );
                    act.arm_cooldown(ctx);
                }
                act.circuit_changed();
                act.health.record(finished);
                if panicked {
                    // Supervised: actix restarts the actor once it has stopped.
                    ctx.stop();
                }
            },
        ));
    }
}

impl Handler<Health> for ProviderActor {
    type Result = MessageResult<Health>;

    fn handle(&mut self, _msg: Health, _ctx: &mut Self::Context) -> Self::Result {
        self.circuit_changed();
        MessageResult(self.health.snapshot())
    }
}

/// The error a caller gets when the actor stopped before answering.
fn stopped(name: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Dropped,
        format!(
            "the provider actor `{name}` stopped before answering (it is restarted after a \
             panic in another call, or the runtime is shutting down)"
        ),
    )
}
