//! The engine on hand-computed cases, and against the reference on random inputs.

use proptest::prelude::*;

use super::reference::{self, RefReading};
use super::*;
use crate::model::OccupancyWindow;

const T0: i64 = 1_795_255_200_000; // 2026-11-21T10:00:00Z
const S: i64 = 1000;
const MIN: i64 = 60 * S;

fn engine(sizes: &[i64]) -> LotEngine {
    LotEngine::new("L1", Some(10), sizes, 10 * MIN)
}

fn run(e: &mut LotEngine, readings: &[(&str, i64, bool)], to: i64) -> Vec<OccupancyWindow> {
    for (space, ts, occ) in readings {
        assert_eq!(e.offer(space, *ts, *occ, i64::MIN), Offer::Accepted);
    }
    let mut out = Vec::new();
    e.advance(to, &mut out);
    out
}

#[test]
fn a_space_occupied_90_s_across_a_minute_boundary() {
    let mut e = engine(&[MIN]);
    let out = run(
        &mut e,
        &[("S1", T0 + 30 * S, true), ("S1", T0 + 120 * S, false)],
        T0 + 3 * MIN,
    );
    assert_eq!(out.len(), 3);
    let w = |i: usize| &out[i];
    assert_eq!((w(0).window_start, w(0).window_end), (T0, T0 + MIN));
    assert_eq!(w(0).occupied_avg, 0.5);
    assert_eq!(
        (
            w(0).arrivals,
            w(0).departures,
            w(0).readings,
            w(0).occupied_end
        ),
        (1, 0, 1, 1)
    );
    assert_eq!(w(1).occupied_avg, 1.0);
    assert_eq!(
        (
            w(1).arrivals,
            w(1).departures,
            w(1).readings,
            w(1).occupied_end
        ),
        (0, 0, 0, 1)
    );
    assert_eq!(w(2).occupied_avg, 0.0);
    assert_eq!(
        (
            w(2).arrivals,
            w(2).departures,
            w(2).readings,
            w(2).occupied_end
        ),
        (0, 1, 1, 0)
    );
    assert_eq!(w(0).occupancy_ratio, 0.05);
    assert_eq!(w(0).capacity, 10);
}

#[test]
fn quiet_windows_are_emitted_with_the_carried_state() {
    let mut e = engine(&[MIN, 10 * MIN]);
    let out = run(
        &mut e,
        &[("S1", T0, true), ("S2", T0 + 15 * S, true)],
        T0 + 10 * MIN,
    );
    let minutes: Vec<_> = out
        .iter()
        .filter(|w| w.window_end - w.window_start == MIN)
        .collect();
    assert_eq!(minutes.len(), 10);
    for w in &minutes[1..] {
        assert_eq!(
            (w.occupied_avg, w.readings, w.arrivals, w.occupied_end),
            (2.0, 0, 0, 2)
        );
    }
    assert_eq!(minutes[0].occupied_avg, 1.75);
    let ten: Vec<_> = out
        .iter()
        .filter(|w| w.window_end - w.window_start == 10 * MIN)
        .collect();
    assert_eq!(ten.len(), 1);
    assert_eq!(
        ten[0].occupied_avg,
        (MIN * 10 + (10 * MIN - 15 * S)) as f64 / (10 * MIN) as f64
    );
    assert_eq!((ten[0].arrivals, ten[0].readings), (2, 2));
}

#[test]
fn duplicates_count_once_before_and_after_they_are_applied() {
    let mut e = engine(&[MIN]);
    assert_eq!(e.offer("S1", T0 + S, true, i64::MIN), Offer::Accepted);
    assert_eq!(e.offer("S1", T0 + S, true, i64::MIN), Offer::Duplicate);
    let mut out = Vec::new();
    e.advance(T0 + 30 * S, &mut out);
    // the original is applied now; a late duplicate is still recognised as one
    assert_eq!(e.offer("S1", T0 + S, true, T0 + 30 * S), Offer::Duplicate);
    assert_eq!(e.offer("S1", T0 + 2 * S, false, T0 + 30 * S), Offer::Late);
    e.advance(T0 + MIN, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].readings, out[0].arrivals), (1, 1));
}

#[test]
fn heartbeats_are_not_transitions_and_first_free_reading_is_not_a_departure() {
    let mut e = engine(&[MIN]);
    let out = run(
        &mut e,
        &[
            ("S1", T0, false),
            ("S1", T0 + S, false),
            ("S2", T0 + 2 * S, true),
            ("S2", T0 + 3 * S, true),
        ],
        T0 + MIN,
    );
    assert_eq!(
        (out[0].arrivals, out[0].departures, out[0].readings),
        (1, 0, 4)
    );
}

#[test]
fn out_of_order_within_bounds_gives_the_sorted_result() {
    let readings = [
        ("S1", T0 + 50 * S, false),
        ("S1", T0 + 10 * S, true),
        ("S2", T0 + 20 * S, true),
    ];
    let mut a = engine(&[MIN]);
    let out_a = run(&mut a, &readings, T0 + 2 * MIN);
    let mut sorted = readings;
    sorted.sort_by_key(|r| r.1);
    let mut b = engine(&[MIN]);
    let out_b = run(&mut b, &sorted, T0 + 2 * MIN);
    assert_eq!(out_a, out_b);
    assert_eq!(out_a[0].occupied_avg, (40 * S + 40 * S) as f64 / MIN as f64);
}

