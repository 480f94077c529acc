//! The alerts of one lot, evaluated per event (docs/contract.md §5): on each accepted reading (`lot_full`,
//! `lot_full_predicted` from the lot's forecast profile, `battery_low`, the end of a `sensor_silent`, reading rules), on each closed window (window
//! rules) and when the watermark moves (`sensor_silent`, `for` durations, repeats). Part of the
//! lot's checkpoint, so a restart neither loses nor repeats a state change.

use std::borrow::Cow;

use fjord_core::config::RuleInput;
use fjord_core::expr::Value;
use fjord_core::forecast::predict::{Observed, predict, steps_within};
use fjord_core::lots::LotRecord;
use fjord_core::model::{Alert, OccupancyWindow, Reading, TsSource};
use fjord_core::occupancy::LotEngine;
use fjord_core::time::TimestampMs;
use serde::{Deserialize, Serialize};

use super::Rules;
use super::machine::{self, ActiveMap, Observation, Subject};

/// The watermark-driven silence scan runs at most once per this much event time per lot.
const SILENCE_SCAN_MS: i64 = 1000;

/// A lot's alert state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LotAlerts {
    active: ActiveMap,
    /// The next watermark at which a space may have become silent.
    silence_check: Option<TimestampMs>,
}

fn ratio(occupied: u32, capacity: u32) -> Option<f64> {
    (capacity > 0).then(|| f64::from(occupied) / f64::from(capacity))
}

fn hour_utc(ts: TimestampMs) -> i64 {
    ts.div_euclid(3_600_000).rem_euclid(24)
}

