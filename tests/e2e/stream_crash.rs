//! `fjord stream` on a real Kafka-protocol broker (tansu, at least once), killed with SIGKILL during
//! a run, and scaled out to two instances of which one dies: no window is missing, every repeated
//! record is byte-identical to its first copy, and the de-duplicated output equals the docs/contract.md §4.1
//! reference exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fjord_core::config::KafkaConfig;
use fjord_core::model::OccupancyWindow;
use fjord_core::occupancy::reference::{self, RefReading};
use fjord_core::time::now_ms;
use fjord_testkit::{Tansu, kafka, temp_dir, unique_name};
use rand::{Rng, SeedableRng};

const MIN: i64 = 60_000;

fn write_config(dir: &Path, kafka: &KafkaConfig, group: &str, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[log]\nlevel = \"info\"\n\n[kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{}\"\npartitions = 3\n\n\
         [stream]\nprocessing_guarantee = \"at_least_once\"\nidle_after = \"3s\"\nsession_timeout = \"6s\"\n\
         group_id = \"{group}\"\ninstance_id = \"{name}\"\nmetrics_listen = \"127.0.0.1:0\"\n",
        kafka.brokers, kafka.topic_prefix
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["stream", "--config"])
        .arg(config)
        .env_remove("FJORD_CONFIG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start fjord stream")
}

/// Readings of `lots` × `spaces` over the three hours before `to`, in event-time order.
fn generate(seed: u64, lots: usize, spaces: usize, to: i64) -> Vec<RefReading> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let from = to - 180 * MIN;
    let mut out = Vec::new();
    for lot in 0..lots {
        for space in 0..spaces {
            let mut t = from + rng.random_range(0..2 * MIN);
            let mut occupied = false;
            while t < to {
                if rng.random_bool(0.5) {
                    occupied = !occupied;
                }
                out.push(RefReading {
                    lot_id: format!("L{lot}"),
                    space_id: format!("S{space}"),
                    ts: t,
                    occupied,
                });
                t += rng.random_range(MIN / 2..4 * MIN);
            }
        }
    }
    out.sort_by_key(|r| r.ts);
    out
}

/// Produces `readings` over about `spread`, in slices, as a live bridge would.
async fn produce_spread(kafka: &KafkaConfig, readings: &[RefReading], spread: Duration) {
    let slices = 60;
    let per = readings.len().div_ceil(slices);
    for chunk in readings.chunks(per) {
        let records: Vec<kafka::BridgeRecord> = chunk
            .iter()
            .map(|r| kafka::BridgeRecord::of_reference(r, 50))
            .collect();
        kafka::produce_readings(kafka, &records).await;
        tokio::time::sleep(spread / slices as u32).await;
    }
}

/// Windows by (lot, start, end); repeated records must be byte-identical.
fn windows(records: &[kafka::Record]) -> HashMap<(String, i64, i64), OccupancyWindow> {
    let mut first: HashMap<(String, i64, i64), &[u8]> = HashMap::new();
    let mut out = HashMap::new();
    for r in records {
        let w: OccupancyWindow = serde_json::from_slice(&r.payload).unwrap();
        let key = (w.lot_id.clone(), w.window_start, w.window_end);
        match first.get(&key) {
            Some(prev) => assert_eq!(
                *prev,
                &r.payload[..],
                "repeated window {key:?} differs from its first copy"
            ),
            None => {
                first.insert(key.clone(), &r.payload);
            }
        }
        out.insert(key, w);
    }
    out
}

