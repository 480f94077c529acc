//! Learning each lot's profile from its 10-minute windows (docs/contract.md §4.4). Pure.
//!
//! * **expected** ratio per slot of the week: the median over the weeks that have the slot — a
//!   holiday or an event day is one value among several and does not move it; a slot seen in
//!   fewer than two weeks takes the median of the same time of day over all days, a lot with
//!   gaps still gets a full week. The result is smoothed over neighbouring slots ([1, 2, 1]/4).
//! * **lower / upper**: the 10 % and 90 % quantiles of the deviations, pooled over the slot and
//!   its two neighbours on each side, over all weeks. A week's deviation is taken from the median
//!   of the *other* weeks (when the slot has three or more), so the band is as wide as it will be
//!   for a week the profile has not seen.
//! * **persistence**: how much of a deviation is left k steps later, measured on the training
//!   data for k = 1 step … 24 h and fitted by one rate `p` so that `p^k` follows it.

use std::collections::BTreeMap;

use super::{LotProfile, Profiles, SLOTS_PER_DAY, SLOTS_PER_WEEK, STEP_MS, slot_of_week};
use crate::time::TimestampMs;

/// One 10-minute window of a lot, as `occupancy_10m` has it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowObs {
    /// `occupancy_ratio`.
    pub ratio: f64,
    /// `occupied_end / capacity`: the occupancy at the window's end.
    pub end_ratio: f64,
    /// `capacity`.
    pub capacity: u32,
}

/// Each lot's windows by `window_start`.
pub type Series = BTreeMap<String, BTreeMap<TimestampMs, WindowObs>>;

/// A lot needs at least a day of windows to get a profile.
pub const MIN_WINDOWS: usize = SLOTS_PER_DAY;
/// Neighbouring slots pooled (each side) for the deviation quantiles.
const POOL: usize = 2;
/// The persistence when the data cannot say.
const DEFAULT_PERSISTENCE: f64 = 0.9;

/// The profiles of every lot of `series` from its windows starting in `[from, until)`; lots with
/// fewer than [`MIN_WINDOWS`] windows there get none.
pub fn learn(series: &Series, from: TimestampMs, until: TimestampMs) -> Profiles {
    let lots = series
        .iter()
        .filter_map(|(lot, windows)| {
            let obs: Vec<(TimestampMs, WindowObs)> =
                windows.range(from..until).map(|(t, w)| (*t, *w)).collect();
            (obs.len() >= MIN_WINDOWS).then(|| (lot.clone(), learn_lot(lot, &obs)))
        })
        .collect();
    Profiles {
        model_version: Profiles::version_of(until),
        trained_through: until,
        lots,
    }
}

