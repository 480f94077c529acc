//! The occupancy engine of one lot: readings in, closed windows out (docs/contract.md §4.1). Pure and exact.
//!
//! Readings wait in `pending` (a set keyed by (`ts`, space), so a duplicate is one reading) until
//! the caller moves the *frontier*: the time before which no further reading will be accepted.
//! [`LotEngine::advance`] then applies the pending readings before the new frontier in event-time
//! order and closes every window that ends at or before it. The integral of occupied spaces is kept
//! in integer space-milliseconds, so results do not depend on how the input was split into calls:
//! advancing once or a thousand times gives the same windows.
//!
//! The stream processor moves the frontier to `watermark − allowed_lateness`, so a window is
//! emitted once every reading that could still change it would be late: emitted windows never
//! change. The batch views use the same engine with the frontier at the end of each day.
//!
//! Besides the state at the frontier, each space keeps its *live* state (its latest reading by
//! event time, applied or not) for the current occupancy of `occupancy_live`. Space ids are
//! interned, so a tracked space costs about 100 bytes.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::model::{OccupancyWindow, WindowSource};
use crate::time::TimestampMs;

/// What [`LotEngine::offer`] did with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Kept; it will count once the frontier passes it.
    Accepted,
    /// A reading with this (`space_id`, `ts`) was seen already.
    Duplicate,
    /// Older than the lateness bound: it cannot change any window any more.
    Late,
}

/// A space's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceState {
    /// Occupied at the frontier.
    pub occupied: bool,
    /// Event time of the last applied reading (`i64::MIN`: none applied yet).
    pub last_ts: TimestampMs,
    /// Event time of the last applied transition (or of the first applied reading).
    pub since: TimestampMs,
    /// Occupied according to the latest accepted reading by event time.
    pub live_occupied: bool,
    /// Event time of that reading.
    pub live_ts: TimestampMs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WindowAcc {
    size: i64,
    start: i64,
    /// ∫ occupied spaces dt over [start, cursor), in space-milliseconds.
    integral: i64,
    arrivals: u64,
    departures: u64,
    readings: u64,
}

/// The state of one lot. Serializable: it is what the stream processor checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LotEngine {
    lot_id: String,
    /// Registered capacity; `None`: the number of distinct spaces seen so far.
    capacity: Option<u32>,
    windows: Vec<WindowAcc>,
    /// Space id → index into `spaces`.
    index: HashMap<String, u32>,
    spaces: Vec<SpaceState>,
    /// Spaces with at least one applied reading.
    applied_spaces: u32,
    pending: BTreeMap<(TimestampMs, u32), bool>,
    /// Applied readings not older than `frontier − dedup_horizon`, oldest first, so that a
    /// duplicate arriving after its original was applied is still recognised.
    recent: VecDeque<(TimestampMs, u32)>,
    dedup_horizon_ms: i64,
    /// Everything before this instant has been applied.
    frontier: TimestampMs,
    /// The integrals are accumulated up to this instant (the frontier between calls).
    cursor: TimestampMs,
    /// Occupied spaces at the frontier.
    occupied: u32,
    /// Occupied spaces by their latest reading.
    live_occupied: u32,
    /// Event time of the latest reading accepted.
    live_updated_at: TimestampMs,
    started: bool,
}

impl LotEngine {
    /// A lot with no readings yet. `window_sizes_ms` must be positive; `dedup_horizon_ms` bounds
    /// how long applied readings are remembered for deduplication.
    pub fn new(
        lot_id: impl Into<String>,
        capacity: Option<u32>,
        window_sizes_ms: &[i64],
        dedup_horizon_ms: i64,
    ) -> Self {
        Self {
            lot_id: lot_id.into(),
            capacity,
            windows: window_sizes_ms
                .iter()
                .map(|&size| WindowAcc {
                    size,
                    start: 0,
                    integral: 0,
                    arrivals: 0,
                    departures: 0,
                    readings: 0,
                })
                .collect(),
            index: HashMap::new(),
            spaces: Vec::new(),
            applied_spaces: 0,
            pending: BTreeMap::new(),
            recent: VecDeque::new(),
            dedup_horizon_ms,
            frontier: i64::MIN,
            cursor: i64::MIN,
            occupied: 0,
            live_occupied: 0,
            live_updated_at: i64::MIN,
            started: false,
        }
    }

