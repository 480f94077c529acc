//! What a newcomer sees in `fjord demo` (default settings, simulator on): the serving layer is
//! live, on the embedded Kafka and on tansu (`--kafka`, at least once). Through the real binary
//! and real clients (MQTT publish, SQL over HTTP, Kafka consumer):
//! `/readyz` turns 200 within 10 s of start; a published reading shows in `spaces_live` and
//! `occupancy_live` within 2 s; a window the stream processor writes to `fjord.occupancy` is in
//! `occupancy_1m` within 2 s of being written; `fjord.readings` records carry the payload's
//! content type even when the device declared none; readings published with event times 20–30
//! minutes old (late for the speed layer) show, once the batch job has run, in `occupancy_1m` and
//! `occupancy_10m` as batch rows equal to the docs/contract.md §4.1 reference, window by window.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fjord_core::model::OccupancyWindow;
use fjord_core::occupancy::reference::{RefReading, windows as reference};
use fjord_testkit::{free_port, temp_dir, unique_name};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

const FJORD: &str = env!("CARGO_BIN_EXE_fjord");
const TOKEN: &str = "live-test-token-1234";
/// docs/contract.md §7 and issue bounds: how far the served speed layer may trail Kafka.
const FRESH: Duration = Duration::from_secs(2);
/// How soon after start `/readyz` must answer 200.
const READY: Duration = Duration::from_secs(10);
/// How soon after start a reading goes all the way to SQL.
const LIVE: Duration = Duration::from_secs(10);

/// `fjord demo` as a newcomer starts it (simulator on), killed when dropped.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The two runs share 2 cores: one at a time, so neither measures the other's load.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn start(data_dir: &Path, mqtt_port: u16, http_port: u16, kafka: Option<&str>) -> Demo {
    let mut cmd = Command::new(FJORD);
    cmd.args(["demo", "--auth-token", TOKEN]);
    if let Some(brokers) = kafka {
        // tansu has no transactions: the processor runs at least once
        cmd.args(["--kafka", brokers])
            .env("FJORD__STREAM__PROCESSING_GUARANTEE", "at_least_once");
    }
    let child = cmd
        // windows final 10 s after their end instead of 65 s: the test waits less, and what it
        // checks (the time from a window's write to its row in SQL) does not depend on it
        .env("FJORD__STREAM__ALLOWED_LATENESS", "5s")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--mqtt-port", &mqtt_port.to_string()])
        .args(["--http-port", &http_port.to_string()])
        .args(["--pg-port", &free_port().to_string()])
        .args(["--flight-port", &free_port().to_string()])
        // the batch job every 10 s instead of 5 min, so that the test sees its views
        .args(["--batch-every", "10s"])
        .env_remove("FJORD_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fjord demo");
    Demo(child)
}

