//! `fjord-ingest`: getting device messages into Kafka.
//!
//! * [`broker`] — the embedded MQTT broker (`rumqttd`) that `fjord demo` runs.
//!
//! The MQTT→Kafka bridge, HTTP ingest and the device simulator are built on top of these (issue
//! "Ingest").

pub mod broker;
mod error;

pub use error::{Error, Result};
