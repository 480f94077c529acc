//! `fjord-core`: what every fjord component shares.
//!
//! * [`model`] — `Reading`, `OccupancyWindow`, `Alert`, the values that flow through the pipeline.
//! * [`decode`] — raw device message → `Reading`, exactly as docs/contract.md §3.1 says (JSON and CBOR).
//! * [`occupancy`] — the occupancy engine of docs/contract.md §4.1, shared by the speed and batch layers.
//! * [`forecast`] — the occupancy forecast of docs/contract.md §4.4: profiles, prediction, backtest.
//! * [`schema`] — the Arrow schemas of the tables of docs/contract.md, defined once.
//! * [`config`] — one TOML file with `FJORD__SECTION__KEY` overrides, all problems reported at once.
//! * [`lots`] — the lots registry (docs/contract.md §3.4).
//! * [`files`] — operator-named text files read with a size bound.
//! * [`expr`] — the SQL boolean expressions of user alert rules, compiled and evaluated per row.
//! * [`sqltext`] — checks of SQL text the SQL parser cannot bound itself.
//! * [`topic`] — MQTT topic patterns with named segments and Kafka key templates (docs/contract.md §3.3).
//! * [`kafka`] — topic and header names, client config, topic creation.
//! * [`telemetry`] — `tracing` setup and the shared Prometheus registry.
//! * [`time`], [`duration`] — epoch-millisecond time and config durations.
//! * [`tls`] — the TLS server configuration of `[tls]` and a TLS listener.

pub mod config;
pub mod decode;
pub mod duration;
mod error;
pub mod expr;
pub mod files;
pub mod forecast;
pub mod kafka;
pub mod lots;
pub mod model;
pub mod occupancy;
pub mod schema;
pub mod secret;
pub mod serde_ts;
pub mod sqltext;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod topic;

pub use error::{Error, Result};
