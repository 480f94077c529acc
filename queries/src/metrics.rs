//! The query server's Prometheus metrics.

use fjord_core::telemetry::Metrics;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};

/// Counters and histograms of `fjord serve`.
#[derive(Clone, Debug)]
pub struct QueryMetrics {
    /// Queries by interface and outcome (`ok`, `refused`, `error`, `limit`, `unauthorized`).
    pub queries: IntCounterVec,
    /// Query duration by interface, result included.
    pub seconds: HistogramVec,
    /// Windows the speed layer holds (after the batch high-water mark).
    pub speed_windows: IntGauge,
}

impl QueryMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Metrics) -> fjord_core::Result<Self> {
        let m = Self {
            queries: IntCounterVec::new(
                Opts::new("queries_total", "SQL queries by interface and outcome"),
                &["interface", "outcome"],
            )
            .map_err(|e| fjord_core::Error::Telemetry(e.to_string()))?,
            seconds: HistogramVec::new(
                HistogramOpts::new(
                    "query_duration_seconds",
                    "SQL query duration, result included",
                )
                .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0]),
                &["interface"],
            )
            .map_err(|e| fjord_core::Error::Telemetry(e.to_string()))?,
            speed_windows: IntGauge::new(
                "serve_speed_windows",
                "speed-layer windows held after the batch high-water mark",
            )
            .map_err(|e| fjord_core::Error::Telemetry(e.to_string()))?,
        };
        registry.register(&m.queries)?;
        registry.register(&m.seconds)?;
        registry.register(&m.speed_windows)?;
        Ok(m)
    }

    /// Counts a finished query.
    pub fn observe(&self, interface: &str, outcome: &str, seconds: f64) {
        self.queries.with_label_values(&[interface, outcome]).inc();
        self.seconds
            .with_label_values(&[interface])
            .observe(seconds);
    }
}

/// The outcome label of a query that failed with `e`, or succeeded.
pub fn outcome(e: Option<&crate::Error>) -> &'static str {
    match e {
        None => "ok",
        Some(crate::Error::Refused(_)) => "refused",
        Some(crate::Error::Limit(_)) => "limit",
        Some(_) => "error",
    }
}
