//! `--metrics-addr` and `--linger`: the Prometheus `/metrics` and JSON `/status` server that
//! lives as long as the run (and, with `--linger`, a while after it for a final scrape).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::Runtime;
use crate::telemetry::{self, MetricsServer, MetricsServerOptions, RoutingLog};
use crate::views::{self, DashboardMode, status_json_with};

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
        .with_routes(views::dashboard::routes(
            DashboardMode::Run,
            runtime.team().rate_limit.state.clone(),
        ))
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
