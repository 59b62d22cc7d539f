//! `--metrics-addr` and `--linger`: the Prometheus `/metrics` and JSON `/status` server that
//! lives as long as the run (and, with `--linger`, a while after it for a final scrape).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::Runtime;
use crate::telemetry::{
    self, KeyStatusView, MetricsServer, MetricsServerOptions, ProviderStatus, RoutingLog,
    StatusReport,
};

/// The metrics server of a run, when one was asked for.
pub struct RunMetrics {
    server: MetricsServer,
}

/// Installs the Prometheus recorder and serves `/metrics` and `/status` at `addr`.
pub async fn start(
    addr: Option<SocketAddr>,
    runtime: &Arc<Runtime>,
) -> Result<Option<RunMetrics>, String> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let handle = telemetry::install_prometheus().map_err(|e| e.to_string())?;
    let for_status = Arc::clone(runtime);
    let for_scrape = Arc::clone(runtime);
    let routing = RoutingLog::watch(runtime.subscribe());
    let options = MetricsServerOptions::new(addr)
        .with_status(move || {
            let runtime = Arc::clone(&for_status);
            let routing = routing.clone();
            async move { status_json_with(&runtime, Some(&routing)).await }
        })
        .with_usage(runtime.team().rate_limit.state.clone())
        .with_before_scrape(move || {
            let runtime = Arc::clone(&for_scrape);
            async move {
                if let Some(snapshot) = runtime.quota_status().await {
                    telemetry::apply_quota_snapshot(&snapshot);
                }
            }
        });
    let server = MetricsServer::start(handle, options)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "serving metrics at http://{0}/metrics and quota status at http://{0}/status \
         (dashboard at http://{0}/)",
        server.local_addr()
    );
    Ok(Some(RunMetrics { server }))
}

/// The `/status` document: quota scopes (when rate limiting is on), the state store, every
/// provider endpoint, pool and provider key.
pub async fn status_json(runtime: &Runtime) -> serde_json::Value {
    status_json_with(runtime, None).await
}

/// [`status_json`] with the latest routing and quota moves of `routing` (the `routing` array).
pub async fn status_json_with(
    runtime: &Runtime,
    routing: Option<&RoutingLog>,
) -> serde_json::Value {
    let providers: Vec<ProviderStatus> = runtime
        .endpoint_health()
        .await
        .iter()
        .map(|(h, agents)| ProviderStatus::from_health(h, agents.clone()))
        .collect();
    let routing = routing.map(RoutingLog::recent).unwrap_or_default();
    let keys = |scopes: &[telemetry::ScopeStatus]| -> Vec<KeyStatusView> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        runtime
            .key_status()
            .iter()
            .map(|k| KeyStatusView::new(k, scopes, now_ms))
            .collect()
    };
    match runtime.quota_status().await {
        Some(snapshot) => {
            let mut report = StatusReport::from_snapshot(&snapshot).with_providers(providers);
            report.pools = runtime.pool_status(&report.scopes);
            report.keys = keys(&report.scopes);
            report.routing = routing;
            match runtime.quota_handle() {
                Some(q) => report.with_store(q.store_status().await).to_json(),
                None => report.to_json(),
            }
        }
        None => serde_json::json!({
            "scopes": [],
            "providers": providers,
            "pools": runtime.pool_status(&[]),
            "keys": keys(&[]),
            "routing": routing,
            "note": "rate limiting is off for this run (use --rate-limit)"
        }),
    }
}

/// Keeps serving for `linger` (if given), then stops the server.
pub async fn finish(metrics: Option<RunMetrics>, linger: Option<Duration>) {
    let Some(metrics) = metrics else {
        return;
    };
    if let Some(linger) = linger.filter(|d| !d.is_zero()) {
        eprintln!(
            "run finished; /metrics stays up for {}s at http://{}/metrics (Ctrl-C to stop)",
            linger.as_secs(),
            metrics.server.local_addr()
        );
        tokio::select! {
            _ = tokio::time::sleep(linger) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    if let Err(e) = metrics.server.shutdown().await {
        tracing::warn!("metrics server: {e}");
    }
}