async fn sql(http: &str, query: &str) -> Vec<Value> {
    let r = reqwest::Client::new()
        .post(format!("{http}/api/sql"))
        .bearer_auth(TOKEN)
        .body(query.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{query}");
    r.json::<Vec<Value>>().await.unwrap()
}

/// Polls `query` until `done` holds for its rows; the time it took, or `None` after `limit`.
async fn until(
    http: &str,
    query: &str,
    limit: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if done(&sql(http, query).await) {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn publisher(port: u16) -> AsyncClient {
    let mut opts = MqttOptions::new(unique_name("live"), "127.0.0.1", port);
    opts.set_credentials("fjord", TOKEN);
    let (client, mut lp) = AsyncClient::new(opts, 100);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), lp.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("no CONNACK: {other:?}"),
        }
    }
    tokio::spawn(async move { while lp.poll().await.is_ok() {} });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_what_the_stream_computes_within_seconds() {
    let _one = ONE_AT_A_TIME.lock().await;
    serves_live(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_on_tansu_serves_what_the_stream_computes_within_seconds() {
    let _one = ONE_AT_A_TIME.lock().await;
    let tansu = fjord_testkit::Tansu::start().expect("tansu");
    serves_live(Some(&tansu.bootstrap())).await;
}

/// A PUBACK from the demo's broker means "in Kafka": the demo killed (SIGKILL) right after the
/// last PUBACK of 5,000 readings from one connection still has every one of them in
/// `fjord.readings` (on tansu, which outlives it). A broker that acknowledged what it merely held
/// in memory would lose whatever a bridge had not fetched yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reading_the_demo_acknowledged_is_in_kafka_when_it_is_killed() {
    let _one = ONE_AT_A_TIME.lock().await;
    let tansu = fjord_testkit::Tansu::start().expect("tansu");
    let dir = temp_dir();
    let data_dir = dir.path().join("data");
    let (mqtt_port, http_port) = (free_port(), free_port());
    let mut demo = start(&data_dir, mqtt_port, http_port, Some(&tansu.bootstrap()));
    let endpoints = data_dir.join("endpoints.json");
    assert!(
        fjord_testkit::wait_until(Duration::from_secs(60), || endpoints.exists()),
        "the demo did not start"
    );
    let total = 5_000u64;
    let base = fjord_core::time::now_ms() - 600_000;
    let readings = (0..total)
        .map(|n| {
            (
                format!("parking/K{}/S{}", n % 7, n % 300),
                format!(
                    r#"{{"ts":{},"occupied":{},"n":{n}}}"#,
                    base + n as i64,
                    n % 2 == 0
                )
                .into_bytes(),
            )
        })
        .collect();
    fjord_testkit::mqtt::publish_all(
        mqtt_port,
        Some(("fjord", TOKEN)),
        &unique_name("acked"),
        readings,
        Duration::from_secs(120),
    )
    .await;
    demo.0.kill().expect("SIGKILL the demo");
    let _ = demo.0.wait();

    // the demo's topics have the default prefix (`fjord.`)
    let kafka = fjord_core::config::KafkaConfig {
        topic_prefix: fjord_core::config::KafkaConfig::default().topic_prefix,
        ..tansu.kafka_config()
    };
    let mut seen = std::collections::HashSet::new();
    let records = fjord_testkit::kafka::collect(
        &kafka,
        &kafka.topic("readings"),
        Duration::from_secs(60),
        |records| {
            if let Some(r) = records.last() {
                let v: Value = serde_json::from_slice(&r.payload).unwrap_or_default();
                if let Some(n) = v["n"].as_u64() {
                    seen.insert(n);
                }
            }
            seen.len() as u64 >= total
        },
    )
    .await;
    let missing: Vec<u64> = (0..total).filter(|n| !seen.contains(n)).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} of {total} acknowledged readings are not in fjord.readings, e.g. {missing:?} ({} records read, the last: {:?})",
        total - seen.len() as u64,
        records.len(),
        records
            .last()
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
    );
}

