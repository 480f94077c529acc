//! What the bridge does with one received message: forward it to its Kafka topic with the docs/contract.md §3.2
//! key and headers, or send it to the dead-letter topic with a reason. Pure logic, shared by MQTT and
//! HTTP ingest, so both apply exactly the same rules.

use bytes::Bytes;
use fjord_core::decode::{DecodeOptions, RawMessage, decode_reading, detect_format};
use fjord_core::kafka::{
    HEADER_CONTENT_TYPE, HEADER_ERROR, HEADER_MQTT_TOPIC, HEADER_RECEIVED_AT, HEADER_SOURCE,
};
use fjord_core::time::{TimestampMs, format_rfc3339_ms};

use crate::mapping::{RouteKind, Router};

/// Header (dead letters): the stable reason code, e.g. `no_route`, `too_large`, `invalid_field`.
pub const HEADER_ERROR_REASON: &str = "fjord-error-reason";

/// Where a message came from (header `fjord-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Received over MQTT.
    Mqtt,
    /// Posted to HTTP ingest.
    Http,
}

impl Source {
    /// `mqtt` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mqtt => "mqtt",
            Source::Http => "http",
        }
    }
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// MQTT topic (for HTTP, the path after `/ingest/`).
    pub topic: String,
    /// Payload bytes as received.
    pub payload: Bytes,
    /// Declared content type, if any.
    pub content_type: Option<String>,
    /// Receive time.
    pub received_at: TimestampMs,
    /// MQTT or HTTP.
    pub source: Source,
}

/// A Kafka record to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRecord {
    /// Full topic name.
    pub topic: String,
    /// Record key.
    pub key: String,
    /// Record value.
    pub payload: Bytes,
    /// Record headers, in order.
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

impl OutRecord {
    /// The headers as Kafka takes them.
    pub fn kafka_headers(&self) -> rdkafka::message::OwnedHeaders {
        let mut headers = rdkafka::message::OwnedHeaders::new_with_capacity(self.headers.len());
        for (key, value) in &self.headers {
            headers = headers.insert(rdkafka::message::Header {
                key,
                value: Some(value.as_slice()),
            });
        }
        headers
    }

    /// Turns the record into a dead letter because Kafka refused it for its topic for good
    /// (reason `kafka_rejected`).
    pub fn reject(&mut self, e: &rdkafka::error::KafkaError, dlq_topic: &str) {
        let error = format!("Kafka refused the record for {}: {e}", self.topic);
        tracing::warn!(topic = %self.topic, %error, "dead-lettering a record Kafka refused");
        self.headers
            .push((fjord_core::kafka::HEADER_ERROR, error.into_bytes()));
        self.headers
            .push((HEADER_ERROR_REASON, b"kafka_rejected".to_vec()));
        self.topic = dlq_topic.to_owned();
    }

    /// After the dead-letter topic refused the record with `e`: cuts a payload that is too large
    /// to 64 KiB (header `fjord-truncated`), so that the next try can succeed.
    pub fn shrink_for(&mut self, e: &rdkafka::error::KafkaError) {
        if matches!(
            e.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge)
        ) && self.payload.len() > 64 * 1024
        {
            self.payload = self.payload.slice(..64 * 1024);
            self.headers.push(("fjord-truncated", b"true".to_vec()));
        }
    }
}

/// The outcome for one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Produce to the mapped topic.
    Forward(OutRecord),
    /// Produce to the dead-letter topic.
    DeadLetter {
        /// The dead-letter record (original bytes, headers, `fjord-error`).
        record: OutRecord,
        /// Stable reason code.
        reason: &'static str,
        /// Human-readable reason (also the `fjord-error` header).
        error: String,
    },
}

/// Applies the mapping rules, the size limit and (optionally) the decoder.
#[derive(Debug, Clone)]
pub struct Classifier {
    router: Router,
    dlq_topic: String,
    validate: bool,
    max_payload_bytes: usize,
    decode: DecodeOptions,
}

impl Classifier {
    /// A classifier with the given rules and limits.
    pub fn new(
        router: Router,
        dlq_topic: String,
        validate: bool,
        max_payload_bytes: usize,
        decode: DecodeOptions,
    ) -> Self {
        Self {
            router,
            dlq_topic,
            validate,
            max_payload_bytes,
            decode,
        }
    }

