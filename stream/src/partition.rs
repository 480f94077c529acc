//! The stream processor's work on one input partition, without any I/O: records in, outputs out,
//! state that can be checkpointed and restored.
//!
//! For each record: decode it (undecodable → dead letter), judge it against the partition's
//! watermark (late → `fjord.late`), offer it to its lot's [`LotEngine`], then move every lot's
//! frontier to `watermark − allowed_lateness`, which closes windows. Each lot remembers the offset
//! of the last record it applied: a record replayed after a crash whose effect is already in the
//! lot's checkpoint is skipped, so a replay repeats exactly the outputs of the original run.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use fjord_core::decode::DecodeOptions;
use fjord_core::decode::record::{ReadingsTopics, RecordHeaders, decode_record};
use fjord_core::lots::LotsRegistry;
use fjord_core::model::{Alert, OccupancyWindow, SpaceRow};
use fjord_core::occupancy::{LotEngine, Offer, StateSize};
use fjord_core::time::TimestampMs;
use serde::{Deserialize, Serialize};

use crate::alerts::{LotAlerts, Rules};
use crate::watermark::Watermark;

/// What every partition needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Window sizes, ms.
    pub windows_ms: Vec<i64>,
    /// Bounded out-of-orderness, ms.
    pub out_of_orderness_ms: i64,
    /// Idle time before the watermark follows the wall clock, ms.
    pub idle_after_ms: i64,
    /// Allowed lateness, ms.
    pub allowed_lateness_ms: i64,
    /// Dedup horizon, ms.
    pub dedup_horizon_ms: i64,
    /// Decoder settings.
    pub decode: DecodeOptions,
    /// Which MQTT topics are readings, and where their ids are.
    pub topics: ReadingsTopics,
    /// Registered capacities.
    pub lots: LotsRegistry,
    /// Alert rules.
    pub rules: Arc<Rules>,
}

/// A record of `fjord.readings`.
#[derive(Debug, Clone, Copy)]
pub struct InRecord<'a> {
    /// Offset in its partition.
    pub offset: i64,
    /// Key (the lot).
    pub key: Option<&'a [u8]>,
    /// Value (the payload as received by the bridge).
    pub payload: &'a [u8],
    /// The headers fjord reads.
    pub headers: RecordHeaders<'a>,
    /// Every header, to forward with late and dead-lettered records.
    pub all_headers: &'a [(&'a str, &'a [u8])],
}

/// An output of the processor.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A closed window.
    Window(OccupancyWindow),
    /// A reading too late for the speed layer, forwarded as it came.
    Late {
        /// Its lot.
        lot_id: String,
        /// Original value.
        payload: Vec<u8>,
        /// Original headers.
        headers: Vec<(String, Vec<u8>)>,
        /// The watermark that judged it.
        watermark: TimestampMs,
    },
    /// An alert state change.
    Alert(Alert),
    /// A record that does not decode.
    DeadLetter {
        /// Original key.
        key: Option<Vec<u8>>,
        /// Original value.
        payload: Vec<u8>,
        /// Original headers.
        headers: Vec<(String, Vec<u8>)>,
        /// Stable reason code.
        reason: &'static str,
        /// Human-readable reason.
        error: String,
    },
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Counted.
    Accepted,
    /// A duplicate of a reading already counted.
    Duplicate,
    /// Late: forwarded to `fjord.late`.
    Late,
    /// Undecodable: dead-lettered.
    Dead,
    /// Replayed after a crash; its effect was already checkpointed.
    Skipped,
}

/// A lot's checkpointed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LotState {
    /// The occupancy engine.
    pub engine: LotEngine,
    /// Offset of the last record applied to this lot.
    pub applied_offset: i64,
    /// Its alerts.
    pub alerts: LotAlerts,
    /// Its spaces' digital twins.
    pub twins: twins::Twins,
    /// Where its held readings are in the checkpoint (written apart: [`buckets`]).
    pub held: buckets::Index,
}

/// A lot's checkpoint as written before held readings were written apart: the engine with its
/// held readings inside.
#[derive(Deserialize)]
struct LotStateV2 {
    engine: LotEngine,
    applied_offset: i64,
    alerts: LotAlerts,
    twins: twins::Twins,
}

/// What a checkpoint of an older format needs after it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    /// Nothing: the current format.
    None,
    /// The held readings came with the engine: write them as buckets.
    Held,
    /// Written before twins: the twins were rebuilt and must be published, and the held
    /// readings written as buckets.
    Twins,
}

