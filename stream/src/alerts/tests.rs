//! Every rule and transition on hand-made events: hysteresis both ways, `for`, repeats, silence by
//! watermark with no traffic at all, presence, and the determinism of ids.

use fjord_core::config::{AlertsConfig, RuleInput, UserRule as UserRuleConfig};
use fjord_core::duration::Duration;
use fjord_core::lots::LotRecord;
use fjord_core::model::{Alert, AlertStatus, OccupancyWindow, Reading, TsSource, WindowSource};
use fjord_core::occupancy::{LotEngine, Offer};

use super::*;

const T0: i64 = 1_795_255_200_000; // 2026-11-21T10:00:00Z
const S: i64 = 1000;
const MIN: i64 = 60 * S;

struct Lot {
    rules: Rules,
    engine: LotEngine,
    alerts: LotAlerts,
    record: LotRecord,
}

impl Lot {
    fn new(cfg: AlertsConfig, capacity: u32) -> Self {
        Self {
            rules: Rules::from_config(&cfg, &[MIN]).unwrap(),
            engine: LotEngine::new("L1", Some(capacity), &[MIN], 2 * MIN),
            alerts: LotAlerts::default(),
            record: LotRecord {
                lot_id: "L1".into(),
                name: "Central".into(),
                zone: "centre".into(),
                capacity,
                lat: None,
                lon: None,
            },
        }
    }

    fn reading(&mut self, space: &str, ts: i64, occupied: bool, battery: Option<u8>) -> Vec<Alert> {
        assert_eq!(
            self.engine.offer(space, ts, occupied, i64::MIN),
            Offer::Accepted
        );
        let r = Reading {
            lot_id: "L1".into(),
            space_id: space.into(),
            ts,
            occupied,
            battery,
            extra: None,
            ts_source: TsSource::Device,
        };
        let mut out = Vec::new();
        self.alerts
            .on_reading(&self.rules, &self.engine, &r, Some(&self.record), &mut out);
        out
    }

    fn watermark(&mut self, wm: i64) -> Vec<Alert> {
        let mut out = Vec::new();
        if self.alerts.next_due(&self.rules) <= wm {
            self.alerts
                .on_watermark(&self.rules, &self.engine, wm, &mut out);
        }
        out
    }
}

fn only(rule: &str) -> AlertsConfig {
    let mut cfg = AlertsConfig::default();
    cfg.lot_full.enabled = rule == "lot_full";
    cfg.sensor_silent.enabled = rule == "sensor_silent";
    cfg.battery_low.enabled = rule == "battery_low";
    cfg.gateway_offline.enabled = rule == "gateway_offline";
    cfg.lot_full_predicted.enabled = rule == "lot_full_predicted";
    cfg
}

fn states(alerts: &[Alert]) -> Vec<(String, AlertStatus, i64)> {
    alerts
        .iter()
        .map(|a| (a.key.clone(), a.status, a.event_time))
        .collect()
}

#[test]
fn lot_full_fires_once_at_the_crossing_and_resolves_once_below_the_lower_threshold() {
    let mut lot = Lot::new(only("lot_full"), 10);
    let mut all = Vec::new();
    // 8 occupied: 0.8, below 0.9
    for i in 0..8 {
        all.extend(lot.reading(&format!("S{i}"), T0 + i * S, true, None));
    }
    assert!(all.is_empty());
    // the 9th occupied space crosses 0.90 on this very reading
    let fired = lot.reading("S8", T0 + 8 * S, true, None);
    assert_eq!(
        states(&fired),
        vec![("lot_full/L1".into(), AlertStatus::Firing, T0 + 8 * S)]
    );
    assert_eq!(fired[0].value, Some(0.9));
    assert_eq!(fired[0].threshold, Some(0.9));
    assert_eq!(fired[0].lot_id.as_deref(), Some("L1"));
    // full, and heartbeats, and between the thresholds (0.85 is impossible with 10; 0.9 ↔ 1.0 ↔ 0.9)
    all.extend(lot.reading("S9", T0 + 9 * S, true, None));
    all.extend(lot.reading("S9", T0 + 10 * S, false, None));
    all.extend(lot.reading("S9", T0 + 11 * S, true, None));
    all.extend(lot.reading("S0", T0 + 12 * S, true, None));
    assert!(all.is_empty(), "no re-send while firing: {all:?}");
    // 1.0 → 0.9 → still firing (hysteresis), → 0.8 resolves
    all.extend(lot.reading("S9", T0 + 13 * S, false, None));
    assert!(all.is_empty(), "0.9 is above the resolve threshold");
    let resolved = lot.reading("S8", T0 + 14 * S, false, None);
    assert_eq!(
        states(&resolved),
        vec![("lot_full/L1".into(), AlertStatus::Resolved, T0 + 14 * S)]
    );
    assert_eq!(resolved[0].started_at, T0 + 8 * S);
    assert_eq!(resolved[0].resolved_at, Some(T0 + 14 * S));
    assert_eq!(resolved[0].threshold, Some(0.8));
    assert_ne!(resolved[0].id, fired[0].id);
    // back up to 0.9 → not yet (0.8 → 0.9 is a new crossing: it fires again, a new alert)
    let again = lot.reading("S8", T0 + 15 * S, true, None);
    assert_eq!(
        states(&again),
        vec![("lot_full/L1".into(), AlertStatus::Firing, T0 + 15 * S)]
    );
    assert_ne!(again[0].id, fired[0].id);
}

