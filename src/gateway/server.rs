//! The gateway's HTTP server: [`start`] builds the runtime from the models, prepares their
//! routes (quota scopes registered once), binds the listener and serves [`router`]'s routes
//! until [`GatewayServer::shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::error::ApiError;
use super::{GatewayConfig, GatewayHooks, GatewayState};
use crate::config::LimitsTable;
use crate::runtime::{Runtime, RuntimeOptions};

/// A running gateway.
#[derive(Debug)]
pub struct GatewayServer {
    addr: SocketAddr,
    state: Arc<GatewayState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl GatewayServer {
    /// Where it listens (the real port when port 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (runtime, routes, config).
    pub fn state(&self) -> &Arc<GatewayState> {
        &self.state
    }

    /// Stops accepting requests, lets those in progress finish, and flushes the usage ledger.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        };
        if let Some(ledger) = self.state.routes.usage().ledger() {
            ledger.flush().await;
        }
        served
    }
}

impl Drop for GatewayServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Builds the runtime of `config`'s models and serves them on `config.listen`, with `hooks`
/// (auth layer, admin routes) added to the router; with no hooks, the file's `clients:` guard
/// the API routes (every client's quota registered with the supervisor) and the admin routes.
pub async fn start(config: GatewayConfig, hooks: GatewayHooks) -> Result<GatewayServer, String> {
    let clients = super::clients::table(&config)?;
    let mut team = config.team.clone();
    // Like a team run: quota state and usage in the per-user state file unless the file says.
    if team.rate_limit.state.is_none() {
        team.rate_limit.state = Some(crate::store::StoreSpec::default_for_user());
    }
    let limits = LimitsTable::for_team(&team, None).map_err(|e| e.to_string())?;
    let options = RuntimeOptions {
        rate_limit: true,
        limits: Some(Arc::new(limits)),
        ..RuntimeOptions::default()
    };
    let runtime = Arc::new(Runtime::new(team, options).map_err(|e| e.to_string())?);
    let name = format!(
        "gateway-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    let routes = runtime
        .serve_routes(&name)
        .await
        .map_err(|e| e.to_string())?;
    // One recorder per process: a second gateway in one process serves no /metrics.
    let prometheus = crate::telemetry::install_prometheus().ok();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let state = Arc::new(GatewayState {
        config,
        runtime,
        routes,
        prometheus,
    });
    super::clients::register(&state, &clients).await?;
    // Without hooks of the caller's own, the clients of the file guard the API and admin routes.
    let hooks = if hooks.api_layer.is_none() && hooks.admin.is_none() {
        let budgets = super::clients::budgets(&state, &clients, &name);
        super::clients::hooks(clients, budgets)
    } else {
        hooks
    };
    let app = router(state.clone(), hooks);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(GatewayServer {
        addr,
        state,
        stop: Some(stop),
        task: Some(task),
    })
}

/// Every route of the gateway.
pub fn router(state: Arc<GatewayState>, hooks: GatewayHooks) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(super::chat::completions))
        .route("/v1/models", get(models))
        .with_state(state.clone());
    // The auth layer (client keys, per-client quotas) wraps the API routes only: probes and
    // scrapes stay open.
    let api = match hooks.api_layer {
        Some(layer) => layer(api, &state),
        None => api,
    };
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state.clone())
        .merge(api);
    // The dashboard's log of routing and quota moves (a task of the server's runtime).
    let routing = crate::telemetry::RoutingLog::watch(state.runtime.subscribe());
    match &state.prometheus {
        Some(handle) => {
            let for_status = state.runtime.clone();
            let for_scrape = state.runtime.clone();
            let status: crate::telemetry::StatusSource = Arc::new(move || {
                let runtime = for_status.clone();
                let routing = routing.clone();
                Box::pin(
                    async move { crate::views::status_json_with(&runtime, Some(&routing)).await },
                )
            });
            let scrape: crate::telemetry::ScrapeHook = Arc::new(move || {
                let runtime = for_scrape.clone();
                Box::pin(async move {
                    if let Some(snapshot) = runtime.quota_status().await {
                        crate::telemetry::apply_quota_snapshot(&snapshot);
                    }
                })
            });
            app = app.merge(crate::telemetry::metrics_routes(
                handle.clone(),
                Some(status),
                Some(scrape),
            ));
        }
        None => {
            let runtime = state.runtime.clone();
            app = app
                .route(
                    "/status",
                    get(move || async move {
                        axum::Json(crate::views::status_json_with(&runtime, Some(&routing)).await)
                    }),
                )
                .route("/metrics", get(no_metrics));
        }
    }
    // The dashboard page is public like /status; its admin actions call the admin routes with
    // the client key the user enters.
    app = app.merge(crate::views::dashboard::routes(
        crate::views::DashboardMode::Gateway,
        state.runtime.team().rate_limit.state.clone(),
    ));
    // Admin endpoints (provider keys, cooldowns) bring their own checks.
    if let Some(admin) = hooks.admin {
        app = app.merge(admin(&state));
    }
    app.fallback(not_found)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when the quota state store answers, else 503.
async fn readyz(State(state): State<Arc<GatewayState>>) -> Response {
    let Some(quota) = state.runtime.quota_handle() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no quota supervisor\n").into_response();
    };
    match quota.store_status().await {
        Ok(status) => axum::Json(json!({"ready": true, "store": status.store})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "error": e.to_string()})),
        )
            .into_response(),
    }
}

/// The models served, as OpenAI lists them, each with what serves it.
async fn models(State(state): State<Arc<GatewayState>>) -> Response {
    let data: Vec<serde_json::Value> = state
        .config
        .team
        .agents
        .iter()
        .map(|a| {
            let served_by = match &a.backend.pool {
                Some(pool) => json!({
                    "pool": pool.name,
                    "models": pool
                        .members
                        .iter()
                        .map(|m| format!("{}/{}", m.entry.provider, m.entry.model))
                        .collect::<Vec<_>>(),
                }),
                None => json!({"backend": a.backend.kind.as_str(), "model": a.backend.model}),
            };
            json!({
                "id": a.id,
                "object": "model",
                "created": 0,
                "owned_by": "massgen-rs",
                "served_by": served_by,
            })
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn no_metrics() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "another metrics recorder was installed in this process; /metrics is not served\n",
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!(
            "no route `{}`: the gateway serves POST /v1/chat/completions, GET /v1/models, \
             /healthz, /readyz, /metrics, /status and its dashboard at /",
            crate::config::shown(uri.path())
        ),
    )
    .code("unknown_url")
    .into_response()
}
