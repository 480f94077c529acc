//! Prometheus metrics of the ingest layer, registered once per process in the shared registry.

use fjord_core::telemetry::Metrics;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

use crate::{Error, Result};

/// Counters and gauges of the bridge and HTTP ingest.
#[derive(Clone)]
pub struct IngestMetrics {
    /// Messages received, by `source` (mqtt, http).
    pub received: IntCounterVec,
    /// Records stored in their mapped topic, by `topic`.
    pub forwarded: IntCounterVec,
    /// Records stored in the dead-letter topic, by `reason`.
    pub dead_lettered: IntCounterVec,
    /// Messages received but not yet acknowledged by Kafka.
    pub in_flight: IntGauge,
    /// Time from handing a record to the producer to Kafka's acknowledgement.
    pub delivery_seconds: Histogram,
    /// PUBACKs queued to the broker.
    pub acked: IntCounter,
    /// Messages the broker marked as redelivered (DUP): likely duplicates in Kafka.
    pub redelivered: IntCounter,
    /// Successful MQTT connections.
    pub mqtt_connects: IntCounter,
    /// Lost MQTT connections.
    pub mqtt_disconnects: IntCounter,
    /// Reconnections where the broker no longer had the bridge's session (queued messages lost).
    pub session_lost: IntCounter,
    /// HTTP ingest responses, by `status`.
    pub http_responses: IntCounterVec,
}

impl IngestMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Metrics) -> Result<Self> {
        let m = Self {
            received: IntCounterVec::new(
                Opts::new("bridge_received_total", "Messages received, by source"),
                &["source"],
            )
            .map_err(metric_err)?,
            forwarded: IntCounterVec::new(
                Opts::new("bridge_forwarded_total", "Records stored in their mapped Kafka topic"),
                &["topic"],
            )
            .map_err(metric_err)?,
            dead_lettered: IntCounterVec::new(
                Opts::new("bridge_dead_lettered_total", "Records stored in the dead-letter topic, by reason"),
                &["reason"],
            )
            .map_err(metric_err)?,
            in_flight: IntGauge::new("bridge_in_flight", "Messages received and not yet acknowledged by Kafka")
                .map_err(metric_err)?,
            delivery_seconds: Histogram::with_opts(
                HistogramOpts::new("bridge_kafka_delivery_seconds", "Time until Kafka acknowledged a record")
                    .buckets(vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0]),
            )
            .map_err(metric_err)?,
            acked: IntCounter::new("bridge_mqtt_acked_total", "PUBACKs sent after Kafka stored the record")
                .map_err(metric_err)?,
            redelivered: IntCounter::new(
                "bridge_mqtt_redelivered_total",
                "Messages the broker redelivered (DUP flag): likely duplicates in Kafka",
            )
            .map_err(metric_err)?,
            mqtt_connects: IntCounter::new("bridge_mqtt_connects_total", "MQTT connections made")
                .map_err(metric_err)?,
            mqtt_disconnects: IntCounter::new("bridge_mqtt_disconnects_total", "MQTT connections lost")
                .map_err(metric_err)?,
            session_lost: IntCounter::new(
                "bridge_mqtt_session_lost_total",
                "Reconnections where the broker had lost the bridge's session and its queued messages",
            )
            .map_err(metric_err)?,
            http_responses: IntCounterVec::new(
                Opts::new("ingest_http_responses_total", "HTTP ingest responses, by status"),
                &["status"],
            )
            .map_err(metric_err)?,
        };
        registry.register(&m.received)?;
        registry.register(&m.forwarded)?;
        registry.register(&m.dead_lettered)?;
        registry.register(&m.in_flight)?;
        registry.register(&m.delivery_seconds)?;
        registry.register(&m.acked)?;
        registry.register(&m.redelivered)?;
        registry.register(&m.mqtt_connects)?;
        registry.register(&m.mqtt_disconnects)?;
        registry.register(&m.session_lost)?;
        registry.register(&m.http_responses)?;
        Ok(m)
    }
}

fn metric_err(e: prometheus::Error) -> Error {
    Error::Core(fjord_core::Error::Telemetry(e.to_string()))
}
