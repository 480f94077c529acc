//! Rows of the lake's tables (docs/contract.md §6) and their Arrow batches, one encoder per
//! schema: `readings`, `quarantine`, `occupancy_<size>`, `alerts`. Pure: no I/O. A test encodes
//! rows with every optional column set and unset and checks each batch against its schema.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use fjord_core::model::Reading;
use fjord_core::time::{TimestampMs, epoch_day};

/// Where a row came from, for the lineage columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The MQTT topic (the `fjord-mqtt-topic` header), when known.
    pub mqtt_topic: Option<String>,
    /// Bridge receive time, when known.
    pub received_at: Option<TimestampMs>,
    /// Kafka partition, or `None` for imported rows.
    pub partition: Option<i32>,
    /// Kafka offset (or line number of an imported file).
    pub offset: Option<i64>,
}

/// One row of `readings`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingRow {
    /// The decoded reading.
    pub reading: Reading,
    /// Lineage.
    pub origin: Origin,
}

impl ReadingRow {
    /// The UTC day of `ts` (days since 1970-01-01), the partition of the row.
    pub fn date(&self) -> i32 {
        epoch_day(self.reading.ts)
    }
}

/// One row of `quarantine`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRow {
    /// The bytes exactly as received.
    pub raw: Vec<u8>,
    /// Stable reason code (`invalid_json`, `missing_header`, …).
    pub reason: String,
    /// The full error message.
    pub error: String,
    /// Where the record came from (`fjord.readings`, or `file:<path>` for imports).
    pub source: String,
    /// Lineage. `partition` is -1 for imported lines.
    pub origin: Origin,
    /// When fjord saw it; the partition date is the UTC day of this instant.
    pub seen_at: TimestampMs,
}

/// Accumulates `readings` rows into an Arrow batch of [`fjord_core::schema::readings`].
#[derive(Debug)]
pub struct ReadingsBuilder {
    lot_id: StringBuilder,
    space_id: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    occupied: BooleanBuilder,
    battery: Int16Builder,
    extra: StringBuilder,
    ts_source: StringBuilder,
    mqtt_topic: StringBuilder,
    received_at: TimestampMicrosecondBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    date: Date32Builder,
    len: usize,
}

impl Default for ReadingsBuilder {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl ReadingsBuilder {
    /// A builder with room for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            lot_id: StringBuilder::with_capacity(n, n * 8),
            space_id: StringBuilder::with_capacity(n, n * 8),
            ts: TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
            occupied: BooleanBuilder::with_capacity(n),
            battery: Int16Builder::with_capacity(n),
            extra: StringBuilder::new(),
            ts_source: StringBuilder::with_capacity(n, n * 6),
            mqtt_topic: StringBuilder::with_capacity(n, n * 20),
            received_at: TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
            partition: Int32Builder::with_capacity(n),
            offset: Int64Builder::with_capacity(n),
            date: Date32Builder::with_capacity(n),
            len: 0,
        }
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a row.
    pub fn push(&mut self, reading: &Reading, origin: &Origin) {
        self.lot_id.append_value(&reading.lot_id);
        self.space_id.append_value(&reading.space_id);
        self.ts.append_value(reading.ts * 1000);
        self.occupied.append_value(reading.occupied);
        self.battery.append_option(reading.battery.map(i16::from));
        self.extra.append_option(reading.extra.as_deref());
        self.ts_source.append_value(reading.ts_source.as_str());
        self.mqtt_topic.append_option(origin.mqtt_topic.as_deref());
        self.received_at
            .append_option(origin.received_at.map(|t| t * 1000));
        self.partition.append_option(origin.partition);
        self.offset.append_option(origin.offset);
        self.date.append_value(epoch_day(reading.ts));
        self.len += 1;
    }

    /// The batch of everything appended; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.lot_id.finish()),
            Arc::new(self.space_id.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.occupied.finish()),
            Arc::new(self.battery.finish()),
            Arc::new(self.extra.finish()),
            Arc::new(self.ts_source.finish()),
            Arc::new(self.mqtt_topic.finish()),
            Arc::new(self.received_at.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.date.finish()),
        ];
        self.len = 0;
        // The columns are built to the schema, so this cannot fail.
        RecordBatch::try_new(fjord_core::schema::readings(), columns)
            .unwrap_or_else(|e| unreachable!("readings batch does not match its schema: {e}"))
    }
}