impl LotAlerts {
    /// Alerts pending or firing.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// After `engine` accepted `r`.
    pub fn on_reading(
        &mut self,
        rules: &Rules,
        engine: &LotEngine,
        r: &Reading,
        lot: Option<&LotRecord>,
        out: &mut Vec<Alert>,
    ) {
        let (occupied, _) = engine.live();
        let capacity = engine.live_capacity();
        let space = engine.space(&r.space_id);
        // the reading is the space's latest by event time (an out-of-order one is not)
        let latest = space.is_some_and(|s| s.live_ts == r.ts);
        if let Some(rule) = &rules.lot_full
            && let Some(ratio) = ratio(occupied, capacity)
        {
            let obs = Observation {
                fire: ratio >= rule.fire_at,
                resolve: ratio <= rule.resolve_at,
                value: Some(ratio),
                fire_threshold: Some(rule.fire_at),
                resolve_threshold: Some(rule.resolve_at),
            };
            let subject = || Subject::lot(&r.lot_id);
            machine::observe(
                &mut self.active,
                &rule.common,
                subject,
                obs,
                r.ts,
                None,
                out,
            );
        }
        if let Some(rule) = &rules.lot_full_predicted
            && let Some(ratio) = ratio(occupied, capacity)
        {
            let profiles = rule.profiles.get();
            if let Some(p) = profiles.lots.get(&r.lot_id) {
                let now = Observed { at: r.ts, ratio };
                let peak = predict(p, r.ts, Some(now), steps_within(r.ts, rule.horizon_ms))
                    .map(|s| s.ratio)
                    .fold(ratio, f64::max);
                let obs = Observation {
                    fire: peak >= rule.fire_at,
                    resolve: peak < rule.resolve_at,
                    value: Some(peak),
                    fire_threshold: Some(rule.fire_at),
                    resolve_threshold: Some(rule.resolve_at),
                };
                machine::observe(
                    &mut self.active,
                    &rule.common,
                    || Subject::lot(&r.lot_id),
                    obs,
                    r.ts,
                    None,
                    out,
                );
            }
        }
        if let Some(rule) = &rules.battery_low
            && latest
            && let Some(b) = r.battery
        {
            let obs = Observation {
                fire: b < rule.fire_below,
                resolve: b >= rule.resolve_at,
                value: Some(f64::from(b)),
                fire_threshold: Some(f64::from(rule.fire_below)),
                resolve_threshold: Some(f64::from(rule.resolve_at)),
            };
            let subject = || Subject::space(&r.lot_id, &r.space_id);
            machine::observe(
                &mut self.active,
                &rule.common,
                subject,
                obs,
                r.ts,
                None,
                out,
            );
        }
        if let Some(rule) = &rules.sensor_silent
            && let Some(s) = space
        {
            let deadline = s.live_ts.saturating_add(rule.after_ms);
            // a silent space that reports again is resolved at this reading (nothing to do, and
            // nothing allocated, when it was not silent)
            let obs = Observation {
                fire: false,
                resolve: true,
                value: Some(0.0),
                fire_threshold: None,
                resolve_threshold: None,
            };
            let subject = || Subject::space(&r.lot_id, &r.space_id);
            machine::observe(
                &mut self.active,
                &rule.common,
                subject,
                obs,
                r.ts,
                None,
                out,
            );
            self.silence_check = Some(self.silence_check.map_or(deadline, |c| c.min(deadline)));
        }
        for rule in rules.user.iter().filter(|u| u.on == RuleInput::Reading) {
            let row = |i: usize| -> Value<'_> {
                match i {
                    0 => Value::Text(Cow::Borrowed(&r.lot_id)),
                    1 => Value::Text(Cow::Borrowed(&r.space_id)),
                    2 => Value::Bool(r.occupied),
                    3 => r.battery.map_or(Value::Null, |b| Value::Int(i64::from(b))),
                    4 => Value::Text(Cow::Borrowed(match r.ts_source {
                        TsSource::Device => "device",
                        TsSource::Received => "received",
                    })),
                    5 => lot.map_or(Value::Null, |l| Value::Text(Cow::Borrowed(&l.zone))),
                    6 => lot.map_or(Value::Null, |l| Value::Text(Cow::Borrowed(&l.name))),
                    7 => Value::Int(i64::from(capacity)),
                    8 => Value::Int(i64::from(occupied)),
                    9 => ratio(occupied, capacity).map_or(Value::Null, Value::Float),
                    10 => Value::Int(hour_utc(r.ts)),
                    _ => Value::Null,
                }
            };
            if rule.per_space && !latest {
                continue;
            }
            let holds = rule.expr.holds(&row);
            let subject = || {
                if rule.per_space {
                    Subject::space(&r.lot_id, &r.space_id)
                } else {
                    Subject::lot(&r.lot_id)
                }
            };
            machine::observe(
                &mut self.active,
                &rule.common,
                subject,
                Observation::holds(holds),
                r.ts,
                rule.for_ms,
                out,
            );
        }
    }

    /// After `w` closed.
    pub fn on_window(
        &mut self,
        rules: &Rules,
        w: &OccupancyWindow,
        lot: Option<&LotRecord>,
        out: &mut Vec<Alert>,
    ) {
        let size = w.window_end - w.window_start;
        for rule in rules
            .user
            .iter()
            .filter(|u| u.on == RuleInput::Window && u.window_ms == size)
        {
            let row = |i: usize| -> Value<'_> {
                match i {
                    0 => Value::Text(Cow::Borrowed(&w.lot_id)),
                    1 => lot.map_or(Value::Null, |l| Value::Text(Cow::Borrowed(&l.zone))),
                    2 => lot.map_or(Value::Null, |l| Value::Text(Cow::Borrowed(&l.name))),
                    3 => Value::Int(i64::from(w.capacity)),
                    4 => Value::Float(w.occupied_avg),
                    5 => Value::Float(w.occupancy_ratio),
                    6 => Value::Int(i64::from(w.occupied_end)),
                    7 => Value::Int(i64::try_from(w.arrivals).unwrap_or(i64::MAX)),
                    8 => Value::Int(i64::try_from(w.departures).unwrap_or(i64::MAX)),
                    9 => Value::Int(i64::try_from(w.readings).unwrap_or(i64::MAX)),
                    10 => Value::Int(size / 60_000),
                    11 => Value::Int(hour_utc(w.window_start)),
                    _ => Value::Null,
                }
            };
            let holds = rule.expr.holds(&row);
            machine::observe(
                &mut self.active,
                &rule.common,
                || Subject::lot(&w.lot_id),
                Observation::holds(holds),
                w.window_end,
                rule.for_ms,
                out,
            );
        }
    }

    /// The earliest watermark at which [`LotAlerts::on_watermark`] has something to do.
    pub fn next_due(&self, rules: &Rules) -> TimestampMs {
        let timed = machine::next_due(&self.active, rules, |r| for_ms(rules, r));
        match (&rules.sensor_silent, self.silence_check) {
            (Some(_), Some(c)) => timed.min(c),
            _ => timed,
        }
    }

    /// The watermark reached `wm`: silent spaces, elapsed `for` durations, repeats.
    pub fn on_watermark(
        &mut self,
        rules: &Rules,
        engine: &LotEngine,
        wm: TimestampMs,
        out: &mut Vec<Alert>,
    ) {
        if let Some(rule) = &rules.sensor_silent
            && self.silence_check.is_some_and(|c| wm >= c)
        {
            let mut next: Option<TimestampMs> = None;
            let mut silent: Vec<(&str, TimestampMs)> = Vec::new();
            for (space_id, s) in engine.spaces() {
                if s.live_ts == TimestampMs::MIN {
                    continue;
                }
                let deadline = s.live_ts.saturating_add(rule.after_ms);
                let key = Subject::space(engine.lot_id(), space_id).key(&rule.common.name);
                if self.active.contains_key(&key) {
                    continue;
                }
                if wm >= deadline {
                    silent.push((space_id, deadline));
                } else {
                    next = Some(next.map_or(deadline, |n| n.min(deadline)));
                }
            }
            silent.sort_unstable_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
            for (space_id, deadline) in silent {
                let subject = Subject::space(engine.lot_id(), space_id);
                let obs = Observation {
                    fire: true,
                    resolve: false,
                    value: Some((rule.after_ms / 1000) as f64),
                    fire_threshold: Some((rule.after_ms / 1000) as f64),
                    resolve_threshold: None,
                };
                machine::observe(
                    &mut self.active,
                    &rule.common,
                    || subject,
                    obs,
                    deadline,
                    None,
                    out,
                );
            }
            // at most one scan per SILENCE_SCAN_MS of watermark, however many spaces report
            self.silence_check = next.map(|n| n.max(wm.saturating_add(SILENCE_SCAN_MS)));
        }
        machine::on_time(&mut self.active, rules, wm, |r| for_ms(rules, r), out);
    }
}

fn for_ms(rules: &Rules, rule: &str) -> Option<i64> {
    rules
        .user
        .iter()
        .find(|u| u.common.name == rule)
        .and_then(|u| u.for_ms)
}
