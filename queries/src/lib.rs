//! `fjord-queries`: the serving layer (docs/contract.md §4.3, §7).
//!
//! * [`analyst`] — the ready analyst queries of `queries/sql/`.
//! * [`guard`] — SQL is read-only: only queries pass, every other statement is refused by name.
//! * [`speed`] — the speed layer fed from Kafka: windows after the batch high-water mark, current
//!   occupancy per lot, each space's twin, each alert's latest change.
//! * [`tables`] — table providers that read the current lake version and speed-layer state on every
//!   scan, including the Lambda merge of §4.3.
//! * [`forecast`] — `occupancy_forecast`: the lake's profiles and the live occupancy, at scan time.
//! * [`catalog`] — one DataFusion session with every table of §7 and the memory limit.
//! * [`capped`] — functions that build values of any size (`repeat`, `lpad`, …), capped; every
//!   other function's result checked against the same cap.
//! * [`runtime`] — the query threads: a large stack, apart from ingest and health checks.
//! * [`exec`] — one query within its time, row and byte limits.
//! * [`format`] — results as a text table, CSV or JSON (`fjord sql`).
//! * [`http`] — `fjord serve`'s HTTP API and dashboard; [`pg`] — the Postgres wire protocol;
//!   [`flight`] — Arrow Flight SQL.
//! * [`serve`] — starts the feed and every interface.

pub mod analyst;
pub mod auth;
pub mod capped;
pub mod catalog;
mod error;
pub mod exec;
pub mod flight;
pub mod forecast;
pub mod format;
pub mod guard;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod pg;
pub mod runtime;
pub mod serve;
pub mod speed;
pub mod tables;

pub use error::{Error, Result};
