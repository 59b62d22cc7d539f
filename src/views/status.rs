//! The `/status` document of a runtime: quota scopes, the state store, provider endpoints,
//! pools, provider keys (masked) and the latest routing moves. Served by a run's
//! `--metrics-addr` server and by the gateway, and read by the [`super::dashboard`].

use crate::runtime::Runtime;
use crate::telemetry::{self, KeyStatusView, ProviderStatus, RoutingLog, StatusReport};

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
