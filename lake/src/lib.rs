//! `fjord-lake`: the lake as both layers that touch it see it (docs/contract.md §6), below them
//! both. The batch layer writes through it and the serving layer reads through it; neither imports
//! the other.
//!
//! * [`tables`]: the tables' names and schemas, the views tables of the configured window sizes,
//!   and [`Lake`], the Delta store under one object-store URL (`file://` or `s3://`);
//! * [`rows`]: one Arrow encoder per row type (readings, quarantine, occupancy windows);
//! * [`forecast`]: the forecast's profiles in the table `forecast_profile`, written and read;
//! * [`hwm`]: the batch high-water mark, recorded as a Delta application transaction.

pub mod error;
pub mod forecast;
pub mod hwm;
pub mod rows;
pub mod tables;

pub use error::{Error, Result};
pub use tables::{Lake, Table};