async fn serves_live(kafka: Option<&str>) {
    let dir = temp_dir();
    let data_dir = dir.path().join("data");
    let (mqtt_port, http_port) = (free_port(), free_port());
    let started = Instant::now();
    let _demo = start(&data_dir, mqtt_port, http_port, kafka);
    let http = format!("http://127.0.0.1:{http_port}");

    // readiness
    let client = reqwest::Client::new();
    let mut ready_after = None;
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(r) = client.get(format!("{http}/readyz")).send().await
            && r.status() == 200
        {
            ready_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_after = ready_after.expect("/readyz never answered 200 within 60 s");
    assert!(
        ready_after <= READY,
        "/readyz took {ready_after:?} (bound {READY:?})"
    );

    // a Kafka consumer at the end of fjord.occupancy, to see when windows are written (the demo
    // writes endpoints.json once everything runs, which is after the server is ready)
    let endpoints_path = data_dir.join("endpoints.json");
    assert!(
        fjord_testkit::wait_until(Duration::from_secs(60), || endpoints_path.exists()),
        "endpoints.json not written"
    );
    let endpoints: Value =
        serde_json::from_str(&std::fs::read_to_string(data_dir.join("endpoints.json")).unwrap())
            .unwrap();
    let bootstrap = endpoints["kafka"]["bootstrap_servers"]
        .as_str()
        .unwrap()
        .to_owned();
    let windows: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", unique_name("g"))
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let partitions = windows
        .fetch_metadata(Some("fjord.occupancy"), Duration::from_secs(10))
        .unwrap()
        .topics()[0]
        .partitions()
        .len() as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset("fjord.occupancy", p, Offset::End)
            .unwrap();
    }
    windows.assign(&tpl).unwrap();

    // the whole pipeline is live soon after start: a first reading through bridge, stream
    // processor and serve (the processor joins its consumer group after the server is up)
    let mqtt = publisher(mqtt_port).await;
    mqtt.publish(
        "parking/warmup/W1",
        QoS::AtLeastOnce,
        false,
        r#"{"occupied":true}"#,
    )
    .await
    .unwrap();
    until(
        &http,
        "SELECT occupied FROM spaces_live WHERE lot_id = 'warmup'",
        Duration::from_secs(60),
        |rows| rows.len() == 1,
    )
    .await
    .expect("the first reading never showed in spaces_live");
    let live_after = started.elapsed();
    eprintln!("/readyz after {ready_after:?}, first reading served after {live_after:?}");
    assert!(
        live_after <= LIVE,
        "the first reading showed in spaces_live {live_after:?} after start (bound {LIVE:?})"
    );

    // a lot's history: readings 10–20 minutes old, late for the speed layer, for the batch job
    let history = history_readings();
    for r in &history {
        mqtt.publish(
            format!("parking/{}/{}", r.lot_id, r.space_id),
            QoS::AtLeastOnce,
            false,
            format!(r#"{{"ts":{},"occupied":{}}}"#, r.ts, r.occupied),
        )
        .await
        .unwrap();
    }

    // readings of one lot of our own, while the simulator keeps its 20 readings/s going
    let lot = "freshlot";
    for (i, occupied) in [true, true, false, true].into_iter().enumerate() {
        let space = format!("F{i}");
        let sent = Instant::now();
        mqtt.publish(
            format!("parking/{lot}/{space}"),
            QoS::AtLeastOnce,
            false,
            format!(r#"{{"occupied":{occupied},"battery":{}}}"#, 90 - i),
        )
        .await
        .unwrap();
        let took = until(
            &http,
            &format!(
                "SELECT occupied, battery FROM spaces_live WHERE lot_id = '{lot}' AND space_id = '{space}'"
            ),
            Duration::from_secs(30),
            |rows| {
                rows.first().is_some_and(|r| {
                    r["occupied"] == occupied && r["battery"] == 90 - i
                })
            },
        )
        .await
        .unwrap_or_else(|| panic!("{space} never showed in spaces_live"));
        assert!(
            took <= FRESH,
            "{space} took {took:?} to show in spaces_live (bound {FRESH:?}, {:?} since the publish)",
            sent.elapsed()
        );
    }
    let took = until(
        &http,
        &format!("SELECT occupied, capacity FROM occupancy_live WHERE lot_id = '{lot}'"),
        FRESH,
        |rows| {
            rows.first()
                .is_some_and(|r| r["occupied"] == 3 && r["capacity"] == 4)
        },
    )
    .await;
    assert!(
        took.is_some(),
        "occupancy_live of {lot} not 3 of 4 within {FRESH:?}"
    );

    // the content type the bridge sniffed rides on the record
    let raw: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", unique_name("g"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    raw.subscribe(&["fjord.readings"]).unwrap();
    let content_type = tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(Ok(m)) = raw.poll(Duration::from_millis(200))
                && m.key() == Some(lot.as_bytes())
            {
                return m.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "fjord-content-type")
                        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
                });
            }
        }
        panic!("no record of {lot} in fjord.readings");
    });
    assert_eq!(content_type.as_deref(), Some("application/json"));

    // the lot's first 1-minute window: in SQL within 2 s of its Kafka write
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen < 1 && Instant::now() < deadline {
        let Some(Ok(m)) = tokio::task::block_in_place(|| {
            windows
                .poll(Duration::from_millis(200))
                .map(|r| r.map(|m| m.detach()))
        }) else {
            continue;
        };
        let written = Instant::now();
        let w: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        if w["lot_id"] != lot
            || m.headers()
                .and_then(|h| h.iter().find(|h| h.key == "fjord-window"))
                .and_then(|h| h.value)
                != Some(b"1m".as_slice())
        {
            continue;
        }
        let start = w["window_start"].as_str().unwrap().to_owned();
        let start_us = fjord_core::time::parse_rfc3339(&start).unwrap() * 1000;
        let took = until(
            &http,
            &format!(
                "SELECT occupied_end, readings FROM occupancy_1m \
                 WHERE lot_id = '{lot}' AND CAST(window_start AS BIGINT) = {start_us}"
            ),
            Duration::from_secs(30),
            |rows| rows.len() == 1,
        )
        .await
        .unwrap_or_else(|| panic!("window {start} never showed in occupancy_1m"));
        let lag = written.elapsed().max(took);
        assert!(
            lag <= FRESH,
            "window {start} took {lag:?} to show in occupancy_1m (bound {FRESH:?})"
        );
        seen += 1;
    }
    assert_eq!(
        seen, 1,
        "the stream processor wrote no 1m window of {lot} within 120 s"
    );

    // the history, once a batch run has covered it: batch rows equal to the reference
    // the end of the 10-minute window holding the history
    let last = history.iter().map(|r| r.ts).max().unwrap();
    let covered = last.div_euclid(10 * MIN) * 10 * MIN + 10 * MIN;
    let query = |table: &str| {
        format!(
            "SELECT CAST(window_start AS BIGINT) / 1000 AS start_ms, \
             CAST(window_end AS BIGINT) / 1000 AS end_ms, source, capacity, occupied_avg, \
             occupancy_ratio, occupied_end, arrivals, departures, readings \
             FROM {table} WHERE lot_id = '{HISTORY_LOT}' ORDER BY window_start"
        )
    };
    let batch_end = |rows: &[Value]| {
        rows.iter()
            .filter(|r| r["source"] == "batch")
            .filter_map(|r| r["end_ms"].as_i64())
            .max()
    };
    until(
        &http,
        &query("occupancy_10m"),
        Duration::from_secs(120),
        |rows| batch_end(rows).is_some_and(|e| e >= covered),
    )
    .await
    .expect("no batch run covered the history within 120 s");
    for (table, size) in [("occupancy_1m", MIN), ("occupancy_10m", 10 * MIN)] {
        let rows = sql(&http, &query(table)).await;
        let hwm = batch_end(&rows).unwrap();
        let want = reference(&history, &[size], hwm, &|_| None);
        assert!(!want.is_empty(), "{table}: no reference window up to {hwm}");
        eprintln!(
            "{table}: {} batch windows of {HISTORY_LOT} equal the reference",
            want.len()
        );
        check_batch_rows(table, &rows, hwm, &want);
    }
}

