//! The exactly-once path of `fjord stream`, on librdkafka's mock cluster (the one broker here that
//! accepts Kafka transactions): transactions commit outputs, checkpoints and offsets together;
//! injected failures abort and rewind without losing or changing anything; offsets are committed
//! only with their outputs; a second instance with the same transactional id fences the first.
//!
//! What the mock cluster cannot show: it hands the records of aborted transactions to
//! read_committed consumers, so these tests check that every repeated record is byte-identical and
//! that the de-duplicated output is exact, rather than that aborted records are invisible.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fjord_core::config::KafkaConfig;
use fjord_core::model::OccupancyWindow;
use fjord_core::occupancy::reference::{self, RefReading};
use fjord_core::time::now_ms;
use fjord_testkit::{free_port, kafka, temp_dir, unique_name};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};

const MIN: i64 = 60_000;

struct Setup {
    cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    kafka: KafkaConfig,
    dir: tempfile::TempDir,
    group: String,
}

fn setup() -> Setup {
    let cluster = MockCluster::new(1).unwrap();
    let kafka = KafkaConfig {
        brokers: cluster.bootstrap_servers(),
        topic_prefix: format!("{}.", unique_name("t")),
        partitions: 3,
        ..KafkaConfig::default()
    };
    for t in fjord_core::kafka::Topics::new(&kafka).all() {
        cluster.create_topic(t, 3, 1).unwrap();
    }
    Setup {
        cluster,
        kafka,
        dir: temp_dir(),
        group: unique_name("g"),
    }
}

