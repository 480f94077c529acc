//! A lot's held readings in the checkpoint, by time bucket. Pure logic.
//!
//! A lot holds the readings that wait for the frontier (`out_of_orderness + allowed_lateness` of
//! input) and the applied ones kept for deduplication (`dedup_horizon`): at 10,000 readings/s
//! with the defaults, about 1.8 M readings. Written with the rest of the lot's state, all of them
//! would be rewritten on every commit (10 a second), hundreds of MB/s into the broker, although a
//! commit adds only the readings of the last 100 ms. So they are written apart, in buckets of
//! [`BUCKET_MS`] of event time: a commit writes only the buckets its readings fell into, and a
//! bucket whose readings are all past the dedup horizon is deleted.
//!
//! A bucket's key names its content's hash (`bucket/<start>/<hash>/<lot_id>`), and the lot's
//! record lists the buckets it was written with ([`Index`]). A commit writes the changed buckets
//! first, then the lot's record, then deletes the buckets it replaced. Whatever a crash
//! interrupts, the lot's record names buckets that exist and hold exactly what it was written
//! with: buckets written without their lot record are unreferenced (the next restore finds and
//! deletes them), and a replaced bucket is deleted only after the record that no longer names it.

use std::collections::BTreeMap;

use fjord_core::time::TimestampMs;
use serde::{Deserialize, Serialize};

use super::parts::Record;

/// Event time covered by one bucket.
pub const BUCKET_MS: i64 = 1000;

/// Key prefix of a bucket.
pub const BUCKET_PREFIX: &str = "bucket/";

/// A held reading: event time, space index, occupied (see `LotEngine::held_between`).
pub type Entry = (TimestampMs, u32, bool);

/// What a lot's record says about its held readings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// The buckets written, by start: hash of their content.
    pub buckets: BTreeMap<TimestampMs, u64>,
    /// How many applied readings are kept for deduplication (the newest ones before the
    /// frontier).
    pub recent: u64,
}

/// The start of the bucket holding `ts`.
pub fn start_of(ts: TimestampMs) -> TimestampMs {
    ts.div_euclid(BUCKET_MS) * BUCKET_MS
}

/// The key of `lot_id`'s bucket at `start` with content hash `hash`.
pub fn key(lot_id: &str, start: TimestampMs, hash: u64) -> String {
    format!("{BUCKET_PREFIX}{start}/{hash:016x}/{lot_id}")
}

/// (lot, start, hash) of a bucket's key.
pub fn parse_key(key: &str) -> Option<(&str, TimestampMs, u64)> {
    let rest = key.strip_prefix(BUCKET_PREFIX)?;
    let mut it = rest.splitn(3, '/');
    let start = it.next()?.parse().ok()?;
    let hash = u64::from_str_radix(it.next()?, 16).ok()?;
    Some((it.next()?, start, hash))
}

/// Encodes a bucket's entries (all within `[start, start + BUCKET_MS)`): offsets from the start
/// keep an entry at about 4 bytes.
pub fn encode(start: TimestampMs, entries: &[Entry]) -> Vec<u8> {
    let rows: Vec<(u16, u32, bool)> = entries
        .iter()
        .map(|&(ts, i, occupied)| (u16::try_from(ts - start).unwrap_or(u16::MAX), i, occupied))
        .collect();
    // postcard cannot fail on these types
    postcard::to_allocvec(&rows).unwrap_or_default()
}

/// Decodes a bucket written by [`encode`]; checks that every entry lies in the bucket.
pub fn decode(start: TimestampMs, bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let rows: Vec<(u16, u32, bool)> =
        postcard::from_bytes(bytes).map_err(|e| format!("bucket at {start}: {e}"))?;
    rows.into_iter()
        .map(|(dt, i, occupied)| {
            if i64::from(dt) < BUCKET_MS {
                Ok((start + i64::from(dt), i, occupied))
            } else {
                Err(format!(
                    "bucket at {start}: an entry {dt} ms after its start"
                ))
            }
        })
        .collect()
}