/// The Arrow batch of quarantine rows.
pub fn quarantine_batch(rows: &[QuarantineRow]) -> RecordBatch {
    let n = rows.len();
    let mut raw = BinaryBuilder::with_capacity(n, 64 * n);
    let mut reason = StringBuilder::new();
    let mut error = StringBuilder::new();
    let mut mqtt_topic = StringBuilder::new();
    let mut kafka_topic = StringBuilder::new();
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut received_at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut date = Date32Builder::with_capacity(n);
    for r in rows {
        raw.append_value(&r.raw);
        reason.append_value(&r.reason);
        error.append_value(&r.error);
        mqtt_topic.append_option(r.origin.mqtt_topic.as_deref());
        kafka_topic.append_value(&r.source);
        partition.append_value(r.origin.partition.unwrap_or(-1));
        offset.append_value(r.origin.offset.unwrap_or(-1));
        received_at.append_option(r.origin.received_at.map(|t| t * 1000));
        date.append_value(epoch_day(r.seen_at));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(raw.finish()),
        Arc::new(reason.finish()),
        Arc::new(error.finish()),
        Arc::new(mqtt_topic.finish()),
        Arc::new(kafka_topic.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(received_at.finish()),
        Arc::new(date.finish()),
    ];
    RecordBatch::try_new(fjord_core::schema::quarantine(), columns)
        .unwrap_or_else(|e| unreachable!("quarantine batch does not match its schema: {e}"))
}

/// The Arrow batch of occupancy windows ([`fjord_core::schema::occupancy`]), dated by window start.
pub fn occupancy_batch(windows: &[fjord_core::model::OccupancyWindow]) -> RecordBatch {
    let n = windows.len();
    let mut lot = StringBuilder::with_capacity(n, n * 8);
    let mut start = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut end = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut capacity = Int32Builder::with_capacity(n);
    let mut avg = Float64Builder::with_capacity(n);
    let mut ratio = Float64Builder::with_capacity(n);
    let mut occupied_end = Int32Builder::with_capacity(n);
    let mut arrivals = Int64Builder::with_capacity(n);
    let mut departures = Int64Builder::with_capacity(n);
    let mut readings = Int64Builder::with_capacity(n);
    let mut source = StringBuilder::with_capacity(n, n * 5);
    let mut date = Date32Builder::with_capacity(n);
    let sat = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let sat32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    for w in windows {
        lot.append_value(&w.lot_id);
        start.append_value(w.window_start * 1000);
        end.append_value(w.window_end * 1000);
        capacity.append_value(sat32(w.capacity));
        avg.append_value(w.occupied_avg);
        ratio.append_value(w.occupancy_ratio);
        occupied_end.append_value(sat32(w.occupied_end));
        arrivals.append_value(sat(w.arrivals));
        departures.append_value(sat(w.departures));
        readings.append_value(sat(w.readings));
        source.append_value(w.source.as_str());
        date.append_value(epoch_day(w.window_start));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(lot.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(capacity.finish()),
        Arc::new(avg.finish()),
        Arc::new(ratio.finish()),
        Arc::new(occupied_end.finish()),
        Arc::new(arrivals.finish()),
        Arc::new(departures.finish()),
        Arc::new(readings.finish()),
        Arc::new(source.finish()),
        Arc::new(date.finish()),
    ];
    RecordBatch::try_new(fjord_core::schema::occupancy(), columns)
        .unwrap_or_else(|e| unreachable!("occupancy batch does not match its schema: {e}"))
}

/// The Arrow batch of alert rows ([`fjord_core::schema::alerts`]).
pub fn alerts_batch(rows: &[fjord_core::model::Alert]) -> RecordBatch {
    let n = rows.len();
    let mut id = StringBuilder::new();
    let mut key = StringBuilder::new();
    let mut rule = StringBuilder::new();
    let mut status = StringBuilder::new();
    let mut severity = StringBuilder::new();
    let mut lot = StringBuilder::new();
    let mut space = StringBuilder::new();
    let mut gateway = StringBuilder::new();
    let mut value = Float64Builder::with_capacity(n);
    let mut threshold = Float64Builder::with_capacity(n);
    let ts = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut started, mut resolved, mut event) = (ts(), ts(), ts());
    let mut labels = StringBuilder::new();
    let mut date = Date32Builder::with_capacity(n);
    for a in rows {
        id.append_value(&a.id);
        key.append_value(&a.key);
        rule.append_value(&a.rule);
        status.append_value(match a.status {
            fjord_core::model::AlertStatus::Firing => "firing",
            fjord_core::model::AlertStatus::Resolved => "resolved",
        });
        severity.append_value(
            serde_json::to_value(a.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        );
        lot.append_option(a.lot_id.as_deref());
        space.append_option(a.space_id.as_deref());
        gateway.append_option(a.gateway_id.as_deref());
        value.append_option(a.value);
        threshold.append_option(a.threshold);
        started.append_value(a.started_at * 1000);
        resolved.append_option(a.resolved_at.map(|t| t * 1000));
        event.append_value(a.event_time * 1000);
        labels.append_value(serde_json::to_string(&a.labels).unwrap_or_else(|_| "{}".into()));
        date.append_value(epoch_day(a.event_time));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(key.finish()),
        Arc::new(rule.finish()),
        Arc::new(status.finish()),
        Arc::new(severity.finish()),
        Arc::new(lot.finish()),
        Arc::new(space.finish()),
        Arc::new(gateway.finish()),
        Arc::new(value.finish()),
        Arc::new(threshold.finish()),
        Arc::new(started.finish()),
        Arc::new(resolved.finish()),
        Arc::new(event.finish()),
        Arc::new(labels.finish()),
        Arc::new(date.finish()),
    ];
    RecordBatch::try_new(fjord_core::schema::alerts(), columns)
        .unwrap_or_else(|e| unreachable!("alerts batch does not match its schema: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_core::model::TsSource;

    fn reading(ts: TimestampMs) -> Reading {
        Reading {
            lot_id: "L1".into(),
            space_id: "S1".into(),
            ts,
            occupied: true,
            battery: Some(80),
            extra: None,
            ts_source: TsSource::Device,
        }
    }

    #[test]
    fn rows_land_in_the_utc_day_of_their_ts() {
        // 2026-11-21T23:59:59.999Z and 2026-11-22T00:00:00.000Z
        let before = 1_795_305_599_999;
        let mut b = ReadingsBuilder::default();
        b.push(&reading(before), &Origin::default());
        b.push(&reading(before + 1), &Origin::default());
        let batch = b.finish();
        let dates = batch
            .column_by_name("date")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::Date32Array>()
            .unwrap();
        assert_eq!(dates.value(1) - dates.value(0), 1);
        assert_eq!(fjord_core::time::format_date(dates.value(0)), "2026-11-21");
        assert_eq!(batch.schema(), fjord_core::schema::readings());
        assert!(b.is_empty());
    }

    #[test]
    fn every_encoder_takes_rows_with_optional_columns_set_and_unset() {
        use fjord_core::model::{Alert, AlertStatus, OccupancyWindow, Severity, WindowSource};
        let bare = Reading {
            battery: None,
            ..reading(0)
        };
        let mut b = ReadingsBuilder::default();
        b.push(
            &Reading {
                extra: Some("{\"x\":1}".into()),
                ..reading(0)
            },
            &Origin {
                mqtt_topic: Some("parking/L1/S1".into()),
                received_at: Some(5),
                partition: Some(1),
                offset: Some(2),
            },
        );
        b.push(&bare, &Origin::default());
        assert_eq!(b.finish().schema(), fjord_core::schema::readings());
        let alert = Alert {
            id: "a".into(),
            key: "lot_full/L1".into(),
            rule: "lot_full".into(),
            status: AlertStatus::Firing,
            severity: Severity::Warning,
            lot_id: Some("L1".into()),
            space_id: Some("S1".into()),
            gateway_id: Some("G1".into()),
            value: Some(0.95),
            threshold: Some(0.9),
            started_at: 1,
            resolved_at: Some(2),
            event_time: 2,
            labels: [("k".to_owned(), "v".to_owned())].into(),
        };
        let resolved = Alert {
            status: AlertStatus::Resolved,
            lot_id: None,
            space_id: None,
            gateway_id: None,
            value: None,
            threshold: None,
            resolved_at: None,
            labels: Default::default(),
            ..alert.clone()
        };
        let batch = alerts_batch(&[alert, resolved]);
        assert_eq!(batch.schema(), fjord_core::schema::alerts());
        assert_eq!(batch.num_rows(), 2);
        let window = OccupancyWindow {
            lot_id: "L1".into(),
            window_start: 0,
            window_end: 60_000,
            capacity: 10,
            occupied_avg: 2.5,
            occupancy_ratio: 0.25,
            occupied_end: 3,
            arrivals: 1,
            departures: 0,
            readings: 4,
            source: WindowSource::Speed,
        };
        let batch = occupancy_batch(&[window]);
        assert_eq!(batch.num_rows(), 1);
        for empty in [
            occupancy_batch(&[]).num_rows(),
            alerts_batch(&[]).num_rows(),
            quarantine_batch(&[]).num_rows(),
            ReadingsBuilder::default().finish().num_rows(),
        ] {
            assert_eq!(empty, 0);
        }
    }

    #[test]
    fn quarantine_rows_keep_the_bytes() {
        let row = QuarantineRow {
            raw: vec![0xff, 0x00],
            reason: "invalid_json".into(),
            error: "bad".into(),
            source: "fjord.readings".into(),
            origin: Origin {
                partition: Some(2),
                offset: Some(7),
                ..Origin::default()
            },
            seen_at: 0,
        };
        let batch = quarantine_batch(&[row]);
        assert_eq!(batch.num_rows(), 1);
        let raw = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::BinaryArray>()
            .unwrap();
        assert_eq!(raw.value(0), &[0xff, 0x00]);
    }
}