#[test]
fn battery_low_has_hysteresis_both_ways_and_ignores_out_of_order_readings() {
    let mut lot = Lot::new(only("battery_low"), 10);
    assert!(
        lot.reading("S1", T0, true, Some(15)).is_empty(),
        "15 is not below 15"
    );
    let fired = lot.reading("S1", T0 + S, true, Some(14));
    assert_eq!(
        states(&fired),
        vec![("battery_low/L1/S1".into(), AlertStatus::Firing, T0 + S)]
    );
    assert_eq!(fired[0].space_id.as_deref(), Some("S1"));
    assert_eq!(fired[0].severity, fjord_core::model::Severity::Info);
    assert!(
        lot.reading("S1", T0 + 2 * S, true, Some(19)).is_empty(),
        "19 < 20: still low"
    );
    assert!(
        lot.reading("S1", T0 + 3 * S, true, Some(12)).is_empty(),
        "firing: not re-sent"
    );
    // an older reading with a good battery arrives late: it is not the space's state now
    assert!(lot.reading("S1", T0 + S / 2, true, Some(90)).is_empty());
    let resolved = lot.reading("S1", T0 + 4 * S, true, Some(20));
    assert_eq!(
        states(&resolved),
        vec![(
            "battery_low/L1/S1".into(),
            AlertStatus::Resolved,
            T0 + 4 * S
        )]
    );
    assert!(
        lot.reading("S1", T0 + 5 * S, true, Some(16)).is_empty(),
        "16 ≥ 15: no new alert"
    );
    assert!(
        lot.reading("S1", T0 + 6 * S, true, None).is_empty(),
        "no battery, no change"
    );
}

#[test]
fn sensor_silent_fires_by_watermark_without_any_traffic_and_resolves_when_the_space_reports() {
    let mut lot = Lot::new(only("sensor_silent"), 10);
    assert!(lot.reading("S1", T0, true, None).is_empty());
    assert!(lot.reading("S2", T0 + 10 * MIN, true, None).is_empty());
    // no reading at all any more: only the watermark moves (idle advance at night)
    assert!(lot.watermark(T0 + 30 * MIN - 1).is_empty());
    let fired = lot.watermark(T0 + 30 * MIN + 500);
    assert_eq!(
        states(&fired),
        vec![(
            "sensor_silent/L1/S1".into(),
            AlertStatus::Firing,
            T0 + 30 * MIN
        )]
    );
    assert!(lot.watermark(T0 + 35 * MIN).is_empty(), "fires once");
    let s2 = lot.watermark(T0 + 41 * MIN);
    assert_eq!(
        states(&s2),
        vec![(
            "sensor_silent/L1/S2".into(),
            AlertStatus::Firing,
            T0 + 40 * MIN
        )]
    );
    let back = lot.reading("S1", T0 + 42 * MIN, false, None);
    assert_eq!(
        states(&back),
        vec![(
            "sensor_silent/L1/S1".into(),
            AlertStatus::Resolved,
            T0 + 42 * MIN
        )]
    );
    assert!(lot.watermark(T0 + 60 * MIN).is_empty());
    let again = lot.watermark(T0 + 72 * MIN);
    assert_eq!(
        states(&again),
        vec![(
            "sensor_silent/L1/S1".into(),
            AlertStatus::Firing,
            T0 + 72 * MIN
        )]
    );
}

