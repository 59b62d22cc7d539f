//! `massgen-rs serve`: an OpenAI-compatible gateway that puts any client — the official SDKs,
//! MassGen itself, scripts — behind the quota supervisor. Every request to a model is served
//! through the same supervisor, pools, key actors, state store and ledger as team runs; a
//! request waits for quota up to its deadline and then gets 429 with `Retry-After`.
//!
//! - [`config`]: the gateway file (`configs/gateway.yaml`), models written as team-file
//!   backends.
//! - [`server`]: the routes (`/v1/chat/completions`, `/v1/models`, `/healthz`, `/readyz`,
//!   `/metrics`, `/status`) and the listener.
//! - `chat` / `stream` / `wire`: the chat completions endpoint and its wire format.
//! - [`auth`]: client keys, roles and per-client quotas; [`admin`]: the admin endpoints over
//!   the provider keys.
//!
//! Client auth plugs in through [`GatewayHooks`]: a layer around the API routes that checks
//! the client and inserts a [`Caller`] into the request's extensions (its name is the
//! requester, its `extra_scopes` are reserved by every permit of its requests), and a router
//! of admin endpoints merged beside them.

pub mod admin;
pub mod auth;
mod clients;
pub mod config;
pub mod error;
pub mod server;
pub mod wire;

mod chat;
mod stream;

use std::sync::Arc;

use axum::Router;

pub use chat::{ANONYMOUS, MAX_WAIT_HEADER};
pub use config::{GatewayConfig, load_gateway, parse_gateway};
pub use server::{GatewayServer, router, start};

use crate::quota::ScopeId;
use crate::runtime::{Runtime, ServedRoutes};

/// Who a request is from, as the auth layer found it (a request extension). Without one the
/// request is served as [`ANONYMOUS`] with no scopes of its own.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client's name: the requester in quota queues, logs and the usage ledger.
    pub name: String,
    /// Scopes the request's permit must also reserve in (the client's own quota), registered
    /// with the supervisor (`GatewayState::runtime.quota_handle()`) by the auth layer.
    pub extra_scopes: Vec<ScopeId>,
    /// The client's own spending limits (`quota.per_day_usd`), made within the gateway's.
    pub budget: Option<Arc<crate::usage::budget::BudgetGuard>>,
}

/// Everything a request handler needs, shared by every request.
pub struct GatewayState {
    /// The configuration.
    pub config: GatewayConfig,
    /// The runtime built from the models (one agent per model): providers, keys, supervisor,
    /// ledger and prices.
    pub runtime: Arc<Runtime>,
    /// One prepared route per model.
    pub routes: ServedRoutes,
    /// The Prometheus recorder's handle (`None`: another recorder was installed first, and
    /// `/metrics` is not served).
    pub prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayState")
            .field("models", &self.config.model_names())
            .field("listen", &self.config.listen)
            .finish_non_exhaustive()
    }
}

/// Wraps a router of the API routes (the auth layer: checks the client, inserts a [`Caller`]).
pub type ApiLayer = Box<dyn FnOnce(Router, &Arc<GatewayState>) -> Router + Send>;

/// Makes the admin endpoints' router (they bring their own checks), merged at the top level.
pub type AdminRoutes = Box<dyn FnOnce(&Arc<GatewayState>) -> Router + Send>;

/// What other parts of the gateway add to its router.
#[derive(Default)]
pub struct GatewayHooks {
    /// Applied to the `/v1/...` routes (not to `/healthz`, `/readyz`, `/metrics`, `/status`).
    pub api_layer: Option<ApiLayer>,
    /// The admin endpoints.
    pub admin: Option<AdminRoutes>,
}

impl std::fmt::Debug for GatewayHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHooks")
            .field("api_layer", &self.api_layer.is_some())
            .field("admin", &self.admin.is_some())
            .finish()
    }
}
