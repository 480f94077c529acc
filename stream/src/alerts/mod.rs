//! Alerts (docs/contract.md §5): rules evaluated per event inside the stream processor, each alert a small
//! state machine that lives in the processor's checkpointed state, every state change an
//! [`Alert`](fjord_core::model::Alert) record of `fjord.alerts` written in the same commit as the
//! windows and the state.
//!
//! * [`rules`] — the built-in and user rules from `[alerts]`, compiled.
//! * [`machine`] — one alert's lifecycle (pending → firing → resolved), repeats, deterministic ids.
//! * [`lot`] — a lot's alerts: evaluated on readings, closed windows and watermark moves.
//! * [`gateway`] — `gateway_offline` from `fjord.presence`.

pub mod gateway;
pub mod lot;
pub mod machine;
pub mod rules;

pub use gateway::PresenceState;
pub use lot::LotAlerts;
pub use rules::Rules;

#[cfg(test)]
mod tests;
