//! `fjord-queries`: the serving layer (SPEC §4.3, §7).
//!
//! * [`guard`] — SQL is read-only: only queries pass, every other statement is refused by name.
//! * [`catalog`] — a DataFusion session over the lake's Delta tables and the lots registry.
//! * [`format`] — results as a text table, CSV or JSON.
//!
//! Built so far: `fjord sql` (one query against the lake). Not built yet: the speed-layer merge of
//! §4.3, `fjord serve` (HTTP, Postgres wire, Flight SQL) and the dashboard.

pub mod catalog;
mod error;
pub mod format;
pub mod guard;

pub use error::{Error, Result};
