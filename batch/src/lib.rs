//! `fjord-batch`: the batch layer (docs/contract.md §4.1, §4.3, §6).
//!
//! * [`ingest`] lands `fjord.readings` in the Delta table `readings`, exactly once: the Kafka
//!   offsets a commit covers are recorded in that same commit ([`offsets`]); [`alerts`] lands
//!   `fjord.alerts` in `alerts` the same way;
//! * [`compact`] rewrites small files into large sorted ones;
//! * [`views`] recomputes `occupancy_1m` / `occupancy_10m` for the dates that changed, with the
//!   stream processor's occupancy engine, and records the batch high-water mark;
//! * [`forecast`] learns the forecast's profiles from `occupancy_10m` into `forecast_profile`
//!   (docs/contract.md §4.4), and runs its backtest;
//! * [`vacuum`] deletes unreferenced files; [`import`] backfills from JSON-lines/CSV files;
//! * [`run`] runs jobs once or on a [`schedule`].
//!
//! Every table lives under one object-store URL ([`lake`], from `fjord-lake`, which the serving
//! layer reads through), local or S3.

pub mod alerts;
pub mod commit;
pub mod compact;
pub mod dedup;
pub mod error;
pub mod fault;
pub mod forecast;
pub mod import;
pub mod ingest;
pub mod landing;
pub mod offsets;
pub mod query;
pub mod run;
pub mod schedule;
pub mod vacuum;
pub mod views;

pub use error::{Error, Result};
/// The forecast's profiles in the lake, from the crate both layers share.
pub use fjord_lake::forecast as lake_forecast;
/// The lake's row encoders, from the crate both layers share.
pub use fjord_lake::rows;
/// The lake's tables and its Delta store, from the crate both layers share.
pub use fjord_lake::tables as lake;
pub use fjord_lake::{Lake, Table};
pub use run::{BatchMetrics, Job, Summary, run_once, run_scheduled};
pub use schedule::{Cron, Schedule};
