//! The occupancy forecast (docs/contract.md §4.4): a seasonal profile per lot, learned from
//! `occupancy_10m` by the batch job, and the lot's current deviation from it, fading over the
//! horizon. Explainable and cheap: no model beyond medians, quantiles and one decay rate per lot.
//!
//! * [`learn`] — the profile of each lot from its 10-minute windows (pure);
//! * [`predict`] — the next hours of one lot from its profile and its latest occupancy (pure);
//! * [`evaluate`] — the backtest of the accuracy table: train on all but the last days, forecast
//!   them, and compare with the two naive baselines (pure).
//!
//! Time is UTC. A *slot* is a 10-minute step of the week, 0 = Monday 00:00–00:10.

pub mod evaluate;
pub mod learn;
pub mod predict;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::time::TimestampMs;

/// The forecast's step and the window size it learns from: 10 minutes.
pub const STEP_MS: i64 = 600_000;
/// Steps in a day.
pub const SLOTS_PER_DAY: usize = 144;
/// Steps in a week: the profile's length.
pub const SLOTS_PER_WEEK: usize = 7 * SLOTS_PER_DAY;
/// Steps served: the next 24 hours.
pub const HORIZON_STEPS: usize = SLOTS_PER_DAY;
const DAY_MS: i64 = 86_400_000;

/// The slot of the week of `ts` (0 = Monday 00:00 UTC).
pub fn slot_of_week(ts: TimestampMs) -> usize {
    // 1970-01-01 was a Thursday (Monday-based weekday 3)
    let day = ts.div_euclid(DAY_MS);
    let weekday = (day + 3).rem_euclid(7);
    let slot = ts.rem_euclid(DAY_MS) / STEP_MS;
    usize::try_from(weekday * SLOTS_PER_DAY as i64 + slot).unwrap_or(0)
}

/// `ts` rounded down to the 10-minute grid.
pub fn floor_step(ts: TimestampMs) -> TimestampMs {
    ts - ts.rem_euclid(STEP_MS)
}

/// One lot's profile: what its occupancy ratio usually is at each slot of the week, how far it
/// usually strays, and how fast a deviation fades.
#[derive(Debug, Clone, PartialEq)]
pub struct LotProfile {
    /// The lot.
    pub lot_id: String,
    /// Its capacity in the latest training window.
    pub capacity: u32,
    /// The usual occupancy ratio per slot of the week ([`SLOTS_PER_WEEK`] values).
    pub expected: Vec<f64>,
    /// The 10 % quantile of the deviation from `expected` per slot (≤ 0).
    pub lower: Vec<f64>,
    /// The 90 % quantile of the deviation per slot (≥ 0).
    pub upper: Vec<f64>,
    /// Weeks of data behind each slot's value (0 when it came from the daily fallback).
    pub weeks: Vec<u16>,
    /// How much of a deviation is left one step later (0–1): after k steps, `persistence^k`.
    pub persistence: f64,
}

/// Every lot's profile, one model version.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profiles {
    /// `v1:<end of the training data>`, the same on every replica that reads the same lake.
    pub model_version: String,
    /// The end of the training data (exclusive).
    pub trained_through: TimestampMs,
    /// By lot.
    pub lots: BTreeMap<String, LotProfile>,
}

impl Profiles {
    /// The model version of profiles trained on data before `trained_through`.
    pub fn version_of(trained_through: TimestampMs) -> String {
        format!("v1:{}", crate::time::format_rfc3339_ms(trained_through))
    }
}

/// The profiles as the stream processor's alert rule and the serving layer see them, replaced as
/// a whole when the batch job trains a new version.
#[derive(Debug, Clone, Default)]
pub struct SharedProfiles(Arc<RwLock<Arc<Profiles>>>);

impl SharedProfiles {
    /// The current profiles.
    pub fn get(&self) -> Arc<Profiles> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces them; returns whether the version changed.
    pub fn set(&self, p: Profiles) -> bool {
        let mut cur = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = cur.model_version != p.model_version;
        *cur = Arc::new(p);
        changed
    }
}

impl PartialEq for SharedProfiles {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests;
