//! A sensor reading: one space's state at one event time (docs/contract.md §3.1).

use serde::{Deserialize, Serialize};

use crate::time::TimestampMs;

/// Where a reading's event time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TsSource {
    /// The device sent `ts`.
    Device,
    /// The payload had no `ts`; the bridge's receive time was used.
    Received,
}

impl TsSource {
    /// The value of the `ts_source` column: `device` or `received`.
    pub fn as_str(self) -> &'static str {
        match self {
            TsSource::Device => "device",
            TsSource::Received => "received",
        }
    }
}

/// One decoded reading. Two readings with the same (`space_id`, `ts`) are the same reading
/// (docs/contract.md §4.1): duplicates from at-least-once delivery are dropped by that key downstream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// Parking lot, from the MQTT topic.
    pub lot_id: String,
    /// Space within the lot, from the MQTT topic.
    pub space_id: String,
    /// Event time, UTC epoch milliseconds.
    pub ts: TimestampMs,
    /// Space state at `ts`.
    pub occupied: bool,
    /// Battery percent 0–100, when the device reports it.
    pub battery: Option<u8>,
    /// Every other payload field as a JSON object text with keys sorted; `None` when there are none.
    pub extra: Option<String>,
    /// Whether `ts` came from the device or from the receive time.
    pub ts_source: TsSource,
}
