//! One lot's next hours from its profile and its latest occupancy (docs/contract.md §4.4). Pure.
//!
//! Issued at `as_of`, the forecast covers the 10-minute windows from the one `as_of` falls in:
//! step k (1, 2, …) is the window starting at `floor(as_of) + (k − 1) · 10 min`, its horizon
//! `k · 10 min`. Its value is the profile's expected ratio plus the lot's current deviation from
//! the profile times `persistence^k` (what is left of it k steps later); the interval is the
//! profile's 10–90 % deviation band, narrowed by how much of the spread the current deviation
//! explains (`√(1 − persistence^2k)`).

use super::{LotProfile, STEP_MS, floor_step, slot_of_week};
use crate::time::TimestampMs;

/// One step of a forecast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Start of the 10-minute window forecast.
    pub target_time: TimestampMs,
    /// Its distance from the forecast's origin, ms (10 min for the first step).
    pub horizon_ms: i64,
    /// The expected occupancy ratio.
    pub ratio: f64,
    /// The interval's lower bound (10 %).
    pub lower: f64,
    /// Its upper bound (90 %).
    pub upper: f64,
}

/// The lot's latest occupancy: `ratio` at event time `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    /// When.
    pub at: TimestampMs,
    /// Occupied / capacity then.
    pub ratio: f64,
}

/// The deviation from the profile at `as_of`, from an observation at or before it.
pub fn deviation(p: &LotProfile, as_of: TimestampMs, observed: Option<Observed>) -> f64 {
    let Some(o) = observed else { return 0.0 };
    let d = o.ratio - p.expected[slot_of_week(o.at)];
    let stale_steps = ((as_of - o.at).max(0) as f64) / STEP_MS as f64;
    d * p.persistence.powf(stale_steps)
}

/// `steps` steps from `as_of`, computed as they are taken (the alert rule on the stream
/// processor's hot path only folds them, allocating nothing).
pub fn predict(
    p: &LotProfile,
    as_of: TimestampMs,
    observed: Option<Observed>,
    steps: usize,
) -> impl Iterator<Item = Step> {
    let d = deviation(p, as_of, observed);
    let origin = floor_step(as_of);
    let mut fade = 1.0;
    (1..=steps).map(move |k| {
        fade *= p.persistence;
        let k = i64::try_from(k).unwrap_or(i64::MAX);
        let target_time = origin + (k - 1) * STEP_MS;
        let s = slot_of_week(target_time);
        let ratio = (p.expected[s] + fade * d).clamp(0.0, 1.0);
        let spread = (1.0 - fade * fade).max(0.0).sqrt();
        Step {
            target_time,
            horizon_ms: k * STEP_MS,
            ratio,
            lower: (ratio + p.lower[s] * spread).clamp(0.0, 1.0),
            upper: (ratio + p.upper[s] * spread).clamp(0.0, 1.0),
        }
    })
}

/// The steps whose windows start before `as_of + horizon_ms` (at least the current one).
pub fn steps_within(as_of: TimestampMs, horizon_ms: i64) -> usize {
    let origin = floor_step(as_of);
    let span = (as_of + horizon_ms.max(0) - origin).max(1);
    usize::try_from((span + STEP_MS - 1) / STEP_MS).unwrap_or(1)
}
