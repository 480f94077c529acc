//! Event-time watermarks with idle advance (docs/contract.md §4.2), per input partition. Pure logic.
//!
//! The watermark is the largest event time seen minus the allowed out-of-orderness. When the
//! partition has had no record for `idle_after` of wall-clock time, the watermark follows the wall
//! clock instead (minus the same bound), so windows still close and silence is still noticed at
//! night. It never moves backwards.

use serde::{Deserialize, Serialize};

use fjord_core::time::TimestampMs;

/// The watermark of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    max_ts: Option<TimestampMs>,
    /// Raised by idle advance.
    floor: TimestampMs,
    /// Wall-clock time of the last record (not checkpointed: a restored partition starts a fresh
    /// idle period).
    #[serde(skip)]
    last_record_wall: Option<TimestampMs>,
    out_of_orderness_ms: i64,
    idle_after_ms: i64,
}

impl Watermark {
    /// A partition that has seen nothing.
    pub fn new(out_of_orderness_ms: i64, idle_after_ms: i64) -> Self {
        Self {
            max_ts: None,
            floor: i64::MIN,
            last_record_wall: None,
            out_of_orderness_ms,
            idle_after_ms,
        }
    }

    /// The current watermark (`i64::MIN` before any record).
    pub fn current(&self) -> TimestampMs {
        let from_events = self
            .max_ts
            .map_or(i64::MIN, |m| m.saturating_sub(self.out_of_orderness_ms));
        from_events.max(self.floor)
    }

    /// Takes a record with event time `ts`, received at wall-clock `wall`.
    pub fn observe(&mut self, ts: TimestampMs, wall: TimestampMs) {
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        self.last_record_wall = Some(wall);
    }

    /// Applies idle advance at wall-clock `wall`; true when the watermark moved.
    pub fn tick(&mut self, wall: TimestampMs) -> bool {
        let last = *self.last_record_wall.get_or_insert(wall);
        if self.max_ts.is_none() || wall - last < self.idle_after_ms {
            return false;
        }
        let before = self.current();
        self.floor = self
            .floor
            .max(wall.saturating_sub(self.out_of_orderness_ms));
        self.current() > before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_largest_event_time_minus_the_bound() {
        let mut w = Watermark::new(5_000, 10_000);
        assert_eq!(w.current(), i64::MIN);
        w.observe(100_000, 0);
        assert_eq!(w.current(), 95_000);
        w.observe(90_000, 1);
        assert_eq!(w.current(), 95_000, "an older record does not move it back");
        w.observe(120_000, 2);
        assert_eq!(w.current(), 115_000);
    }

    #[test]
    fn idle_partitions_follow_the_wall_clock_and_never_go_back() {
        let mut w = Watermark::new(5_000, 10_000);
        assert!(!w.tick(50_000), "nothing seen: nothing to advance");
        w.observe(100_000, 1_000_000);
        assert!(!w.tick(1_009_999), "not idle yet");
        assert!(w.tick(1_010_000));
        assert_eq!(w.current(), 1_005_000);
        w.observe(200_000, 1_010_001);
        assert_eq!(w.current(), 1_005_000, "never backwards");
        assert!(!w.tick(1_015_000));
    }

    #[test]
    fn a_restored_watermark_starts_a_fresh_idle_period() {
        let mut w = Watermark::new(5_000, 10_000);
        w.observe(100_000, 0);
        let mut back: Watermark =
            postcard::from_bytes(&postcard::to_allocvec(&w).unwrap()).unwrap();
        assert_eq!(back.current(), 95_000);
        assert!(
            !back.tick(500_000),
            "the first tick after restore starts the idle clock"
        );
        assert!(back.tick(510_000));
    }
}