    /// The mapping rules.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Decides what to do with `msg`.
    pub fn classify(&self, msg: &Inbound) -> Disposition {
        let route = self.router.route(&msg.topic);
        let key = route
            .as_ref()
            .map_or_else(|| msg.topic.clone(), |r| r.key.clone());
        let dead = |reason: &'static str, error: String| {
            let mut headers = base_headers(msg, msg.content_type.clone());
            headers.push((HEADER_ERROR, error.clone().into_bytes()));
            headers.push((HEADER_ERROR_REASON, reason.as_bytes().to_vec()));
            Disposition::DeadLetter {
                record: OutRecord {
                    topic: self.dlq_topic.clone(),
                    key: key.clone(),
                    payload: msg.payload.clone(),
                    headers,
                },
                reason,
                error,
            }
        };
        let Some(route) = route else {
            return dead(
                "no_route",
                format!("no mapping rule matches topic {:?}", msg.topic),
            );
        };
        if msg.payload.len() > self.max_payload_bytes {
            return dead(
                "too_large",
                format!(
                    "payload of {} bytes exceeds the limit of {} bytes",
                    msg.payload.len(),
                    self.max_payload_bytes
                ),
            );
        }
        // the header says what the payload is: as declared, else as sniffed (readings), and
        // JSON for the presence records built here
        let mut content_type = msg.content_type.clone();
        let payload = match route.kind {
            RouteKind::Readings => {
                if content_type.is_none()
                    && let Ok(format) = detect_format(&msg.payload, None)
                {
                    content_type = Some(format.media_type().to_owned());
                }
                if self.validate {
                    let raw = RawMessage {
                        lot_id: route.captures.get("lot_id").unwrap_or(""),
                        space_id: route.captures.get("space_id").unwrap_or(""),
                        payload: &msg.payload,
                        content_type: msg.content_type.as_deref(),
                        received_at: msg.received_at,
                    };
                    if let Err(e) = decode_reading(&raw, &self.decode) {
                        return dead(e.reason(), e.to_string());
                    }
                }
                msg.payload.clone()
            }
            RouteKind::Presence => {
                content_type = Some("application/json".to_owned());
                let gateway_id = route.captures.get("gateway_id").unwrap_or("");
                match presence_status(&msg.payload) {
                    Some(status) => Bytes::from(
                        serde_json::json!({
                            "gateway_id": gateway_id,
                            "status": status,
                            "ts": format_rfc3339_ms(msg.received_at),
                        })
                        .to_string(),
                    ),
                    None => {
                        return dead(
                            "presence_payload",
                            format!(
                                "a presence payload must be `online` or `offline`, got {:?}",
                                String::from_utf8_lossy(&msg.payload[..msg.payload.len().min(40)])
                            ),
                        );
                    }
                }
            }
            RouteKind::Other => msg.payload.clone(),
        };
        Disposition::Forward(OutRecord {
            topic: route.kafka_topic.to_owned(),
            key,
            payload,
            headers: base_headers(msg, content_type),
        })
    }
}

fn presence_status(payload: &[u8]) -> Option<&'static str> {
    let text = std::str::from_utf8(payload).ok()?.trim();
    if text.eq_ignore_ascii_case("online") {
        Some("online")
    } else if text.eq_ignore_ascii_case("offline") {
        Some("offline")
    } else {
        None
    }
}

fn base_headers(msg: &Inbound, content_type: Option<String>) -> Vec<(&'static str, Vec<u8>)> {
    let mut h = vec![
        (HEADER_MQTT_TOPIC, msg.topic.clone().into_bytes()),
        (
            HEADER_RECEIVED_AT,
            format_rfc3339_ms(msg.received_at).into_bytes(),
        ),
    ];
    if let Some(ct) = content_type {
        h.push((HEADER_CONTENT_TYPE, ct.into_bytes()));
    }
    h.push((HEADER_SOURCE, msg.source.as_str().as_bytes().to_vec()));
    h
}

#[cfg(test)]
mod tests {
    use fjord_core::config::{KafkaConfig, MappingRule};

    use super::*;

    const NOW: TimestampMs = 1_795_255_260_000;

    fn classifier(validate: bool) -> Classifier {
        let router = Router::new(&MappingRule::defaults(), &KafkaConfig::default()).unwrap();
        Classifier::new(
            router,
            "fjord.dlq".into(),
            validate,
            100,
            DecodeOptions::default(),
        )
    }

