use std::collections::BTreeMap;

use super::evaluate::evaluate;
use super::learn::{Series, WindowObs, learn, median, persistence, quantile};
use super::predict::{Observed, predict, steps_within};
use super::*;

/// 2026-11-02T00:00:00Z, a Monday.
const MONDAY: TimestampMs = 1_793_577_600_000;
const DAY: i64 = 86_400_000;

#[test]
fn slots_count_from_monday_midnight_utc() {
    assert_eq!(slot_of_week(MONDAY), 0);
    assert_eq!(slot_of_week(MONDAY + STEP_MS - 1), 0);
    assert_eq!(slot_of_week(MONDAY + STEP_MS), 1);
    assert_eq!(slot_of_week(MONDAY - 1), SLOTS_PER_WEEK - 1);
    assert_eq!(
        slot_of_week(MONDAY + 2 * DAY + 12 * 3_600_000),
        2 * 144 + 72
    );
    assert_eq!(floor_step(MONDAY + 61_000), MONDAY);
}

#[test]
fn medians_and_quantiles() {
    assert_eq!(median(&mut []), None);
    assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    assert_eq!(quantile(&mut [0.0, 10.0], 0.1), Some(1.0));
    assert_eq!(quantile(&mut [5.0], 0.9), Some(5.0));
}

/// A deterministic pseudo-random sequence in [-1, 1).
fn noise(i: u64) -> f64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// A lot busy on weekday afternoons, quiet at night and at weekends, with a deviation that
/// follows an AR(1) process of rate 0.95 per step, over `weeks` weeks.
fn series(weeks: i64, holiday: Option<i64>) -> Series {
    let mut windows = BTreeMap::new();
    let mut dev = 0.0;
    for i in 0..weeks * 7 * 144 {
        let t = MONDAY + i * STEP_MS;
        let day = i / 144;
        let hour = (i % 144) as f64 / 6.0;
        let weekend = day % 7 >= 5 || holiday == Some(day);
        let peak = if weekend { 0.25 } else { 0.85 };
        let base = 0.1 + (peak - 0.1) * (-((hour - 14.0) / 4.0).powi(2)).exp();
        dev = 0.95 * dev + 0.03 * noise(i as u64);
        let ratio = (base + dev).clamp(0.0, 1.0);
        windows.insert(
            t,
            WindowObs {
                ratio,
                end_ratio: ratio,
                capacity: 100,
            },
        );
    }
    BTreeMap::from([("L1".to_owned(), windows)])
}

#[test]
fn the_profile_learns_the_weekly_shape_and_ignores_a_holiday() {
    // three weeks; the second week's Wednesday (day 9) is a holiday that looks like a Sunday
    let s = series(3, Some(9));
    let p = learn(&s, MONDAY, MONDAY + 21 * DAY);
    let lot = &p.lots["L1"];
    assert_eq!(lot.expected.len(), SLOTS_PER_WEEK);
    assert_eq!(lot.capacity, 100);
    let wed_2pm = 2 * 144 + 84;
    let sun_2pm = 6 * 144 + 84;
    let wed_3am = 2 * 144 + 18;
    assert!(lot.expected[wed_2pm] > 0.7, "{}", lot.expected[wed_2pm]);
    assert!(lot.expected[sun_2pm] < 0.35, "{}", lot.expected[sun_2pm]);
    assert!(lot.expected[wed_3am] < 0.2);
    assert_eq!(lot.weeks[wed_2pm], 3);
    assert!(lot.lower.iter().all(|l| *l <= 0.0) && lot.upper.iter().all(|u| *u >= 0.0));
    assert!(
        (0.85..=0.999).contains(&lot.persistence),
        "{}",
        lot.persistence
    );
    assert_eq!(p.model_version, Profiles::version_of(MONDAY + 21 * DAY));
}

#[test]
fn a_lot_with_gaps_still_gets_a_whole_week_and_a_short_history_none() {
    // two days only: the weekly slots fall back to the same time of day
    let s = series(1, None);
    let two_days = learn(&s, MONDAY, MONDAY + 2 * DAY);
    let lot = &two_days.lots["L1"];
    // Saturday 14:00 had no data: it takes the weekday value of 14:00
    assert!(lot.expected[5 * 144 + 84] > 0.7);
    assert_eq!(lot.weeks[5 * 144 + 84], 0);
    let hours = learn(&s, MONDAY, MONDAY + 3_600_000);
    assert!(hours.lots.is_empty());
}

