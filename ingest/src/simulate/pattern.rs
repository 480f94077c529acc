//! The weekly occupancy patterns of simulated lots: each lot is one of three kinds of place,
//! chosen by its id, so the simulated history and the live simulator agree. Pure.

use fjord_core::time::TimestampMs;

const DAY_MS: i64 = 86_400_000;

/// What kind of place a lot is: chosen by its id, so the history and the live simulator agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Character {
    /// Full on weekday office hours, empty at weekends.
    Commuter,
    /// Busy on weekday afternoons, fullest on Saturdays, quiet on Sundays.
    Shopping,
    /// Afternoons and evenings, busiest at weekends.
    Leisure,
}

impl Character {
    /// The character of `lot_id` (a stable hash of the id).
    pub fn of(lot_id: &str) -> Self {
        let h = lot_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        match h % 3 {
            0 => Character::Commuter,
            1 => Character::Shopping,
            _ => Character::Leisure,
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// 1 between `start` and `end` (hours), 0 outside, with ramps of about an hour.
fn bump(hour: f64, start: f64, end: f64) -> f64 {
    sigmoid((hour - start) / 0.6) * sigmoid((end - hour) / 0.6)
}

/// The usual share of occupied spaces of a lot of `character` on `weekday` (0 = Monday, UTC) at
/// `hour` (0–24).
pub fn pattern(character: Character, weekday: i64, hour: f64) -> f64 {
    let (saturday, sunday) = (weekday == 5, weekday == 6);
    match character {
        Character::Commuter if saturday => 0.08 + 0.22 * bump(hour, 10.0, 16.0),
        Character::Commuter if sunday => 0.06 + 0.08 * bump(hour, 11.0, 17.0),
        Character::Commuter => 0.08 + 0.86 * bump(hour, 7.5, 17.5),
        Character::Shopping if saturday => 0.08 + 0.88 * bump(hour, 9.5, 19.0),
        Character::Shopping if sunday => 0.08 + 0.35 * bump(hour, 11.0, 18.0),
        Character::Shopping => 0.1 + 0.62 * bump(hour, 10.0, 20.0),
        Character::Leisure if saturday || sunday => 0.12 + 0.78 * bump(hour, 10.0, 22.5),
        Character::Leisure => 0.1 + 0.5 * bump(hour, 12.0, 22.0),
    }
}

pub(crate) fn weekday(ts: TimestampMs) -> i64 {
    (ts.div_euclid(DAY_MS) + 3).rem_euclid(7)
}

pub(crate) fn hour(ts: TimestampMs) -> f64 {
    ts.rem_euclid(DAY_MS) as f64 / 3_600_000.0
}

/// The usual occupancy of `lot_id` at `ts`: what the live simulator follows.
pub fn usual_occupancy(lot_id: &str, ts: TimestampMs) -> f64 {
    pattern(Character::of(lot_id), weekday(ts), hour(ts))
}
