//! Weeks of simulated parking in event time, for `fjord demo` (which lands them in the lake on a
//! fresh data dir) and `fjord simulate --history` (which writes them as JSON lines for
//! `fjord batch import`): every lot follows a weekly pattern of its own
//! ([`usual_occupancy`](super::pattern::usual_occupancy)),
//! with a deviation per day, a few holidays and a slowly wandering noise, and every space arrives
//! and leaves as a Markov chain that follows it. Pure and deterministic for a seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use fjord_core::time::TimestampMs;

use super::model::SimLot;
use super::pattern::{Character, hour, pattern, usual_occupancy, weekday};

const DAY_MS: i64 = 86_400_000;
/// The chain's time step.
const STEP_MS: i64 = 120_000;
/// Mean stay of a car, in steps (45 min).
const MEAN_STAY_STEPS: f64 = 22.5;
/// Share of weekdays that are holidays (they look like a Sunday).
const HOLIDAYS: f64 = 0.04;

/// One reading of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryReading<'a> {
    /// Lot id.
    pub lot_id: &'a str,
    /// Space id (`S001`, … as the live simulator names them).
    pub space_id: &'a str,
    /// Event time.
    pub ts: TimestampMs,
    /// Occupied from `ts` on.
    pub occupied: bool,
    /// Battery percent.
    pub battery: u8,
}

impl HistoryReading<'_> {
    /// As a JSON line (without the newline) that `fjord batch import` takes.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"lot_id":{},"space_id":{},"ts":{},"occupied":{},"battery":{}}}"#,
            serde_json::Value::from(self.lot_id),
            serde_json::Value::from(self.space_id),
            self.ts,
            self.occupied,
            self.battery
        )
    }
}

struct LotState {
    character: Character,
    spaces: Vec<(String, bool, f64)>,
    day: i64,
    day_shift: f64,
    holiday: bool,
    noise: f64,
}

