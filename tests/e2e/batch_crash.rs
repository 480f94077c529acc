//! `fjord batch ingest` SIGKILLed three times mid-run and once (by fault injection) between writing
//! its files and committing them: the `readings` table afterwards equals that of an uninterrupted
//! run, row for row, Kafka offsets included; vacuum then removes the orphaned files. Also: the
//! one-shot exit status that external schedulers rely on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use fjord_batch::{Lake, Table};
use fjord_core::config::{Config, KafkaConfig};
use fjord_core::time::now_ms;
use fjord_testkit::kafka::{self, BridgeRecord};
use fjord_testkit::{Tansu, temp_dir};

fn write_config(dir: &Path, kafka: &KafkaConfig, lake: &Path) -> PathBuf {
    let path = dir.join("fjord.toml");
    let text = format!(
        "[log]\nlevel = \"info\"\n\n[kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{}\"\n\n\
         [lake]\nurl = \"file://{}\"\n\n[batch]\nmax_records_per_commit = 200\nkafka_timeout = \"20s\"\n\
         vacuum_retention = \"0s\"\n",
        kafka.brokers,
        kafka.topic_prefix,
        lake.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn produce(kafka: &KafkaConfig, n: usize) {
    let start = now_ms() - 3 * 86_400_000;
    let records: Vec<BridgeRecord> = (0..n)
        .map(|i| {
            // Every 10th reading repeats the one before it (same lot, space and ts).
            let j = if i % 10 == 9 { i - 1 } else { i };
            let ts = start + j as i64 * 17_000;
            let json = format!(r#"{{"ts":{ts},"occupied":{}}}"#, i % 3 == 0);
            BridgeRecord::reading(&format!("L{}", j % 7), &format!("S{}", j % 53), ts, json)
        })
        .collect();
    kafka::produce_readings(kafka, &records).await;
}

fn commits(lake: &Path) -> usize {
    std::fs::read_dir(lake.join("readings/_delta_log"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

fn parquet_files(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                n += parquet_files(&p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                n += 1;
            }
        }
    }
    n
}

fn ingest_cmd(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fjord"));
    c.args(["batch", "ingest", "--config"])
        .arg(config)
        .env_remove("FJORD_CONFIG");
    c
}

type Row = (String, String, i64, bool, Option<i64>, Option<i64>);

async fn all_rows(lake: &Lake) -> Vec<Row> {
    let t = lake.open_existing(Table::Readings).await.unwrap().unwrap();
    let ctx = fjord_batch::query::session(&[("r", &t)]).await.unwrap();
    let sql = "SELECT lot_id, space_id, ts, occupied, CAST(kafka_partition AS BIGINT), kafka_offset FROM r";
    let mut out = Vec::new();
    for b in fjord_batch::query::collect(&ctx, "r", sql).await.unwrap() {
        let lots = fjord_batch::query::string_column(&b, 0).unwrap();
        let spaces = fjord_batch::query::string_column(&b, 1).unwrap();
        let ts = b.column(2).as_primitive::<TimestampMicrosecondType>();
        let occ = b.column(3).as_boolean();
        let p = b.column(4).as_primitive::<Int64Type>();
        let o = b.column(5).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((
                lots.value(i).to_owned(),
                spaces.value(i).to_owned(),
                ts.value(i),
                occ.value(i),
                (!p.is_null(i)).then(|| p.value(i)),
                (!o.is_null(i)).then(|| o.value(i)),
            ));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_ingest_equals_an_uninterrupted_run() {
    let tansu = Tansu::start().unwrap();
    let kafka = tansu.kafka_config();
    tansu
        .create_topic(&kafka.topic("readings"), 3)
        .await
        .unwrap();
    let n = 15_000;
    produce(&kafka, n).await;
    let dir = temp_dir();
    let lake_dir = dir.path().join("lake");
    let config = write_config(dir.path(), &kafka, &lake_dir);

    // Three SIGKILLs, each after the run made at least one commit of its own.
    for round in 0..3 {
        let before = commits(&lake_dir);
        let mut child = ingest_cmd(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while commits(&lake_dir) < before + 2 + round {
            assert!(Instant::now() < deadline, "no commit within 120 s");
            assert!(
                child.try_wait().unwrap().is_none(),
                "ingest ended before it was killed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // A crash after the files of a commit are written and before the commit.
    let before = commits(&lake_dir);
    let out = ingest_cmd(&config)
        .env("FJORD_FAULT_CRASH_BEFORE_COMMIT", "readings:2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("aborting before the commit"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = commits(&lake_dir) - before;
    assert!(written >= 1, "the first commit of that run landed");
    // Finish.
    let out = ingest_cmd(&config).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("batch ingest done"));

    // An uninterrupted run into another lake.
    let mut cfg = Config::default();
    cfg.kafka = kafka.clone();
    let other = dir.path().join("other");
    cfg.lake.url = Some(format!("file://{}", other.display()));
    cfg.batch.max_records_per_commit = 200;
    let reference_lake = Lake::new(&cfg.lake_url(), &Default::default()).unwrap();
    fjord_batch::ingest::ingest(&cfg, &reference_lake)
        .await
        .unwrap();

    let lake = Lake::new(
        &format!("file://{}", lake_dir.display()),
        &Default::default(),
    )
    .unwrap();
    let got = all_rows(&lake).await;
    let want = all_rows(&reference_lake).await;
    assert_eq!(
        want.len(),
        n - n / 10,
        "the reference has one row per distinct reading"
    );
    assert_eq!(
        got.len(),
        want.len(),
        "interrupted runs lost or duplicated rows"
    );
    assert_eq!(got, want, "interrupted runs landed different rows");

    // The aborted commit left unreferenced files; vacuum removes exactly those.
    let referenced = lake
        .open(Table::Readings)
        .await
        .unwrap()
        .snapshot()
        .unwrap()
        .log_data()
        .iter()
        .count();
    let on_disk = parquet_files(&lake_dir.join("readings"));
    assert!(
        on_disk > referenced,
        "the crash before the commit left orphaned files"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["batch", "vacuum", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(parquet_files(&lake_dir.join("readings")), referenced);
    assert_eq!(all_rows(&lake).await, want);
}

#[test]
fn a_one_shot_job_fails_with_a_clear_message_and_status() {
    let dir = temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["batch", "ingest"])
        .env_remove("FJORD_CONFIG")
        .env("FJORD__KAFKA__BROKERS", "127.0.0.1:1")
        .env("FJORD__BATCH__KAFKA_TIMEOUT", "2s")
        .env("FJORD__DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: batch ingest failed: Kafka:"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["batch", "run", "--cron", "61 * * * *"])
        .env_remove("FJORD_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("minute"));
}