/// FNV-1a, as for parts: a bucket's identity, not a defence against forgery (the topic is
/// fjord's own).
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The bucket records of one commit of `lot_id`: `changed` are the buckets (start, current
/// entries) whose readings changed, `oldest` the event time of the oldest reading still held
/// (`None`: none is). Updates `index` and returns the records to write before the lot's record
/// and the deletions to write after it.
pub fn commit(
    lot_id: &str,
    index: &mut Index,
    changed: impl IntoIterator<Item = (TimestampMs, Vec<Entry>)>,
    oldest: Option<TimestampMs>,
) -> (Vec<Record>, Vec<Record>) {
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for (start, entries) in changed {
        let old = index.buckets.get(&start).copied();
        if entries.is_empty() {
            if let Some(h) = old {
                index.buckets.remove(&start);
                after.push((key(lot_id, start, h), None));
            }
            continue;
        }
        let bytes = encode(start, &entries);
        let h = hash(&bytes);
        if old == Some(h) {
            continue;
        }
        before.push((key(lot_id, start, h), Some(bytes)));
        index.buckets.insert(start, h);
        if let Some(old) = old {
            after.push((key(lot_id, start, old), None));
        }
    }
    // buckets whose every reading is older than the oldest one held
    let keep_from = oldest.map_or(i64::MAX, start_of);
    let kept = index.buckets.split_off(&keep_from);
    for (start, h) in std::mem::replace(&mut index.buckets, kept) {
        after.push((key(lot_id, start, h), None));
    }
    (before, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_buckets_round_trip() {
        let k = key("lot/with/slashes", -2000, 0xab);
        assert_eq!(parse_key(&k), Some(("lot/with/slashes", -2000, 0xab)));
        assert_eq!(parse_key("lot/A"), None);
        assert_eq!(
            (start_of(1999), start_of(2000), start_of(-1)),
            (1000, 2000, -1000)
        );
        let entries = vec![(5000, 3, true), (5999, 0, false)];
        assert_eq!(decode(5000, &encode(5000, &entries)).unwrap(), entries);
        let e = decode(
            6000,
            &postcard::to_allocvec(&vec![(1000u16, 1u32, true)]).unwrap(),
        );
        assert!(e.unwrap_err().contains("after its start"));
    }

    #[test]
    fn a_commit_writes_changed_buckets_before_and_deletes_replaced_and_old_ones_after() {
        let mut index = Index::default();
        let (before, after) = commit(
            "A",
            &mut index,
            [(0, vec![(10, 0, true)]), (1000, vec![(1500, 1, false)])],
            Some(10),
        );
        assert_eq!((before.len(), after.len(), index.buckets.len()), (2, 0, 2));
        let first = index.clone();
        // the same content again writes nothing
        let (before, after) = commit("A", &mut index, [(0, vec![(10, 0, true)])], Some(10));
        assert!(before.is_empty() && after.is_empty());
        // a grown bucket: the new key first, the old one deleted after
        let (before, after) = commit(
            "A",
            &mut index,
            [(1000, vec![(1500, 1, false), (1600, 0, true)])],
            Some(10),
        );
        assert_eq!(before.len(), 1);
        assert_eq!(after, vec![(key("A", 1000, first.buckets[&1000]), None)]);
        // everything before 1000 is no longer held: bucket 0 goes
        let (before, after) = commit("A", &mut index, [], Some(1500));
        assert!(before.is_empty());
        assert_eq!(after, vec![(key("A", 0, first.buckets[&0]), None)]);
        assert_eq!(
            index.buckets.keys().copied().collect::<Vec<_>>(),
            vec![1000]
        );
        // nothing held: every bucket goes
        let (_, after) = commit("A", &mut index, [], None);
        assert_eq!((after.len(), index.buckets.len()), (1, 0));
    }
}
