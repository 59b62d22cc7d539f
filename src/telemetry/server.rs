//! [`MetricsServer`]: serves `GET /metrics` (Prometheus exposition), `GET /status` (live quota
//! status as JSON) and any routes its user adds (the CLI adds the web dashboard, `/` and
//! `/usage/series`) over HTTP/1 on one address, loopback unless the user names another.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::future::BoxFuture;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::TelemetryError;

/// The default `--metrics-addr`: loopback, the port commonly used by OpenTelemetry's Prometheus
/// exporters.
pub const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9464));

/// The content type of the Prometheus text exposition format.
pub const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Produces the `/status` JSON on each request (e.g. from a quota snapshot).
pub type StatusSource = Arc<dyn Fn() -> BoxFuture<'static, serde_json::Value> + Send + Sync>;

/// Runs before each `/metrics` render (e.g. to copy a fresh quota snapshot into the gauges).
pub type ScrapeHook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// How to run a [`MetricsServer`].
#[derive(Clone)]
pub struct MetricsServerOptions {
    /// Where to listen. Port 0 picks a free port; [`MetricsServer::local_addr`] tells which.
    pub addr: SocketAddr,
    /// The `/status` source; without one `/status` answers 404.
    pub status: Option<StatusSource>,
    /// Runs before each `/metrics` render.
    pub before_scrape: Option<ScrapeHook>,
    /// More routes served beside `/metrics` and `/status` (the CLI mounts the web dashboard of
    /// [`crate::views::dashboard`] here).
    pub routes: Option<Router>,
    /// How often histogram samples are folded into their buckets between scrapes, which keeps
    /// the recorder's memory bounded on long runs.
    pub upkeep_interval: Duration,
}

impl Default for MetricsServerOptions {
    fn default() -> Self {
        Self::new(DEFAULT_METRICS_ADDR)
    }
}

impl std::fmt::Debug for MetricsServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServerOptions")
            .field("addr", &self.addr)
            .field("status", &self.status.is_some())
            .field("before_scrape", &self.before_scrape.is_some())
            .field("routes", &self.routes.is_some())
            .field("upkeep_interval", &self.upkeep_interval)
            .finish()
    }
}

impl MetricsServerOptions {
    /// Serve on `addr` with no status source and no scrape hook.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            status: None,
            before_scrape: None,
            routes: None,
            upkeep_interval: Duration::from_secs(5),
        }
    }

    /// Serve `routes` too (their paths must not be `/metrics` or `/status`).
    pub fn with_routes(mut self, routes: Router) -> Self {
        self.routes = Some(match self.routes.take() {
            Some(before) => before.merge(routes),
            None => routes,
        });
        self
    }

    /// Answer `/status` with what `source` returns.
    pub fn with_status<F, Fut>(mut self, source: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = serde_json::Value> + Send + 'static,
    {
        self.status = Some(Arc::new(move || Box::pin(source())));
        self
    }

    /// Run `hook` before each `/metrics` render.
    pub fn with_before_scrape<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.before_scrape = Some(Arc::new(move || Box::pin(hook())));
        self
    }
}

#[derive(Clone)]
struct AppState {
    handle: PrometheusHandle,
    status: Option<StatusSource>,
    before_scrape: Option<ScrapeHook>,
}

/// A running metrics server. Stop it with [`MetricsServer::shutdown`] (graceful: requests in
/// progress finish); dropping it also asks it to stop.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serve: Option<JoinHandle<std::io::Result<()>>>,
    upkeep: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `options.addr` and starts serving in the current tokio runtime. Returns once the
    /// socket is bound, so the address can be printed and scraped at once.
    pub async fn start(
        handle: PrometheusHandle,
        options: MetricsServerOptions,
    ) -> Result<MetricsServer, TelemetryError> {
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|source| TelemetryError::Bind {
                addr: options.addr,
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TelemetryError::Bind {
                addr: options.addr,
                source,
            })?;
        let state = AppState {
            handle: handle.clone(),
            status: options.status,
            before_scrape: options.before_scrape,
        };
        let mut app = routes(state.handle, state.status, state.before_scrape);
        if let Some(more) = options.routes {
            app = app.merge(more);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let serve = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        let every = options.upkeep_interval.max(Duration::from_millis(100));
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
        tracing::info!(addr = %local_addr, "serving /metrics and /status");
        Ok(MetricsServer {
            local_addr,
            stop: Some(stop),
            serve: Some(serve),
            upkeep,
        })
    }

    /// The address the server is bound to (the real port when port 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets requests in progress finish, and waits for the server.
    pub async fn shutdown(mut self) -> Result<(), TelemetryError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.upkeep.abort();
        match self.serve.take() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(TelemetryError::Serve),
                Err(join) => Err(TelemetryError::Serve(std::io::Error::other(
                    join.to_string(),
                ))),
            },
            None => Ok(()),
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.upkeep.abort();
    }
}

/// `GET /metrics` and `GET /status` as a router to merge into another server (the gateway's):
/// the same handlers [`MetricsServer`] serves.
pub fn routes(
    handle: PrometheusHandle,
    status_source: Option<StatusSource>,
    before_scrape: Option<ScrapeHook>,
) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(AppState {
            handle,
            status: status_source,
            before_scrape,
        })
}

async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(hook) = &state.before_scrape {
        hook().await;
    }
    let body = state.handle.render();
    ([(header::CONTENT_TYPE, EXPOSITION_CONTENT_TYPE)], body).into_response()
}

async fn status(State(state): State<AppState>) -> Response {
    match &state.status {
        Some(source) => Json(source().await).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no status source is configured"})),
        )
            .into_response(),
    }
}
