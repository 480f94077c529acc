//! Start-up of the stream processor: from `run` to the first record processed, on librdkafka's
//! mock cluster with `P` input partitions (default 64) whose checkpoint partitions are empty (a
//! first start) and then with one checkpoint per partition (a restart), one reading waiting in
//! every partition. Prints the time to the first record, to every partition restored, and the
//! mean restore time per partition.
//! Run: `cargo bench -p fjord-stream --bench start` (env `P`).

mod common;

use std::time::{Duration, Instant};

use fjord_core::config::Config;
use fjord_core::kafka::Topics;
use fjord_core::time::now_ms;
use fjord_testkit::kafka::BridgeRecord;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// One reading into every partition of `topic`.
fn produce_one_each(bootstrap: &str, topic: &str, partitions: i32) {
    let p: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let ts = now_ms();
    for part in 0..partitions {
        let lot = format!("L{part}");
        let r = BridgeRecord::reading(&lot, "S1", ts, format!(r#"{{"ts":{ts},"occupied":true}}"#));
        p.send(
            BaseRecord::to(topic)
                .partition(part)
                .key(&r.key)
                .payload(&r.payload)
                .headers(r.headers()),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// (time to the first record, to the first restore, to `partitions` restores) of one start
/// (the time before the first restore is the consumer group's join); stops after all.
fn start(config: &Config, partitions: i32) -> (Duration, Duration, Duration) {
    let t0 = Instant::now();
    let running = common::Running::start(config);
    let metrics = &running.metrics;
    let (mut first, mut first_restore, mut restored) = (None, None, None);
    while first.is_none() || restored.is_none() {
        if first.is_none() && running.records() > 0 {
            first = Some(t0.elapsed());
        }
        if first_restore.is_none() && metrics.restores.get() >= 1 {
            first_restore = Some(t0.elapsed());
        }
        if restored.is_none() && metrics.restores.get() >= partitions as u64 {
            restored = Some(t0.elapsed());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "no start within 10 minutes"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    running.stop();
    (
        first.unwrap(),
        first_restore.unwrap_or_default(),
        restored.unwrap(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let partitions: i32 = std::env::var("P")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let cluster = MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let mut config = Config::default();
    config.kafka.brokers = bootstrap.clone();
    config.kafka.topic_prefix = "start.".into();
    config.stream.metrics_listen = None;
    let topics = Topics::new(&config.kafka);
    for t in topics.all() {
        cluster.create_topic(t, partitions, 1).unwrap();
    }
    println!(
        "stream processor start, {partitions} partitions, librdkafka mock cluster (kafka.fetch_wait {}):",
        config.kafka.fetch_wait
    );
    for (i, run) in [
        "first start (empty checkpoints)",
        "restart (a checkpoint per partition)",
    ]
    .into_iter()
    .enumerate()
    {
        // a new group each time: the mock cluster lets a closed member go only after its session
        // timeout, which is not start-up time
        config.stream.group_id = format!("bench-start-{i}");
        produce_one_each(&bootstrap, &topics.readings, partitions);
        let (first, first_restore, restored) = start(&config, partitions);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "  {run}: first record after {:.0} ms (group join {:.0} ms, then {partitions} restores in {:.0} ms: {:.1} ms per partition)",
            ms(first),
            ms(first_restore),
            ms(restored.saturating_sub(first_restore)),
            ms(restored.saturating_sub(first_restore)) / f64::from(partitions - 1).max(1.0)
        );
    }
    std::mem::forget(cluster);
}
