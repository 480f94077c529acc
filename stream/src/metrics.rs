//! Prometheus metrics of the stream processor.

use fjord_core::telemetry::Metrics;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

use crate::{Error, Result};

/// The stream processor's metrics.
#[derive(Clone)]
pub struct StreamMetrics {
    /// Records processed, by `fate` (accepted, duplicate, late, dead, skipped).
    pub records: IntCounterVec,
    /// Windows emitted, by `window` size.
    pub windows: IntCounterVec,
    /// Seconds the watermark is behind the wall clock, by `partition`.
    pub watermark_lag_seconds: IntGaugeVec,
    /// Commit (transaction or flush + offset commit) latency.
    pub commit_seconds: Histogram,
    /// Commits, by `outcome` (committed, aborted).
    pub commits: IntCounterVec,
    /// Approximate bytes of state.
    pub state_bytes: IntGauge,
    /// Bytes of checkpoint records written (values; deletions count 0).
    pub checkpoint_bytes: IntCounter,
    /// Spaces tracked.
    pub spaces: IntGauge,
    /// Checkpoint restores (assignments and rewinds).
    pub restores: IntCounter,
    /// Alert state changes, by `rule` and `status`.
    pub alerts: IntCounterVec,
    /// Records of `fjord.readings` not yet consumed by this instance, by assigned `partition`
    /// (librdkafka's consumer lag: high-water mark minus the consumer's position, every 5 s).
    pub consumer_lag: IntGaugeVec,
}

fn e(err: prometheus::Error) -> Error {
    Error::Core(fjord_core::Error::Telemetry(err.to_string()))
}

impl StreamMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Metrics) -> Result<Self> {
        let m = Self {
            records: IntCounterVec::new(
                Opts::new("stream_records_total", "Records processed, by fate"),
                &["fate"],
            )
            .map_err(e)?,
            windows: IntCounterVec::new(
                Opts::new("stream_windows_total", "Windows emitted, by size"),
                &["window"],
            )
            .map_err(e)?,
            watermark_lag_seconds: IntGaugeVec::new(
                Opts::new(
                    "stream_watermark_lag_seconds",
                    "How far the watermark is behind the wall clock",
                ),
                &["partition"],
            )
            .map_err(e)?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "stream_commit_seconds",
                    "Time to commit outputs, state and offsets",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ]),
            )
            .map_err(e)?,
            commits: IntCounterVec::new(
                Opts::new("stream_commits_total", "Commits, by outcome"),
                &["outcome"],
            )
            .map_err(e)?,
            state_bytes: IntGauge::new("stream_state_bytes", "Approximate bytes of state")
                .map_err(e)?,
            checkpoint_bytes: IntCounter::new(
                "stream_checkpoint_bytes_total",
                "Bytes of checkpoint records written to the stream-state topic",
            )
            .map_err(e)?,
            spaces: IntGauge::new("stream_spaces", "Spaces tracked").map_err(e)?,
            restores: IntCounter::new(
                "stream_restores_total",
                "State restores from the checkpoint topic",
            )
            .map_err(e)?,
            alerts: IntCounterVec::new(
                Opts::new(
                    "stream_alerts_total",
                    "Alert state changes, by rule and status",
                ),
                &["rule", "status"],
            )
            .map_err(e)?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "stream_consumer_lag",
                    "Records of the readings topic not yet consumed, by assigned partition",
                ),
                &["partition"],
            )
            .map_err(e)?,
        };
        registry.register(&m.consumer_lag)?;
        registry.register(&m.records)?;
        registry.register(&m.windows)?;
        registry.register(&m.watermark_lag_seconds)?;
        registry.register(&m.commit_seconds)?;
        registry.register(&m.commits)?;
        registry.register(&m.state_bytes)?;
        registry.register(&m.checkpoint_bytes)?;
        registry.register(&m.spaces)?;
        registry.register(&m.restores)?;
        registry.register(&m.alerts)?;
        Ok(m)
    }
}

/// The webhook dispatcher's metrics.
#[derive(Clone)]
pub struct DeliveryMetrics {
    /// Deliveries, by `webhook` and `outcome` (delivered, retried, dead_letter, filtered,
    /// duplicate, invalid).
    pub deliveries: IntCounterVec,
    /// From the alert record's write to the receiver's 2xx, by `webhook`.
    pub latency_seconds: HistogramVec,
    /// Deliveries waiting for a retry, by `webhook`.
    pub retry_queue: IntGaugeVec,
    /// Alert records read and not yet settled, by `webhook`.
    pub in_flight: IntGaugeVec,
}

impl DeliveryMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Metrics) -> Result<Self> {
        let m = Self {
            deliveries: IntCounterVec::new(
                Opts::new(
                    "alert_deliveries_total",
                    "Webhook deliveries, by webhook and outcome",
                ),
                &["webhook", "outcome"],
            )
            .map_err(e)?,
            latency_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "alert_delivery_latency_seconds",
                    "From the alert record's write to the webhook's 2xx answer",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0,
                ]),
                &["webhook"],
            )
            .map_err(e)?,
            retry_queue: IntGaugeVec::new(
                Opts::new(
                    "alert_delivery_retry_queue",
                    "Deliveries waiting for a retry",
                ),
                &["webhook"],
            )
            .map_err(e)?,
            in_flight: IntGaugeVec::new(
                Opts::new(
                    "alert_delivery_in_flight",
                    "Alert records read and not yet settled",
                ),
                &["webhook"],
            )
            .map_err(e)?,
        };
        registry.register(&m.deliveries)?;
        registry.register(&m.latency_seconds)?;
        registry.register(&m.retry_queue)?;
        registry.register(&m.in_flight)?;
        Ok(m)
    }
}