/// A lot's checkpoint as written before twins were kept (decoded by [`decode_lot`] so that a
/// processor upgraded over an old checkpoint continues from it, with twins rebuilt as readings
/// arrive).
#[derive(Deserialize)]
struct LotStateV1 {
    engine: LotEngine,
    applied_offset: i64,
    alerts: LotAlerts,
}

/// Decodes a lot's checkpoint, current or of an older format (see [`Upgrade`]; before twins they
/// are rebuilt from the engine's spaces, without batteries). Every format must use every byte: a
/// current checkpoint cut short is an error, not an old one.
fn decode_lot(bytes: &[u8]) -> Result<(LotState, Upgrade), postcard::Error> {
    fn whole<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
        match postcard::take_from_bytes::<T>(bytes)? {
            (v, []) => Ok(v),
            _ => Err(postcard::Error::DeserializeBadEncoding),
        }
    }
    whole::<LotState>(bytes)
        .map(|l| (l, Upgrade::None))
        .or_else(|e| {
            whole::<LotStateV2>(bytes)
                .map(|v2| {
                    let lot = LotState {
                        engine: v2.engine,
                        applied_offset: v2.applied_offset,
                        alerts: v2.alerts,
                        twins: v2.twins,
                        held: buckets::Index::default(),
                    };
                    (lot, Upgrade::Held)
                })
                .map_err(|_| e)
        })
        .or_else(|e| {
            whole::<LotStateV1>(bytes)
                .map(|v1| {
                    let twins = twins::from_engine(&v1.engine);
                    let lot = LotState {
                        engine: v1.engine,
                        applied_offset: v1.applied_offset,
                        alerts: v1.alerts,
                        twins,
                        held: buckets::Index::default(),
                    };
                    (lot, Upgrade::Twins)
                })
                .map_err(|_| e)
        })
}

/// The partition-level checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The next offset to read.
    pub next_offset: i64,
    /// The watermark.
    pub watermark: Watermark,
}

/// The state of one input partition.
#[derive(Debug)]
pub struct PartitionState {
    partition: i32,
    watermark: Watermark,
    lots: HashMap<String, LotState>,
    next_offset: i64,
    /// Lots changed since the last checkpoint.
    dirty: HashSet<String>,
    /// Per lot, the buckets of held readings changed since the last checkpoint ([`buckets`]).
    held_dirty: HashMap<String, BTreeSet<TimestampMs>>,
    /// Lots whose live occupancy changed since it was last published.
    live_dirty: HashSet<String>,
    /// (lot, space) of the twins that changed since they were last published.
    twins_dirty: BTreeSet<(String, String)>,
    meta_dirty: bool,
    /// The lots whose state was last written in parts, and how ([`parts`]).
    parts: HashMap<String, parts::Parts>,
    /// Parts no header refers to (left by a crash), deleted with the next checkpoint.
    orphans: Vec<String>,
    /// No lot has anything to do before this instant.
    next_due: TimestampMs,
    /// No lot's alerts have anything to do before this watermark.
    alerts_due: TimestampMs,
}

pub use fjord_core::model::LiveRow;

impl PartitionState {
    /// A partition with no history.
    pub fn new(partition: i32, settings: &Settings) -> Self {
        Self {
            partition,
            watermark: Watermark::new(settings.out_of_orderness_ms, settings.idle_after_ms),
            lots: HashMap::new(),
            next_offset: 0,
            dirty: HashSet::new(),
            held_dirty: HashMap::new(),
            live_dirty: HashSet::new(),
            twins_dirty: BTreeSet::new(),
            meta_dirty: false,
            parts: HashMap::new(),
            orphans: Vec::new(),
            next_due: i64::MIN,
            alerts_due: i64::MIN,
        }
    }

    /// The partition number.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The next offset to read.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The current watermark.
    pub fn watermark(&self) -> TimestampMs {
        self.watermark.current()
    }

    /// The approximate memory of this partition's state.
    pub fn size(&self) -> StateSize {
        let mut size = StateSize::default();
        for lot in self.lots.values() {
            size.add(lot.engine.size());
            size.resident_bytes += twins::bytes(&lot.twins);
        }
        size
    }

