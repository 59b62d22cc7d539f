//! Metric catalog, Prometheus exporter and tracing setup.
