//! The data model shared by every layer: a sensor [`Reading`], a closed [`OccupancyWindow`] and an
//! [`Alert`] state change. These are plain values with no I/O; their JSON forms are the record
//! values of the Kafka topics in docs/contract.md §3.2 and their columns those of the lake tables in docs/contract.md §6.

mod alert;
mod occupancy;
mod reading;

pub use alert::{Alert, AlertStatus, Severity};
pub use occupancy::{LiveRow, OccupancyWindow, SpaceRow, WindowSource};
pub use reading::{Reading, TsSource};