#[test]
fn repeat_every_resends_a_firing_alert_by_event_time_with_new_ids() {
    let mut cfg = only("sensor_silent");
    cfg.sensor_silent.repeat_every = Some(Duration::from_mins(10));
    let mut lot = Lot::new(cfg, 10);
    lot.reading("S1", T0, true, None);
    let fired = lot.watermark(T0 + 30 * MIN);
    assert_eq!(fired.len(), 1);
    assert!(lot.watermark(T0 + 39 * MIN).is_empty());
    let r1 = lot.watermark(T0 + 40 * MIN);
    assert_eq!(
        states(&r1),
        vec![(
            "sensor_silent/L1/S1".into(),
            AlertStatus::Firing,
            T0 + 40 * MIN
        )]
    );
    assert_eq!(r1[0].started_at, T0 + 30 * MIN);
    // a jump of 35 minutes sends one repeat, at the latest period boundary
    let r2 = lot.watermark(T0 + 75 * MIN);
    assert_eq!(
        states(&r2),
        vec![(
            "sensor_silent/L1/S1".into(),
            AlertStatus::Firing,
            T0 + 70 * MIN
        )]
    );
    let ids: std::collections::HashSet<_> =
        [&fired[0].id, &r1[0].id, &r2[0].id].into_iter().collect();
    assert_eq!(ids.len(), 3);
}

fn user_rule(name: &str, expr: &str, on: RuleInput, for_: Option<Duration>) -> UserRuleConfig {
    UserRuleConfig {
        name: name.into(),
        expr: expr.into(),
        on,
        window: None,
        per: None,
        for_,
        severity: fjord_core::model::Severity::Critical,
        repeat_every: None,
        labels: [("team".to_owned(), "ops".to_owned())].into(),
    }
}

#[test]
fn a_user_rule_with_for_fires_only_after_holding_that_long_and_a_short_blip_sends_nothing() {
    let mut cfg = only("none");
    cfg.rules.push(user_rule(
        "centre_busy",
        "occupancy_ratio >= 0.5 AND zone = 'centre'",
        RuleInput::Reading,
        Some(Duration::from_mins(5)),
    ));
    let mut lot = Lot::new(cfg, 4);
    assert!(
        !lot.rules.user[0].per_space,
        "no space column: one alert per lot"
    );
    lot.reading("S1", T0, true, None);
    // 0.5 at T0+1s: pending; back to 0.25 after 2 minutes: nothing was ever sent
    assert!(lot.reading("S2", T0 + S, true, None).is_empty());
    assert!(lot.reading("S2", T0 + 2 * MIN, false, None).is_empty());
    assert!(lot.watermark(T0 + 10 * MIN).is_empty());
    // holds again from T0+11m, still holds at a reading 6 minutes later: fires at since + 5m
    assert!(lot.reading("S2", T0 + 11 * MIN, true, None).is_empty());
    let fired = lot.reading("S3", T0 + 17 * MIN, true, None);
    assert_eq!(
        states(&fired),
        vec![("centre_busy/L1".into(), AlertStatus::Firing, T0 + 16 * MIN)]
    );
    assert_eq!(fired[0].labels.get("team").map(String::as_str), Some("ops"));
    let resolved = lot.reading("S3", T0 + 18 * MIN, false, None);
    assert!(resolved.is_empty(), "0.5 still holds");
    lot.reading("S2", T0 + 19 * MIN, false, None);
    // with no further reading, the watermark alone fires a pending alert when `for` has elapsed
    lot.reading("S1", T0 + 20 * MIN, true, None);
    let mut with_wm = lot.reading("S4", T0 + 21 * MIN, true, None);
    assert!(with_wm.is_empty(), "pending: {with_wm:?}");
    with_wm = lot.watermark(T0 + 26 * MIN);
    // it resolved at 19m (0.25) and became pending again at 21m (0.5): fires at 26m
    assert_eq!(
        states(&with_wm),
        vec![("centre_busy/L1".into(), AlertStatus::Firing, T0 + 26 * MIN)]
    );
}

