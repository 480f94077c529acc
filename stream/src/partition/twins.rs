//! Each space's digital twin as the stream processor keeps it (docs/contract.md §7 `spaces_live`): occupied by
//! its newest reading, since when, its battery and when it was last seen. Twins are part of their
//! lot's checkpoint, so a restart or a replay continues them exactly; the ones that changed since
//! the last commit are published to the compacted `spaces-live` topic, which the serving layer
//! reads instead of replaying `fjord.readings`.

use std::collections::{BTreeMap, BTreeSet};

use fjord_core::model::SpaceRow;
use fjord_core::time::TimestampMs;
use serde::{Deserialize, Serialize};

/// One space's twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Twin {
    /// Occupied by the newest reading (by event time).
    pub occupied: bool,
    /// Event time of the first reading in that state.
    pub since: TimestampMs,
    /// Battery of the newest reading.
    pub battery: Option<i16>,
    /// Event time of the newest reading.
    pub last_seen: TimestampMs,
}

/// The twins of one lot, by space id.
pub type Twins = BTreeMap<String, Twin>;

/// Twins rebuilt from an engine's spaces, for a checkpoint written before twins were kept: each
/// space's latest accepted reading by event time, in that state since its last transition when
/// the engine's applied state agrees (else since that reading); batteries are unknown until the
/// space reports again.
pub fn from_engine(engine: &fjord_core::occupancy::LotEngine) -> Twins {
    engine
        .spaces()
        .filter(|(_, s)| s.live_ts != i64::MIN)
        .map(|(id, s)| {
            let since = if s.occupied == s.live_occupied && s.since != i64::MIN {
                s.since.min(s.live_ts)
            } else {
                s.live_ts
            };
            (
                id.to_owned(),
                Twin {
                    occupied: s.live_occupied,
                    since,
                    battery: None,
                    last_seen: s.live_ts,
                },
            )
        })
        .collect()
}

/// Approximate bytes held by `twins` (ids, values and the map's nodes).
pub fn bytes(twins: &Twins) -> usize {
    twins
        .keys()
        .map(|k| k.capacity() + std::mem::size_of::<(String, Twin)>() + 16)
        .sum()
}

/// Takes in an accepted reading. Only a reading newer than the twin's newest changes it; returns
/// whether it did.
pub fn observe(
    twins: &mut Twins,
    space_id: &str,
    ts: TimestampMs,
    occupied: bool,
    battery: Option<i16>,
) -> bool {
    match twins.get_mut(space_id) {
        Some(t) if ts <= t.last_seen => false,
        Some(t) => {
            if t.occupied != occupied {
                t.occupied = occupied;
                t.since = ts;
            }
            t.battery = battery;
            t.last_seen = ts;
            true
        }
        None => {
            twins.insert(
                space_id.to_owned(),
                Twin {
                    occupied,
                    since: ts,
                    battery,
                    last_seen: ts,
                },
            );
            true
        }
    }
}

/// The rows of the changed twins `dirty` (lot, space), in key order; twins no longer held are
/// skipped.
pub fn rows<'a>(
    dirty: &BTreeSet<(String, String)>,
    twins_of: impl Fn(&str) -> Option<&'a Twins>,
) -> Vec<SpaceRow> {
    dirty
        .iter()
        .filter_map(|(lot, space)| {
            let t = twins_of(lot)?.get(space)?;
            Some(SpaceRow {
                lot_id: lot.clone(),
                space_id: space.clone(),
                occupied: t.occupied,
                since: t.since,
                battery: t.battery,
                last_seen: t.last_seen,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_twin_follows_the_newest_reading_and_knows_since_when() {
        let mut t = Twins::new();
        assert!(observe(&mut t, "S1", 1_000, true, Some(90)));
        assert!(observe(&mut t, "S1", 2_000, true, Some(89)));
        assert_eq!(t["S1"].since, 1_000, "same state: since stays");
        assert!(observe(&mut t, "S1", 3_000, false, None));
        assert!(
            !observe(&mut t, "S1", 2_500, true, Some(1)),
            "out of order: ignored"
        );
        assert!(
            !observe(&mut t, "S1", 3_000, true, Some(1)),
            "same ts: ignored"
        );
        assert_eq!(
            t["S1"],
            Twin {
                occupied: false,
                since: 3_000,
                battery: None,
                last_seen: 3_000
            }
        );
    }

    #[test]
    fn rows_are_the_dirty_twins_in_key_order() {
        let mut lots: BTreeMap<String, Twins> = BTreeMap::new();
        let l1 = lots.entry("L1".into()).or_default();
        observe(l1, "S2", 5, true, Some(50));
        observe(l1, "S1", 6, false, None);
        let dirty: BTreeSet<(String, String)> = [
            ("L1".to_owned(), "S2".to_owned()),
            ("L1".to_owned(), "S1".to_owned()),
            ("L9".to_owned(), "S1".to_owned()),
        ]
        .into();
        let rows = rows(&dirty, |lot| lots.get(lot));
        let ids: Vec<_> = rows.iter().map(|r| r.space_id.as_str()).collect();
        assert_eq!(ids, ["S1", "S2"], "L9 is not held: skipped");
        assert_eq!(rows[1].battery, Some(50));
    }
}
