//! A direct, deliberately simple recomputation of docs/contract.md §4.1 from a complete list of readings: the
//! executable definition that the incremental engine, the stream processor and the batch views are
//! tested against. Quadratic and unoptimised on purpose; not for production use.

use std::collections::{BTreeMap, HashSet};

use crate::model::{OccupancyWindow, WindowSource};
use crate::time::TimestampMs;

/// Each space's readings (ts, occupied), in event-time order.
type Spaces<'a> = BTreeMap<&'a str, Vec<(TimestampMs, bool)>>;

/// A reading as the reference needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefReading {
    /// Lot.
    pub lot_id: String,
    /// Space.
    pub space_id: String,
    /// Event time.
    pub ts: TimestampMs,
    /// State at `ts`.
    pub occupied: bool,
}

/// Every window of every lot, for each size in `sizes_ms`, from the window holding the lot's first
/// reading up to the last window that ends at or before `until`. Readings with the same
/// (`space_id`, `ts`) count once (the first in input order). `capacity` gives registered
/// capacities; unregistered lots use the number of distinct spaces with a reading before the
/// window's end.
pub fn windows(
    readings: &[RefReading],
    sizes_ms: &[i64],
    until: TimestampMs,
    capacity: &dyn Fn(&str) -> Option<u32>,
) -> Vec<OccupancyWindow> {
    let mut seen = HashSet::new();
    // lot → space → readings (ts, occupied), deduplicated
    let mut lots: BTreeMap<&str, Spaces<'_>> = BTreeMap::new();
    for r in readings {
        if seen.insert((r.space_id.as_str(), r.ts)) {
            lots.entry(&r.lot_id)
                .or_default()
                .entry(&r.space_id)
                .or_default()
                .push((r.ts, r.occupied));
        }
    }
    let mut out = Vec::new();
    for (lot, spaces) in &mut lots {
        for v in spaces.values_mut() {
            v.sort_by_key(|(ts, _)| *ts);
        }
        let first = spaces.values().map(|v| v[0].0).min().unwrap_or(until);
        for &size in sizes_ms {
            let mut s = first.div_euclid(size) * size;
            while s + size <= until {
                let e = s + size;
                out.push(window(lot, spaces, s, e, capacity(lot)));
                s = e;
            }
        }
    }
    out
}

/// State of a space at instant `t` (inclusive): the value of its last reading at or before `t`,
/// free before its first reading.
fn state_at(readings: &[(TimestampMs, bool)], t: TimestampMs) -> bool {
    readings
        .iter()
        .rev()
        .find(|(ts, _)| *ts <= t)
        .is_some_and(|(_, o)| *o)
}

fn window(
    lot: &str,
    spaces: &Spaces<'_>,
    s: TimestampMs,
    e: TimestampMs,
    registered: Option<u32>,
) -> OccupancyWindow {
    let mut integral: i64 = 0; // space-milliseconds
    let (mut arrivals, mut departures, mut count, mut occupied_end) = (0u64, 0u64, 0u64, 0u32);
    let mut seen_before_end = 0u32;
    for readings in spaces.values() {
        if readings[0].0 < e {
            seen_before_end += 1;
        }
        // integrate the step function over [s, e): change points inside the window
        let mut t = s;
        let mut state = state_at(readings, s);
        for &(ts, occ) in readings.iter().filter(|(ts, _)| *ts > s && *ts < e) {
            if state {
                integral += ts - t;
            }
            t = ts;
            state = occ;
        }
        if state {
            integral += e - t;
        }
        for (i, &(ts, occ)) in readings.iter().enumerate() {
            if ts >= s && ts < e {
                count += 1;
                let before = if i == 0 { false } else { readings[i - 1].1 };
                match (before, occ) {
                    (false, true) => arrivals += 1,
                    (true, false) => departures += 1,
                    _ => {}
                }
            }
        }
        if state_at(readings, e - 1) {
            occupied_end += 1;
        }
    }
    let capacity = registered.unwrap_or(seen_before_end);
    let avg = integral as f64 / (e - s) as f64;
    OccupancyWindow {
        lot_id: lot.to_owned(),
        window_start: s,
        window_end: e,
        capacity,
        occupied_avg: avg,
        occupancy_ratio: if capacity == 0 {
            0.0
        } else {
            avg / f64::from(capacity)
        },
        occupied_end,
        arrivals,
        departures,
        readings: count,
        source: WindowSource::Speed,
    }
}
