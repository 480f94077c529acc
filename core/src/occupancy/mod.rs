//! Occupancy aggregates (docs/contract.md §4.1): the incremental [`LotEngine`] that both the stream processor
//! and the batch views run, and [`reference`], a direct recomputation that tests hold it to.

mod engine;
pub mod reference;

pub use engine::{Held, LotEngine, Offer, SpaceState, StateSize};

#[cfg(test)]
mod tests;