/// The lot whose readings are 20–30 minutes old.
const HISTORY_LOT: &str = "historylot";
const MIN: i64 = 60_000;

/// Readings of [`HISTORY_LOT`] in the first 5 minutes of the 10-minute window that began 20–30
/// minutes ago: late for the speed layer (older than its watermark minus the allowed lateness),
/// within the batch high-water mark once a batch run has landed them. One is sent twice.
fn history_readings() -> Vec<RefReading> {
    let now = fjord_core::time::now_ms();
    let t0 = now.div_euclid(10 * MIN) * 10 * MIN - 20 * MIN;
    let mut out: Vec<RefReading> = (0..12)
        .map(|i: i64| RefReading {
            lot_id: HISTORY_LOT.into(),
            space_id: format!("H{}", i % 3),
            ts: t0 + 7_000 + i * 23_000,
            occupied: i % 4 != 3,
        })
        .collect();
    out.push(out[4].clone());
    out
}

/// The served rows of the history lot: every window ending at or before `hwm` is a batch row
/// equal to the reference, none is missing or doubled, and later ones (if the speed layer saw any
/// of the readings before its watermark passed them) are speed rows.
fn check_batch_rows(table: &str, rows: &[Value], hwm: i64, want: &[OccupancyWindow]) {
    let batch: Vec<&Value> = rows
        .iter()
        .filter(|r| r["end_ms"].as_i64().unwrap() <= hwm)
        .collect();
    assert_eq!(
        batch.len(),
        want.len(),
        "{table}: {} rows up to the high-water mark, the reference has {}",
        batch.len(),
        want.len()
    );
    for (r, w) in batch.iter().zip(want) {
        let close = |a: &Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-9;
        assert_eq!(r["source"], "batch", "{table}: {r}");
        assert_eq!(r["start_ms"].as_i64(), Some(w.window_start), "{table}: {r}");
        assert_eq!(r["end_ms"].as_i64(), Some(w.window_end), "{table}: {r}");
        assert_eq!(
            r["capacity"].as_u64(),
            Some(u64::from(w.capacity)),
            "{table}: {r} vs {w:?}"
        );
        assert!(
            close(&r["occupied_avg"], w.occupied_avg),
            "{table}: {r} vs {w:?}"
        );
        assert!(
            close(&r["occupancy_ratio"], w.occupancy_ratio),
            "{table}: {r} vs {w:?}"
        );
        assert_eq!(
            r["occupied_end"].as_u64(),
            Some(u64::from(w.occupied_end)),
            "{table}: {r} vs {w:?}"
        );
        assert_eq!(
            r["arrivals"].as_u64(),
            Some(w.arrivals),
            "{table}: {r} vs {w:?}"
        );
        assert_eq!(
            r["departures"].as_u64(),
            Some(w.departures),
            "{table}: {r} vs {w:?}"
        );
        assert_eq!(
            r["readings"].as_u64(),
            Some(w.readings),
            "{table}: {r} vs {w:?}"
        );
    }
    for r in &rows[batch.len()..] {
        assert_eq!(
            r["source"], "speed",
            "{table}: a window after the high-water mark: {r}"
        );
    }
}
