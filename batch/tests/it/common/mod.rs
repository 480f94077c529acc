//! Helpers of the batch integration tests: a config on a test broker and lake, records produced
//! the way the bridge writes them, and the lake read back.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use fjord_batch::{Lake, Table};
use fjord_core::config::{Config, KafkaConfig};
use fjord_core::occupancy::reference::RefReading;
use fjord_testkit::kafka::BridgeRecord;
use rand::{Rng, SeedableRng};

pub const MIN: i64 = 60_000;
pub const DAY: i64 = 86_400_000;

/// A config for `kafka` and the lake at `url` with `options`.
pub fn config(kafka: &KafkaConfig, url: &str, options: BTreeMap<String, String>) -> Config {
    let mut c = Config::default();
    c.kafka = kafka.clone();
    c.lake.url = Some(url.to_owned());
    c.lake.storage_options = options;
    c.batch.max_records_per_commit = 700;
    c.batch.kafka_timeout = fjord_core::duration::Duration::from_secs(20);
    c.batch.compact_min_files = 2;
    c
}

pub fn lake(cfg: &Config) -> Lake {
    Lake::new(&cfg.lake_url(), &cfg.lake.storage_options).unwrap()
}

/// Readings of `lots` × `spaces` between `from` and `to`, in event-time order.
pub fn generate(seed: u64, lots: usize, spaces: usize, from: i64, to: i64) -> Vec<RefReading> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for lot in 0..lots {
        for space in 0..spaces {
            let mut t = from + rng.random_range(0..20 * MIN);
            let mut occupied = false;
            while t < to {
                if rng.random_bool(0.6) {
                    occupied = !occupied;
                }
                out.push(RefReading {
                    lot_id: format!("L{lot}"),
                    space_id: format!("S{space}"),
                    ts: t,
                    occupied,
                });
                t += rng.random_range(5 * MIN..90 * MIN);
            }
        }
    }
    out.sort_by_key(|r| r.ts);
    out
}

/// A record of `fjord.readings` as the bridge writes it.
pub type Rec = BridgeRecord;

/// The record of a reference reading.
pub fn reading(r: &RefReading) -> Rec {
    BridgeRecord::reading(
        &r.lot_id,
        &r.space_id,
        r.ts,
        format!(
            r#"{{"ts":{},"occupied":{},"battery":{}}}"#,
            r.ts,
            r.occupied,
            r.ts.rem_euclid(100)
        ),
    )
}

/// An undecodable record.
pub fn garbage(i: usize) -> Rec {
    BridgeRecord::reading("L0", "S0", 1_795_000_000_000, format!("not json {i}"))
}

/// A record without the bridge's headers.
pub fn headerless(i: usize) -> Rec {
    BridgeRecord {
        key: "L0".into(),
        payload: format!(r#"{{"ts":{i},"occupied":true}}"#).into_bytes(),
        mqtt_topic: None,
        received_at: None,
    }
}

/// Produces `records` to `<prefix>readings` and waits for every acknowledgement.
pub async fn produce(kafka: &KafkaConfig, records: &[Rec]) {
    fjord_testkit::kafka::produce_readings(kafka, records).await;
}

/// A landed row: (lot, space, ts, occupied, battery, kafka partition, kafka offset).
pub type Row = (
    String,
    String,
    i64,
    bool,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Every row of `readings`, sorted.
pub async fn rows(lake: &Lake) -> Vec<Row> {
    let Some(t) = lake.open_existing(Table::Readings).await.unwrap() else {
        return Vec::new();
    };
    let ctx = fjord_batch::query::session(&[("readings", &t)])
        .await
        .unwrap();
    let batches = fjord_batch::query::collect(
        &ctx,
        "readings",
        "SELECT lot_id, space_id, ts, occupied, CAST(battery AS BIGINT), CAST(kafka_partition AS BIGINT), kafka_offset FROM readings",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    for b in batches {
        let lots = fjord_batch::query::string_column(&b, 0).unwrap();
        let spaces = fjord_batch::query::string_column(&b, 1).unwrap();
        let ts = b.column(2).as_primitive::<TimestampMicrosecondType>();
        let occ = b.column(3).as_boolean();
        let bat = b.column(4).as_primitive::<Int64Type>();
        let part = b.column(5).as_primitive::<Int64Type>();
        let off = b.column(6).as_primitive::<Int64Type>();
        let opt = |a: &arrow::array::PrimitiveArray<Int64Type>, i: usize| {
            (!a.is_null(i)).then(|| a.value(i))
        };
        for i in 0..b.num_rows() {
            out.push((
                lots.value(i).to_owned(),
                spaces.value(i).to_owned(),
                ts.value(i) / 1000,
                occ.value(i),
                opt(bat, i),
                opt(part, i),
                opt(off, i),
            ));
        }
    }
    out.sort();
    out
}

/// (lot, space, ts, occupied) of the rows.
pub fn keys(rows: &[Row]) -> BTreeSet<(String, String, i64, bool)> {
    rows.iter()
        .map(|r| (r.0.clone(), r.1.clone(), r.2, r.3))
        .collect()
}

/// (lot, space, ts, occupied) of reference readings.
pub fn ref_keys(readings: &[RefReading]) -> BTreeSet<(String, String, i64, bool)> {
    readings
        .iter()
        .map(|r| (r.lot_id.clone(), r.space_id.clone(), r.ts, r.occupied))
        .collect()
}

/// Number of rows of `table`.
pub async fn count(lake: &Lake, table: Table) -> usize {
    let Some(t) = lake.open_existing(table).await.unwrap() else {
        return 0;
    };
    let ctx = fjord_batch::query::session(&[("t", &t)]).await.unwrap();
    let b = fjord_batch::query::collect(&ctx, "t", "SELECT count(*) FROM t")
        .await
        .unwrap();
    fjord_batch::query::scalar_i64(&b).unwrap().unwrap_or(0) as usize
}

/// Number of data files of `table` in its current version.
pub async fn files(lake: &Lake, table: Table) -> usize {
    let t = lake.open_existing(table).await.unwrap().unwrap();
    t.snapshot().unwrap().log_data().iter().count()
}
