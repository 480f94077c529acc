//! The speed layer as the serving layer holds it (docs/contract.md §4.3, §7): the windows of `fjord.occupancy`
//! that the batch views do not cover yet, the current occupancy per lot from the compacted live
//! topic, and each space's digital twin (`spaces_live`) from the compacted `spaces-live` topic.
//!
//! This module is the state and its tables; [`feed`] fills it from Kafka. Everything here is
//! idempotent, so replays (at-least-once reads, a restart reading the topics again) never count a
//! window twice: windows are keyed by (size, lot, start), live rows by lot, twins by (lot, space),
//! each keeping its newest value.

pub mod feed;
pub mod trim;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int16Builder, Int32Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use fjord_core::model::{Alert, AlertStatus, LiveRow, OccupancyWindow, SpaceRow};
use fjord_core::time::TimestampMs;

/// The latest known state of one space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    /// Occupied by its newest reading.
    pub occupied: bool,
    /// Event time since when it has been in that state (its first reading in that state).
    pub since: TimestampMs,
    /// Battery of its newest reading.
    pub battery: Option<i16>,
    /// Event time of its newest reading.
    pub last_seen: TimestampMs,
}

/// The speed layer's state.
#[derive(Debug, Default)]
pub struct SpeedState {
    /// Closed windows by (size ms, lot, start).
    windows: BTreeMap<(i64, String, TimestampMs), OccupancyWindow>,
    /// Current occupancy by lot.
    live: BTreeMap<String, LiveRow>,
    /// Twins by lot, then space (sorted, so a scan of some lots reads only theirs).
    spaces: BTreeMap<String, BTreeMap<String, Space>>,
    /// The latest change of each alert, by alert key.
    alerts: BTreeMap<String, Alert>,
}

impl SpeedState {
    /// Adds a closed window (a replayed one replaces its earlier copy, which is identical).
    pub fn add_window(&mut self, w: OccupancyWindow) {
        let size = w.window_end - w.window_start;
        self.windows
            .insert((size, w.lot_id.clone(), w.window_start), w);
    }

    /// The windows of `size_ms` that end after `hwm` (all of them without a high-water mark), by
    /// lot then start.
    pub fn windows_after(&self, size_ms: i64, hwm: Option<TimestampMs>) -> Vec<OccupancyWindow> {
        self.windows
            .range((size_ms, String::new(), i64::MIN)..)
            .take_while(|((s, _, _), _)| *s == size_ms)
            .filter(|(_, w)| hwm.is_none_or(|h| w.window_end > h))
            .map(|(_, w)| w.clone())
            .collect()
    }

    /// Forgets the windows of `size_ms` that the batch views now cover (ending at or before `hwm`);
    /// returns how many.
    pub fn trim(&mut self, size_ms: i64, hwm: TimestampMs) -> usize {
        let before = self.windows.len();
        self.windows
            .retain(|(s, _, _), w| *s != size_ms || w.window_end > hwm);
        before - self.windows.len()
    }

    /// Windows held, all sizes.
    pub fn window_count(&self) -> usize {
        self.windows.len()
    }

    /// Sets a lot's current occupancy (the live topic keeps the latest per lot; so does this).
    pub fn set_live(&mut self, row: LiveRow) {
        match self.live.get(&row.lot_id) {
            Some(old) if old.updated_at > row.updated_at => {}
            _ => {
                self.live.insert(row.lot_id.clone(), row);
            }
        }
    }

    /// Takes in a space's twin from the compacted `spaces-live` topic; a replayed older one does
    /// not win over a newer one.
    pub fn set_space(&mut self, row: SpaceRow) {
        let lot = self.spaces.entry(row.lot_id).or_default();
        match lot.get(&row.space_id) {
            Some(s) if s.last_seen > row.last_seen => {}
            _ => {
                lot.insert(
                    row.space_id,
                    Space {
                        occupied: row.occupied,
                        since: row.since,
                        battery: row.battery,
                        last_seen: row.last_seen,
                    },
                );
            }
        }
    }

