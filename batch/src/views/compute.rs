//! The batch views of one UTC day (docs/contract.md §4.1), with the shared [`LotEngine`]: each lot starts the
//! day with the state its spaces carried over midnight and ends it with the state it carries into
//! the next day. Pure.

use std::collections::BTreeMap;

use fjord_core::model::{OccupancyWindow, WindowSource};
use fjord_core::occupancy::LotEngine;
use fjord_core::time::TimestampMs;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// A reading as the views need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayReading {
    /// Lot.
    pub lot_id: String,
    /// Space.
    pub space_id: String,
    /// Event time.
    pub ts: TimestampMs,
    /// State at `ts`.
    pub occupied: bool,
}

/// A space's last reading as of the end of a day: what it carries into the next.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpaceEnd {
    /// Lot.
    pub lot_id: String,
    /// Space.
    pub space_id: String,
    /// Event time of its last reading.
    pub ts: TimestampMs,
    /// Its state since then.
    pub occupied: bool,
}

/// The views of a day.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DayViews {
    /// The windows of each size (ms), by lot then start.
    pub windows: BTreeMap<i64, Vec<OccupancyWindow>>,
    /// The state at the end of the day; `None` when the day was computed only up to a
    /// high-water mark inside it.
    pub end: Option<Vec<SpaceEnd>>,
}