    /// Processes one record received at wall-clock `wall`.
    pub fn process(
        &mut self,
        settings: &Settings,
        rec: &InRecord<'_>,
        wall: TimestampMs,
        out: &mut Vec<Output>,
    ) -> Fate {
        self.next_offset = self.next_offset.max(rec.offset + 1);
        self.meta_dirty = true;
        let reading = match decode_record(
            &settings.topics,
            &rec.headers,
            rec.payload,
            &settings.decode,
        ) {
            Ok(r) => r,
            Err(e) => {
                out.push(Output::DeadLetter {
                    key: rec.key.map(<[u8]>::to_vec),
                    payload: rec.payload.to_vec(),
                    headers: owned(rec.all_headers),
                    reason: e.reason(),
                    error: e.to_string(),
                });
                return Fate::Dead;
            }
        };
        let watermark = self.watermark.current();
        let fate = match self.lots.get(&reading.lot_id) {
            Some(lot) if rec.offset <= lot.applied_offset => Fate::Skipped,
            _ => {
                let late_before = watermark.saturating_sub(settings.allowed_lateness_ms);
                // ids are cloned into the maps only when they are new there (this runs per record)
                if !self.lots.contains_key(&reading.lot_id) {
                    self.lots.insert(
                        reading.lot_id.clone(),
                        LotState {
                            engine: LotEngine::new(
                                reading.lot_id.clone(),
                                settings.lots.capacity(&reading.lot_id),
                                &settings.windows_ms,
                                settings.dedup_horizon_ms,
                            ),
                            applied_offset: -1,
                            alerts: LotAlerts::default(),
                            twins: twins::Twins::new(),
                            held: buckets::Index::default(),
                        },
                    );
                }
                let Some(lot) = self.lots.get_mut(&reading.lot_id) else {
                    unreachable!("inserted above")
                };
                lot.applied_offset = rec.offset;
                let fate = match lot.engine.offer(
                    &reading.space_id,
                    reading.ts,
                    reading.occupied,
                    late_before,
                ) {
                    Offer::Accepted => {
                        if !self.live_dirty.contains(&reading.lot_id) {
                            self.live_dirty.insert(reading.lot_id.clone());
                        }
                        let bucket = buckets::start_of(reading.ts);
                        match self.held_dirty.get_mut(&reading.lot_id) {
                            Some(held) => {
                                held.insert(bucket);
                            }
                            None => {
                                self.held_dirty
                                    .insert(reading.lot_id.clone(), [bucket].into_iter().collect());
                            }
                        }
                        if let Some(t) = lot.engine.next_event() {
                            self.next_due = self.next_due.min(t);
                        }
                        let mut alerts = Vec::new();
                        lot.alerts.on_reading(
                            &settings.rules,
                            &lot.engine,
                            &reading,
                            settings.lots.get(&reading.lot_id),
                            &mut alerts,
                        );
                        out.extend(alerts.into_iter().map(Output::Alert));
                        self.alerts_due = self.alerts_due.min(lot.alerts.next_due(&settings.rules));
                        Fate::Accepted
                    }
                    Offer::Duplicate => Fate::Duplicate,
                    Offer::Late => {
                        out.push(Output::Late {
                            lot_id: reading.lot_id.clone(),
                            payload: rec.payload.to_vec(),
                            headers: owned(rec.all_headers),
                            watermark,
                        });
                        Fate::Late
                    }
                };
                // the twin follows the space's newest reading, also one too late for the windows
                // (a gateway flushing its buffer); a duplicate changes nothing
                if fate != Fate::Duplicate
                    && twins::observe(
                        &mut lot.twins,
                        &reading.space_id,
                        reading.ts,
                        reading.occupied,
                        reading.battery.map(i16::from),
                    )
                {
                    let key = (reading.lot_id.clone(), reading.space_id.clone());
                    if !self.twins_dirty.contains(&key) {
                        self.twins_dirty.insert(key);
                    }
                }
                self.dirty.insert(reading.lot_id);
                fate
            }
        };
        self.watermark.observe(reading.ts, wall);
        self.advance(settings, out);
        fate
    }

    /// Idle advance at wall-clock `wall`: may close windows.
    pub fn tick(&mut self, settings: &Settings, wall: TimestampMs, out: &mut Vec<Output>) {
        if self.watermark.tick(wall) {
            self.meta_dirty = true;
            self.advance(settings, out);
        }
    }

    fn advance(&mut self, settings: &Settings, out: &mut Vec<Output>) {
        self.close_windows(settings, out);
        let wm = self.watermark.current();
        if wm < self.alerts_due {
            return;
        }
        let mut alerts = Vec::new();
        let mut due = i64::MAX;
        for (lot_id, lot) in &mut self.lots {
            if lot.alerts.next_due(&settings.rules) <= wm {
                lot.alerts
                    .on_watermark(&settings.rules, &lot.engine, wm, &mut alerts);
                self.dirty.insert(lot_id.clone());
            }
            due = due.min(lot.alerts.next_due(&settings.rules));
        }
        self.alerts_due = due;
        // deterministic output order whatever the order of the lots in memory
        alerts.sort_by(|a, b| (a.event_time, &a.key).cmp(&(b.event_time, &b.key)));
        out.extend(alerts.into_iter().map(Output::Alert));
    }