    /// Takes in an alert state change (one alert's changes are in order in one partition; a
    /// replayed older change does not win over a newer one).
    pub fn set_alert(&mut self, a: Alert) {
        match self.alerts.get(&a.key) {
            Some(old) if old.event_time > a.event_time => {}
            _ => {
                self.alerts.insert(a.key.clone(), a);
            }
        }
    }

    /// The latest change of every alert, optionally only those in `status`, newest first.
    pub fn alerts(&self, status: Option<AlertStatus>) -> Vec<Alert> {
        let mut out: Vec<Alert> = self
            .alerts
            .values()
            .filter(|a| status.is_none_or(|s| a.status == s))
            .cloned()
            .collect();
        out.sort_by(|a, b| b.event_time.cmp(&a.event_time).then(a.key.cmp(&b.key)));
        out
    }

    /// The twin of one space.
    pub fn space(&self, lot_id: &str, space_id: &str) -> Option<&Space> {
        self.spaces.get(lot_id)?.get(space_id)
    }

    /// Each lot's current occupancy, by lot (a copy: the forecast reads it without holding the lock).
    pub fn live_rows(&self) -> BTreeMap<String, LiveRow> {
        self.live.clone()
    }

    /// `occupancy_live` (one row per lot), by lot.
    pub fn live_batch(&self) -> RecordBatch {
        let mut lot = StringBuilder::new();
        let mut capacity = Int32Builder::new();
        let mut occupied = Int32Builder::new();
        let mut ratio = Float64Builder::new();
        let mut updated = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        for r in self.live.values() {
            lot.append_value(&r.lot_id);
            capacity.append_value(i32::try_from(r.capacity).unwrap_or(i32::MAX));
            occupied.append_value(i32::try_from(r.occupied).unwrap_or(i32::MAX));
            ratio.append_value(r.occupancy_ratio);
            updated.append_value(r.updated_at.saturating_mul(1000));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(lot.finish()),
            Arc::new(capacity.finish()),
            Arc::new(occupied.finish()),
            Arc::new(ratio.finish()),
            Arc::new(updated.finish()),
        ];
        RecordBatch::try_new(fjord_core::schema::occupancy_live(), columns)
            .unwrap_or_else(|e| unreachable!("occupancy_live batch does not match its schema: {e}"))
    }

    /// `spaces_live` (one row per space), by lot then space; only the lots in `lots` when given
    /// (a scan whose filters name its lots builds only their rows).
    pub fn spaces_batch(&self, lots: Option<&BTreeSet<String>>) -> RecordBatch {
        let mut lot = StringBuilder::new();
        let mut space = StringBuilder::new();
        let mut occupied = BooleanBuilder::new();
        let mut since = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut battery = Int16Builder::new();
        let mut last_seen = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let chosen: Box<dyn Iterator<Item = (&String, &BTreeMap<String, Space>)>> = match lots {
            Some(lots) => Box::new(
                lots.iter()
                    .filter_map(|l| self.spaces.get_key_value(l.as_str())),
            ),
            None => Box::new(self.spaces.iter()),
        };
        for (lot_id, spaces) in chosen {
            for (space_id, s) in spaces {
                lot.append_value(lot_id);
                space.append_value(space_id);
                occupied.append_value(s.occupied);
                since.append_value(s.since.saturating_mul(1000));
                battery.append_option(s.battery);
                last_seen.append_value(s.last_seen.saturating_mul(1000));
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(lot.finish()),
            Arc::new(space.finish()),
            Arc::new(occupied.finish()),
            Arc::new(since.finish()),
            Arc::new(battery.finish()),
            Arc::new(last_seen.finish()),
        ];
        RecordBatch::try_new(fjord_core::schema::spaces_live(), columns)
            .unwrap_or_else(|e| unreachable!("spaces_live batch does not match its schema: {e}"))
    }
}

/// The speed layer shared by the feed (writer) and the SQL tables (readers).
#[derive(Debug, Default)]
pub struct Speed {
    state: RwLock<SpeedState>,
    ready: std::sync::atomic::AtomicBool,
}

impl Speed {
    /// An empty speed layer (what `fjord sql` uses: the lake only).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Reads the state.
    pub fn read<T>(&self, f: impl FnOnce(&SpeedState) -> T) -> T {
        let g = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&g)
    }

