//! The Kafka records the stream processor writes. Every value is a deterministic function of the
//! input (JSON with fixed field order, timestamps as RFC 3339 with milliseconds), so a record
//! repeated by a replay is byte-identical to the first copy.

use fjord_core::kafka::{HEADER_ERROR, Topics};
use fjord_core::model::{Alert, OccupancyWindow, SpaceRow};
use fjord_core::time::format_rfc3339_ms;

use crate::partition::{LiveRow, Output};

/// Header of occupancy records: the window size (`1m`, `10m`).
pub const HEADER_WINDOW: &str = "fjord-window";
/// Header of late records: the watermark that judged them late.
pub const HEADER_WATERMARK: &str = "fjord-watermark";
/// Header of dead letters: the reason code.
pub const HEADER_ERROR_REASON: &str = "fjord-error-reason";

/// A record to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRecord {
    /// Topic.
    pub topic: String,
    /// Explicit partition (checkpoints go to the partition of their input); `None`: by key.
    pub partition: Option<i32>,
    /// Key.
    pub key: Vec<u8>,
    /// Value; `None` deletes the key from a compacted topic.
    pub payload: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// `1m`, `10m`, `1h`: the label of a window size.
pub fn window_label(size_ms: i64) -> String {
    fjord_core::duration::Duration::from_millis(u64::try_from(size_ms).unwrap_or(0)).to_string()
}

/// The record of one output.
pub fn record(topics: &Topics, output: Output) -> OutRecord {
    match output {
        Output::Window(w) => window_record(topics, &w),
        Output::Late {
            lot_id,
            payload,
            mut headers,
            watermark,
        } => {
            headers.push((
                HEADER_WATERMARK.into(),
                format_rfc3339_ms(watermark).into_bytes(),
            ));
            OutRecord {
                topic: topics.late.clone(),
                partition: None,
                key: lot_id.into_bytes(),
                payload: Some(payload),
                headers,
            }
        }
        Output::Alert(a) => alert_record(topics, &a),
        Output::DeadLetter {
            key,
            payload,
            mut headers,
            reason,
            error,
        } => {
            headers.push((HEADER_ERROR.into(), error.into_bytes()));
            headers.push((HEADER_ERROR_REASON.into(), reason.as_bytes().to_vec()));
            OutRecord {
                topic: topics.dlq.clone(),
                partition: None,
                key: key.unwrap_or_default(),
                payload: Some(payload),
                headers,
            }
        }
    }
}

/// A closed window: key `lot_id`, value the columns of docs/contract.md §4.1.
pub fn window_record(topics: &Topics, w: &OccupancyWindow) -> OutRecord {
    OutRecord {
        topic: topics.occupancy.clone(),
        partition: None,
        key: w.lot_id.clone().into_bytes(),
        payload: Some(serde_json::to_vec(w).unwrap_or_default()),
        headers: vec![(
            HEADER_WINDOW.into(),
            window_label(w.window_end - w.window_start).into_bytes(),
        )],
    }
}

/// An alert state change: key the alert key (so one alert's changes stay in order in one
/// partition), value the webhook body of docs/contract.md §5.
pub fn alert_record(topics: &Topics, a: &Alert) -> OutRecord {
    OutRecord {
        topic: topics.alerts.clone(),
        partition: None,
        key: a.key.clone().into_bytes(),
        payload: Some(serde_json::to_vec(a).unwrap_or_default()),
        headers: Vec::new(),
    }
}

/// A lot's current occupancy, for the compacted live topic.
pub fn live_record(topics: &Topics, row: &LiveRow) -> OutRecord {
    OutRecord {
        topic: topics.live.clone(),
        partition: None,
        key: row.lot_id.clone().into_bytes(),
        payload: Some(serde_json::to_vec(row).unwrap_or_default()),
        headers: Vec::new(),
    }
}

/// A space's digital twin, for the compacted `spaces-live` topic.
pub fn space_record(topics: &Topics, row: &SpaceRow) -> OutRecord {
    OutRecord {
        topic: topics.spaces_live.clone(),
        partition: None,
        key: row.key(),
        payload: Some(serde_json::to_vec(row).unwrap_or_default()),
        headers: Vec::new(),
    }
}

/// A checkpoint record, in the changelog partition of its input partition.
pub fn checkpoint_record(
    topics: &Topics,
    partition: i32,
    key: String,
    value: Option<Vec<u8>>,
) -> OutRecord {
    OutRecord {
        topic: topics.stream_state.clone(),
        partition: Some(partition),
        key: key.into_bytes(),
        payload: value,
        headers: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_core::config::KafkaConfig;
    use fjord_core::model::WindowSource;

    #[test]
    fn a_window_record_is_the_spec_columns_as_json() {
        let topics = Topics::new(&KafkaConfig::default());
        let w = OccupancyWindow {
            lot_id: "L1".into(),
            window_start: 1_795_255_200_000,
            window_end: 1_795_255_260_000,
            capacity: 10,
            occupied_avg: 2.5,
            occupancy_ratio: 0.25,
            occupied_end: 3,
            arrivals: 4,
            departures: 1,
            readings: 12,
            source: WindowSource::Speed,
        };
        let r = window_record(&topics, &w);
        assert_eq!(r.topic, "fjord.occupancy");
        assert_eq!(r.key, b"L1");
        assert_eq!(
            String::from_utf8(r.payload.unwrap()).unwrap(),
            r#"{"lot_id":"L1","window_start":"2026-11-21T10:00:00.000Z","window_end":"2026-11-21T10:01:00.000Z","capacity":10,"occupied_avg":2.5,"occupancy_ratio":0.25,"occupied_end":3,"arrivals":4,"departures":1,"readings":12,"source":"speed"}"#
        );
        assert_eq!(r.headers, vec![(HEADER_WINDOW.to_owned(), b"1m".to_vec())]);
    }
}
