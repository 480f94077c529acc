//! Start-up of the stream processor: from `run` to the first record processed, on librdkafka's
//! mock cluster with `P` input partitions (default 64) whose checkpoint partitions are empty (a
//! first start) and then with one checkpoint per partition (a restart), one reading waiting in
//! every partition. Prints the time to the first record, to every partition restored, and the
//! mean restore time per partition.
//! Run: `cargo bench -p fjord-stream --bench start` (env `P`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fjord_core::config::Config;
use fjord_core::kafka::Topics;
use fjord_core::telemetry::Metrics;
use fjord_core::time::{format_rfc3339_ms, now_ms};
use fjord_stream::metrics::StreamMetrics;
use rdkafka::message::{Header, OwnedHeaders};
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
        let mqtt = format!("parking/{lot}/S1");
        let received = format_rfc3339_ms(ts);
        let payload = format!(r#"{{"ts":{ts},"occupied":true}}"#);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "fjord-mqtt-topic",
                value: Some(&mqtt),
            })
            .insert(Header {
                key: "fjord-received-at",
                value: Some(&received),
            });
        p.send(
            BaseRecord::to(topic)
                .partition(part)
                .key(&lot)
                .payload(&payload)
                .headers(headers),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// (time to the first record, to the first restore, to `partitions` restores) of one start
/// (the time before the first restore is the consumer group's join); stops after all.
fn start(config: &Config, partitions: i32) -> (Duration, Duration, Duration) {
    let metrics = StreamMetrics::new(&Metrics::new()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let handle = {
        let (config, metrics, stop) = (config.clone(), metrics.clone(), stop.clone());
        std::thread::spawn(move || {
            fjord_stream::runtime::run(
                &config,
                metrics,
                stop,
                fjord_stream::runtime::RunOptions {
                    session_timeout: Some(Duration::from_secs(6)),
                },
            )
        })
    };
    let total = || {
        ["accepted", "duplicate", "late", "dead", "skipped"]
            .iter()
            .map(|f| metrics.records.with_label_values(&[f]).get())
            .sum::<u64>()
    };
    let (mut first, mut first_restore, mut restored) = (None, None, None);
    while first.is_none() || restored.is_none() {
        if first.is_none() && total() > 0 {
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
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap().unwrap();
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
