//! Integration tests of ingest (bridge, embedded broker, HTTP) against tansu and mosquitto, in one
//! test binary; `broker_drops` stays its own (it installs the global log subscriber). Run one file
//! with `cargo test -p fjord-ingest --test it bridge::`.

mod bridge;
mod broker;
mod common;
mod http;
