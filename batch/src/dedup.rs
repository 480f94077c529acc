//! Deduplication of readings on (`lot_id`, `space_id`, `ts`) (docs/contract.md §4.1, §6). Pure: the caller
//! gathers the keys already in the table for the dates and time range a batch touches (partition
//! and row-group pruning keep that to a small part of the table), this module drops repeats.
//!
//! The contract (docs/contract.md §6) names (`space_id`, `ts`); fjord includes `lot_id` because space ids are only unique
//! within a lot (every lot may have an "A1"), which is also how the stream processor counts.
//! Spaces are interned, so a key costs 16 bytes and no allocation per reading.

use fjord_core::time::TimestampMs;

use crate::rows::ReadingRow;

/// A set of reading identities.
#[derive(Debug, Default, Clone)]
pub struct Keys {
    /// `"<lot_id>\0<space_id>"` → space number.
    spaces: foldhash::HashMap<String, u32>,
    set: foldhash::HashSet<(u32, TimestampMs)>,
    buf: String,
}

impl Keys {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn space(&mut self, lot_id: &str, space_id: &str, create: bool) -> Option<u32> {
        self.buf.clear();
        self.buf.push_str(lot_id);
        self.buf.push('\0');
        self.buf.push_str(space_id);
        if let Some(&i) = self.spaces.get(self.buf.as_str()) {
            return Some(i);
        }
        if !create {
            return None;
        }
        let i = u32::try_from(self.spaces.len()).unwrap_or(u32::MAX);
        self.spaces.insert(self.buf.clone(), i);
        Some(i)
    }

    /// Adds a key; `false` when it was there already.
    pub fn insert(&mut self, lot_id: &str, space_id: &str, ts: TimestampMs) -> bool {
        let i = self.space(lot_id, space_id, true).unwrap_or(u32::MAX);
        self.set.insert((i, ts))
    }

    /// Whether the key is in the set.
    pub fn contains(&mut self, lot_id: &str, space_id: &str, ts: TimestampMs) -> bool {
        self.space(lot_id, space_id, false)
            .is_some_and(|i| self.set.contains(&(i, ts)))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// Keeps the first of every set of rows with the same key and drops rows whose key is in `known`
/// (the keys already landed); the kept rows' keys are added to `known`. Order is preserved.
/// Returns how many rows were dropped.
pub fn dedup(rows: &mut Vec<ReadingRow>, known: &mut Keys) -> usize {
    let before = rows.len();
    rows.retain(|r| known.insert(&r.reading.lot_id, &r.reading.space_id, r.reading.ts));
    before - rows.len()
}

/// The dates and the event-time range a set of rows covers, to bound the lookup of existing keys.
pub fn extent(rows: &[ReadingRow]) -> Option<(Vec<i32>, TimestampMs, TimestampMs)> {
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for r in rows {
        min = min.min(r.reading.ts);
        max = max.max(r.reading.ts);
    }
    if rows.is_empty() {
        return None;
    }
    let (first, last) = (
        fjord_core::time::epoch_day(min),
        fjord_core::time::epoch_day(max),
    );
    // Every day in between may hold rows (a sorted backfill touches them all).
    let mut dates: Vec<i32> = if last - first <= 366 {
        (first..=last).collect()
    } else {
        rows.iter().map(ReadingRow::date).collect()
    };
    dates.sort_unstable();
    dates.dedup();
    Some((dates, min, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::Origin;
    use fjord_core::model::{Reading, TsSource};

    fn row(lot: &str, space: &str, ts: TimestampMs, offset: i64) -> ReadingRow {
        ReadingRow {
            reading: Reading {
                lot_id: lot.into(),
                space_id: space.into(),
                ts,
                occupied: offset % 2 == 0,
                battery: None,
                extra: None,
                ts_source: TsSource::Device,
            },
            origin: Origin {
                offset: Some(offset),
                ..Origin::default()
            },
        }
    }

    #[test]
    fn keeps_the_first_of_repeats_and_drops_what_is_landed() {
        let mut rows = vec![
            row("L1", "S1", 10, 0),
            row("L1", "S1", 10, 1),
            row("L1", "S2", 10, 2),
            row("L2", "S1", 10, 3),
            row("L1", "S1", 11, 4),
            row("L1", "S1", 12, 5),
        ];
        let mut known = Keys::new();
        known.insert("L1", "S1", 12);
        assert_eq!(dedup(&mut rows, &mut known), 2);
        let offsets: Vec<_> = rows.iter().map(|r| r.origin.offset.unwrap()).collect();
        assert_eq!(offsets, [0, 2, 3, 4]);
        assert_eq!(known.len(), 5);
        assert!(known.contains("L2", "S1", 10));
        assert!(!known.contains("L2", "S1", 11));
        assert!(!known.contains("L3", "S1", 10));
    }

    #[test]
    fn keys_cannot_collide_across_the_separator() {
        let mut k = Keys::new();
        assert!(k.insert("L1", "0S", 1));
        assert!(k.insert("L10", "S", 1));
    }

    #[test]
    fn extent_spans_dates_and_times() {
        let day = 86_400_000;
        let rows = vec![row("L", "S", 2 * day + 5, 0), row("L", "S", 3, 1)];
        assert_eq!(extent(&rows), Some((vec![0, 1, 2], 3, 2 * day + 5)));
        assert_eq!(extent(&[]), None);
    }
}
