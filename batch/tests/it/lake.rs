//! The batch layer against a real Kafka-protocol broker (tansu) and a real lake — a local
//! directory, and the same suite on a real S3-compatible server (s3s-fs): every reading lands
//! exactly once (duplicates hours apart included), undecodable records are quarantined, compaction
//! keeps results and cuts files, and the batch views equal the docs/contract.md §4.1 reference over the
//! deduplicated readings, late readings and midnight included.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use arrow::array::{AsArray, Float64Array};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use fjord_batch::{Lake, Table};
use fjord_core::config::Config;
use fjord_core::occupancy::reference::{self, RefReading};
use fjord_core::time::now_ms;
use fjord_testkit::{S3Server, Tansu, temp_dir};

/// (lot, start, end, capacity, occupied_end, arrivals, departures, readings) and occupied_avg.
type WindowRow = ((String, i64, i64, i64, i64, i64, i64, i64), f64);

async fn windows(lake: &Lake, table: Table) -> Vec<WindowRow> {
    let t = lake.open_existing(table).await.unwrap().unwrap();
    let ctx = fjord_batch::query::session(&[("t", &t)]).await.unwrap();
    let sql = "SELECT lot_id, window_start, window_end, CAST(capacity AS BIGINT), \
               CAST(occupied_end AS BIGINT), arrivals, departures, readings, occupied_avg, source \
               FROM t ORDER BY lot_id, window_start";
    let mut out = Vec::new();
    for b in fjord_batch::query::collect(&ctx, "t", sql).await.unwrap() {
        let lots = fjord_batch::query::string_column(&b, 0).unwrap();
        let s = b.column(1).as_primitive::<TimestampMicrosecondType>();
        let e = b.column(2).as_primitive::<TimestampMicrosecondType>();
        let n = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
        let (cap, end, arr, dep, rd) = (n(3), n(4), n(5), n(6), n(7));
        let avg = b.column(8).as_any().downcast_ref::<Float64Array>().unwrap();
        let source = fjord_batch::query::string_column(&b, 9).unwrap();
        for i in 0..b.num_rows() {
            assert_eq!(source.value(i), "batch");
            out.push((
                (
                    lots.value(i).to_owned(),
                    s.value(i) / 1000,
                    e.value(i) / 1000,
                    cap.value(i),
                    end.value(i),
                    arr.value(i),
                    dep.value(i),
                    rd.value(i),
                ),
                avg.value(i),
            ));
        }
    }
    out
}

/// The views of the lake equal the reference over `readings` up to the high-water mark.
async fn check_views(lake: &Lake, readings: &[RefReading], hwm: i64) {
    check_views_of(lake, readings, hwm, &[MIN, 10 * MIN]).await;
}

