//! Lot checkpoints of any size. Pure logic.
//!
//! A lot's state is one record of the compacted `stream-state` topic (key `lot/<lot_id>`), and a
//! Kafka record has a size limit (1 MB by default). A state larger than [`PART_BYTES`] is written
//! in parts instead: the parts under keys `part/<hash>/<i>/<lot_id>`, then, under the lot's key, a
//! header naming their hash, count and total length. `hash` is of the whole state, so a part's key
//! changes whenever its content does and a header only ever points at parts that were written
//! before it. Once the header is written, the parts of the previous state are deleted
//! (tombstones).
//!
//! Whatever a crash interrupts, the lot's key names a complete state: new parts without their
//! header leave the old header and its parts in place; a new header without the deletions leaves
//! unreferenced old parts, which the next restore finds and deletes. The header is recognised by
//! its first byte, `0xff`, which no plain state starts with: a state starts with its lot id's
//! length, and `0xff` would be a length of at least 255 bytes, longer than any lot id accepted
//! (`MAX_ID_BYTES`).

use serde::{Deserialize, Serialize};

/// Largest state written as one record; larger ones are split into parts of this size.
pub const PART_BYTES: usize = 256 * 1024;

/// The start of a header.
const MAGIC: &[u8] = b"\xffFJORD-PARTS-1";

/// Key prefix of a part.
pub const PART_PREFIX: &str = "part/";

/// A state written in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parts {
    /// FNV-1a hash of the whole state.
    pub hash: u64,
    /// Number of parts.
    pub count: u32,
    /// Total length in bytes.
    pub len: u64,
}

/// A checkpoint record: key and value (`None`: delete the key).
pub type Record = (String, Option<Vec<u8>>);

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The key of part `i` of `lot_id`'s state with hash `hash`.
pub fn part_key(lot_id: &str, hash: u64, i: u32) -> String {
    format!("{PART_PREFIX}{hash:016x}/{i}/{lot_id}")
}

/// The lot a part's key belongs to.
pub fn part_lot(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PART_PREFIX)?;
    let mut it = rest.splitn(3, '/');
    let (_hash, _i, lot) = (it.next()?, it.next()?, it.next()?);
    Some(lot)
}

impl Parts {
    /// The keys of these parts.
    pub fn keys(self, lot_id: &str) -> impl Iterator<Item = String> + '_ {
        (0..self.count).map(move |i| part_key(lot_id, self.hash, i))
    }
}

/// The records that write `state` (encoded) for `lot_id`, whose previous state was written in
/// `previous` parts (if it was); returns them and how the new state is written.
pub fn split(
    lot_id: &str,
    state: Vec<u8>,
    previous: Option<Parts>,
) -> (Vec<Record>, Option<Parts>) {
    let key = format!("lot/{lot_id}");
    let mut records = Vec::new();
    let now = if state.len() <= PART_BYTES {
        records.push((key, Some(state)));
        None
    } else {
        let parts = Parts {
            hash: fnv1a(&state),
            count: u32::try_from(state.len().div_ceil(PART_BYTES)).unwrap_or(u32::MAX),
            len: state.len() as u64,
        };
        if previous == Some(parts) {
            // the same state, already written (a replay): its parts are in place
            records.push((key, Some(header(&parts))));
            return (records, Some(parts));
        }
        for (i, chunk) in state.chunks(PART_BYTES).enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            records.push((part_key(lot_id, parts.hash, i), Some(chunk.to_vec())));
        }
        records.push((key, Some(header(&parts))));
        Some(parts)
    };
    if let Some(old) = previous {
        records.extend(old.keys(lot_id).map(|k| (k, None)));
    }
    (records, now)
}

fn header(parts: &Parts) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(postcard::to_allocvec(parts).unwrap_or_default());
    out
}

/// The header in a lot key's value, if it is one.
pub fn read_header(value: &[u8]) -> Option<Result<Parts, String>> {
    let rest = value.strip_prefix(MAGIC)?;
    Some(postcard::from_bytes(rest).map_err(|e| format!("parts header: {e}")))
}

