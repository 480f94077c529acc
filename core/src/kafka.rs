//! Kafka plumbing shared by the components: the topic names of docs/contract.md §3.2, the record header names,
//! a client config built from `[kafka]`, and idempotent topic creation.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::{Error, Result};

/// Header: the MQTT topic the payload was published on.
pub const HEADER_MQTT_TOPIC: &str = "fjord-mqtt-topic";
/// Header: when the bridge received the message (RFC 3339, ms).
pub const HEADER_RECEIVED_AT: &str = "fjord-received-at";
/// Header: the payload's content type, when the sender declared one.
pub const HEADER_CONTENT_TYPE: &str = "fjord-content-type";
/// Header: `mqtt` or `http`.
pub const HEADER_SOURCE: &str = "fjord-source";
/// Header (dead-letter records): why the record was rejected.
pub const HEADER_ERROR: &str = "fjord-error";

/// The full names of fjord's topics for one `[kafka]` config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Topics {
    /// Raw readings from the bridge.
    pub readings: String,
    /// Dead letters.
    pub dlq: String,
    /// Gateway presence.
    pub presence: String,
    /// Closed occupancy windows.
    pub occupancy: String,
    /// Alert state changes (the webhook outbox).
    pub alerts: String,
    /// Readings too late for the speed layer.
    pub late: String,
    /// Current occupancy per lot (compacted: the latest value per lot).
    pub live: String,
    /// Each space's digital twin (compacted: the latest value per lot and space).
    pub spaces_live: String,
    /// The stream processor's checkpoints (compacted, partitioned like `readings`).
    pub stream_state: String,
}

impl Topics {
    /// The topic names under `cfg.topic_prefix`.
    pub fn new(cfg: &KafkaConfig) -> Self {
        Self {
            readings: cfg.topic("readings"),
            dlq: cfg.topic("dlq"),
            presence: cfg.topic("presence"),
            occupancy: cfg.topic("occupancy"),
            alerts: cfg.topic("alerts"),
            late: cfg.topic("late"),
            live: cfg.topic("occupancy-live"),
            spaces_live: cfg.topic("spaces-live"),
            stream_state: cfg.topic("stream-state"),
        }
    }

    /// All names, for topic creation.
    pub fn all(&self) -> [&str; 9] {
        [
            &self.readings,
            &self.dlq,
            &self.presence,
            &self.occupancy,
            &self.alerts,
            &self.late,
            &self.live,
            &self.spaces_live,
            &self.stream_state,
        ]
    }

    /// The topics that keep only the latest value per key.
    pub fn compacted(&self) -> [&str; 3] {
        [&self.live, &self.spaces_live, &self.stream_state]
    }
}

/// A client context for consumers that read partitions to their end (`enable.partition.eof`):
/// the end-of-partition notices librdkafka also reports as client errors are expected, not
/// warnings. Every other client error is logged.
pub struct QuietEof;

impl rdkafka::client::ClientContext for QuietEof {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let eof = matches!(error, rdkafka::error::KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF);
        if !eof {
            tracing::warn!(%error, reason, "kafka client error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for QuietEof {}

/// A librdkafka client config with `bootstrap.servers`, `client.id` and the `[kafka.options]`.
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("client.id", &cfg.client_id);
    for (k, v) in &cfg.options {
        c.set(k, v);
    }
    c
}

/// A librdkafka consumer config: [`client_config`] with the fetch settings every fjord consumer
/// (stream, restore, batch, serve, delivery) shares, so no hop waits longer than the broker needs:
/// `fetch.wait.max.ms` from `kafka.fetch_wait` (librdkafka's default of 500 ms is what the mock
/// cluster and tansu hold every fetch for, data or not; README, "Freshness"), and
/// `fetch.queue.backoff.ms` of [`FETCH_QUEUE_BACKOFF_MS`]. Keys set in `[kafka.options]` win.
pub fn consumer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = client_config(cfg);
    if !cfg.options.contains_key("fetch.wait.max.ms") {
        c.set(
            "fetch.wait.max.ms",
            cfg.fetch_wait.as_millis_i64().to_string(),
        );
    }
    if !cfg.options.contains_key("fetch.queue.backoff.ms") {
        c.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string());
    }
    c
}

/// How long librdkafka postpones the next fetch of a partition whose local queue is over its
/// thresholds (`queued.min.messages`, `queued.max.messages.kbytes`). librdkafka's default, 1 s,
/// starved the stream processor: with a backlog the queue fills, the processor drains it in about
/// half a second and then waits the other half for the next fetch — 117k readings/s on tansu
/// instead of 300k (docs/stream.md, "Throughput"). A short backoff costs a few idle wake-ups.
pub const FETCH_QUEUE_BACKOFF_MS: u32 = 10;

/// Creates the topics that do not exist yet (existing ones are left as they are). fjord's
/// compacted topics (`occupancy-live`, `spaces-live`, `stream-state`) get `cleanup.policy=compact`.
pub async fn ensure_topics(cfg: &KafkaConfig, names: &[&str], partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(cfg)
        .create()
        .map_err(|e| Error::kafka("creating an admin client", e))?;
    // Only ask for the missing ones: some brokers (librdkafka's mock cluster) do not implement
    // CreateTopics at all, and their topics exist already.
    let existing: Vec<String> = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .map(|md| {
            md.topics()
                .iter()
                .filter(|t| t.error().is_none())
                .map(|t| t.name().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !existing.iter().any(|e| e == n))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let fjord = Topics::new(cfg);
    let compacted = fjord.compacted();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| {
            let t = NewTopic::new(
                n,
                partitions,
                TopicReplication::Fixed(cfg.replication_factor),
            );
            if compacted.contains(n) {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(topics.iter(), &opts)
        .await
        .map_err(|e| Error::kafka("creating topics", e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(Error::kafka(
                    format!("creating topic {name}"),
                    rdkafka::error::KafkaError::AdminOp(code),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_get_short_fetch_waits_unless_the_options_say_otherwise() {
        let mut cfg = KafkaConfig::default();
        let c = consumer_config(&cfg);
        assert_eq!(c.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("10"));
        cfg.options
            .insert("fetch.queue.backoff.ms".into(), "250".into());
        cfg.options.insert("fetch.wait.max.ms".into(), "100".into());
        let c = consumer_config(&cfg);
        assert_eq!(c.get("fetch.wait.max.ms"), Some("100"));
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("250"));
    }
}
