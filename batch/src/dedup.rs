//! Deduplication of readings on (`lot_id`, `space_id`, `ts`) (SPEC §4.1, §6). Pure: the caller
//! gathers the keys already in the table for the dates and time range a batch touches (partition
//! and row-group pruning keep that to a small part of the table), this module drops repeats.
//!
//! The SPEC names (`space_id`, `ts`); fjord includes `lot_id` because space ids are only unique
//! within a lot (every lot may have an "A1"), which is also how the stream processor counts.

use std::collections::HashSet;

use fjord_core::time::TimestampMs;

use crate::rows::ReadingRow;

/// A reading's identity: `"<lot_id>\0<space_id>"` and `ts`.
pub type Key = (String, TimestampMs);

/// The key of a reading.
pub fn key(lot_id: &str, space_id: &str, ts: TimestampMs) -> Key {
    let mut k = String::with_capacity(lot_id.len() + space_id.len() + 1);
    write_key(&mut k, lot_id, space_id);
    (k, ts)
}

fn write_key(buf: &mut String, lot_id: &str, space_id: &str) {
    buf.clear();
    buf.push_str(lot_id);
    buf.push('\0');
    buf.push_str(space_id);
}

/// Keeps the first of every set of rows with the same key, and drops rows whose key is in
/// `existing`. Order is preserved. Returns how many rows were dropped.
pub fn dedup(rows: &mut Vec<ReadingRow>, existing: &HashSet<Key>) -> usize {
    let before = rows.len();
    let mut seen: HashSet<Key> = HashSet::with_capacity(rows.len());
    let mut buf = String::new();
    rows.retain(|r| {
        write_key(&mut buf, &r.reading.lot_id, &r.reading.space_id);
        let probe = (std::mem::take(&mut buf), r.reading.ts);
        let keep = !existing.contains(&probe) && !seen.contains(&probe);
        if keep {
            seen.insert(probe.clone());
        }
        buf = probe.0;
        keep
    });
    before - rows.len()
}

/// The dates and the event-time range a set of rows covers, to bound the lookup of existing keys.
pub fn extent(rows: &[ReadingRow]) -> Option<(Vec<i32>, TimestampMs, TimestampMs)> {
    let min = rows.iter().map(|r| r.reading.ts).min()?;
    let max = rows.iter().map(|r| r.reading.ts).max()?;
    let mut dates: Vec<i32> = rows.iter().map(ReadingRow::date).collect();
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
        let existing: HashSet<Key> = [key("L1", "S1", 12)].into_iter().collect();
        assert_eq!(dedup(&mut rows, &existing), 2);
        let offsets: Vec<_> = rows.iter().map(|r| r.origin.offset.unwrap()).collect();
        assert_eq!(offsets, [0, 2, 3, 4]);
    }

    #[test]
    fn keys_cannot_collide_across_the_separator() {
        assert_ne!(key("L1", "0S", 1), key("L10", "S", 1));
    }

    #[test]
    fn extent_spans_dates_and_times() {
        let day = 86_400_000;
        let rows = vec![row("L", "S", day + 5, 0), row("L", "S", 3, 1)];
        assert_eq!(extent(&rows), Some((vec![0, 1], 3, day + 5)));
        assert_eq!(extent(&[]), None);
    }
}
