//! End-to-end throughput from Kafka: readings produced beforehand to librdkafka's mock cluster (the
//! one broker here with transactions; 12 partitions) and to tansu (6 partitions), then consumed by
//! the stream processor — exactly-once (transactions every `commit_interval`) and at-least-once on
//! the mock cluster, at-least-once on tansu — next to the broker's own consume rate measured the
//! same way (a plain consumer reading the same records).
//! Run: `cargo bench -p fjord-stream --bench e2e` (env `N`, default 150000 — the mock cluster keeps
//! at most 5 MB per partition; `BROKERS=mock,tansu`, the default, or one of them).

mod common;

use std::time::{Duration, Instant};

use fjord_core::config::{Config, ProcessingGuarantee};
use fjord_core::kafka::Topics;
use fjord_core::time::{format_rfc3339_ms, now_ms};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// The allocator of the `fjord` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Input partitions on librdkafka's mock cluster and on tansu.
const MOCK_PARTITIONS: i32 = 12;
const TANSU_PARTITIONS: i32 = 6;

fn produce(bootstrap: &str, topic: &str, n: usize) {
    let p: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "2000000")
        .create()
        .unwrap();
    let t0 = now_ms() - 3_600_000;
    for i in 0..n {
        let lot = format!("L{}", i % 50);
        let mqtt = format!("parking/{lot}/S{}", (i / 50) % 100);
        let ts = t0 + (i as i64) * 3_600_000 / n as i64;
        let received = format_rfc3339_ms(ts + 100);
        let payload = format!(
            r#"{{"ts":{ts},"occupied":{},"battery":80}}"#,
            (i / 5000) % 2 == 0
        );
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "fjord-mqtt-topic",
                value: Some(&mqtt),
            })
            .insert(Header {
                key: "fjord-received-at",
                value: Some(&received),
            });
        let mut rec = BaseRecord::to(topic)
            .key(&lot)
            .payload(&payload)
            .headers(headers);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    p.poll(Duration::from_millis(5));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// librdkafka settings for both consumers: env `KAFKA_OPTIONS`, `key=value` pairs separated by
/// commas (what `[kafka.options]` would hold).
fn kafka_options() -> Vec<(String, String)> {
    std::env::var("KAFKA_OPTIONS")
        .unwrap_or_default()
        .split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .expect("KAFKA_OPTIONS like key=value,key=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn broker_consume_rate(bootstrap: &str, topic: &str, partitions: i32, n: usize) -> f64 {
    let mut cfg = rdkafka::ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-raw-{topic}"));
    for (k, v) in kafka_options() {
        cfg.set(k, v);
    }
    let c: BaseConsumer = cfg.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    // the clock starts with the first record, as for the stream processor
    let mut start = None;
    let mut got = 0;
    while got < n {
        if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
            start.get_or_insert_with(Instant::now);
            got += 1;
        }
    }
    n as f64 / start.map_or(1.0, |s| s.elapsed().as_secs_f64())
}