#[test]
fn the_deviation_fades_and_the_band_widens_with_the_horizon() {
    let s = series(3, None);
    let p = learn(&s, MONDAY, MONDAY + 21 * DAY);
    let lot = &p.lots["L1"];
    // Monday 14:05 of week 4, observed 0.2 below the profile
    let as_of = MONDAY + 21 * DAY + 14 * 3_600_000 + 300_000;
    let expected_now = lot.expected[slot_of_week(as_of)];
    let obs = Observed {
        at: as_of,
        ratio: expected_now - 0.2,
    };
    let steps: Vec<_> = predict(lot, as_of, Some(obs), HORIZON_STEPS).collect();
    assert_eq!(steps.len(), 144);
    assert_eq!(steps[0].target_time, floor_step(as_of));
    assert_eq!(steps[0].horizon_ms, STEP_MS);
    assert_eq!(steps[143].horizon_ms, 24 * 3_600_000);
    let lift = |k: usize| lot.expected[slot_of_week(steps[k].target_time)] - steps[k].ratio;
    assert!(lift(0) > 0.15 && lift(0) <= 0.2, "{}", lift(0));
    assert!(lift(5) < lift(0) && lift(17) < lift(5));
    assert!(lift(143).abs() < 0.01);
    let width = |k: usize| steps[k].upper - steps[k].lower;
    assert!(width(0) < width(17));
    for s in &steps {
        assert!(s.lower <= s.ratio && s.ratio <= s.upper);
        assert!((0.0..=1.0).contains(&s.lower) && (0.0..=1.0).contains(&s.upper));
    }
    // without an observation: the profile itself
    let plain: Vec<_> = predict(lot, as_of, None, 3).collect();
    assert_eq!(
        plain[1].ratio,
        lot.expected[slot_of_week(plain[1].target_time)].clamp(0.0, 1.0)
    );
    // an old observation counts less than a fresh one
    let stale = Observed {
        at: as_of - 6 * STEP_MS,
        ratio: lot.expected[slot_of_week(as_of - 6 * STEP_MS)] - 0.2,
    };
    let from_stale: Vec<_> = predict(lot, as_of, Some(stale), 1).collect();
    assert!(from_stale[0].ratio > steps[0].ratio);
}

#[test]
fn steps_within_a_horizon_include_the_current_window() {
    // at 10:00, within 30 minutes: the windows of 10:00, 10:10 and 10:20
    assert_eq!(steps_within(MONDAY, 30 * 60_000), 3);
    // at 10:05: also the one of 10:30, which starts before 10:35
    assert_eq!(steps_within(MONDAY + 300_000, 30 * 60_000), 4);
    assert_eq!(steps_within(MONDAY + 300_000, 0), 1);
    assert_eq!(steps_within(MONDAY, 0), 1);
    assert_eq!(steps_within(MONDAY, 24 * 3_600_000), HORIZON_STEPS);
}

#[test]
fn persistence_of_a_known_process() {
    let mut dev = 0.0;
    let timeline: Vec<Option<f64>> = (0..20_000)
        .map(|i| {
            dev = 0.9 * dev + noise(i);
            Some(dev)
        })
        .collect();
    let p = persistence(&timeline);
    assert!((p - 0.9).abs() < 0.03, "{p}");
    assert_eq!(persistence(&[None, Some(1.0)]), 0.9);
}

#[test]
fn the_backtest_beats_both_baselines_on_patterned_data() {
    let s = series(5, Some(16));
    let split = MONDAY + 28 * DAY;
    let e = evaluate(&s, MONDAY, split, &[1, 6, 18, 144]);
    assert_eq!(e.lots, 1);
    assert!(e.beats_baselines(), "{e}");
    assert!(e.scores.iter().all(|s| s.n > 800));
    let table = e.to_string();
    assert!(
        table.contains("| 10 min |") && table.contains("| 24 h |"),
        "{table}"
    );
}
