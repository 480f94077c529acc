//! The test kit: real servers on free loopback ports, one set per test, stopped when dropped.
//!
//! * [`Tansu`] — a Kafka-protocol broker (`tansu`, in-memory storage).
//! * [`Mosquitto`] — an MQTT broker.
//! * [`S3Server`] — an S3-compatible object store (`s3s-fs` over a temporary directory).
//! * [`WebhookReceiver`] — an HTTP webhook receiver that records requests and answers as told.
//! * [`unique_name`], [`temp_dir`], [`free_port`] — isolation helpers, so tests run in parallel.
//! * [`kafka::collect`] reads a topic back; [`mqtt::publish_all`] publishes and awaits the PUBACKs.
//!
//! A missing server binary is reported with the command that installs it. Binaries are looked up in
//! `FJORD_<NAME>` (a path), then `~/.cache/fjord-ci/tools/bin` (where `.ci/run` installs them), then
//! `PATH` and `/usr/sbin`. Enabled by the `testkit` feature.

pub mod kafka;
mod mosquitto;
pub mod mqtt;
mod process;
mod s3;
mod tansu;
mod webhook;

pub use mosquitto::{Mosquitto, RECOMMENDED_CONFIG as MOSQUITTO_RECOMMENDED};
pub use process::{ServerProcess, find_binary, free_port, wait_until};
pub use s3::S3Server;
pub use tansu::Tansu;
pub use webhook::{Received, WebhookReceiver, alert_changes, ids_per_key};

use rand::Rng;

/// `prefix` plus a random suffix: a topic, group or client id no other test uses.
pub fn unique_name(prefix: &str) -> String {
    let n: u64 = rand::rng().random();
    format!("{prefix}-{n:016x}")
}

/// A fresh temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fjord-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}