fn write_config(s: &Setup, name: &str, metrics_port: u16) -> PathBuf {
    let path = s.dir.path().join(format!("{name}-{metrics_port}.toml"));
    let text = format!(
        "[kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{}\"\npartitions = 3\n\n\
         [stream]\nprocessing_guarantee = \"exactly_once\"\nidle_after = \"3s\"\nsession_timeout = \"6s\"\n\
         group_id = \"{}\"\ninstance_id = \"{name}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n",
        s.kafka.brokers, s.kafka.topic_prefix, s.group
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

fn readings(to: i64) -> Vec<RefReading> {
    let mut out = Vec::new();
    for lot in 0..4 {
        for space in 0..20 {
            let mut t = to - 60 * MIN + (space * 7_919 + lot * 3_571) % MIN;
            let mut occupied = false;
            while t < to {
                occupied = !occupied || (t / 1000) % 3 == 0;
                out.push(RefReading {
                    lot_id: format!("L{lot}"),
                    space_id: format!("S{space}"),
                    ts: t,
                    occupied,
                });
                t += 50_000 + (t % 97) * 1000;
            }
        }
    }
    out.sort_by_key(|r| r.ts);
    out
}

async fn produce(kafka: &KafkaConfig, readings: &[RefReading]) {
    let records: Vec<kafka::BridgeRecord> = readings
        .iter()
        .map(|r| kafka::BridgeRecord::of_reference(r, 50))
        .collect();
    kafka::produce_readings(kafka, &records).await;
}

/// Waits for every reference window (repeats must be byte-identical) and checks them.
/// `log`: the processor's log, shown when a window is missing.
async fn check_exact(kafka: &KafkaConfig, readings: &[RefReading], to: i64, log: &Path) -> usize {
    let cutoff = (to - 2 * MIN).div_euclid(10 * MIN) * 10 * MIN;
    let expected = reference::windows(readings, &[MIN, 10 * MIN], cutoff, &|_| None);
    let mut first: HashMap<(String, i64, i64), Vec<u8>> = HashMap::new();
    let records = kafka::collect(
        kafka,
        &kafka.topic("occupancy"),
        Duration::from_secs(120),
        |r| {
            if let Some(last) = r.last() {
                let w: OccupancyWindow = serde_json::from_slice(&last.payload).unwrap();
                let key = (w.lot_id.clone(), w.window_start, w.window_end);
                let prev = first
                    .entry(key.clone())
                    .or_insert_with(|| last.payload.clone());
                assert_eq!(
                    prev, &last.payload,
                    "repeated window {key:?} differs from its first copy"
                );
            }
            first.keys().filter(|(_, _, end)| *end <= cutoff).count() >= expected.len()
        },
    )
    .await;
    for w in &expected {
        let got = first
            .get(&(w.lot_id.clone(), w.window_start, w.window_end))
            .unwrap_or_else(|| {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                panic!(
                    "window {} [{}, {}) missing; end of the log:\n{}",
                    w.lot_id,
                    w.window_start,
                    w.window_end,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            });
        let got: OccupancyWindow = serde_json::from_slice(got).unwrap();
        assert_eq!(&got, w);
    }
    records.len() - first.len()
}

/// The group's committed offsets of `readings`, summed over partitions (`None` when none).
fn committed(kafka: &KafkaConfig, group: &str) -> Option<i64> {
    let c: BaseConsumer = fjord_core::kafka::client_config(kafka)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(&kafka.topic("readings"), p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let offsets: Vec<i64> = got
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect();
    (!offsets.is_empty()).then(|| offsets.iter().sum())
}

/// The input offsets of the latest checkpoint of each partition, summed.
async fn checkpointed_offsets(kafka: &KafkaConfig) -> i64 {
    let records = kafka::collect(
        kafka,
        &kafka.topic("stream-state"),
        Duration::from_secs(10),
        |_| false,
    )
    .await;
    let mut latest: HashMap<i32, i64> = HashMap::new();
    for r in records
        .iter()
        .filter(|r| r.key.as_deref() == Some(&b"meta"[..]))
    {
        let meta: fjord_stream::partition::PartitionMeta =
            postcard::from_bytes(&r.payload).unwrap();
        latest.insert(r.partition, meta.next_offset);
    }
    latest.values().sum()
}

fn metric(port: u16, name: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0.0;
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_exact_windows_with_their_offsets_and_survive_injected_failures() {
    let s = setup();
    let to = now_ms() - 2 * MIN;
    let data = readings(to);
    produce(&s.kafka, &data).await;
    // every produce request fails for a while: each transaction must abort
    s.cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 40],
    );
    let port = free_port();
    let config = write_config(&s, "eos", port);
    let log = s.dir.path().join("eos.log");
    let mut stream = start(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(port, "fjord_stream_commits_total{outcome=\"aborted\"}") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no aborted commit; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        committed(&s.kafka, &s.group),
        None,
        "no offset may be committed while outputs fail"
    );
    s.cluster.clear_request_errors(RDKafkaApiKey::Produce);

    let repeated = check_exact(&s.kafka, &data, to, &log).await;
    let aborted = metric(port, "fjord_stream_commits_total{outcome=\"aborted\"}");
    let restores = metric(port, "fjord_stream_restores_total");
    // All input is consumed, and the offsets committed in the same transactions as the outputs
    // reached the end of the input. The mock cluster drops the offsets of TxnOffsetCommit (its
    // handler parses them and stores nothing), so the checkpoint, written in the same transaction,
    // says where the offsets are; and no offset is ever committed outside a transaction.
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpointed_offsets(&s.kafka).await != data.len() as i64 {
        assert!(
            Instant::now() < deadline,
            "checkpointed offsets {} of {}",
            checkpointed_offsets(&s.kafka).await,
            data.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        committed(&s.kafka, &s.group),
        None,
        "no offset committed outside a transaction"
    );
    stream.kill().unwrap();
    stream.wait().unwrap();
    assert!(
        restores > 3.0,
        "an aborted transaction rewinds to the checkpoint"
    );
    println!(
        "exactly once: {aborted} aborted commits rewound; exact windows; {repeated} repeated (identical) records"
    );
    std::mem::forget(s.cluster);
}

/// A fenced producer must stop. librdkafka's mock cluster gives every `InitProducerId` a new
/// producer id instead of bumping the epoch of the transactional id (`rd_kafka_mock_pid_new` in
/// its `rdkafka_mock_handlers.c`), so it cannot fence a second instance by itself: the fence is
/// injected as Kafka would answer the zombie, `PRODUCER_FENCED` on its next `EndTxn`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_instance_stops_and_its_successor_finishes_exactly() {
    let s = setup();
    let to = now_ms() - 2 * MIN;
    let data = readings(to);
    produce(&s.kafka, &data[..data.len() / 2]).await;
    let (p1, p2) = (free_port(), free_port());
    let (c1, c2) = (write_config(&s, "same", p1), write_config(&s, "same", p2));
    let (log1, log2) = (s.dir.path().join("z1.log"), s.dir.path().join("z2.log"));
    let mut zombie = start(&c1, &log1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(p1, "fjord_stream_commits_total{outcome=\"committed\"}") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the first instance never committed; log:\n{}",
            std::fs::read_to_string(&log1).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
    );
    produce(&s.kafka, &data[data.len() / 2..data.len() * 3 / 4]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = zombie.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = zombie.kill();
            panic!(
                "the fenced instance kept running; log:\n{}",
                std::fs::read_to_string(&log1).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!status.success(), "the fenced instance stops with an error");
    let text = std::fs::read_to_string(&log1).unwrap_or_default();
    assert!(
        text.contains("fenced"),
        "the fenced instance says why:\n{text}"
    );
    let mut successor = start(&c2, &log2);
    produce(&s.kafka, &data[data.len() * 3 / 4..]).await;
    let repeated = check_exact(&s.kafka, &data, to, &log2).await;
    successor.kill().unwrap();
    successor.wait().unwrap();
    println!(
        "fencing: the fenced instance stopped; its successor produced exact windows ({repeated} repeats)"
    );
    std::mem::forget(s.cluster);
}
