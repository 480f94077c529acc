//! The Arrow schemas of the tables of docs/contract.md (§6, §7), defined once. The batch layer writes the lake with
//! them, the serving layer registers them with DataFusion, tests compare against them.
//!
//! Timestamps are `Timestamp(Microsecond, "UTC")` because that is Delta Lake's `timestamp` type;
//! values carry millisecond precision (docs/contract.md §4.1). Counts are signed because Delta and Postgres
//! have no unsigned integers. Partitioned tables end with their `date` column (UTC day).

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The timestamp type of every time column.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn ts(name: &str, nullable: bool) -> Field {
    Field::new(name, timestamp_type(), nullable)
}

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn date() -> Field {
    Field::new("date", DataType::Date32, false)
}

static READINGS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("lot_id", false),
        text("space_id", false),
        ts("ts", false),
        Field::new("occupied", DataType::Boolean, false),
        Field::new("battery", DataType::Int16, true),
        text("extra", true),
        text("ts_source", false),
        text("mqtt_topic", true),
        ts("received_at", true),
        Field::new("kafka_partition", DataType::Int32, true),
        Field::new("kafka_offset", DataType::Int64, true),
        date(),
    ]))
});

static OCCUPANCY: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("lot_id", false),
        ts("window_start", false),
        ts("window_end", false),
        Field::new("capacity", DataType::Int32, false),
        Field::new("occupied_avg", DataType::Float64, false),
        Field::new("occupancy_ratio", DataType::Float64, false),
        Field::new("occupied_end", DataType::Int32, false),
        Field::new("arrivals", DataType::Int64, false),
        Field::new("departures", DataType::Int64, false),
        Field::new("readings", DataType::Int64, false),
        text("source", false),
        date(),
    ]))
});

static ALERTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("id", false),
        text("key", false),
        text("rule", false),
        text("status", false),
        text("severity", false),
        text("lot_id", true),
        text("space_id", true),
        text("gateway_id", true),
        Field::new("value", DataType::Float64, true),
        Field::new("threshold", DataType::Float64, true),
        ts("started_at", false),
        ts("resolved_at", true),
        ts("event_time", false),
        text("labels", false),
        date(),
    ]))
});

static QUARANTINE: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("raw", DataType::Binary, false),
        text("reason", false),
        text("error", false),
        text("mqtt_topic", true),
        text("kafka_topic", false),
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
        ts("received_at", true),
        date(),
    ]))
});

static LOTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("lot_id", false),
        text("name", false),
        text("zone", false),
        Field::new("capacity", DataType::Int32, false),
        Field::new("lat", DataType::Float64, true),
        Field::new("lon", DataType::Float64, true),
    ]))
});

static OCCUPANCY_LIVE: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("lot_id", false),
        Field::new("capacity", DataType::Int32, false),
        Field::new("occupied", DataType::Int32, false),
        Field::new("occupancy_ratio", DataType::Float64, false),
        ts("updated_at", false),
    ]))
});

static SPACES_LIVE: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("lot_id", false),
        text("space_id", false),
        Field::new("occupied", DataType::Boolean, false),
        ts("since", false),
        Field::new("battery", DataType::Int16, true),
        ts("last_seen", false),
    ]))
});

/// `readings` (docs/contract.md §6), partitioned by `date`.
pub fn readings() -> SchemaRef {
    READINGS.clone()
}

/// `occupancy_1m` / `occupancy_10m` (docs/contract.md §4.1), partitioned by `date`.
pub fn occupancy() -> SchemaRef {
    OCCUPANCY.clone()
}

/// `alerts` (docs/contract.md §5), partitioned by `date`; `labels` is a JSON object text.
pub fn alerts() -> SchemaRef {
    ALERTS.clone()
}

/// `quarantine` (docs/contract.md §6): records that failed decoding, partitioned by `date`.
pub fn quarantine() -> SchemaRef {
    QUARANTINE.clone()
}

/// `lots` (docs/contract.md §3.4).
pub fn lots() -> SchemaRef {
    LOTS.clone()
}

/// `occupancy_live` (docs/contract.md §7): one row per lot.
pub fn occupancy_live() -> SchemaRef {
    OCCUPANCY_LIVE.clone()
}

/// `spaces_live` (docs/contract.md §7): one row per space.
pub fn spaces_live() -> SchemaRef {
    SPACES_LIVE.clone()
}

static FORECAST_PROFILE: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("lot_id", false),
        Field::new("slot", DataType::Int32, false),
        Field::new("weekday", DataType::Int32, false),
        Field::new("minute_of_day", DataType::Int32, false),
        Field::new("expected", DataType::Float64, false),
        Field::new("lower", DataType::Float64, false),
        Field::new("upper", DataType::Float64, false),
        Field::new("weeks", DataType::Int32, false),
        Field::new("persistence", DataType::Float64, false),
        Field::new("capacity", DataType::Int32, false),
        text("model_version", false),
        ts("trained_through", false),
        date(),
    ]))
});

static OCCUPANCY_FORECAST: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("lot_id", false),
        ts("target_time", false),
        Field::new("horizon", DataType::Int32, false),
        Field::new("occupancy_ratio", DataType::Float64, false),
        Field::new("occupied", DataType::Float64, false),
        Field::new("lower", DataType::Float64, false),
        Field::new("upper", DataType::Float64, false),
        text("model_version", false),
        ts("issued_at", false),
    ]))
});

/// `forecast_profile` (docs/contract.md §4.4, §6): one row per lot and 10-minute slot of the week
/// (`slot` 0 = Monday 00:00 UTC); `lower`/`upper` are deviations from `expected`. `date` is the
/// UTC day of `trained_through`.
pub fn forecast_profile() -> SchemaRef {
    FORECAST_PROFILE.clone()
}

/// `occupancy_forecast` (docs/contract.md §7): per lot, the next 24 h in 10-minute steps;
/// `horizon` in minutes, `lower`/`upper` ratios.
pub fn occupancy_forecast() -> SchemaRef {
    OCCUPANCY_FORECAST.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &SchemaRef) -> Vec<&str> {
        s.fields().iter().map(|f| f.name().as_str()).collect()
    }

    #[test]
    fn columns_are_those_of_the_spec() {
        assert_eq!(
            names(&readings()),
            [
                "lot_id",
                "space_id",
                "ts",
                "occupied",
                "battery",
                "extra",
                "ts_source",
                "mqtt_topic",
                "received_at",
                "kafka_partition",
                "kafka_offset",
                "date"
            ]
        );
        assert_eq!(
            names(&occupancy()),
            [
                "lot_id",
                "window_start",
                "window_end",
                "capacity",
                "occupied_avg",
                "occupancy_ratio",
                "occupied_end",
                "arrivals",
                "departures",
                "readings",
                "source",
                "date"
            ]
        );
        assert_eq!(
            names(&lots()),
            ["lot_id", "name", "zone", "capacity", "lat", "lon"]
        );
        assert_eq!(
            names(&spaces_live()),
            [
                "lot_id",
                "space_id",
                "occupied",
                "since",
                "battery",
                "last_seen"
            ]
        );
        // the alerts table carries every field of the webhook body (docs/contract.md §5)
        for f in [
            "id",
            "key",
            "rule",
            "status",
            "severity",
            "lot_id",
            "space_id",
            "gateway_id",
            "value",
            "threshold",
            "started_at",
            "resolved_at",
            "event_time",
            "labels",
        ] {
            assert!(alerts().field_with_name(f).is_ok(), "alerts lacks {f}");
        }
    }
}