    /// A lot whose spaces carry their state into `at`: each of `spaces` is (space id, event time
    /// of its last reading before `at`, occupied). The frontier starts at `at`, which must be
    /// aligned to every window size (the batch views start each UTC day this way, carrying the
    /// state at the end of the previous day). With no spaces this is [`LotEngine::new`].
    pub fn seeded(
        lot_id: impl Into<String>,
        capacity: Option<u32>,
        window_sizes_ms: &[i64],
        at: TimestampMs,
        spaces: impl IntoIterator<Item = (String, TimestampMs, bool)>,
    ) -> Self {
        let mut e = Self::new(lot_id, capacity, window_sizes_ms, 0);
        for (space, last_ts, occupied) in spaces {
            if e.index.contains_key(&space) {
                continue;
            }
            let i = u32::try_from(e.spaces.len()).unwrap_or(u32::MAX);
            e.index.insert(space, i);
            e.spaces.push(SpaceState {
                occupied,
                last_ts,
                since: last_ts,
                live_occupied: occupied,
                live_ts: last_ts,
            });
            e.applied_spaces += 1;
            if occupied {
                e.occupied += 1;
                e.live_occupied += 1;
            }
            e.live_updated_at = e.live_updated_at.max(last_ts);
        }
        if !e.spaces.is_empty() {
            for w in &mut e.windows {
                w.start = at.div_euclid(w.size) * w.size;
            }
            e.frontier = at;
            e.cursor = at;
            e.started = true;
        }
        e
    }

    /// The lot.
    pub fn lot_id(&self) -> &str {
        &self.lot_id
    }

    /// Everything before this instant has been applied.
    pub fn frontier(&self) -> TimestampMs {
        self.frontier
    }

    /// Occupied spaces at the frontier.
    pub fn occupied(&self) -> u32 {
        self.occupied
    }

    /// Occupied spaces by their latest reading, and the event time of the latest reading.
    pub fn live(&self) -> (u32, TimestampMs) {
        (self.live_occupied, self.live_updated_at)
    }

    /// The capacity used for the ratio: registered, or distinct spaces seen so far.
    pub fn capacity(&self) -> u32 {
        self.capacity.unwrap_or(self.applied_spaces)
    }

    /// The capacity for live figures: registered, or every space seen.
    pub fn live_capacity(&self) -> u32 {
        self.capacity
            .unwrap_or_else(|| u32::try_from(self.spaces.len()).unwrap_or(u32::MAX))
    }

    /// Every space with its state.
    pub fn spaces(&self) -> impl Iterator<Item = (&str, &SpaceState)> {
        self.index
            .iter()
            .map(|(k, &i)| (k.as_str(), &self.spaces[i as usize]))
    }

    /// The state of one space, if it was ever seen.
    pub fn space(&self, space_id: &str) -> Option<&SpaceState> {
        self.index.get(space_id).map(|&i| &self.spaces[i as usize])
    }

    /// Number of spaces tracked.
    pub fn spaces_len(&self) -> usize {
        self.spaces.len()
    }

