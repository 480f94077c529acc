//! Reading a topic back in tests: every record, with key, payload and headers.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;

use crate::config::KafkaConfig;

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub payload: Vec<u8>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// The value of header `name` as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Reads `topic` from the beginning until `done` says so or `timeout` passes; returns what was
/// read. Uses its own consumer group, so readers never interfere.
pub async fn collect(
    cfg: &KafkaConfig,
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer: StreamConsumer = crate::kafka::client_config(cfg)
        .set("group.id", super::unique_name("collect"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap_or_else(|e| panic!("cannot create a test consumer: {e}"));
    consumer
        .subscribe(&[topic])
        .unwrap_or_else(|e| panic!("cannot subscribe to {topic}: {e}"));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while !done(&out) {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => out.push(Record {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            // the topic may not exist yet (its producer creates it): keep waiting
            Ok(Err(e))
                if e.rdkafka_error_code()
                    == Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Err(e)) => panic!("error reading {topic}: {e}"),
            Err(_) => break,
        }
    }
    out
}