/// The views tables of `sizes` equal the reference over `readings` up to the high-water mark.
async fn check_views_of(lake: &Lake, readings: &[RefReading], hwm: i64, sizes: &[i64]) {
    for (table, size) in sizes.iter().map(|s| (Table::Occupancy(*s), *s)) {
        let got = windows(lake, table).await;
        let want: Vec<WindowRow> = reference::windows(readings, &[size], hwm, &|_| None)
            .into_iter()
            .map(|w| {
                (
                    (
                        w.lot_id,
                        w.window_start,
                        w.window_end,
                        i64::from(w.capacity),
                        i64::from(w.occupied_end),
                        w.arrivals as i64,
                        w.departures as i64,
                        w.readings as i64,
                    ),
                    w.occupied_avg,
                )
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{table:?}: number of windows");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0, "{table:?}");
            assert!((g.1 - w.1).abs() < 1e-9, "{table:?}: {g:?} vs {w:?}");
        }
    }
}

fn dedup(readings: &[RefReading]) -> Vec<RefReading> {
    let mut seen = BTreeSet::new();
    readings
        .iter()
        .filter(|r| seen.insert((r.lot_id.clone(), r.space_id.clone(), r.ts)))
        .cloned()
        .collect()
}

async fn suite(tansu: &Tansu, url: &str, options: BTreeMap<String, String>) {
    let kafka = tansu.kafka_config();
    tansu
        .create_topic(&kafka.topic("readings"), 3)
        .await
        .unwrap();
    let cfg: Config = config(&kafka, url, options);
    let lake = lake(&cfg);
    let today = now_ms().div_euclid(DAY) * DAY;
    let to = now_ms() - 30 * MIN;

    // Two days and a bit of readings, every 7th sent twice, plus garbage.
    let a = generate(1, 3, 6, today - 2 * DAY + 3 * 3_600_000, to);
    let mut recs: Vec<Rec> = a.iter().map(reading).collect();
    recs.extend(a.iter().step_by(7).map(reading));
    recs.extend((0..5).map(garbage));
    recs.extend((0..3).map(headerless));
    produce(&kafka, &recs).await;
    let s = fjord_batch::ingest::ingest(&cfg, &lake).await.unwrap();
    assert_eq!(s.records as usize, recs.len());
    assert_eq!(s.quarantined, 8);
    assert_eq!(s.duplicates as usize, a.iter().step_by(7).count());
    assert!(
        s.commits >= 3,
        "several commits of at most 700 records: {s:?}"
    );
    let landed = rows(&lake).await;
    assert_eq!(landed.len(), a.len(), "one row per reading");
    assert_eq!(keys(&landed), ref_keys(&a));
    assert!(
        landed
            .iter()
            .all(|r| r.5.is_some() && r.6.is_some() && r.4.is_some())
    );
    assert_eq!(count(&lake, Table::Quarantine).await, 8);

    // Nothing new: nothing read, nothing landed.
    let version = lake.open(Table::Readings).await.unwrap().version();
    let s = fjord_batch::ingest::ingest(&cfg, &lake).await.unwrap();
    assert_eq!((s.records, s.rows, s.commits), (0, 0, 0));
    assert_eq!(lake.open(Table::Readings).await.unwrap().version(), version);

    // Hours later: new readings, old ones again (through new offsets), late ones across midnight.
    let b = generate(2, 3, 6, to - 20 * MIN, to + 10 * MIN);
    let late: Vec<RefReading> = generate(3, 2, 3, today - DAY - 30 * MIN, today - DAY + 30 * MIN)
        .into_iter()
        .map(|mut r| {
            r.space_id = format!("late-{}", r.space_id);
            r
        })
        .collect();
    let mut recs: Vec<Rec> = b.iter().map(reading).collect();
    recs.extend(a.iter().step_by(3).map(reading));
    recs.extend(late.iter().map(reading));
    produce(&kafka, &recs).await;
    let s = fjord_batch::ingest::ingest(&cfg, &lake).await.unwrap();
    assert_eq!(s.records as usize, recs.len());
    let all: Vec<RefReading> = dedup(&[a.clone(), b.clone(), late.clone()].concat());
    assert!(s.duplicates as usize >= a.iter().step_by(3).count());
    let landed = rows(&lake).await;
    assert_eq!(landed.len(), all.len(), "one row per distinct reading");
    assert_eq!(keys(&landed), ref_keys(&all));

    // Compaction: same rows, fewer files; a second run has nothing to do.
    let before = files(&lake, Table::Readings).await;
    let c = fjord_batch::compact::compact(&cfg, &lake).await.unwrap();
    assert!(c.partitions >= 3, "{c:?}");
    let after = files(&lake, Table::Readings).await;
    assert!(after < before, "{before} files before, {after} after");
    assert_eq!(rows(&lake).await, landed, "compaction changed the rows");
    let c = fjord_batch::compact::compact(&cfg, &lake).await.unwrap();
    assert_eq!(c.partitions, 0, "already compact: {c:?}");

    // Views equal the reference; then late readings arrive and only their dates are redone.
    let v = fjord_batch::views::views(&cfg, &lake).await.unwrap();
    let hwm = v.hwm.expect("a high-water mark");
    assert!(
        hwm <= to + 10 * MIN && hwm > to - 30 * MIN,
        "hwm {hwm} vs data up to {to}"
    );
    assert!(v.days >= 3);
    check_views(&lake, &all, hwm).await;
    let v = fjord_batch::views::views(&cfg, &lake).await.unwrap();
    assert_eq!(v.days, 0, "nothing changed: {v:?}");

    let later: Vec<RefReading> = generate(
        4,
        2,
        2,
        today - DAY + 3_600_000,
        today - DAY + 2 * 3_600_000,
    )
    .into_iter()
    .map(|mut r| {
        r.lot_id = "L1".into();
        r.space_id = format!("later-{}", r.space_id);
        r
    })
    .collect();
    produce(&kafka, &later.iter().map(reading).collect::<Vec<_>>()).await;
    fjord_batch::ingest::ingest(&cfg, &lake).await.unwrap();
    let v = fjord_batch::views::views(&cfg, &lake).await.unwrap();
    let all = dedup(&[all, later].concat());
    assert!(
        v.days >= 2 && v.days <= 3,
        "yesterday and the days after it: {v:?}"
    );
    check_views(&lake, &all, v.hwm.unwrap()).await;

    // A window size added to the config, listed first: the next run computes its table from the
    // first date, the high-water mark does not move back to the new size's coarser step, and
    // every views table equals the reference.
    let before = v.hwm.unwrap();
    let mut cfg = cfg;
    cfg.stream.windows = [60, 1, 10]
        .map(fjord_core::duration::Duration::from_mins)
        .to_vec();
    let v = fjord_batch::views::views(&cfg, &lake).await.unwrap();
    let hwm = v.hwm.unwrap();
    assert_eq!(hwm, before, "the mark never moves back: {v:?}");
    assert!(v.rows.get("occupancy_1h").is_some_and(|n| *n > 0), "{v:?}");
    assert_eq!(Table::Occupancy(60 * MIN).name(), "occupancy_1h");
    check_views_of(&lake, &all, hwm, &[60 * MIN, MIN, 10 * MIN]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_lake_exactly_once_compaction_and_views() {
    let tansu = Tansu::start().unwrap();
    let dir = temp_dir();
    let url = format!("file://{}", dir.path().join("lake").display());
    suite(&tansu, &url, BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_lake_exactly_once_compaction_and_views() {
    let tansu = Tansu::start().unwrap();
    let s3 = S3Server::start("lake").unwrap();
    suite(&tansu, "s3://lake/fjord", s3.storage_options()).await;
    // The objects really are in the S3 server's store.
    let log = s3.root().join("lake/fjord/readings/_delta_log");
    assert!(
        std::fs::read_dir(&log).map(|d| d.count()).unwrap_or(0) > 3,
        "no Delta log in {}",
        log.display()
    );
}

/// The lake outlives its Kafka: the topic is recreated on a fresh broker with fewer records
/// (offsets went backwards), then with more records (same offsets, different records), then a
/// cluster with another id takes over. Every reading of every incarnation lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_or_replaced_cluster_is_read_from_its_beginning() {
    let dir = temp_dir();
    let url = format!("file://{}", dir.path().join("lake").display());
    let base = now_ms() - 2 * DAY;
    let mut expected: Vec<RefReading> = Vec::new();
    let mut prefix = None;
    for (round, (n_spaces, cluster)) in [
        (6, "tansu_cluster"),
        (2, "tansu_cluster"),
        (9, "tansu_cluster"),
        (3, "another"),
    ]
    .into_iter()
    .enumerate()
    {
        let tansu = Tansu::start_with_cluster_id(cluster).unwrap();
        let mut kafka = tansu.kafka_config();
        // The same topic names on every broker.
        let p = prefix
            .get_or_insert_with(|| kafka.topic_prefix.clone())
            .clone();
        kafka.topic_prefix = p;
        tansu
            .create_topic(&kafka.topic("readings"), 3)
            .await
            .unwrap();
        let readings: Vec<RefReading> = generate(10 + round as u64, 2, n_spaces, base, base + DAY)
            .into_iter()
            .map(|mut r| {
                r.space_id = format!("r{round}-{}", r.space_id);
                r
            })
            .collect();
        produce(&kafka, &readings.iter().map(reading).collect::<Vec<_>>()).await;
        let cfg = config(&kafka, &url, BTreeMap::new());
        let s = fjord_batch::ingest::ingest(&cfg, &lake(&cfg))
            .await
            .unwrap();
        assert_eq!(s.records as usize, readings.len(), "round {round}: {s:?}");
        if round == 1 || round == 2 {
            assert!(
                !s.resets.is_empty(),
                "round {round}: the recreation must be reported: {s:?}"
            );
        }
        expected.extend(readings);
        let landed = rows(&lake(&cfg)).await;
        assert_eq!(landed.len(), expected.len(), "round {round}");
        assert_eq!(keys(&landed), ref_keys(&expected), "round {round}");
    }
}

fn ok_or_conflict<T: std::fmt::Debug>(r: fjord_batch::Result<T>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) if e.conflict().is_some() => false,
        Err(e) => panic!("a concurrent job must succeed or report a conflict, got: {e}"),
    }
}

/// Two schedulers on one lake: concurrent jobs either commit or lose cleanly to Delta's
/// optimistic concurrency; afterwards every reading is there exactly once and the views are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_on_one_lake_never_corrupt_it() {
    let dir = temp_dir();
    let url = format!("file://{}", dir.path().join("lake").display());
    concurrent_jobs(&url, BTreeMap::new()).await;
}

/// The same on S3: commits rely on the store's conditional PUT (If-None-Match).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_on_one_s3_lake_never_corrupt_it() {
    let s3 = S3Server::start("lake").unwrap();
    concurrent_jobs("s3://lake/concurrent", s3.storage_options()).await;
}

