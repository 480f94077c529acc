//! The simulated fleet: lots of parking spaces whose sensors report arrivals, departures and
//! heartbeats, with occupancy following a daily curve, draining batteries, and optional faults
//! (duplicates, out-of-order and late readings, garbage payloads, silent sensors, low batteries).
//!
//! Pure and deterministic: the same seed and the same sequence of clock values give the same
//! messages, so a load test or a demo can be replayed.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use fjord_core::time::{TimestampMs, format_rfc3339_ms};

/// Probabilities of each fault, per message (or per sensor for `silent` and `low_battery`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// A reading is sent twice.
    pub duplicate: f64,
    /// A reading is held back and sent after a few later ones (its `ts` unchanged).
    pub out_of_order: f64,
    /// A reading carries a `ts` minutes in the past (late for the speed layer).
    pub late: f64,
    /// A payload that is not a valid reading.
    pub garbage: f64,
    /// Fraction of sensors that stop reporting after their first reading.
    pub silent: f64,
    /// Fraction of sensors whose battery starts low (10–18 %).
    pub low_battery: f64,
}

/// One lot to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimLot {
    /// Lot id (topic segment).
    pub lot_id: String,
    /// Number of spaces.
    pub spaces: u32,
}

/// What a message is, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A space changed state.
    Transition,
    /// A space repeated its state.
    Heartbeat,
    /// A copy of an earlier reading.
    Duplicate,
    /// A reading sent after later ones.
    OutOfOrder,
    /// A reading with a `ts` minutes in the past.
    Late,
    /// An invalid payload.
    Garbage,
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMessage {
    /// Index of the lot (to pick its connection).
    pub lot: usize,
    /// MQTT topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// What it is.
    pub kind: Kind,
}

#[derive(Debug, Clone)]
struct Space {
    id: String,
    occupied: bool,
    battery: f64,
    silent: bool,
    reported: bool,
}

/// The fleet's state.
#[derive(Debug)]
pub struct Fleet {
    rng: ChaCha8Rng,
    lots: Vec<SimLot>,
    spaces: Vec<Vec<Space>>,
    faults: Faults,
    /// Round-robin position over (lot, space).
    cursor: (usize, usize),
    /// Messages waiting to be sent: duplicates now, out-of-order ones after a few others.
    held: VecDeque<(u32, SimMessage)>,
}

/// Target share of occupied spaces of a lot at a time: its weekly pattern, the one the simulated
/// history follows too (so the forecast learned from the history fits the live data).
pub fn usual_occupancy(lot_id: &str, ts: TimestampMs) -> f64 {
    super::pattern::usual_occupancy(lot_id, ts)
}