async fn check_against_reference(
    kafka: &KafkaConfig,
    readings: &[RefReading],
    to: i64,
    logs: &[&Path],
) -> usize {
    let cutoff = (to - 2 * MIN).div_euclid(10 * MIN) * 10 * MIN;
    let expected = reference::windows(readings, &[MIN, 10 * MIN], cutoff, &|_| None);
    let records = kafka::collect(
        kafka,
        &kafka.topic("occupancy"),
        Duration::from_secs(180),
        |r| {
            r.len() >= expected.len()
                && windows(r)
                    .values()
                    .filter(|w| w.window_end <= cutoff)
                    .count()
                    >= expected.len()
        },
    )
    .await;
    let got = windows(&records);
    let mut missing = 0;
    for w in &expected {
        match got.get(&(w.lot_id.clone(), w.window_start, w.window_end)) {
            Some(g) => assert_eq!(
                g, w,
                "window {} [{}, {}) differs from the reference",
                w.lot_id, w.window_start, w.window_end
            ),
            None => missing += 1,
        }
    }
    let log_text: String = logs
        .iter()
        .map(|l| std::fs::read_to_string(l).unwrap_or_default())
        .collect();
    assert_eq!(
        missing,
        0,
        "{missing} of {} windows missing; logs:\n{log_text}",
        expected.len()
    );
    records.len() - got.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_three_times_gives_the_exact_windows() {
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let kafka = tansu.kafka_config();
    let dir = temp_dir();
    let config = write_config(dir.path(), &kafka, &unique_name("g"), "crash");
    let log = dir.path().join("stream.log");
    let mut cfg = fjord_core::config::Config::default();
    cfg.kafka = kafka.clone();
    fjord_stream::runtime::ensure_topics(&cfg).await.unwrap();

    let to = now_ms() - 2 * MIN;
    let readings = generate(3, 6, 40, to);
    let producer = {
        let (kafka, readings) = (kafka.clone(), readings.clone());
        tokio::spawn(
            async move { produce_spread(&kafka, &readings, Duration::from_secs(40)).await },
        )
    };
    let mut stream = start(&config, &log);
    let started = Instant::now();
    for (kill, at) in [(1, 5), (2, 16), (3, 27)] {
        tokio::time::sleep_until(tokio::time::Instant::from_std(
            started + Duration::from_secs(at),
        ))
        .await;
        stream.kill().unwrap();
        stream.wait().unwrap();
        println!("SIGKILL {kill} at {:?}", started.elapsed());
        stream = start(&config, &log);
    }
    producer.await.unwrap();
    let repeated = check_against_reference(&kafka, &readings, to, &[&log]).await;
    stream.kill().unwrap();
    stream.wait().unwrap();
    println!("3 × SIGKILL: exact windows; {repeated} repeated (byte-identical) window records");
}

/// The scale-out test runs on librdkafka's mock cluster: tansu 0.6 evicts a member that stops
/// heartbeating but does not start a new generation, so the survivor is never told to take the
/// dead member's partitions (seen in its group coordinator's log: "missed heartbeat … in
/// generation: 1", and no rebalance after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_the_partitions_and_one_takes_over_when_the_other_dies() {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let kafka = KafkaConfig {
        brokers: cluster.bootstrap_servers(),
        topic_prefix: format!("{}.", unique_name("t")),
        partitions: 3,
        ..KafkaConfig::default()
    };
    let topics = fjord_core::kafka::Topics::new(&kafka);
    for t in topics.all() {
        cluster.create_topic(t, 3, 1).unwrap();
    }
    let dir = temp_dir();
    let group = unique_name("g");
    let (config_a, config_b) = (
        write_config(dir.path(), &kafka, &group, "a"),
        write_config(dir.path(), &kafka, &group, "b"),
    );
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));

    let to = now_ms() - 2 * MIN;
    let readings = generate(5, 6, 40, to);
    let mut a = start(&config_a, &log_a);
    let mut b = start(&config_b, &log_b);
    // both in the group, each with part of the partitions
    let assigned = |log: &Path, pred: &dyn Fn(&str) -> bool| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("partitions assigned and restored") && pred(l))
    };
    let part = |l: &str| !l.contains("[0, 1, 2]") && !l.contains("[]");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(assigned(&log_a, &part) && assigned(&log_b, &part)) {
        assert!(
            Instant::now() < deadline,
            "the two instances never split the partitions; logs:\n{}\n---\n{}",
            std::fs::read_to_string(&log_a).unwrap_or_default(),
            std::fs::read_to_string(&log_b).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let producer = {
        let (kafka, readings) = (kafka.clone(), readings.clone());
        tokio::spawn(
            async move { produce_spread(&kafka, &readings, Duration::from_secs(30)).await },
        )
    };
    tokio::time::sleep(Duration::from_secs(8)).await;
    a.kill().unwrap();
    a.wait().unwrap();
    producer.await.unwrap();
    let repeated = check_against_reference(&kafka, &readings, to, &[&log_a, &log_b]).await;
    let took_over = assigned(&log_b, &|l: &str| l.contains("[0, 1, 2]"));
    b.kill().unwrap();
    b.wait().unwrap();
    assert!(took_over, "instance b took over every partition");
    println!(
        "scale-out: exact windows after one of two instances died; {repeated} repeated window records"
    );
    // the cluster is in memory; destroying it waits for clients' session timeouts
    std::mem::forget(cluster);
}
