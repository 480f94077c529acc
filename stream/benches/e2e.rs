//! End-to-end throughput from Kafka: readings produced to librdkafka's mock cluster (the one broker
//! here with transactions), then consumed by the stream processor with exactly-once (transactions
//! every `commit_interval`) and at-least-once, next to the broker's own consume rate measured the
//! same way (a plain consumer reading the same records).
//! Run: `cargo bench -p fjord-stream --bench e2e` (env `N`, default 150000; the mock cluster keeps at most 5 MB per partition).

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

const PARTITIONS: i32 = 12;

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

fn broker_consume_rate(bootstrap: &str, topic: &str, n: usize) -> f64 {
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-raw")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
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
) -> (f64, u64) {
    let mut config = Config::default();
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
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let summary = running.stop();
    (rate, summary.commits)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150_000);
    let cluster = MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let mut rates = Vec::new();
    for guarantee in [
        ProcessingGuarantee::ExactlyOnce,
        ProcessingGuarantee::AtLeastOnce,
    ] {
        let prefix = format!("bench{}.", rates.len());
        let mut kafka = fjord_core::config::KafkaConfig::default();
        kafka.topic_prefix = prefix.clone();
        let topics = Topics::new(&kafka);
        for t in topics.all() {
            cluster.create_topic(t, PARTITIONS, 1).unwrap();
        }
        let t = Instant::now();
        produce(&bootstrap, &topics.readings, n);
        eprintln!("produced {n} in {:?}", t.elapsed());
        let raw = broker_consume_rate(&bootstrap, &topics.readings, n);
        eprintln!("raw consume {raw:.0}/s");
        let (rate, commits) = stream_rate(&bootstrap, &prefix, guarantee, n);
        eprintln!("{guarantee:?}: {rate:.0}/s");
        rates.push((guarantee, rate, raw, commits));
    }
    println!(
        "{n} readings, {PARTITIONS} partitions, librdkafka mock cluster, commit interval 100ms:"
    );
    for (g, rate, raw, commits) in rates {
        println!(
            "  {g:?}: stream processor {rate:>9.0} readings/s ({commits} commits); broker's plain consume rate {raw:>9.0} records/s"
        );
    }
    std::mem::forget(cluster);
}
