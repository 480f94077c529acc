//! One closed occupancy window of one lot (docs/contract.md §4.1), the value of a `fjord.occupancy` record and a
//! row of the `occupancy_1m` / `occupancy_10m` tables.

use serde::{Deserialize, Serialize};

use crate::time::TimestampMs;

/// Which layer computed a window row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowSource {
    /// The stream processor (near-real-time, may miss late data).
    Speed,
    /// The batch views (authoritative, late data included).
    Batch,
}

impl WindowSource {
    /// The value of the `source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowSource::Speed => "speed",
            WindowSource::Batch => "batch",
        }
    }
}

/// Occupancy of lot `lot_id` over `[window_start, window_end)`. A window is identified by
/// (`lot_id`, `window_start`, `window_end`); consumers upsert by that key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OccupancyWindow {
    /// The lot.
    pub lot_id: String,
    /// Start of the window (inclusive), UTC epoch ms, aligned to the epoch.
    #[serde(with = "crate::serde_ts")]
    pub window_start: TimestampMs,
    /// End of the window (exclusive), UTC epoch ms.
    #[serde(with = "crate::serde_ts")]
    pub window_end: TimestampMs,
    /// Capacity from the lots registry, or the number of distinct spaces seen for unregistered lots.
    pub capacity: u32,
    /// Time-weighted mean number of occupied spaces over the window.
    pub occupied_avg: f64,
    /// `occupied_avg / capacity` (0 when the capacity is 0).
    pub occupancy_ratio: f64,
    /// Number of occupied spaces just before `window_end`.
    pub occupied_end: u32,
    /// Transitions free→occupied with `ts` in the window.
    pub arrivals: u64,
    /// Transitions occupied→free with `ts` in the window.
    pub departures: u64,
    /// Distinct readings with `ts` in the window.
    pub readings: u64,
    /// Which layer computed the row.
    pub source: WindowSource,
}

/// The current occupancy of one lot (a record of the live topic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRow {
    /// The lot.
    pub lot_id: String,
    /// Registered capacity, or the spaces seen.
    pub capacity: u32,
    /// Spaces occupied by their latest reading.
    pub occupied: u32,
    /// `occupied / capacity`.
    pub occupancy_ratio: f64,
    /// Event time of the latest reading.
    #[serde(with = "crate::serde_ts")]
    pub updated_at: TimestampMs,
}

/// One space's digital twin (a record of the compacted `spaces-live` topic, a row of `spaces_live`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceRow {
    /// The lot.
    pub lot_id: String,
    /// The space.
    pub space_id: String,
    /// Occupied by its newest reading (by event time).
    pub occupied: bool,
    /// Event time since when it has been in that state (its first reading in that state).
    #[serde(with = "crate::serde_ts")]
    pub since: TimestampMs,
    /// Battery of its newest reading, if that reading carried one.
    pub battery: Option<i16>,
    /// Event time of its newest reading.
    #[serde(with = "crate::serde_ts")]
    pub last_seen: TimestampMs,
}

impl SpaceRow {
    /// The record key of a twin: lot and space as a JSON array, unambiguous whatever the ids hold.
    pub fn key(&self) -> Vec<u8> {
        serde_json::to_vec(&[&self.lot_id, &self.space_id]).unwrap_or_default()
    }
}
