//! Decoding a record of `fjord.readings` (docs/contract.md §3.2) back into a [`Reading`]: the lot and space come
//! from the `fjord-mqtt-topic` header through the `[[mapping]]` rules, the receive time from
//! `fjord-received-at`, the content type from `fjord-content-type`. Shared by the stream processor
//! and the batch layer, so both read exactly the same readings out of the same records.

use crate::config::MappingRule;
use crate::model::Reading;
use crate::time::parse_rfc3339;
use crate::topic::{PatternError, TopicPattern};

use super::{DecodeError, DecodeOptions, RawMessage, decode_reading};

/// The MQTT topic patterns of the rules that feed `readings`.
#[derive(Debug, Clone)]
pub struct ReadingsTopics {
    patterns: Vec<TopicPattern>,
}

impl ReadingsTopics {
    /// The patterns of the `readings` rules among `rules`.
    pub fn new(rules: &[MappingRule]) -> Result<Self, PatternError> {
        let patterns = rules
            .iter()
            .filter(|r| r.topic == "readings")
            .map(|r| TopicPattern::parse(&r.filter))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// `(lot_id, space_id)` of an MQTT topic, by the first matching rule.
    pub fn ids<'t>(&self, mqtt_topic: &'t str) -> Option<(&'t str, &'t str)> {
        self.patterns.iter().find_map(|p| {
            let m = p.matches(mqtt_topic)?;
            Some((m.get("lot_id")?, m.get("space_id")?))
        })
    }
}

/// The headers of a readings record.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordHeaders<'a> {
    /// `fjord-mqtt-topic`
    pub mqtt_topic: Option<&'a str>,
    /// `fjord-received-at`
    pub received_at: Option<&'a str>,
    /// `fjord-content-type`
    pub content_type: Option<&'a str>,
}

impl<'a> RecordHeaders<'a> {
    /// The fjord headers of a `fjord.readings` record as Kafka delivered them.
    pub fn from_kafka(headers: Option<&'a rdkafka::message::BorrowedHeaders>) -> Self {
        use crate::kafka::{HEADER_CONTENT_TYPE, HEADER_MQTT_TOPIC, HEADER_RECEIVED_AT};
        use rdkafka::message::Headers;
        let mut out = Self::default();
        if let Some(hs) = headers {
            for h in hs.iter() {
                let text = h.value.and_then(|v| std::str::from_utf8(v).ok());
                match h.key {
                    HEADER_MQTT_TOPIC => out.mqtt_topic = text,
                    HEADER_RECEIVED_AT => out.received_at = text,
                    HEADER_CONTENT_TYPE => out.content_type = text,
                    _ => {}
                }
            }
        }
        out
    }
}

/// Why a readings record does not decode.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// A header the bridge always writes is missing.
    #[error("the record has no `{0}` header (records of fjord.readings come from the bridge)")]
    MissingHeader(&'static str),
    /// `fjord-received-at` is not RFC 3339.
    #[error("the `fjord-received-at` header {0:?} is not an RFC 3339 timestamp")]
    BadReceivedAt(String),
    /// No `readings` mapping rule matches the MQTT topic.
    #[error("no readings mapping rule matches the MQTT topic {0:?}")]
    UnknownTopic(String),
    /// The payload is not a valid reading.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl RecordError {
    /// A stable label for metrics and dead letters.
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::MissingHeader(_) => "missing_header",
            RecordError::BadReceivedAt(_) => "bad_received_at",
            RecordError::UnknownTopic(_) => "no_route",
            RecordError::Decode(e) => e.reason(),
        }
    }
}

/// Decodes one record of `fjord.readings`.
pub fn decode_record(
    topics: &ReadingsTopics,
    headers: &RecordHeaders<'_>,
    payload: &[u8],
    opts: &DecodeOptions,
) -> Result<Reading, RecordError> {
    let mqtt_topic = headers
        .mqtt_topic
        .ok_or(RecordError::MissingHeader(crate::kafka::HEADER_MQTT_TOPIC))?;
    let received = headers
        .received_at
        .ok_or(RecordError::MissingHeader(crate::kafka::HEADER_RECEIVED_AT))?;
    let received_at =
        parse_rfc3339(received).map_err(|_| RecordError::BadReceivedAt(received.to_owned()))?;
    let (lot_id, space_id) = topics
        .ids(mqtt_topic)
        .ok_or_else(|| RecordError::UnknownTopic(mqtt_topic.to_owned()))?;
    Ok(decode_reading(
        &RawMessage {
            lot_id,
            space_id,
            payload,
            content_type: headers.content_type,
            received_at,
        },
        opts,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_bridge_writes() {
        let topics = ReadingsTopics::new(&MappingRule::defaults()).unwrap();
        let h = RecordHeaders {
            mqtt_topic: Some("parking/L1/S7"),
            received_at: Some("2026-11-21T10:01:00.000Z"),
            content_type: None,
        };
        let r = decode_record(
            &topics,
            &h,
            br#"{"occupied":true}"#,
            &DecodeOptions::default(),
        )
        .unwrap();
        assert_eq!(
            (r.lot_id.as_str(), r.space_id.as_str(), r.ts),
            ("L1", "S7", 1_795_255_260_000)
        );
        let e = decode_record(
            &topics,
            &RecordHeaders::default(),
            b"{}",
            &DecodeOptions::default(),
        );
        assert_eq!(e.unwrap_err().reason(), "missing_header");
        let h = RecordHeaders {
            mqtt_topic: Some("weather/x"),
            ..h
        };
        let e = decode_record(&topics, &h, b"{}", &DecodeOptions::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no readings mapping rule matches the MQTT topic \"weather/x\""
        );
    }
}