fn stream_rate(
    bootstrap: &str,
    prefix: &str,
    guarantee: ProcessingGuarantee,
    n: usize,
) -> (f64, Commits) {
    let mut config = Config::default();
    config.stream.commit_interval = commit_interval();
    config.kafka.options.extend(kafka_options());
    config.kafka.brokers = bootstrap.to_owned();
    config.kafka.topic_prefix = prefix.to_owned();
    config.stream.processing_guarantee = guarantee;
    config.stream.metrics_listen = None;
    config.stream.group_id = format!("bench-{guarantee:?}");
    let running = common::Running::start(&config);
    let total = || running.records();
    // the clock starts with the first record (after the group join and restore)
    while total() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    let mut last_report = Instant::now();
    while total() < n as u64 {
        std::thread::sleep(Duration::from_millis(1));
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("  … {} of {n}", total());
            last_report = Instant::now();
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rate = n as f64 / elapsed;
    let commit_seconds = running.metrics.commit_seconds.get_sample_sum();
    let checkpoint_bytes = running.metrics.checkpoint_bytes.get();
    let summary = running.stop();
    (
        rate,
        Commits {
            count: summary.commits,
            share: commit_seconds / elapsed,
            checkpoint_mb: checkpoint_bytes as f64 / 1e6,
        },
    )
}

/// What the commits of a run cost.
struct Commits {
    count: u64,
    /// Share of the run's wall time spent committing.
    share: f64,
    /// Checkpoint bytes written.
    checkpoint_mb: f64,
}

/// `stream.commit_interval` of the runs: env `COMMIT_INTERVAL` (e.g. `250ms`), default the config's.
fn commit_interval() -> fjord_core::duration::Duration {
    std::env::var("COMMIT_INTERVAL")
        .ok()
        .map(|v| v.parse().expect("COMMIT_INTERVAL like 250ms"))
        .unwrap_or_else(|| Config::default().stream.commit_interval)
}

/// One line of the report.
struct Row {
    broker: &'static str,
    partitions: i32,
    guarantee: ProcessingGuarantee,
    rate: f64,
    raw: f64,
    commits: Commits,
}

/// Produces `n` readings under a fresh topic prefix, measures the plain consume rate, then the
/// stream processor's.
fn measure(
    broker: &'static str,
    bootstrap: &str,
    partitions: i32,
    guarantee: ProcessingGuarantee,
    n: usize,
    create: &dyn Fn(&Topics, &str),
) -> Row {
    let prefix = format!("bench-{broker}-{guarantee:?}.");
    let mut kafka = fjord_core::config::KafkaConfig::default();
    kafka.topic_prefix = prefix.clone();
    let topics = Topics::new(&kafka);
    create(&topics, &prefix);
    let t = Instant::now();
    produce(bootstrap, &topics.readings, n);
    eprintln!("{broker}: produced {n} in {:?}", t.elapsed());
    let raw = broker_consume_rate(bootstrap, &topics.readings, partitions, n);
    eprintln!("{broker}: raw consume {raw:.0}/s");
    let (rate, commits) = stream_rate(bootstrap, &prefix, guarantee, n);
    eprintln!("{broker} {guarantee:?}: {rate:.0}/s");
    Row {
        broker,
        partitions,
        guarantee,
        rate,
        raw,
        commits,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150_000);
    let brokers = std::env::var("BROKERS").unwrap_or_else(|_| "mock,tansu".into());
    let mut rows = Vec::new();
    if brokers.split(',').any(|b| b == "mock") {
        let cluster = MockCluster::new(1).unwrap();
        let bootstrap = cluster.bootstrap_servers();
        for guarantee in [
            ProcessingGuarantee::ExactlyOnce,
            ProcessingGuarantee::AtLeastOnce,
        ] {
            let create = |topics: &Topics, _: &str| {
                for t in topics.all() {
                    cluster.create_topic(t, MOCK_PARTITIONS, 1).unwrap();
                }
            };
            rows.push(measure(
                "mock cluster",
                &bootstrap,
                MOCK_PARTITIONS,
                guarantee,
                n,
                &create,
            ));
        }
        std::mem::forget(cluster);
    }
    if brokers.split(',').any(|b| b == "tansu") {
        // tansu has no transactions: at least once only
        let tansu = fjord_testkit::Tansu::start().expect("tansu (bash scripts/test-deps.sh)");
        let bootstrap = tansu.bootstrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let create = |_: &Topics, prefix: &str| {
            let mut config = Config::default();
            config.kafka.brokers = bootstrap.clone();
            config.kafka.topic_prefix = prefix.to_owned();
            config.kafka.partitions = TANSU_PARTITIONS;
            runtime
                .block_on(fjord_stream::runtime::ensure_topics(&config))
                .unwrap();
        };
        rows.push(measure(
            "tansu",
            &bootstrap,
            TANSU_PARTITIONS,
            ProcessingGuarantee::AtLeastOnce,
            n,
            &create,
        ));
    }
    println!(
        "{n} readings filled beforehand, commit interval {}, this machine's 2 cores shared with the broker:",
        commit_interval()
    );
    for r in rows {
        println!(
            "  {:<12} {:>2} partitions {:?}: stream processor {:>9.0} readings/s ({} commits, {:.0} % of the time, {:.0} MB of checkpoints); plain consumer {:>9.0} records/s ({:.2}x)",
            r.broker,
            r.partitions,
            r.guarantee,
            r.rate,
            r.commits.count,
            r.commits.share * 100.0,
            r.commits.checkpoint_mb,
            r.raw,
            r.rate / r.raw
        );
    }
}
