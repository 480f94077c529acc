//! `fjord batch import` of JSON-lines and CSV files (duplicates, garbage, resumption), and the
//! lake read back by an independent reader: Python's `deltalake` (delta-rs' Python binding, a
//! separate build) must see exactly the rows fjord wrote.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Command;

use crate::common::*;
use fjord_batch::Table;
use fjord_testkit::{python, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_deduplicates_quarantines_and_is_readable_by_python_deltalake() {
    let dir = temp_dir();
    let url = format!("file://{}", dir.path().join("lake").display());
    let mut cfg = config(&Default::default(), &url, Default::default());
    cfg.batch.max_records_per_commit = 300;
    let lake = lake(&cfg);

    let readings = generate(7, 4, 5, 1_700_000_000_000, 1_700_000_000_000 + 3 * DAY);
    let (first, second) = readings.split_at(readings.len() / 2);
    // JSON lines: the first half, every 5th line twice, two garbage lines and one without ts.
    let jsonl = dir.path().join("history.jsonl");
    let mut f = std::fs::File::create(&jsonl).unwrap();
    for (i, r) in first.iter().enumerate() {
        let line = format!(
            r#"{{"lot_id":"{}","space_id":"{}","ts":{},"occupied":{},"battery":50,"fw":"1.2"}}"#,
            r.lot_id, r.space_id, r.ts, r.occupied
        );
        writeln!(f, "{line}").unwrap();
        if i % 5 == 0 {
            writeln!(f, "{line}").unwrap();
        }
    }
    writeln!(f, "{{broken").unwrap();
    writeln!(f, r#"{{"lot_id":"L0","space_id":"S0","occupied":true}}"#).unwrap();
    writeln!(
        f,
        r#"{{"lot_id":"L0","space_id":"S0","ts":"yesterday","occupied":true}}"#
    )
    .unwrap();
    drop(f);
    // CSV: the second half plus the first ten readings again.
    let csv = dir.path().join("history.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    writeln!(f, "lot_id,space_id,ts,occupied,battery").unwrap();
    for r in second.iter().chain(first.iter().take(10)) {
        writeln!(f, "{},{},{},{},", r.lot_id, r.space_id, r.ts, r.occupied).unwrap();
    }
    writeln!(f, "L0,S0,not-a-time,true,").unwrap();
    drop(f);

    let s = fjord_batch::import::import(&cfg, &lake, &[jsonl.clone(), csv.clone()])
        .await
        .unwrap();
    assert_eq!(s.quarantined, 4, "{s:?}");
    assert_eq!(s.rows as usize, readings.len(), "{s:?}");
    assert!(s.commits > 4, "commits of at most 300 lines: {s:?}");
    let landed = rows(&lake).await;
    assert_eq!(keys(&landed), ref_keys(&readings));
    assert_eq!(landed.len(), readings.len());
    assert_eq!(count(&lake, Table::Quarantine).await, 4);

    // Importing the same files again adds nothing.
    let s = fjord_batch::import::import(&cfg, &lake, &[jsonl, csv])
        .await
        .unwrap();
    assert_eq!((s.rows, s.quarantined), (0, 0), "{s:?}");
    assert_eq!(rows(&lake).await, landed);

    // An independent reader sees the same rows.
    let table = dir.path().join("lake/readings");
    let script = r#"
import sys, json
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table()
for r in t.select(["lot_id", "space_id", "ts", "occupied", "date"]).to_pylist():
    ts = r["ts"]
    ms = int(ts.timestamp() * 1000)
    assert str(r["date"]) == ts.strftime("%Y-%m-%d"), (r["date"], ts)
    print(json.dumps([r["lot_id"], r["space_id"], ms, r["occupied"]]))
"#;
    let out = Command::new(python())
        .args(["-c", script])
        .arg(&table)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python deltalake failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Vec<(String, String, i64, bool)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        seen.len(),
        landed.len(),
        "python saw a different number of rows"
    );
    let seen: BTreeSet<_> = seen.into_iter().collect();
    assert_eq!(seen, keys(&landed));
}
