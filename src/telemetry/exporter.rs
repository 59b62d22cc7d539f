//! The Prometheus exporter: a recorder configured with the catalog's histogram buckets, installed
//! globally or kept local (tests, embedding apps that combine recorders).

use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::{TelemetryError, catalog};

/// A builder with every catalog histogram set to its explicit buckets, so they render as true
/// Prometheus histograms (never summaries). Add global labels or other settings before building.
pub fn prometheus_builder() -> Result<PrometheusBuilder, TelemetryError> {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in catalog::HISTOGRAM_BUCKETS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    }
    Ok(builder)
}

/// A recorder that is not installed: use it with `metrics::with_local_recorder` or
/// `metrics::set_default_local_recorder`, and render through `recorder.handle()`. The catalog is
/// described to it already.
pub fn local_recorder() -> Result<PrometheusRecorder, TelemetryError> {
    let recorder = prometheus_builder()?.build_recorder();
    metrics::with_local_recorder(&recorder, catalog::describe_all);
    Ok(recorder)
}

/// Installs the Prometheus recorder as the process-wide recorder, describes the catalog to it
/// and returns the handle that renders the exposition. Fails when a global recorder is already
/// installed (library users who install their own recorder simply skip this).
pub fn install_prometheus() -> Result<PrometheusHandle, TelemetryError> {
    let recorder = prometheus_builder()?.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| TelemetryError::RecorderAlreadyInstalled)?;
    catalog::describe_all();
    Ok(handle)
}