    fn close_windows(&mut self, settings: &Settings, out: &mut Vec<Output>) {
        let frontier = self
            .watermark
            .current()
            .saturating_sub(settings.allowed_lateness_ms);
        if frontier <= self.next_due {
            return;
        }
        let mut windows = Vec::new();
        let mut next_due = i64::MAX;
        for (lot_id, lot) in &mut self.lots {
            if lot.engine.next_event().is_some_and(|t| t < frontier) {
                lot.engine.advance(frontier, &mut windows);
                self.dirty.insert(lot_id.clone());
            }
            if let Some(t) = lot.engine.next_event() {
                next_due = next_due.min(t);
            }
        }
        self.next_due = next_due;
        // deterministic output order: by window end, size, lot
        windows.sort_by(|a, b| {
            (a.window_end, a.window_end - a.window_start, &a.lot_id).cmp(&(
                b.window_end,
                b.window_end - b.window_start,
                &b.lot_id,
            ))
        });
        let has_window_rules = settings
            .rules
            .user
            .iter()
            .any(|r| r.on == fjord_core::config::RuleInput::Window);
        for w in windows {
            if has_window_rules && let Some(lot) = self.lots.get_mut(&w.lot_id) {
                let mut alerts = Vec::new();
                lot.alerts.on_window(
                    &settings.rules,
                    &w,
                    settings.lots.get(&w.lot_id),
                    &mut alerts,
                );
                self.alerts_due = self.alerts_due.min(lot.alerts.next_due(&settings.rules));
                out.push(Output::Window(w));
                out.extend(alerts.into_iter().map(Output::Alert));
            } else {
                out.push(Output::Window(w));
            }
        }
    }

    /// The live rows of lots that changed since the last call.
    pub fn take_live(&mut self) -> Vec<LiveRow> {
        let mut lots: Vec<String> = self.live_dirty.drain().collect();
        lots.sort();
        lots.iter()
            .filter_map(|id| self.lots.get(id))
            .map(|lot| {
                let (occupied, updated_at) = lot.engine.live();
                let capacity = lot.engine.live_capacity();
                LiveRow {
                    lot_id: lot.engine.lot_id().to_owned(),
                    capacity,
                    occupied,
                    occupancy_ratio: if capacity == 0 {
                        0.0
                    } else {
                        f64::from(occupied) / f64::from(capacity)
                    },
                    updated_at,
                }
            })
            .collect()
    }

    /// The twins of the spaces that changed since the last call.
    pub fn take_spaces(&mut self) -> Vec<SpaceRow> {
        let dirty = std::mem::take(&mut self.twins_dirty);
        twins::rows(&dirty, |lot| self.lots.get(lot).map(|l| &l.twins))
    }

    /// The checkpoint records changed since the last call: deletions of parts and buckets a
    /// restore found unreferenced; for each changed lot its changed buckets of held readings
    /// ([`buckets`]), its state without them (key `lot/<lot_id>`, in parts when large: [`parts`],
    /// with the deletion of its previous parts) and the deletion of the buckets that state no
    /// longer names; then the partition meta (key `meta`). Lots come first so that a checkpoint
    /// cut short by a crash never has a meta newer than its lots. A value of `None` deletes its
    /// key.
    pub fn take_checkpoint(&mut self) -> Vec<parts::Record> {
        let mut lots: Vec<String> = self.dirty.drain().collect();
        lots.sort();
        // parts found unreferenced at restore go first: a replay may write the very same parts
        // (same state, same hash) again below, and those must survive
        let mut records: Vec<parts::Record> = self.orphans.drain(..).map(|k| (k, None)).collect();
        for id in &lots {
            let Some(lot) = self.lots.get_mut(id) else {
                continue;
            };
            let changed: Vec<_> = self
                .held_dirty
                .remove(id)
                .unwrap_or_default()
                .into_iter()
                .map(|start| {
                    let entries = lot.engine.held_between(start, start + buckets::BUCKET_MS);
                    (start, entries)
                })
                .collect();
            let (before, after) =
                buckets::commit(id, &mut lot.held, changed, lot.engine.oldest_held());
            lot.held.recent = lot.engine.recent_len() as u64;
            records.extend(before);
            let held = lot.engine.take_held();
            let state = encode(&*lot);
            lot.engine.put_held(held);
            let (written, how) = parts::split(id, state, self.parts.get(id).copied());
            records.extend(written);
            records.extend(after);
            match how {
                Some(p) => self.parts.insert(id.clone(), p),
                None => self.parts.remove(id),
            };
        }
        if self.meta_dirty || !records.is_empty() {
            let meta = PartitionMeta {
                next_offset: self.next_offset,
                watermark: self.watermark.clone(),
            };
            records.push(("meta".to_owned(), Some(encode(&meta))));
            self.meta_dirty = false;
        }
        records
    }