impl Fleet {
    /// A fleet of `lots`; initial states follow the daily curve at `now`.
    pub fn new(lots: Vec<SimLot>, faults: Faults, seed: u64, now: TimestampMs) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let spaces = lots
            .iter()
            .map(|lot| {
                let target = usual_occupancy(&lot.lot_id, now);
                (0..lot.spaces)
                    .map(|i| Space {
                        id: format!("S{:03}", i + 1),
                        occupied: rng.random_bool(target),
                        battery: if rng.random_bool(faults.low_battery.clamp(0.0, 1.0)) {
                            rng.random_range(10.0..18.0)
                        } else {
                            rng.random_range(60.0..100.0)
                        },
                        silent: rng.random_bool(faults.silent.clamp(0.0, 1.0)),
                        reported: false,
                    })
                    .collect()
            })
            .collect();
        Self {
            rng,
            lots,
            spaces,
            faults,
            cursor: (0, 0),
            held: VecDeque::new(),
        }
    }

    /// The lots.
    pub fn lots(&self) -> &[SimLot] {
        &self.lots
    }

    /// The next message at wall-clock time `now`.
    pub fn next(&mut self, now: TimestampMs) -> Option<SimMessage> {
        // held messages whose turn has come
        if let Some(pos) = self.held.iter().position(|(wait, _)| *wait == 0) {
            return self.held.remove(pos).map(|(_, m)| m);
        }
        for (wait, _) in self.held.iter_mut() {
            *wait -= 1;
        }
        let (lot, space) = self.advance()?;
        let f = self.faults;
        if self.rng.random_bool(f.garbage.clamp(0.0, 1.0)) {
            let payload = match self.rng.random_range(0..3) {
                0 => b"{\"occupied\": maybe}".to_vec(),
                1 => (0..self.rng.random_range(1..40))
                    .map(|_| self.rng.random())
                    .collect(),
                _ => b"{\"occupied\":true,\"battery\":140}".to_vec(),
            };
            return Some(self.message(lot, space, payload, Kind::Garbage));
        }
        let target = usual_occupancy(&self.lots[lot].lot_id, now);
        let s = &mut self.spaces[lot][space];
        let flip = if s.occupied {
            self.rng.random_bool(((1.0 - target) * 0.6).clamp(0.0, 1.0))
        } else {
            self.rng.random_bool((target * 0.6).clamp(0.0, 1.0))
        };
        let s = &mut self.spaces[lot][space];
        if flip {
            s.occupied = !s.occupied;
        }
        s.battery = (s.battery - 0.002).max(0.0);
        s.reported = true;
        let (occupied, battery) = (s.occupied, s.battery.round() as u8);
        let late = self.rng.random_bool(f.late.clamp(0.0, 1.0));
        let ts = if late {
            now - self.rng.random_range(120_000..600_000)
        } else {
            now
        };
        let payload = format!(
            r#"{{"ts":"{}","occupied":{occupied},"battery":{battery}}}"#,
            format_rfc3339_ms(ts)
        )
        .into_bytes();
        let kind = match (late, flip) {
            (true, _) => Kind::Late,
            (false, true) => Kind::Transition,
            (false, false) => Kind::Heartbeat,
        };
        let msg = self.message(lot, space, payload, kind);
        if self.rng.random_bool(f.duplicate.clamp(0.0, 1.0)) {
            let mut dup = msg.clone();
            dup.kind = Kind::Duplicate;
            self.held.push_back((0, dup));
        }
        if self.rng.random_bool(f.out_of_order.clamp(0.0, 1.0)) {
            let mut later = msg;
            later.kind = Kind::OutOfOrder;
            let wait = self.rng.random_range(1..5);
            self.held.push_back((wait, later));
            return self.next(now);
        }
        Some(msg)
    }

    fn message(&self, lot: usize, space: usize, payload: Vec<u8>, kind: Kind) -> SimMessage {
        SimMessage {
            lot,
            topic: format!(
                "parking/{}/{}",
                self.lots[lot].lot_id, self.spaces[lot][space].id
            ),
            payload,
            kind,
        }
    }

    /// The next space that reports (silent sensors report once, then never again).
    fn advance(&mut self) -> Option<(usize, usize)> {
        let total: usize = self.spaces.iter().map(Vec::len).sum();
        for _ in 0..total {
            let (lot, space) = self.cursor;
            self.cursor = if space + 1 < self.spaces[lot].len() {
                (lot, space + 1)
            } else {
                ((lot + 1) % self.spaces.len(), 0)
            };
            let s = self.spaces.get(lot)?.get(space)?;
            if !(s.silent && s.reported) {
                return Some((lot, space));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: TimestampMs = 1_795_262_400_000; // 2026-11-21T12:00:00Z

    fn lots() -> Vec<SimLot> {
        vec![
            SimLot {
                lot_id: "A".into(),
                spaces: 20,
            },
            SimLot {
                lot_id: "B".into(),
                spaces: 10,
            },
        ]
    }

    #[test]
    fn the_same_seed_gives_the_same_messages() {
        let faults = Faults {
            duplicate: 0.1,
            out_of_order: 0.1,
            late: 0.05,
            garbage: 0.05,
            ..Faults::default()
        };
        let mut a = Fleet::new(lots(), faults, 7, NOON);
        let mut b = Fleet::new(lots(), faults, 7, NOON);
        for i in 0..500 {
            assert_eq!(a.next(NOON + i), b.next(NOON + i));
        }
    }

    #[test]
    fn readings_are_valid_and_cover_every_space() {
        let mut f = Fleet::new(lots(), Faults::default(), 1, NOON);
        let mut topics = std::collections::HashSet::new();
        for i in 0..60 {
            let m = f.next(NOON + i).unwrap();
            let lot = &f.lots()[m.lot].lot_id;
            let space = m.topic.rsplit('/').next().unwrap();
            let r = fjord_core::decode::decode_reading(
                &fjord_core::decode::RawMessage {
                    lot_id: lot,
                    space_id: space,
                    payload: &m.payload,
                    content_type: None,
                    received_at: NOON + i,
                },
                &Default::default(),
            )
            .unwrap();
            assert_eq!(r.ts, NOON + i);
            topics.insert(m.topic);
        }
        assert_eq!(topics.len(), 30);
    }

    #[test]
    fn faults_happen_at_their_rates() {
        let faults = Faults {
            duplicate: 0.05,
            out_of_order: 0.05,
            late: 0.02,
            garbage: 0.02,
            silent: 0.0,
            low_battery: 0.0,
        };
        let mut f = Fleet::new(
            vec![SimLot {
                lot_id: "A".into(),
                spaces: 500,
            }],
            faults,
            3,
            NOON,
        );
        let mut counts = std::collections::HashMap::new();
        let n = 20_000;
        for i in 0..n {
            *counts.entry(f.next(NOON + i).unwrap().kind).or_insert(0) += 1;
        }
        let share = |k| f64::from(*counts.get(&k).unwrap_or(&0)) / n as f64;
        assert!((0.03..0.07).contains(&share(Kind::Duplicate)), "{counts:?}");
        assert!(
            (0.03..0.07).contains(&share(Kind::OutOfOrder)),
            "{counts:?}"
        );
        assert!((0.01..0.03).contains(&share(Kind::Late)), "{counts:?}");
        assert!((0.01..0.03).contains(&share(Kind::Garbage)), "{counts:?}");
    }

    #[test]
    fn silent_sensors_stop_and_low_batteries_start_low() {
        let faults = Faults {
            silent: 1.0,
            low_battery: 1.0,
            ..Faults::default()
        };
        let mut f = Fleet::new(
            vec![SimLot {
                lot_id: "A".into(),
                spaces: 5,
            }],
            faults,
            3,
            NOON,
        );
        let first: Vec<SimMessage> = (0..5).map(|i| f.next(NOON + i).unwrap()).collect();
        assert!(first.iter().all(|m| {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            v["battery"].as_u64().unwrap() < 19
        }));
        assert_eq!(f.next(NOON + 10), None, "every sensor has gone silent");
    }

    #[test]
    fn occupancy_follows_the_lots_week() {
        // Wednesday 2026-11-25, 15:00 and 03:00 UTC
        let afternoon = NOON + 4 * 86_400_000 + 3 * 3_600_000;
        let night = afternoon - 12 * 3_600_000;
        for id in ["central", "harbour", "museum", "A"] {
            let (busy, quiet) = (usual_occupancy(id, afternoon), usual_occupancy(id, night));
            assert!(busy > quiet + 0.3, "{id}: {busy} vs {quiet}");
        }
    }
}
