//! `fjord-ingest`: getting device messages into Kafka without losing any.
//!
//! * [`bridge`] — `fjord bridge`: MQTT → Kafka, PUBACK only after Kafka acknowledged the record.
//! * [`http`] — HTTP ingest (`POST /ingest/<topic>`), answering 202 only after Kafka's ack.
//! * [`message`] — the rules both apply: topic mapping, size limit, validation, dead letters.
//! * [`mapping`] — the `[[mapping]]` rules (docs/contract.md §3.3).
//! * [`acl`] — `[[credentials]]`: authentication and per-topic publish/subscribe rights.
//! * [`broker`] — the embedded MQTT broker of `fjord demo` (rumqttd behind an authenticating,
//!   ACL-enforcing front).
//! * [`simulate`] — `fjord simulate`: parking sensors and gateways over MQTT, for demos and load.
//! * [`wire`] — the MQTT packets the broker front and the bridge's client need.

pub mod acl;
pub mod bridge;
pub mod broker;
mod error;
pub mod http;
pub mod mapping;
pub mod message;
pub mod metrics;
pub mod simulate;
pub mod wire;

pub use error::{Error, Result};