    /// Changes the state.
    pub fn write<T>(&self, f: impl FnOnce(&mut SpeedState) -> T) -> T {
        let mut g = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    /// True once the feed has read every speed topic up to where it stood at start.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks the speed layer caught up.
    pub fn set_ready(&self) {
        self.ready.store(true, std::sync::atomic::Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_core::model::WindowSource;

    fn w(lot: &str, start: i64, size: i64, avg: f64) -> OccupancyWindow {
        OccupancyWindow {
            lot_id: lot.into(),
            window_start: start,
            window_end: start + size,
            capacity: 10,
            occupied_avg: avg,
            occupancy_ratio: avg / 10.0,
            occupied_end: 1,
            arrivals: 1,
            departures: 0,
            readings: 1,
            source: WindowSource::Speed,
        }
    }

    #[test]
    fn windows_are_kept_once_per_size_lot_and_start_and_cut_at_the_hwm() {
        let mut s = SpeedState::default();
        for start in [0, 60_000, 120_000, 180_000] {
            s.add_window(w("L1", start, 60_000, 1.0));
        }
        s.add_window(w("L1", 60_000, 60_000, 1.0)); // replayed
        s.add_window(w("L1", 0, 600_000, 2.0));
        s.add_window(w("L0", 0, 60_000, 3.0));
        assert_eq!(s.windows_after(60_000, None).len(), 5);
        let after = s.windows_after(60_000, Some(120_000));
        let ends: Vec<_> = after.iter().map(|w| w.window_end).collect();
        assert_eq!(
            ends,
            [180_000, 240_000],
            "windows ending at the hwm are batch rows"
        );
        assert_eq!(s.windows_after(600_000, Some(0)).len(), 1);
        s.trim(60_000, 120_000);
        assert_eq!(
            s.window_count(),
            3,
            "two 1m windows of L1 and the 10m window"
        );
        assert_eq!(
            s.windows_after(600_000, None).len(),
            1,
            "other sizes untouched"
        );
    }

    #[test]
    fn a_twin_keeps_its_newest_row() {
        let mut s = SpeedState::default();
        let row = |occupied: bool, since: i64, last_seen: i64| SpaceRow {
            lot_id: "L1".into(),
            space_id: "S1".into(),
            occupied,
            since,
            battery: Some(80),
            last_seen,
        };
        s.set_space(row(false, 3_000, 3_000));
        s.set_space(row(true, 1_000, 2_000)); // replayed older twin: ignored
        let t = s.space("L1", "S1").unwrap();
        assert_eq!((t.occupied, t.since, t.last_seen), (false, 3_000, 3_000));
        s.set_space(SpaceRow {
            space_id: "S2".into(),
            ..row(true, 5, 9)
        });
        s.set_space(SpaceRow {
            lot_id: "L2".into(),
            ..row(true, 5, 9)
        });
        assert_eq!(s.spaces_batch(None).num_rows(), 3);
        let only = BTreeSet::from(["L2".to_owned(), "L9".to_owned()]);
        let b = s.spaces_batch(Some(&only));
        assert_eq!(b.num_rows(), 1, "only the lots asked for");
        let lots = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(lots.value(0), "L2");
    }

    #[test]
    fn live_rows_keep_the_latest_per_lot() {
        let mut s = SpeedState::default();
        let row = |occ: u32, at: i64| LiveRow {
            lot_id: "L1".into(),
            capacity: 4,
            occupied: occ,
            occupancy_ratio: f64::from(occ) / 4.0,
            updated_at: at,
        };
        s.set_live(row(2, 2_000));
        s.set_live(row(1, 1_000));
        let b = s.live_batch();
        assert_eq!(b.num_rows(), 1);
        let occ = b
            .column(2)
            .as_any()
            .downcast_ref::<arrow::array::Int32Array>()
            .unwrap();
        assert_eq!(occ.value(0), 2);
    }
}