    /// Readings waiting for the frontier.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// `advance(to)` has something to do exactly when `to` is greater than this: the first pending
    /// reading's time, or the last millisecond of the earliest open window.
    pub fn next_event(&self) -> Option<TimestampMs> {
        let first_pending = self.pending.keys().next().map(|(ts, _)| *ts);
        let first_end = self
            .started
            .then(|| self.windows.iter().map(|w| w.start + w.size - 1).min())
            .flatten();
        match (first_pending, first_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Offers a reading. `late_before`: readings older than this are late (the caller's
    /// `watermark − allowed_lateness`).
    pub fn offer(
        &mut self,
        space_id: &str,
        ts: TimestampMs,
        occupied: bool,
        late_before: TimestampMs,
    ) -> Offer {
        let known = self.index.get(space_id).copied();
        if let Some(i) = known
            && (self.pending.contains_key(&(ts, i)) || self.was_applied(i, ts))
        {
            return Offer::Duplicate;
        }
        if ts < late_before.max(self.frontier) {
            return Offer::Late;
        }
        let i = known.unwrap_or_else(|| {
            let i = u32::try_from(self.spaces.len()).unwrap_or(u32::MAX);
            self.index.insert(space_id.to_owned(), i);
            self.spaces.push(SpaceState {
                occupied: false,
                last_ts: i64::MIN,
                since: i64::MIN,
                live_occupied: false,
                live_ts: i64::MIN,
            });
            i
        });
        self.pending.insert((ts, i), occupied);
        let s = &mut self.spaces[i as usize];
        if ts > s.live_ts {
            if s.live_occupied != occupied {
                if occupied {
                    self.live_occupied += 1;
                } else {
                    self.live_occupied -= 1;
                }
            }
            s.live_occupied = occupied;
            s.live_ts = ts;
        }
        self.live_updated_at = self.live_updated_at.max(ts);
        Offer::Accepted
    }

    fn was_applied(&self, i: u32, ts: TimestampMs) -> bool {
        // `recent` is sorted by (ts, space): readings are applied in that order, and a reading
        // before the frontier is never applied later
        ts < self.frontier
            && (self.spaces[i as usize].last_ts == ts
                || self.recent.binary_search(&(ts, i)).is_ok())
    }

    /// Applies every pending reading before `to` and appends each window that closes at or before
    /// `to` to `out`. Moving the frontier backwards does nothing.
    pub fn advance(&mut self, to: TimestampMs, out: &mut Vec<OccupancyWindow>) {
        if to <= self.frontier {
            return;
        }
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 >= to {
                break;
            }
            let ((ts, i), occupied) = entry.remove_entry();
            self.apply(ts, i, occupied, out);
        }
        if self.started {
            self.integrate_to(to, out);
        }
        self.frontier = to;
        let horizon = to.saturating_sub(self.dedup_horizon_ms);
        while self.recent.front().is_some_and(|(t, _)| *t < horizon) {
            self.recent.pop_front();
        }
    }

    fn apply(&mut self, ts: TimestampMs, i: u32, occupied: bool, out: &mut Vec<OccupancyWindow>) {
        if !self.started {
            for w in &mut self.windows {
                w.start = ts.div_euclid(w.size) * w.size;
            }
            self.cursor = ts;
            self.started = true;
        }
        self.integrate_to(ts, out);
        let s = &mut self.spaces[i as usize];
        if s.last_ts == i64::MIN {
            self.applied_spaces += 1;
            s.since = ts;
        }
        s.last_ts = ts;
        let changed = s.occupied != occupied;
        if changed {
            s.occupied = occupied;
            s.since = ts;
            if occupied {
                self.occupied += 1;
            } else {
                self.occupied -= 1;
            }
        }
        for w in &mut self.windows {
            w.readings += 1;
            if changed {
                if occupied {
                    w.arrivals += 1;
                } else {
                    w.departures += 1;
                }
            }
        }
        self.recent.push_back((ts, i));
    }

    /// Integrates the occupied count from the cursor up to `t`, closing windows on the way.
    fn integrate_to(&mut self, t: TimestampMs, out: &mut Vec<OccupancyWindow>) {
        let count = i64::from(self.occupied);
        let capacity = self.capacity();
        let cursor = self.cursor;
        for w in &mut self.windows {
            let mut from = cursor.max(w.start);
            while w.start + w.size <= t {
                let end = w.start + w.size;
                w.integral += count * (end - from).max(0);
                let avg = w.integral as f64 / w.size as f64;
                out.push(OccupancyWindow {
                    lot_id: self.lot_id.clone(),
                    window_start: w.start,
                    window_end: end,
                    capacity,
                    occupied_avg: avg,
                    occupancy_ratio: if capacity == 0 {
                        0.0
                    } else {
                        avg / f64::from(capacity)
                    },
                    occupied_end: self.occupied,
                    arrivals: w.arrivals,
                    departures: w.departures,
                    readings: w.readings,
                    source: WindowSource::Speed,
                });
                w.start = end;
                w.integral = 0;
                w.arrivals = 0;
                w.departures = 0;
                w.readings = 0;
                from = end;
            }
            w.integral += count * (t - from).max(0);
        }
        self.cursor = self.cursor.max(t);
    }

    /// Moves the held readings (waiting for the frontier, or applied within the dedup horizon) out
    /// of the engine, so that the rest of the state can be encoded without them; put them back
    /// with [`LotEngine::put_held`].
    pub fn take_held(&mut self) -> Held {
        Held {
            pending: std::mem::take(&mut self.pending),
            recent: std::mem::take(&mut self.recent),
        }
    }

    /// Puts back what [`LotEngine::take_held`] took.
    pub fn put_held(&mut self, held: Held) {
        self.pending = held.pending;
        self.recent = held.recent;
    }

    /// Number of applied readings kept for deduplication.
    pub fn recent_len(&self) -> usize {
        self.recent.len()
    }

    /// Event time of the oldest held reading: no reading before it is needed any more.
    pub fn oldest_held(&self) -> Option<TimestampMs> {
        let recent = self.recent.front().map(|(ts, _)| *ts);
        let pending = self.pending.keys().next().map(|(ts, _)| *ts);
        match (recent, pending) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The held readings with `from <= ts < to`, ordered by (ts, space): (ts, space index,
    /// occupied). An applied reading's value is no longer kept and reads `false`.
    pub fn held_between(
        &self,
        from: TimestampMs,
        to: TimestampMs,
    ) -> Vec<(TimestampMs, u32, bool)> {
        let lo = self.recent.partition_point(|(ts, _)| *ts < from);
        let hi = self.recent.partition_point(|(ts, _)| *ts < to);
        let mut out: Vec<_> = self
            .recent
            .range(lo..hi)
            .map(|&(ts, i)| (ts, i, false))
            .collect();
        if from < to {
            out.extend(
                self.pending
                    .range((from, 0)..(to, 0))
                    .map(|(&(ts, i), &occupied)| (ts, i, occupied)),
            );
        }
        out
    }

    /// Rebuilds the held readings of an engine decoded without them, from `entries` (any order,
    /// as [`LotEngine::held_between`] gave them, possibly with older ones): those at or after the
    /// frontier wait for it, and the last `recent` before it are the applied readings still kept
    /// for deduplication. Fails on a space the engine does not know or too few applied readings.
    pub fn restore_held(
        &mut self,
        mut entries: Vec<(TimestampMs, u32, bool)>,
        recent: usize,
    ) -> Result<(), String> {
        entries.sort_unstable_by_key(|&(ts, i, _)| (ts, i));
        entries.dedup_by_key(|&mut (ts, i, _)| (ts, i));
        if let Some(&(_, i, _)) = entries
            .iter()
            .find(|(_, i, _)| *i as usize >= self.spaces.len())
        {
            return Err(format!(
                "a held reading names space #{i}, of {} known",
                self.spaces.len()
            ));
        }
        let split = entries.partition_point(|(ts, _, _)| *ts < self.frontier);
        if split < recent {
            return Err(format!(
                "{recent} applied readings should be kept for deduplication, {split} were found"
            ));
        }
        self.recent = entries[split - recent..split]
            .iter()
            .map(|&(ts, i, _)| (ts, i))
            .collect();
        self.pending = entries[split..]
            .iter()
            .map(|&(ts, i, occupied)| ((ts, i), occupied))
            .collect();
        Ok(())
    }

    /// Approximate bytes of this lot's state, split into what each tracked space costs for as
    /// long as it is tracked and what readings cost while they wait for the frontier or stay in
    /// the dedup horizon.
    pub fn size(&self) -> StateSize {
        // hashbrown entry (String + u32, padded) + the key's heap block + control byte
        let index: usize = self
            .index
            .keys()
            .map(|k| {
                std::mem::size_of::<(String, u32)>()
                    + k.capacity().max(16).next_multiple_of(8)
                    + 8
                    + 1
            })
            .sum();
        StateSize {
            spaces: self.spaces.len(),
            resident_bytes: std::mem::size_of::<Self>()
                + index
                + self.spaces.capacity() * std::mem::size_of::<SpaceState>(),
            // a B-tree entry: key (i64, u32) + value + node overhead
            pending_bytes: self.pending.len() * 32,
            recent_bytes: self.recent.capacity() * std::mem::size_of::<(TimestampMs, u32)>(),
        }
    }
}

/// A lot's held readings, out of its engine ([`LotEngine::take_held`]).
#[derive(Debug, Default)]
pub struct Held {
    pending: BTreeMap<(TimestampMs, u32), bool>,
    recent: VecDeque<(TimestampMs, u32)>,
}

/// The approximate memory of a lot's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateSize {
    /// Spaces tracked.
    pub spaces: usize,
    /// Bytes that stay while the spaces are tracked (ids, states, window accumulators).
    pub resident_bytes: usize,
    /// Bytes of readings waiting for the frontier (about `out_of_orderness + allowed_lateness` of
    /// input).
    pub pending_bytes: usize,
    /// Bytes of applied readings kept for deduplication (`dedup_horizon` of input).
    pub recent_bytes: usize,
}

impl StateSize {
    /// Adds another lot's size.
    pub fn add(&mut self, other: StateSize) {
        self.spaces += other.spaces;
        self.resident_bytes += other.resident_bytes;
        self.pending_bytes += other.pending_bytes;
        self.recent_bytes += other.recent_bytes;
    }

    /// All bytes.
    pub fn total(&self) -> usize {
        self.resident_bytes + self.pending_bytes + self.recent_bytes
    }
}