    /// Rebuilds a partition from its checkpoint records (the latest value per key, in any
    /// order). Records that do not decode are reported, not ignored.
    pub fn restore(
        partition: i32,
        settings: &Settings,
        records: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<Self, String> {
        let mut state = Self::new(partition, settings);
        let (mut lot_records, mut part_records) = (Vec::new(), HashMap::new());
        let mut bucket_records = HashMap::new();
        for (key, value) in records {
            if key == "meta" {
                let meta: PartitionMeta =
                    postcard::from_bytes(&value).map_err(|e| format!("checkpoint meta: {e}"))?;
                state.next_offset = meta.next_offset;
                state.watermark = meta.watermark;
            } else if key.starts_with("presence/") {
                // a presence partition's state sharing this changelog partition
                continue;
            } else if key.starts_with(parts::PART_PREFIX) {
                part_records.insert(key, value);
            } else if key.starts_with(buckets::BUCKET_PREFIX) {
                bucket_records.insert(key, value);
            } else if let Some(lot_id) = key.strip_prefix("lot/") {
                lot_records.push((lot_id.to_owned(), value));
            } else {
                return Err(format!("unknown checkpoint key {key:?}"));
            }
        }
        let mut used = HashSet::new();
        for (lot_id, value) in lot_records {
            let joined;
            let bytes = match parts::read_header(&value) {
                None => &value,
                Some(header) => {
                    let p = header.map_err(|e| format!("checkpoint of lot {lot_id}: {e}"))?;
                    joined = parts::join(&lot_id, &p, |k| part_records.get(k).map(Vec::as_slice))
                        .map_err(|e| format!("checkpoint of lot {lot_id}: {e}"))?;
                    used.extend(p.keys(&lot_id));
                    state.parts.insert(lot_id.clone(), p);
                    &joined
                }
            };
            let (mut lot, upgrade) =
                decode_lot(bytes).map_err(|e| format!("checkpoint of lot {lot_id}: {e}"))?;
            if upgrade == Upgrade::Twins {
                state
                    .twins_dirty
                    .extend(lot.twins.keys().map(|s| (lot_id.clone(), s.clone())));
            }
            if upgrade == Upgrade::None {
                let mut entries = Vec::new();
                for (&start, &hash) in &lot.held.buckets {
                    let key = buckets::key(&lot_id, start, hash);
                    let bytes = bucket_records.get(&key).ok_or_else(|| {
                        format!("checkpoint of lot {lot_id}: bucket {key} is missing")
                    })?;
                    if buckets::hash(bytes) != hash {
                        return Err(format!(
                            "checkpoint of lot {lot_id}: bucket {key} does not hold what it was written with"
                        ));
                    }
                    entries.extend(
                        buckets::decode(start, bytes)
                            .map_err(|e| format!("checkpoint of lot {lot_id}: {e}"))?,
                    );
                    used.insert(key);
                }
                let recent = usize::try_from(lot.held.recent).unwrap_or(usize::MAX);
                lot.engine
                    .restore_held(entries, recent)
                    .map_err(|e| format!("checkpoint of lot {lot_id}: {e}"))?;
            } else {
                // the held readings came inside the engine: every bucket is to be written
                let all = lot.engine.held_between(i64::MIN, i64::MAX);
                state.held_dirty.insert(
                    lot_id.clone(),
                    all.iter()
                        .map(|&(ts, _, _)| buckets::start_of(ts))
                        .collect(),
                );
                state.dirty.insert(lot_id.clone());
            }
            state.lots.insert(lot_id, lot);
        }
        state.orphans = part_records
            .into_keys()
            .chain(bucket_records.into_keys())
            .filter(|k| !used.contains(k))
            .collect();
        state.orphans.sort();
        state.next_due = state
            .lots
            .values()
            .filter_map(|l| l.engine.next_event())
            .min()
            .unwrap_or(i64::MAX);
        state.alerts_due = state
            .lots
            .values()
            .map(|l| l.alerts.next_due(&settings.rules))
            .min()
            .unwrap_or(i64::MAX);
        Ok(state)
    }
}

fn owned(headers: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
        .collect()
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // postcard cannot fail on these types (no maps with non-serializable keys, no I/O)
    postcard::to_allocvec(v).unwrap_or_default()
}

pub mod buckets;
pub mod parts;
#[cfg(test)]
mod tests;
pub mod twins;