#[test]
fn a_user_rule_on_space_columns_is_per_space_and_a_window_rule_sees_the_window() {
    let mut cfg = only("none");
    cfg.rules.push(user_rule(
        "no_battery",
        "battery IS NULL AND occupied",
        RuleInput::Reading,
        None,
    ));
    cfg.rules.push(user_rule(
        "busy_minute",
        "arrivals >= 2 AND window_minutes = 1",
        RuleInput::Window,
        None,
    ));
    let mut lot = Lot::new(cfg, 4);
    assert!(lot.rules.user[0].per_space);
    let a = lot.reading("S1", T0, true, None);
    assert_eq!(
        states(&a),
        vec![("no_battery/L1/S1".into(), AlertStatus::Firing, T0)]
    );
    let b = lot.reading("S1", T0 + S, true, Some(50));
    assert_eq!(
        states(&b),
        vec![("no_battery/L1/S1".into(), AlertStatus::Resolved, T0 + S)]
    );
    let window = |arrivals| OccupancyWindow {
        lot_id: "L1".into(),
        window_start: T0,
        window_end: T0 + MIN,
        capacity: 4,
        occupied_avg: 1.0,
        occupancy_ratio: 0.25,
        occupied_end: 1,
        arrivals,
        departures: 0,
        readings: 3,
        source: WindowSource::Speed,
    };
    let mut out = Vec::new();
    lot.alerts
        .on_window(&lot.rules, &window(1), Some(&lot.record), &mut out);
    assert!(out.is_empty());
    lot.alerts
        .on_window(&lot.rules, &window(2), Some(&lot.record), &mut out);
    assert_eq!(
        states(&out),
        vec![("busy_minute/L1".into(), AlertStatus::Firing, T0 + MIN)]
    );
}

