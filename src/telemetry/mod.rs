//! Metric catalog, Prometheus exporter, `/metrics` + `/status` server and tracing setup.
//!
//! - [`catalog`]: every metric name, its help text, unit and buckets ([`describe_all`]).
//! - [`quota`], [`provider`], [`pool`], [`run`]: typed recording functions, the only way the crate records
//!   a metric, so call sites cannot misspell a name or put free text in a label.
//! - [`install_prometheus`] / [`local_recorder`]: the exporter; library users may install their
//!   own `metrics` recorder instead.
//! - [`MetricsServer`]: `GET /metrics`, `GET /status` and any routes it is given (the CLI gives
//!   it the web dashboard of [`crate::views::dashboard`]) on a loopback address;
//!   [`MetricsServerOptions::with_quota`] serves a supervisor's live state ([`StatusReport`]).
//! - Bridges: [`apply_quota_snapshot`] sets the quota gauges from a snapshot,
//!   [`record_quota_event`] / [`spawn_quota_bridge`] turn supervisor events into counters and
//!   logs, [`record_run_event`] / [`spawn_run_bridge`] do the same for a run's events.
//! - [`init_tracing`] and [`spans`]: log setup and the span vocabulary of the layers.
//!
//! Label values are bounded: scope names, provider and model names from the configuration, key
//! short hashes, and small enums. Never a secret, a prompt or free text.

mod bridge;
pub mod catalog;
mod exporter;
mod key_status;
mod logging;
pub mod pool;
mod pool_status;
pub mod pricing;
pub mod provider;
mod provider_status;
pub mod quota;
mod routing_log;
pub mod run;
mod server;
pub mod spans;
mod status;
pub mod usage_series;

pub use bridge::{
    QuotaMetricsBridge, apply_quota_snapshot, log_quota_event, record_quota_event,
    record_run_event, spawn_quota_bridge, spawn_run_bridge,
};
pub use catalog::describe_all;
pub use exporter::{install_prometheus, local_recorder, prometheus_builder};
pub use key_status::KeyStatusView;
pub use logging::{
    LOG_ENV, LogFormat, LogOptions, build_filter, init_tracing, subscriber, verbosity_directives,
};
pub use pool_status::{LeftOutStatus, ModelStatus, PoolStatus};
pub use provider_status::ProviderStatus;
pub use routing_log::{ROUTING_KEPT, RoutingEntry, RoutingLog};
pub use server::{
    DEFAULT_METRICS_ADDR, EXPOSITION_CONTENT_TYPE, MetricsServer, MetricsServerOptions, ScrapeHook,
    StatusSource, routes as metrics_routes,
};
pub use status::{LimitStatus, ScopeState, ScopeStatus, StatusReport};

/// What can go wrong setting up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Another `metrics` recorder is already installed in this process.
    #[error("a metrics recorder is already installed in this process")]
    RecorderAlreadyInstalled,
    /// The exporter refused its configuration.
    #[error("the Prometheus exporter could not be configured: {0}")]
    Exporter(String),
    /// The metrics server could not bind its address.
    #[error("could not serve metrics on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The metrics server stopped with an error.
    #[error("the metrics server failed: {0}")]
    Serve(std::io::Error),
    /// A tracing subscriber is already installed.
    #[error("a tracing subscriber is already installed in this process")]
    SubscriberAlreadyInstalled,
    /// The log filter (verbosity or `RUST_LOG`) could not be parsed.
    #[error("invalid log filter {filter:?}: {message}")]
    LogFilter {
        /// The filter text.
        filter: String,
        /// The parser's complaint.
        message: String,
    },
}