async fn concurrent_jobs(url: &str, options: BTreeMap<String, String>) {
    let tansu = Tansu::start().unwrap();
    let kafka = tansu.kafka_config();
    tansu
        .create_topic(&kafka.topic("readings"), 3)
        .await
        .unwrap();
    let cfg = config(&kafka, url, options);
    let lake = lake(&cfg);
    let to = now_ms() - 30 * MIN;
    let readings = generate(21, 3, 8, to - DAY - 5 * 3_600_000, to);
    produce(&kafka, &readings.iter().map(reading).collect::<Vec<_>>()).await;

    let (a, b) = tokio::join!(
        fjord_batch::ingest::ingest(&cfg, &lake),
        fjord_batch::ingest::ingest(&cfg, &lake)
    );
    let (a, b) = (ok_or_conflict(a), ok_or_conflict(b));
    eprintln!("concurrent ingests committed: {a} {b}");
    assert!(a || b, "at least one ingest commits");
    fjord_batch::ingest::ingest(&cfg, &lake).await.unwrap();
    let landed = rows(&lake).await;
    assert_eq!(
        landed.len(),
        readings.len(),
        "exactly once after concurrent ingests"
    );
    assert_eq!(keys(&landed), ref_keys(&readings));

    let (a, b) = tokio::join!(
        fjord_batch::views::views(&cfg, &lake),
        fjord_batch::compact::compact(&cfg, &lake)
    );
    ok_or_conflict(a);
    ok_or_conflict(b);
    let (a, b) = tokio::join!(
        fjord_batch::views::views(&cfg, &lake),
        fjord_batch::views::views(&cfg, &lake)
    );
    ok_or_conflict(a);
    ok_or_conflict(b);
    let v = fjord_batch::views::views(&cfg, &lake).await.unwrap();
    assert_eq!(rows(&lake).await, landed);
    check_views(&lake, &readings, v.hwm.unwrap()).await;
}