#[test]
fn gateway_offline_follows_presence_and_skips_replayed_records() {
    let rules = Rules::from_config(&only("gateway_offline"), &[MIN]).unwrap();
    let mut p = PresenceState::default();
    let mut out = Vec::new();
    let rec = |status: &str, ts: &str| {
        format!(r#"{{"gateway_id":"gw1","status":"{status}","ts":"{ts}"}}"#)
    };
    p.process(
        &rules,
        0,
        rec("online", "2026-11-21T10:00:00.000Z").as_bytes(),
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty());
    p.process(
        &rules,
        1,
        rec("offline", "2026-11-21T10:05:00.000Z").as_bytes(),
        &mut out,
    )
    .unwrap();
    p.process(
        &rules,
        2,
        rec("offline", "2026-11-21T10:06:00.000Z").as_bytes(),
        &mut out,
    )
    .unwrap();
    assert_eq!(
        states(&out),
        vec![(
            "gateway_offline/gw1".into(),
            AlertStatus::Firing,
            T0 + 5 * MIN
        )]
    );
    assert_eq!(out[0].severity, fjord_core::model::Severity::Critical);
    // replayed after a restore: skipped
    let restored = PresenceState::decode(&p.encode()).unwrap();
    assert_eq!(restored, p);
    let mut again = Vec::new();
    assert!(
        !p.process(
            &rules,
            2,
            rec("online", "2026-11-21T10:07:00.000Z").as_bytes(),
            &mut again
        )
        .unwrap()
    );
    p.process(
        &rules,
        3,
        rec("online", "2026-11-21T10:07:00.000Z").as_bytes(),
        &mut again,
    )
    .unwrap();
    assert_eq!(
        states(&again),
        vec![(
            "gateway_offline/gw1".into(),
            AlertStatus::Resolved,
            T0 + 7 * MIN
        )]
    );
    let err = p.process(&rules, 4, b"garbage", &mut again).unwrap_err();
    assert!(err.contains("not a presence record"), "{err}");
}

#[test]
fn ids_are_a_function_of_the_change_so_a_replay_repeats_them() {
    let run = || {
        let mut lot = Lot::new(AlertsConfig::default(), 2);
        let mut all = lot.reading("S1", T0, true, Some(10));
        all.extend(lot.reading("S2", T0 + S, true, Some(50)));
        all.extend(lot.watermark(T0 + 31 * MIN));
        all
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert_eq!(
        states(&a),
        vec![
            ("battery_low/L1/S1".into(), AlertStatus::Firing, T0),
            ("lot_full/L1".into(), AlertStatus::Firing, T0 + S),
            (
                "sensor_silent/L1/S1".into(),
                AlertStatus::Firing,
                T0 + 30 * MIN
            ),
            (
                "sensor_silent/L1/S2".into(),
                AlertStatus::Firing,
                T0 + 30 * MIN + S
            ),
        ]
    );
    let json = serde_json::to_string(&a[1]).unwrap();
    assert!(
        json.starts_with(r#"{"id":""#) && json.contains(r#","key":"lot_full/L1","rule":"lot_full","status":"firing","severity":"warning","lot_id":"L1","space_id":null,"gateway_id":null,"value":1.0,"threshold":0.9,"started_at":"2026-11-21T10:00:01.000Z","resolved_at":null,"event_time":"2026-11-21T10:00:01.000Z","labels":{}}"#),
        "{json}"
    );
}

/// A profile of L1 (capacity 10): 30 % all week, 100 % from 20 to 60 minutes after T0.
fn rush_at_t0_plus_20min() -> fjord_core::forecast::SharedProfiles {
    use fjord_core::forecast::{LotProfile, Profiles, SLOTS_PER_WEEK, STEP_MS, slot_of_week};
    let mut expected = vec![0.3; SLOTS_PER_WEEK];
    for k in 2..6 {
        expected[slot_of_week(T0 + k * STEP_MS)] = 1.0;
    }
    let lot = LotProfile {
        lot_id: "L1".into(),
        capacity: 10,
        expected,
        lower: vec![-0.1; SLOTS_PER_WEEK],
        upper: vec![0.1; SLOTS_PER_WEEK],
        weeks: vec![3; SLOTS_PER_WEEK],
        persistence: 0.9,
    };
    let shared = fjord_core::forecast::SharedProfiles::default();
    shared.set(Profiles {
        model_version: Profiles::version_of(T0 - 86_400_000),
        trained_through: T0 - 86_400_000,
        lots: [("L1".to_owned(), lot)].into(),
    });
    shared
}

#[test]
fn lot_full_predicted_fires_when_the_forecast_reaches_full_within_the_horizon_and_resolves_after() {
    let mut lot = Lot::new(only("lot_full_predicted"), 10);
    // without a profile the rule is quiet
    assert!(lot.reading("S0", T0 - 90 * MIN, true, None).is_empty());
    lot.rules.set_profiles(rush_at_t0_plus_20min());
    // an hour before: the rush is 80 minutes away, beyond the 30-minute horizon
    lot.reading("S1", T0 - 60 * MIN, true, None);
    assert!(lot.reading("S2", T0 - 59 * MIN, false, None).is_empty());
    // at T0 with 2 of 10 occupied (0.1 below the profile), the windows within 30 minutes are those
    // of T0, T0+10min and T0+20min; the last one's forecast is 1.0 − 0.9³·0.1 ≈ 0.927 ≥ 0.9
    let fired = lot.reading("S2", T0, false, None);
    assert_eq!(
        states(&fired),
        vec![("lot_full_predicted/L1".into(), AlertStatus::Firing, T0)]
    );
    let value = fired[0].value.unwrap();
    assert!(
        (value - (1.0 - 0.9f64.powi(3) * 0.1)).abs() < 1e-9,
        "{value}"
    );
    assert_eq!(fired[0].threshold, Some(0.9));
    // still coming: no re-send
    assert!(lot.reading("S3", T0 + 5 * MIN, false, None).is_empty());
    // after the rush, 3 of 10 occupied and 30 % expected: below resolve_at over the horizon
    let resolved = lot.reading("S3", T0 + 2 * 60 * MIN, true, None);
    assert_eq!(
        states(&resolved),
        vec![(
            "lot_full_predicted/L1".into(),
            AlertStatus::Resolved,
            T0 + 2 * 60 * MIN
        )]
    );
}