/// The state written in `parts`, from the parts' values (`get` by key); checks that every part is
/// there and that length and hash match.
pub fn join<'a>(
    lot_id: &str,
    parts: &Parts,
    get: impl Fn(&str) -> Option<&'a [u8]>,
) -> Result<Vec<u8>, String> {
    // (a header is data read back: its length is trusted only as far as its parts can hold)
    let most = u64::from(parts.count).saturating_mul(PART_BYTES as u64);
    let mut out = Vec::with_capacity(usize::try_from(parts.len.min(most)).unwrap_or(0));
    for key in parts.keys(lot_id) {
        let part = get(&key).ok_or_else(|| format!("part {key} is missing"))?;
        out.extend_from_slice(part);
    }
    if out.len() as u64 != parts.len || fnv1a(&out) != parts.hash {
        return Err(format!(
            "its {} parts do not add up to the state they were written for",
            parts.count
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The compacted topic after `records`: the latest value per key, deletions applied.
    fn compact(topic: &mut HashMap<String, Vec<u8>>, records: Vec<Record>) {
        for (k, v) in records {
            match v {
                Some(v) => topic.insert(k, v),
                None => topic.remove(&k),
            };
        }
    }

    fn restore(topic: &HashMap<String, Vec<u8>>, lot: &str) -> Vec<u8> {
        let v = &topic[&format!("lot/{lot}")];
        match read_header(v) {
            None => v.clone(),
            Some(h) => join(lot, &h.unwrap(), |k| topic.get(k).map(Vec::as_slice)).unwrap(),
        }
    }

    fn state(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[test]
    fn small_states_are_one_record_and_large_ones_parts_that_replace_each_other() {
        let mut topic = HashMap::new();
        let small = state(1000, 1);
        let (r, p) = split("A", small.clone(), None);
        assert_eq!((r.len(), p), (1, None));
        compact(&mut topic, r);
        assert_eq!(restore(&topic, "A"), small);

        let big = state(3 * PART_BYTES + 5, 2);
        let (r, p1) = split("A", big.clone(), None);
        assert_eq!(r.len(), 5, "4 parts and the header");
        compact(&mut topic, r);
        assert_eq!(restore(&topic, "A"), big);

        let bigger = state(2 * PART_BYTES + 7, 3);
        let (r, p2) = split("A", bigger.clone(), p1);
        compact(&mut topic, r);
        assert_eq!(restore(&topic, "A"), bigger);
        assert_eq!(topic.len(), 1 + 3, "the old parts are deleted");

        let (r, p3) = split("A", small.clone(), p2);
        compact(&mut topic, r);
        assert_eq!((restore(&topic, "A"), p3), (small, None));
        assert_eq!(topic.len(), 1);
        assert!(topic.keys().all(|k| part_lot(k).is_none()));
    }

    #[test]
    fn a_write_cut_short_leaves_a_complete_state() {
        let mut topic = HashMap::new();
        let old = state(2 * PART_BYTES + 1, 4);
        let (r, p) = split("A", old.clone(), None);
        compact(&mut topic, r);
        let new = state(2 * PART_BYTES + 9, 5);
        let (r, _) = split("A", new.clone(), p);
        // every prefix of the new records: the lot reads as the old state or the new one
        for cut in 0..=r.len() {
            let mut t = topic.clone();
            compact(&mut t, r[..cut].to_vec());
            let got = restore(&t, "A");
            assert!(got == old || got == new, "cut after {cut} records");
        }
    }

    #[test]
    fn a_missing_or_changed_part_is_an_error_and_headers_are_unambiguous() {
        let big = state(PART_BYTES + 1, 6);
        let (r, p) = split("A", big, None);
        let p = p.unwrap();
        let mut topic = HashMap::new();
        compact(&mut topic, r);
        let k0 = part_key("A", p.hash, 0);
        let mut changed = topic.clone();
        changed.get_mut(&k0).unwrap()[0] ^= 1;
        assert!(join("A", &p, |k| changed.get(k).map(Vec::as_slice)).is_err());
        topic.remove(&k0);
        let e = join("A", &p, |k| topic.get(k).map(Vec::as_slice)).unwrap_err();
        assert!(e.contains("missing"), "{e}");
        assert_eq!(part_lot(&k0), Some("A"));
        // a plain state never starts like a header: its lot id's length comes first
        let plain = postcard::to_allocvec(&("x".repeat(128), 1u8)).unwrap();
        assert!(read_header(&plain).is_none());
    }
}