fn learn_lot(lot_id: &str, obs: &[(TimestampMs, WindowObs)]) -> LotProfile {
    let mut by_week: Vec<Vec<f64>> = vec![Vec::new(); SLOTS_PER_WEEK];
    let mut by_day: Vec<Vec<f64>> = vec![Vec::new(); SLOTS_PER_DAY];
    for (t, w) in obs {
        let s = slot_of_week(*t);
        by_week[s].push(w.ratio);
        by_day[s % SLOTS_PER_DAY].push(w.ratio);
    }
    let mut all: Vec<f64> = obs.iter().map(|(_, w)| w.ratio).collect();
    let overall = median(&mut all).unwrap_or(0.0);
    let mut weeks = vec![0u16; SLOTS_PER_WEEK];
    let raw: Vec<f64> = (0..SLOTS_PER_WEEK)
        .map(|s| {
            if by_week[s].len() >= 2 {
                weeks[s] = u16::try_from(by_week[s].len()).unwrap_or(u16::MAX);
                median(&mut by_week[s]).unwrap_or(overall)
            } else {
                median(&mut by_day[s % SLOTS_PER_DAY]).unwrap_or(overall)
            }
        })
        .collect();
    let expected: Vec<f64> = (0..SLOTS_PER_WEEK)
        .map(|s| {
            let prev = raw[(s + SLOTS_PER_WEEK - 1) % SLOTS_PER_WEEK];
            let next = raw[(s + 1) % SLOTS_PER_WEEK];
            (prev + 2.0 * raw[s] + next) / 4.0
        })
        .collect();

    // deviations, by slot and on a dense timeline for the persistence
    let first = obs[0].0;
    let len = usize::try_from((obs[obs.len() - 1].0 - first) / STEP_MS + 1).unwrap_or(0);
    let mut timeline: Vec<Option<f64>> = vec![None; len];
    let mut dev_by_slot: Vec<Vec<f64>> = vec![Vec::new(); SLOTS_PER_WEEK];
    let mut all_dev = Vec::with_capacity(obs.len());
    for (t, w) in obs {
        let s = slot_of_week(*t);
        let d = w.ratio - expected[s];
        if let Ok(i) = usize::try_from((t - first) / STEP_MS)
            && let Some(slot) = timeline.get_mut(i)
        {
            *slot = Some(d);
        }
        // for the band: the deviation from the other weeks' median, as a new week will see it
        let out_of_sample = if by_week[s].len() >= 3 {
            let mut others = by_week[s].clone();
            if let Some(i) = others.iter().position(|v| *v == w.ratio) {
                others.swap_remove(i);
            }
            median(&mut others).map_or(d, |m| w.ratio - m)
        } else {
            d
        };
        dev_by_slot[s].push(out_of_sample);
        all_dev.push(out_of_sample);
    }
    let lot_lo = quantile(&mut all_dev.clone(), 0.1).unwrap_or(0.0).min(0.0);
    let lot_hi = quantile(&mut all_dev, 0.9).unwrap_or(0.0).max(0.0);
    let mut lower = Vec::with_capacity(SLOTS_PER_WEEK);
    let mut upper = Vec::with_capacity(SLOTS_PER_WEEK);
    for s in 0..SLOTS_PER_WEEK {
        let mut pool: Vec<f64> = (0..=2 * POOL)
            .flat_map(|o| &dev_by_slot[(s + SLOTS_PER_WEEK + o - POOL) % SLOTS_PER_WEEK])
            .copied()
            .collect();
        if pool.len() < 5 {
            lower.push(lot_lo);
            upper.push(lot_hi);
        } else {
            lower.push(quantile(&mut pool.clone(), 0.1).unwrap_or(0.0).min(0.0));
            upper.push(quantile(&mut pool, 0.9).unwrap_or(0.0).max(0.0));
        }
    }
    LotProfile {
        lot_id: lot_id.to_owned(),
        capacity: obs[obs.len() - 1].1.capacity,
        expected,
        lower,
        upper,
        weeks,
        persistence: persistence(&timeline),
    }
}

/// The rate `p` whose powers `p^k` best follow how much of a deviation is left after k steps
/// (k = 1 … a day), measured as Σ d(t)·d(t+k) / Σ d(t)².
pub fn persistence(timeline: &[Option<f64>]) -> f64 {
    let mut left = Vec::with_capacity(SLOTS_PER_DAY);
    for k in 1..=SLOTS_PER_DAY {
        let (mut num, mut den) = (0.0, 0.0);
        for (a, b) in timeline.iter().zip(timeline.iter().skip(k)) {
            if let (Some(a), Some(b)) = (a, b) {
                num += a * b;
                den += a * a;
            }
        }
        if den > 0.0 {
            left.push((i32::try_from(k).unwrap_or(i32::MAX), num / den));
        }
    }
    if left.is_empty() {
        return DEFAULT_PERSISTENCE;
    }
    // a grid search: one parameter, a few hundred candidates, exact and dependency-free
    let mut best = (f64::INFINITY, DEFAULT_PERSISTENCE);
    for i in 0..=500 {
        let p = 0.5 + 0.499 * f64::from(i) / 500.0;
        let err: f64 = left
            .iter()
            .map(|(k, b)| {
                let e = p.powi(*k) - b;
                e * e
            })
            .sum();
        if err < best.0 {
            best = (err, p);
        }
    }
    best.1
}

/// The median of `v` (reordered), or `None` when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    })
}

/// The `q` quantile of `v` (reordered; linear between neighbours), or `None` when empty.
pub fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - pos.floor();
    Some(v[lo] + (v[hi] - v[lo]) * frac)
}
