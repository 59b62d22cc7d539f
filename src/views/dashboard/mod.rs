//! The web dashboard at `/`: one HTML page, its stylesheet and its script, compiled into the
//! binary, and `GET /usage/series` (the ledger's calls and cost over time) for its charts. The
//! page polls `/status` every two seconds and draws quota gauges, keys, pools, providers, the
//! routing log and usage charts (inline SVG, no outside assets). Served by the CLI's
//! `--metrics-addr` server (read-only) and by the gateway, where the page shows the admin
//! actions on provider keys once an admin client key is entered.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::store::StoreSpec;

const INDEX_HTML: &str = include_str!("index.html");
const STYLE_CSS: &str = include_str!("dashboard.css");
const SCRIPT_JS: &str = include_str!("dashboard.js");

/// Which server serves the page: the gateway offers the admin actions, a run's server does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashboardMode {
    /// A run's `--metrics-addr` server: read-only.
    Run,
    /// The gateway: read-only until an admin client key is entered.
    Gateway,
}

/// `/`, `/dashboard.css`, `/dashboard.js` and `/usage/series` (from the ledger kept in
/// `usage`, when there is one).
pub fn routes(mode: DashboardMode, usage: Option<StoreSpec>) -> Router {
    let index = match mode {
        DashboardMode::Run => INDEX_HTML.replace("{{MODE}}", "run"),
        DashboardMode::Gateway => INDEX_HTML.replace("{{MODE}}", "gateway"),
    };
    Router::new()
        .route(
            "/",
            get(move || {
                let index = index.clone();
                async move { page("text/html; charset=utf-8", index) }
            }),
        )
        .route(
            "/dashboard.css",
            get(|| async { page("text/css; charset=utf-8", STYLE_CSS.to_owned()) }),
        )
        .route(
            "/dashboard.js",
            get(|| async { page("text/javascript; charset=utf-8", SCRIPT_JS.to_owned()) }),
        )
        .route(
            "/usage/series",
            get(crate::telemetry::usage_series::handler),
        )
        .with_state(usage)
}

fn page(content_type: &'static str, body: String) -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
            ),
        ],
        body,
    )
        .into_response()
}
