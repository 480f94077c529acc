//! Every ready analyst query of `queries/sql/` on a small generated day whose answers are known:
//! two lots in two zones, Monday 2026-11-16 (UTC).
//!
//! | space | readings |
//! |---|---|
//! | A1 | occupied 08:00, free 09:00, occupied 13:00, free 13:30, free 23:59 (repeat) |
//! | A2 | occupied 08:15, duplicate 08:15, free 08:45, then silent |
//! | B1 | occupied 10:00, free 10:20 (battery 10) |
//! | B2 | free 00:00 (battery 90), then silent |

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use fjord_core::config::Config;
use fjord_core::lots::LotRecord;
use serde_json::Value;

/// 2026-11-16T00:00:00Z, a Monday.
const DAY: i64 = 1_794_787_200_000;

fn at(h: i64, m: i64) -> i64 {
    DAY + (h * 60 + m) * 60_000
}

fn rows(batches: &[RecordBatch]) -> Vec<BTreeMap<String, Value>> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::ArrayWriter::new(&mut buf);
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
    }
    if buf.is_empty() {
        return Vec::new();
    }
    serde_json::from_slice(&buf).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_analyst_query_answers_what_its_header_says() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.lake.url = Some(format!("file://{}/lake", dir.path().display()));
    cfg.lots = vec![
        LotRecord {
            lot_id: "A".into(),
            name: "Alpha".into(),
            zone: "north".into(),
            capacity: 2,
            lat: None,
            lon: None,
        },
        LotRecord {
            lot_id: "B".into(),
            name: "Beta".into(),
            zone: "south".into(),
            capacity: 2,
            lat: None,
            lon: None,
        },
    ];
    let line = |lot: &str, space: &str, ts: i64, occupied: bool, battery: Option<u8>| {
        let b = battery.map_or(String::new(), |b| format!(",\"battery\":{b}"));
        format!(
            "{{\"lot_id\":\"{lot}\",\"space_id\":\"{space}\",\"ts\":{ts},\"occupied\":{occupied}{b}}}\n"
        )
    };
    let text: String = [
        line("A", "A1", at(8, 0), true, None),
        line("A", "A1", at(9, 0), false, None),
        line("A", "A1", at(13, 0), true, None),
        line("A", "A1", at(13, 30), false, None),
        line("A", "A1", at(23, 59), false, None),
        line("A", "A2", at(8, 15), true, None),
        line("A", "A2", at(8, 15), true, None),
        line("A", "A2", at(8, 45), false, None),
        line("B", "B1", at(10, 0), true, Some(11)),
        line("B", "B1", at(10, 20), false, Some(10)),
        line("B", "B2", at(0, 0), false, Some(90)),
    ]
    .concat();
    let file = dir.path().join("day.jsonl");
    std::fs::write(&file, text).unwrap();
    let lake = fjord_batch::Lake::new(&cfg.lake_url(), &cfg.lake.storage_options).unwrap();
    fjord_batch::import::import(&cfg, &lake, &[file])
        .await
        .unwrap();
    fjord_batch::views::views(&cfg, &lake).await.unwrap();
    let run = |name: &str| {
        let cfg = cfg.clone();
        let sql = fjord_queries::analyst::query(name).unwrap();
        async move { rows(&fjord_queries::exec::query(&cfg, sql).await.unwrap()) }
    };

    // A between 08:00 and 09:00: A1 the whole hour, A2 half of it → 1.5 of 2 spaces
    let by_hour = run("occupancy_by_hour_and_weekday").await;
    let a8 = by_hour
        .iter()
        .find(|r| r["lot_id"] == "A" && r["hour"] == 8)
        .expect("lot A at 08h");
    assert_eq!(a8["weekday"], 1, "Monday");
    assert!((f(&a8["avg_occupancy"]) - 0.75).abs() < 1e-9, "{a8:?}");

    let peaks = run("peak_hours").await;
    assert_eq!(peaks.len(), 2);
    assert_eq!(
        (peaks[0]["lot_id"].clone(), peaks[0]["peak_hour"].clone()),
        ("A".into(), 8.into())
    );
    assert_eq!(
        (peaks[1]["lot_id"].clone(), peaks[1]["peak_hour"].clone()),
        ("B".into(), 10.into())
    );
    assert!(
        (f(&peaks[1]["avg_occupancy"]) - 1.0 / 6.0).abs() < 1e-9,
        "{peaks:?}"
    );

    let turnover = run("turnover").await;
    let per: BTreeMap<String, f64> = turnover
        .iter()
        .map(|r| {
            (
                r["lot_id"].as_str().unwrap().to_owned(),
                f(&r["arrivals_per_space"]),
            )
        })
        .collect();
    assert_eq!(per, BTreeMap::from([("A".into(), 1.5), ("B".into(), 0.5)]));

    let stays = run("average_stay").await;
    assert_eq!(stays.len(), 2);
    assert_eq!(stays[0]["stays"], 3);
    assert!(
        (f(&stays[0]["avg_stay_minutes"]) - 40.0).abs() < 1e-9,
        "{stays:?}"
    );
    assert!(
        (f(&stays[1]["avg_stay_minutes"]) - 20.0).abs() < 1e-9,
        "{stays:?}"
    );

    let health = run("sensor_health").await;
    let flagged: Vec<(Value, Value, Value)> = health
        .iter()
        .map(|r| {
            (
                r["space_id"].clone(),
                r["silent"].clone(),
                r["battery_low"].clone(),
            )
        })
        .collect();
    assert_eq!(
        flagged,
        vec![
            ("A2".into(), true.into(), false.into()),
            ("B1".into(), true.into(), true.into()),
            ("B2".into(), true.into(), false.into()),
        ],
        "A2 silent since 08:45, B1 low battery (and silent since 10:20), B2 silent since midnight"
    );

    let zones = run("zone_utilisation").await;
    assert_eq!(zones[0]["zone"], "north");
    assert_eq!(zones[0]["rank"], 1);
    assert_eq!(zones[1]["zone"], "south");
    assert!(f(&zones[0]["avg_occupancy"]) > f(&zones[1]["avg_occupancy"]));
}