#[test]
fn late_readings_change_nothing() {
    let mut e = engine(&[MIN]);
    let mut out = run(&mut e, &[("S1", T0 + S, true)], T0 + MIN + 5 * S);
    let before = out.clone();
    assert_eq!(e.offer("S2", T0 + 30 * S, true, T0 + MIN), Offer::Late);
    e.advance(T0 + MIN + 6 * S, &mut out);
    assert_eq!(out, before, "nothing more closed, nothing changed");
}

#[test]
fn unregistered_lots_count_the_spaces_seen() {
    let mut e = LotEngine::new("L9", None, &[MIN], MIN);
    let out = run(
        &mut e,
        &[("S1", T0, true), ("S2", T0 + MIN + S, true)],
        T0 + 2 * MIN,
    );
    assert_eq!((out[0].capacity, out[1].capacity), (1, 2));
    assert_eq!(out[0].occupancy_ratio, 1.0);
}

#[test]
fn the_state_survives_serialization() {
    let mut e = engine(&[MIN, 10 * MIN]);
    run(&mut e, &[("S1", T0 + S, true)], T0 + 30 * S);
    e.offer("S2", T0 + 40 * S, true, T0 + 30 * S);
    let bytes = postcard::to_allocvec(&e).unwrap();
    let mut back: LotEngine = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, e);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    e.advance(T0 + 20 * MIN, &mut a);
    back.advance(T0 + 20 * MIN, &mut b);
    assert_eq!(a, b);
}

#[test]
fn held_readings_written_apart_restore_the_same_engine() {
    let mut e = LotEngine::new("L1", Some(10), &[MIN], 2 * MIN);
    let mut out = Vec::new();
    for i in 0..600 {
        let ts = T0 + i * S;
        e.offer(&format!("S{}", i % 7), ts, i % 3 == 0, i64::MIN);
        e.advance(ts - MIN, &mut out);
    }
    assert!(e.recent_len() > 0 && e.pending_len() > 0);
    // in any order, and with applied readings older than the dedup horizon among them
    let mut entries = e.held_between(T0 - 10 * MIN, i64::MAX);
    entries.reverse();
    entries.extend([(T0, 0, false)]);
    let recent = e.recent_len();
    let mut back = e.clone();
    let held = back.take_held();
    assert_eq!(back.held_between(i64::MIN, i64::MAX), vec![]);
    let bare = back.clone();
    back.restore_held(entries, recent).unwrap();
    assert_eq!(back, e);
    assert_eq!(back.oldest_held(), Some(T0 + 600 * S - 3 * MIN - S));
    let mut put = bare.clone();
    put.put_held(held);
    assert_eq!(put, e);
    // what does not fit the engine is refused
    let mut b = bare.clone();
    assert!(
        b.restore_held(vec![(T0, 99, true)], 0)
            .unwrap_err()
            .contains("space #99")
    );
    let mut b = bare;
    assert!(
        b.restore_held(vec![], recent)
            .unwrap_err()
            .contains("applied readings")
    );
}

/// (readings as (space, ts offset, occupied), cut points, window sizes)
type Case = (Vec<(u8, i64, bool)>, Vec<usize>, Vec<i64>);

fn arb_case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((0u8..6, 0i64..(25 * MIN), any::<bool>()), 0..60),
        prop::collection::vec(0usize..80, 0..6),
        prop::sample::subsequence(vec![S * 10, MIN, 5 * MIN, 10 * MIN], 1..=3),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// For random readings (with duplicates) offered in random order and the frontier moved at
    /// random points, the engine's windows equal the reference's over the deduplicated input.
    #[test]
    fn incremental_windows_equal_the_reference((raw, cuts, sizes) in arb_case()) {
        let mut readings: Vec<RefReading> = raw.iter().map(|(s, ts, o)| RefReading {
            lot_id: "L1".into(), space_id: format!("S{s}"), ts: T0 + ts, occupied: *o,
        }).collect();
        // duplicates: copies of some readings
        let dups: Vec<RefReading> = readings.iter().step_by(4).cloned().collect();
        readings.extend(dups);
        let until = T0 + 30 * MIN;
        let mut e = LotEngine::new("L1", None, &sizes, 60 * MIN);
        let mut out = Vec::new();
        // offer everything (order as generated: not sorted), moving the frontier at the cut points
        // only as far as the earliest reading still to come allows
        let mut cut_points: Vec<usize> = cuts.iter().map(|c| c % (readings.len() + 1)).collect();
        cut_points.sort_unstable();
        let mut next_cut = cut_points.into_iter().peekable();
        for (i, r) in readings.iter().enumerate() {
            while next_cut.peek() == Some(&i) {
                next_cut.next();
                let earliest_to_come = readings[i..].iter().map(|r| r.ts).min().unwrap_or(until);
                e.advance(earliest_to_come, &mut out);
            }
            let offer = e.offer(&r.space_id, r.ts, r.occupied, i64::MIN);
            prop_assert_ne!(offer, Offer::Late);
        }
        e.advance(until, &mut out);
        let mut expected = reference::windows(&readings, &sizes, until, &|_| None);
        let key = |w: &OccupancyWindow| (w.window_end - w.window_start, w.window_start);
        out.sort_by_key(key);
        expected.sort_by_key(key);
        prop_assert_eq!(out, expected);
    }
}
