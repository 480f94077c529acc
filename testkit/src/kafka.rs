//! Reading a topic back in tests: every record, with key, payload and headers.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;

use fjord_core::config::KafkaConfig;

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
    let consumer: StreamConsumer = fjord_core::kafka::consumer_config(cfg)
        .set("group.id", crate::unique_name("collect"))
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

/// A record of `<prefix>readings` as the bridge writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRecord {
    /// Key (the lot).
    pub key: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// `fjord-mqtt-topic` header, if any.
    pub mqtt_topic: Option<String>,
    /// `fjord-received-at` header, if any.
    pub received_at: Option<String>,
}

impl BridgeRecord {
    /// The record of a JSON reading of `lot`/`space` at `ts`, received 10 ms later.
    pub fn reading(lot: &str, space: &str, ts: i64, json: String) -> Self {
        Self {
            key: lot.to_owned(),
            payload: json.into_bytes(),
            mqtt_topic: Some(format!("parking/{lot}/{space}")),
            received_at: Some(fjord_core::time::format_rfc3339_ms(ts + 10)),
        }
    }
}

impl BridgeRecord {
    /// The record the bridge writes for reference reading `r` (JSON `ts` and `occupied`), received
    /// `received_after_ms` after its event time.
    pub fn of_reference(
        r: &fjord_core::occupancy::reference::RefReading,
        received_after_ms: i64,
    ) -> Self {
        Self {
            key: r.lot_id.clone(),
            payload: format!(r#"{{"ts":{},"occupied":{}}}"#, r.ts, r.occupied).into_bytes(),
            mqtt_topic: Some(format!("parking/{}/{}", r.lot_id, r.space_id)),
            received_at: Some(fjord_core::time::format_rfc3339_ms(
                r.ts + received_after_ms,
            )),
        }
    }

    /// The record's headers as the bridge sets them.
    pub fn headers(&self) -> rdkafka::message::OwnedHeaders {
        use rdkafka::message::{Header, OwnedHeaders};
        let mut headers = OwnedHeaders::new();
        for (key, value) in [
            (fjord_core::kafka::HEADER_MQTT_TOPIC, &self.mqtt_topic),
            (fjord_core::kafka::HEADER_RECEIVED_AT, &self.received_at),
        ] {
            if let Some(v) = value {
                headers = headers.insert(Header {
                    key,
                    value: Some(v),
                });
            }
        }
        headers
    }
}

/// Produces `records` to `<prefix>readings` and waits for every acknowledgement.
pub async fn produce_readings(cfg: &KafkaConfig, records: &[BridgeRecord]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = fjord_core::kafka::client_config(cfg)
        .set("linger.ms", "5")
        .create()
        .expect("create a producer");
    let topic = cfg.topic("readings");
    for chunk in records.chunks(1000) {
        let mut sends = Vec::new();
        for r in chunk {
            let record = FutureRecord::to(&topic)
                .key(&r.key)
                .payload(&r.payload)
                .headers(r.headers());
            sends.push(
                producer
                    .send_result(record)
                    .unwrap_or_else(|(e, _)| panic!("cannot queue a record: {e}")),
            );
        }
        for s in sends {
            s.await
                .expect("delivery future")
                .unwrap_or_else(|(e, _)| panic!("record not acknowledged: {e}"));
        }
    }
}

/// Produces alert state changes to `<prefix>alerts` as the stream processor writes them (key = the
/// alert key, value = the JSON body), one after the other.
pub async fn produce_alerts(cfg: &KafkaConfig, alerts: &[fjord_core::model::Alert]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = fjord_core::kafka::client_config(cfg)
        .create()
        .expect("create a producer");
    let topic = cfg.topic("alerts");
    for a in alerts {
        let body = serde_json::to_vec(a).expect("alert JSON");
        producer
            .send(
                FutureRecord::to(&topic).key(&a.key).payload(&body),
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("cannot produce an alert: {e}"));
    }
}