    fn inbound(topic: &str, payload: &[u8]) -> Inbound {
        Inbound {
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload),
            content_type: None,
            received_at: NOW,
            source: Source::Mqtt,
        }
    }

    fn header<'a>(r: &'a OutRecord, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
    }

    fn dead_reason(d: &Disposition) -> (&'static str, &str) {
        match d {
            Disposition::DeadLetter {
                reason,
                error,
                record,
            } => {
                assert_eq!(record.topic, "fjord.dlq");
                assert_eq!(header(record, HEADER_ERROR), Some(error.as_str()));
                assert_eq!(header(record, HEADER_ERROR_REASON), Some(*reason));
                (reason, error)
            }
            other => panic!("expected a dead letter, got {other:?}"),
        }
    }

    #[test]
    fn a_reading_without_a_declared_content_type_carries_the_sniffed_one() {
        for (payload, want) in [
            (&br#"{"occupied":true}"#[..], "application/json"),
            (
                &[
                    0xa1, 0x68, b'o', b'c', b'c', b'u', b'p', b'i', b'e', b'd', 0xf5,
                ][..],
                "application/cbor",
            ),
        ] {
            let Disposition::Forward(r) =
                classifier(true).classify(&inbound("parking/L1/S7", payload))
            else {
                panic!("{payload:?} not forwarded")
            };
            assert_eq!(header(&r, HEADER_CONTENT_TYPE), Some(want));
            let Disposition::Forward(r) =
                classifier(false).classify(&inbound("parking/L1/S7", payload))
            else {
                panic!("{payload:?} not forwarded without validation")
            };
            assert_eq!(
                header(&r, HEADER_CONTENT_TYPE),
                Some(want),
                "also unvalidated"
            );
        }
    }

    #[test]
    fn a_valid_reading_is_forwarded_byte_for_byte_with_key_and_headers() {
        let payload = br#"{"occupied":true, "ts":1795255200000}"#;
        let mut msg = inbound("parking/L1/S7", payload);
        msg.content_type = Some("application/json".into());
        let Disposition::Forward(r) = classifier(true).classify(&msg) else {
            panic!()
        };
        assert_eq!(r.topic, "fjord.readings");
        assert_eq!(r.key, "L1");
        assert_eq!(&r.payload[..], payload);
        assert_eq!(header(&r, HEADER_MQTT_TOPIC), Some("parking/L1/S7"));
        assert_eq!(
            header(&r, HEADER_RECEIVED_AT),
            Some("2026-11-21T10:01:00.000Z")
        );
        assert_eq!(header(&r, HEADER_CONTENT_TYPE), Some("application/json"));
        assert_eq!(header(&r, HEADER_SOURCE), Some("mqtt"));
        assert_eq!(header(&r, HEADER_ERROR), None);
    }

    #[test]
    fn each_dead_letter_reason() {
        let c = classifier(true);
        let d = c.classify(&inbound("weather/x", b"{}"));
        assert_eq!(
            dead_reason(&d),
            ("no_route", "no mapping rule matches topic \"weather/x\"")
        );
        let d = c.classify(&inbound("parking/L1", br#"{"occupied":true}"#));
        assert_eq!(dead_reason(&d).0, "no_route");
        let big = format!(r#"{{"occupied":true,"pad":"{}"}}"#, "x".repeat(200));
        let d = c.classify(&inbound("parking/L1/S1", big.as_bytes()));
        assert_eq!(
            dead_reason(&d),
            (
                "too_large",
                &*format!(
                    "payload of {} bytes exceeds the limit of 100 bytes",
                    big.len()
                )
            )
        );
        let d = c.classify(&inbound(
            "parking/L1/S1",
            br#"{"occupied":true,"battery":140}"#,
        ));
        assert_eq!(
            dead_reason(&d),
            (
                "invalid_field",
                "`battery` must be an integer 0–100, got 140"
            )
        );
        let d = c.classify(&inbound("parking/L1/S1", b"garbage"));
        assert_eq!(dead_reason(&d).0, "not_an_object");
        let d = c.classify(&inbound(
            "parking/L1/S1",
            br#"{"occupied":true,"lot_id":"L2"}"#,
        ));
        assert_eq!(dead_reason(&d).0, "id_mismatch");
        let d = c.classify(&inbound("presence/gw1", b"maybe"));
        assert_eq!(
            dead_reason(&d),
            (
                "presence_payload",
                "a presence payload must be `online` or `offline`, got \"maybe\""
            )
        );
        // the dead letter keeps the original bytes and the key it would have had
        let d = c.classify(&inbound("parking/L1/S1", b"garbage"));
        let Disposition::DeadLetter { record, .. } = d else {
            panic!()
        };
        assert_eq!(
            (&record.payload[..], record.key.as_str()),
            (&b"garbage"[..], "L1")
        );
    }

    #[test]
    fn validation_off_forwards_undecodable_readings() {
        let d = classifier(false).classify(&inbound("parking/L1/S1", b"garbage"));
        assert!(matches!(d, Disposition::Forward(ref r) if r.topic == "fjord.readings"));
    }

    #[test]
    fn presence_becomes_json() {
        let mut msg = inbound("presence/gw-1", b" Offline\n");
        msg.source = Source::Http;
        let Disposition::Forward(r) = classifier(true).classify(&msg) else {
            panic!()
        };
        assert_eq!(r.topic, "fjord.presence");
        assert_eq!(r.key, "gw-1");
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"gateway_id": "gw-1", "status": "offline", "ts": "2026-11-21T10:01:00.000Z"})
        );
        assert_eq!(header(&r, HEADER_SOURCE), Some("http"));
    }
}