/// Computes the windows of `day` (days since the epoch) that end at or before `until`, from the
/// state `carried` in from the previous day and the day's `readings` (any order, duplicates
/// allowed), for windows of each of `sizes_ms`. `capacity` gives registered capacities.
pub fn compute_day(
    day: i32,
    until: TimestampMs,
    carried: &[SpaceEnd],
    readings: &[DayReading],
    capacity: &dyn Fn(&str) -> Option<u32>,
    sizes_ms: &[i64],
) -> DayViews {
    let start = i64::from(day) * DAY_MS;
    let end = start + DAY_MS;
    let until = until.min(end);
    let mut seeds: BTreeMap<&str, Vec<(String, TimestampMs, bool)>> = BTreeMap::new();
    for s in carried {
        seeds
            .entry(s.lot_id.as_str())
            .or_default()
            .push((s.space_id.clone(), s.ts, s.occupied));
    }
    let mut engines: BTreeMap<String, LotEngine> = seeds
        .into_iter()
        .map(|(lot, spaces)| {
            (
                lot.to_owned(),
                LotEngine::seeded(lot, capacity(lot), sizes_ms, start, spaces),
            )
        })
        .collect();
    for r in readings {
        if r.ts < start || r.ts >= end {
            continue;
        }
        let engine = engines
            .entry(r.lot_id.clone())
            .or_insert_with(|| LotEngine::new(r.lot_id.clone(), capacity(&r.lot_id), sizes_ms, 0));
        engine.offer(&r.space_id, r.ts, r.occupied, i64::MIN);
    }
    let mut views = DayViews {
        windows: sizes_ms.iter().map(|s| (*s, Vec::new())).collect(),
        end: None,
    };
    let mut out = Vec::new();
    for engine in engines.values_mut() {
        out.clear();
        engine.advance(until, &mut out);
        for mut w in out.drain(..) {
            w.source = WindowSource::Batch;
            views
                .windows
                .entry(w.window_end - w.window_start)
                .or_default()
                .push(w);
        }
    }
    if until == end {
        let mut state: Vec<SpaceEnd> = engines
            .values()
            .flat_map(|e| {
                e.spaces()
                    .filter(|(_, s)| s.last_ts != i64::MIN)
                    .map(|(space, s)| SpaceEnd {
                        lot_id: e.lot_id().to_owned(),
                        space_id: space.to_owned(),
                        ts: s.last_ts,
                        occupied: s.occupied,
                    })
            })
            .collect();
        state.sort();
        views.end = Some(state);
    }
    views
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_core::occupancy::reference::{self, RefReading};
    use proptest::prelude::*;

    const MIN: i64 = 60_000;
    const SIZES: [i64; 2] = [MIN, 10 * MIN];

    impl DayViews {
        fn of(&self, size: i64) -> &[OccupancyWindow] {
            self.windows.get(&size).map_or(&[], Vec::as_slice)
        }
    }

    fn r(lot: &str, space: &str, ts: TimestampMs, occupied: bool) -> DayReading {
        DayReading {
            lot_id: lot.into(),
            space_id: space.into(),
            ts,
            occupied,
        }
    }

    /// Day by day with carried state must equal one pass of the reference of docs/contract.md §4.1 over all days.
    fn check_against_reference(readings: &[DayReading], days: i32, registered: bool) {
        let cap = |lot: &str| (registered && lot == "L1").then_some(4);
        let mut carried = Vec::new();
        let mut w1m = Vec::new();
        let mut w10m = Vec::new();
        for day in 0..days {
            let v = compute_day(day, i64::MAX, &carried, readings, &cap, &SIZES);
            w1m.extend(v.of(MIN).to_vec());
            w10m.extend(v.of(10 * MIN).to_vec());
            carried = v.end.expect("a whole day has an end state");
        }
        let refs: Vec<RefReading> = readings
            .iter()
            .map(|r| RefReading {
                lot_id: r.lot_id.clone(),
                space_id: r.space_id.clone(),
                ts: r.ts,
                occupied: r.occupied,
            })
            .collect();
        let until = i64::from(days) * DAY_MS;
        for (size, got) in [(SIZES[0], w1m), (SIZES[1], w10m)] {
            let mut want = reference::windows(&refs, &[size], until, &cap);
            for w in &mut want {
                w.source = WindowSource::Batch;
            }
            let key = |w: &OccupancyWindow| (w.lot_id.clone(), w.window_start);
            let mut got = got;
            got.sort_by_key(key);
            want.sort_by_key(key);
            assert_eq!(got.len(), want.len(), "size {size}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.lot_id, w.lot_id);
                assert_eq!(g.window_start, w.window_start);
                assert_eq!(
                    (
                        g.capacity,
                        g.occupied_end,
                        g.arrivals,
                        g.departures,
                        g.readings
                    ),
                    (
                        w.capacity,
                        w.occupied_end,
                        w.arrivals,
                        w.departures,
                        w.readings
                    ),
                    "{g:?} vs {w:?}"
                );
                assert!(
                    (g.occupied_avg - w.occupied_avg).abs() < 1e-9,
                    "{g:?} vs {w:?}"
                );
            }
        }
    }

    #[test]
    fn state_carries_across_midnight() {
        let before_midnight = DAY_MS - 30_000;
        let readings = vec![
            r("L1", "S1", before_midnight, true),
            r("L1", "S2", 1_000, true),
            r("L1", "S2", DAY_MS + 90_000, false),
        ];
        let day0 = compute_day(0, i64::MAX, &[], &readings, &|_| None, &SIZES);
        let end = day0.end.clone().unwrap();
        assert_eq!(end.len(), 2);
        let day1 = compute_day(1, i64::MAX, &end, &readings, &|_| None, &SIZES);
        // The first minute of day 1: both spaces occupied all along, no reading in it.
        let first = &day1.of(MIN)[0];
        assert_eq!(first.window_start, DAY_MS);
        assert_eq!(
            (first.occupied_avg, first.readings, first.capacity),
            (2.0, 0, 2)
        );
        // S2 leaves at 00:01:30: departure in the second minute, avg 1.5.
        let second = &day1.of(MIN)[1];
        assert_eq!((second.departures, second.occupied_avg), (1, 1.5));
        assert_eq!(day1.of(MIN).len(), 1440);
        assert_eq!(day1.of(10 * MIN).len(), 144);
        check_against_reference(&readings, 3, false);
    }

    #[test]
    fn a_lot_starts_at_its_first_reading_and_stops_at_the_high_water_mark() {
        let readings = vec![r("L2", "S1", 10 * 60_000 + 5, true)];
        let v = compute_day(0, 30 * 60_000, &[], &readings, &|_| None, &SIZES);
        assert_eq!(v.of(MIN).first().unwrap().window_start, 10 * 60_000);
        assert_eq!(v.of(MIN).last().unwrap().window_end, 30 * 60_000);
        assert_eq!(v.of(10 * MIN).len(), 2);
        assert!(v.end.is_none(), "a partial day has no end state");
    }

    #[test]
    fn late_and_duplicate_readings_count_once() {
        let readings = vec![
            r("L1", "S1", 120_000, true),
            r("L1", "S1", 60_000, false),
            r("L1", "S1", 120_000, true),
        ];
        let v = compute_day(0, 180_000, &[], &readings, &|_| None, &SIZES);
        let readings_per_window: Vec<u64> = v.of(MIN).iter().map(|w| w.readings).collect();
        assert_eq!(readings_per_window, [1, 1]);
        assert_eq!(v.of(MIN)[1].arrivals, 1);
    }

    #[test]
    fn every_configured_size_gets_its_windows_and_only_those() {
        let readings = vec![
            r("L1", "S1", 30 * MIN, true),
            r("L1", "S1", 90 * MIN, false),
        ];
        let sizes = [5 * MIN, 60 * MIN];
        let v = compute_day(0, DAY_MS, &[], &readings, &|_| None, &sizes);
        assert_eq!(v.windows.keys().copied().collect::<Vec<_>>(), sizes);
        let hours = v.of(60 * MIN);
        assert_eq!(hours.len(), 24);
        assert_eq!(
            (
                hours[0].occupied_avg,
                hours[1].occupied_avg,
                hours[1].departures
            ),
            (0.5, 0.5, 1)
        );
        assert_eq!(
            v.of(5 * MIN).len(),
            24 * 12 - 6,
            "from the first reading's window on"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn day_by_day_equals_the_reference(
            raw in proptest::collection::vec((0u8..2, 0u8..4, 0i64..(3 * DAY_MS), any::<bool>()), 0..60),
            registered in any::<bool>(),
        ) {
            let readings: Vec<DayReading> = raw
                .into_iter()
                .map(|(l, s, ts, o)| r(&format!("L{l}"), &format!("S{s}"), ts, o))
                .collect();
            check_against_reference(&readings, 3, registered);
        }
    }
}
