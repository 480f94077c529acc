//! `fjord batch forecast` on a real lake: the profiles are learned from `occupancy_10m` after
//! `batch import` and `batch views`, written as the Delta table `forecast_profile` (read back by
//! fjord and by Python's `deltalake`, an independent reader), not rewritten while they cover the
//! high-water mark, retrained over a table it cannot read, and not learned at all when the
//! forecast is off.

use std::io::Write;
use std::process::Command;

use crate::common::*;
use fjord_batch::{Job, run_once};
use fjord_core::forecast::SLOTS_PER_WEEK;
use fjord_testkit::{python, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecast_learns_profiles_into_the_lake_once_per_high_water_mark() {
    let dir = temp_dir();
    let url = format!("file://{}", dir.path().join("lake").display());
    let mut cfg = config(&Default::default(), &url, Default::default());
    let lake = lake(&cfg);
    // before any window: nothing to learn from
    let s = run_once(&cfg, &lake, &Job::Forecast).await.unwrap();
    assert!(
        s.forecast
            .unwrap()
            .skipped
            .unwrap()
            .contains("no final windows")
    );

    let from = 1_700_000_000_000 - 1_700_000_000_000 % DAY;
    let readings = generate(11, 3, 6, from, from + 3 * DAY);
    let jsonl = dir.path().join("history.jsonl");
    let mut f = std::fs::File::create(&jsonl).unwrap();
    for r in &readings {
        writeln!(
            f,
            r#"{{"lot_id":"{}","space_id":"{}","ts":{},"occupied":{}}}"#,
            r.lot_id, r.space_id, r.ts, r.occupied
        )
        .unwrap();
    }
    drop(f);
    run_once(&cfg, &lake, &Job::Import(vec![jsonl]))
        .await
        .unwrap();
    // `batch run` ends with the forecast (here with nothing to ingest from Kafka: views only)
    run_once(&cfg, &lake, &Job::Views).await.unwrap();
    let s = run_once(&cfg, &lake, &Job::Forecast).await.unwrap();
    let learned = s.forecast.clone().unwrap();
    assert_eq!(learned.skipped, None, "{learned:?}");
    assert_eq!(learned.lots, 3);
    assert!(learned.windows > 3 * 144, "{learned:?}");
    let version = learned.model_version.clone().unwrap();
    assert!(s.to_string().contains(&format!(
        "3 lots from {} windows → model {version}",
        learned.windows
    )));

    let profiles = fjord_batch::lake_forecast::load_profiles(&lake)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(profiles.model_version, version);
    assert_eq!(profiles.lots.len(), 3);
    for p in profiles.lots.values() {
        assert_eq!(p.expected.len(), SLOTS_PER_WEEK);
        assert!(p.expected.iter().all(|e| (0.0..=1.0).contains(e)));
        assert!((0.5..1.0).contains(&p.persistence), "{}", p.persistence);
    }

    // the same high-water mark: the profile is up to date, no new commit
    let again = run_once(&cfg, &lake, &Job::Forecast)
        .await
        .unwrap()
        .forecast
        .unwrap();
    assert!(again.skipped.unwrap().contains("up to date"));
    assert_eq!(again.model_version.as_deref(), Some(version.as_str()));

    // an independent reader sees one row per lot and slot, one model version
    let script = r#"
import sys, deltalake
t = deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table()
print(t.num_rows, len(set(t.column("model_version").to_pylist())), len(set(t.column("lot_id").to_pylist())))
"#;
    let out = Command::new(python())
        .args(["-c", script])
        .arg(dir.path().join("lake/forecast_profile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{} 1 3", 3 * SLOTS_PER_WEEK)
    );

    // a table this fjord cannot read (another schema, here written by Python's deltalake) is
    // retrained over, not a failure of every run
    let foreign = r#"
import sys, datetime, pyarrow as pa, deltalake
t = pa.table({"x": [1], "date": [datetime.date(2026, 1, 1)]})
deltalake.write_deltalake(sys.argv[1], t, mode="overwrite", schema_mode="overwrite", partition_by=["date"])
"#;
    let out = Command::new(python())
        .args(["-c", foreign])
        .arg(dir.path().join("lake/forecast_profile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fjord_batch::lake_forecast::load_profiles(&lake)
            .await
            .is_err()
    );
    let replaced = run_once(&cfg, &lake, &Job::Forecast)
        .await
        .unwrap()
        .forecast
        .unwrap();
    assert_eq!(replaced.skipped, None, "{replaced:?}");
    assert_eq!(replaced.model_version.as_deref(), Some(version.as_str()));
    let reloaded = fjord_batch::lake_forecast::load_profiles(&lake)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reloaded, profiles);

    // off: nothing learned
    cfg.forecast.enabled = false;
    let off = run_once(&cfg, &lake, &Job::Forecast)
        .await
        .unwrap()
        .forecast
        .unwrap();
    assert!(off.skipped.unwrap().starts_with("off"));
}