/// Simulates `lots` from `from` to `until` and hands every transition, in event-time order
/// (within a 2-minute step), to `emit`; returns how many.
pub fn generate(
    lots: &[SimLot],
    from: TimestampMs,
    until: TimestampMs,
    seed: u64,
    mut emit: impl FnMut(&HistoryReading<'_>),
) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut state: Vec<(String, LotState)> = lots
        .iter()
        .map(|l| {
            let character = Character::of(&l.lot_id);
            let p = usual_occupancy(&l.lot_id, from);
            let spaces = (0..l.spaces)
                .map(|i| {
                    (
                        format!("S{:03}", i + 1),
                        rng.random_bool(p.clamp(0.0, 1.0)),
                        rng.random_range(60.0..100.0),
                    )
                })
                .collect();
            let s = LotState {
                character,
                spaces,
                day: i64::MIN,
                day_shift: 0.0,
                holiday: false,
                noise: 0.0,
            };
            (l.lot_id.clone(), s)
        })
        .collect();
    let leave = 1.0 / MEAN_STAY_STEPS;
    let mut n = 0;
    let mut t = from - from.rem_euclid(STEP_MS);
    let mut batch: Vec<(TimestampMs, usize, usize)> = Vec::new();
    while t < until {
        for (lot_index, (_, lot)) in state.iter_mut().enumerate() {
            let day = t.div_euclid(DAY_MS);
            if day != lot.day {
                lot.day = day;
                lot.day_shift = rng.random_range(-0.07..0.07);
                lot.holiday = weekday(t) < 5 && rng.random_bool(HOLIDAYS);
            }
            lot.noise = 0.985 * lot.noise + rng.random_range(-0.012..0.012);
            let wd = if lot.holiday { 6 } else { weekday(t) };
            let p =
                (pattern(lot.character, wd, hour(t)) + lot.day_shift + lot.noise).clamp(0.02, 0.98);
            let arrive = (leave * p / (1.0 - p)).min(1.0);
            for (space_index, space) in lot.spaces.iter_mut().enumerate() {
                let flip = if space.1 {
                    rng.random_bool(leave)
                } else {
                    rng.random_bool(arrive)
                };
                space.2 = (space.2 - 0.0004).max(5.0);
                if flip {
                    space.1 = !space.1;
                    let ts = t + rng.random_range(0..STEP_MS);
                    if ts < until {
                        batch.push((ts, lot_index, space_index));
                    }
                }
            }
        }
        batch.sort_unstable();
        for (ts, l, s) in batch.drain(..) {
            let (lot_id, lot) = &state[l];
            let (space_id, occupied, battery) = &lot.spaces[s];
            emit(&HistoryReading {
                lot_id,
                space_id,
                ts,
                occupied: *occupied,
                battery: battery.round() as u8,
            });
            n += 1;
        }
        t += STEP_MS;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::pattern::Character;

    /// 2026-11-02T00:00:00Z, a Monday.
    const MONDAY: TimestampMs = 1_793_577_600_000;

    fn lot(id: &str, spaces: u32) -> SimLot {
        SimLot {
            lot_id: id.into(),
            spaces,
        }
    }

    #[test]
    fn characters_have_their_weekly_shape() {
        let c = Character::Commuter;
        assert!(pattern(c, 2, 12.0) > 0.9 && pattern(c, 2, 3.0) < 0.1);
        assert!(pattern(c, 6, 12.0) < 0.2);
        let s = Character::Shopping;
        assert!(pattern(s, 5, 14.0) > pattern(s, 2, 14.0));
        let l = Character::Leisure;
        assert!(pattern(l, 6, 18.0) > pattern(l, 1, 18.0));
        // the demo's lots are of different kinds
        let kinds: std::collections::BTreeSet<_> = ["central", "harbour", "museum"]
            .iter()
            .map(|id| format!("{:?}", Character::of(id)))
            .collect();
        assert!(kinds.len() >= 2, "{kinds:?}");
    }

    #[test]
    fn a_week_of_history_is_ordered_deterministic_and_follows_the_pattern() {
        let lots = [lot("central", 40), lot("museum", 15)];
        let collect = |seed| {
            let mut rows = Vec::new();
            generate(&lots, MONDAY, MONDAY + 7 * DAY_MS, seed, |r| {
                rows.push((r.lot_id.to_owned(), r.space_id.to_owned(), r.ts, r.occupied));
            });
            rows
        };
        let rows = collect(7);
        assert_eq!(rows, collect(7));
        assert_ne!(rows, collect(8));
        assert!(rows.windows(2).all(|w| w[0].2 <= w[1].2));
        assert!(
            rows.iter()
                .all(|r| r.2 >= MONDAY && r.2 < MONDAY + 7 * DAY_MS)
        );
        // transitions alternate per space
        let mut last = std::collections::HashMap::new();
        for (l, s, _, occ) in &rows {
            if let Some(prev) = last.insert((l.clone(), s.clone()), *occ) {
                assert_ne!(prev, *occ);
            }
        }
        // the occupancy at Wednesday noon and Wednesday 3 am follows central's pattern
        let occupied_at = |ts: TimestampMs| {
            let mut state = std::collections::HashMap::new();
            for (l, s, t, occ) in rows.iter().filter(|r| r.0 == "central" && r.2 <= ts) {
                let _ = t;
                state.insert((l.clone(), s.clone()), *occ);
            }
            state.values().filter(|o| **o).count() as f64 / 40.0
        };
        let noon = MONDAY + 2 * DAY_MS + 12 * 3_600_000;
        let want = usual_occupancy("central", noon);
        assert!(
            (occupied_at(noon) - want).abs() < 0.3,
            "{} vs {want}",
            occupied_at(noon)
        );
        let json = HistoryReading {
            lot_id: "a\"b",
            space_id: "S001",
            ts: 5,
            occupied: true,
            battery: 90,
        }
        .to_json();
        assert_eq!(
            json,
            r#"{"lot_id":"a\"b","space_id":"S001","ts":5,"occupied":true,"battery":90}"#
        );
    }
}
