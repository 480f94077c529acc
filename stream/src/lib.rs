//! `fjord-stream`: the speed layer (docs/contract.md §4.1, §4.2).
//!
//! * [`watermark`] — per-partition event-time watermarks with idle advance.
//! * [`partition`] — one input partition's processing: decode, lateness, occupancy, checkpoints.
//! * [`alerts`] — alert rules and their state machines, evaluated per event.
//! * [`delivery`] — signed webhook delivery of `fjord.alerts`, at least once, in order per key.
//! * [`output`] — the Kafka records the processor writes.
//! * [`runtime`] — `fjord stream`: the consumer group, transactions (or at-least-once with
//!   idempotent outputs), checkpoint restore on assignment.
//!
//! The occupancy arithmetic itself is `fjord_core::occupancy`, shared with the batch views.

pub mod alerts;
pub mod delivery;
mod error;
pub mod metrics;
pub mod output;
pub mod partition;
pub mod runtime;
pub mod watermark;

pub use error::{Error, Result};
