//! `fjord bridge` killed with SIGKILL again and again during a run loses nothing: every message
//! published with QoS 1 ends up in Kafka (at least once; the duplicates are counted and reported).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fjord_core::config::KafkaConfig;
use fjord_core::testkit::{Mosquitto, Tansu, kafka, mqtt, temp_dir, unique_name};
use fjord_core::time::now_ms;

fn start_bridge(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["bridge", "--config"])
        .arg(config)
        .env_remove("FJORD_CONFIG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start fjord bridge")
}

fn write_config(path: &Path, mosquitto: &Mosquitto, kafka: &KafkaConfig) {
    let text = format!(
        "[log]\nlevel = \"info\"\n\n[kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{}\"\npartitions = 3\n\n\
         [mqtt]\nurl = \"{}\"\nclient_id = \"{}\"\n\n[bridge]\nmax_in_flight = 2000\n",
        kafka.brokers,
        kafka.topic_prefix,
        mosquitto.url(),
        unique_name("bridge")
    );
    std::fs::write(path, text).unwrap();
}

fn n_of(payload: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(payload).unwrap()["n"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_five_times_loses_nothing() {
    let mosquitto = Mosquitto::start_recommended().unwrap_or_else(|e| panic!("{e}"));
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let kafka_cfg = tansu.kafka_config();
    let dir = temp_dir();
    let config = dir.path().join("fjord.toml");
    let log = dir.path().join("bridge.log");
    write_config(&config, &mosquitto, &kafka_cfg);

    let mut bridge = start_bridge(&config, &log);
    // wait until a probe goes all the way through: the bridge's session and subscription exist
    let probe = unique_name("gw");
    let mut flowing = false;
    for _ in 0..60 {
        mqtt::publish_all(
            mosquitto.port(),
            None,
            &unique_name("p"),
            vec![(format!("presence/{probe}"), b"online".to_vec())],
            Duration::from_secs(10),
        )
        .await;
        let got = kafka::collect(
            &kafka_cfg,
            &kafka_cfg.topic("presence"),
            Duration::from_millis(1500),
            |r| !r.is_empty(),
        )
        .await;
        if !got.is_empty() {
            flowing = true;
            break;
        }
    }
    assert!(
        flowing,
        "the bridge never forwarded the probe; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // 4 publishers × 25,000 readings, paced so that the run outlasts the kills
    let total = 100_000usize;
    let base = now_ms() - 3_600_000;
    let port = mosquitto.port();
    let mut publishers = Vec::new();
    for p in 0..4usize {
        publishers.push(tokio::spawn(async move {
            for slice in 0..25 {
                let msgs: Vec<(String, Vec<u8>)> = (0..1000)
                    .map(|i| {
                        let n = p * 1_000_000 + slice * 1000 + i;
                        (
                            format!("parking/L{p}/S{}", i % 300),
                            format!(
                                r#"{{"ts":{},"occupied":{},"n":{n}}}"#,
                                base + n as i64,
                                i % 2 == 0
                            )
                            .into_bytes(),
                        )
                    })
                    .collect();
                mqtt::publish_all(
                    port,
                    None,
                    &unique_name("pub"),
                    msgs,
                    Duration::from_secs(120),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
    }
    let started = Instant::now();
    for kill in 1..=5 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        bridge.kill().unwrap(); // SIGKILL
        bridge.wait().unwrap();
        println!("SIGKILL {kill} at {:?}", started.elapsed());
        bridge = start_bridge(&config, &log);
    }
    for p in publishers {
        p.await.unwrap();
    }
    let expected: Vec<u64> = (0..4u64)
        .flat_map(|p| (0..25_000u64).map(move |i| p * 1_000_000 + i))
        .collect();
    let mut counts: HashMap<u64, usize> = HashMap::new();
    let records = kafka::collect(
        &kafka_cfg,
        &kafka_cfg.topic("readings"),
        Duration::from_secs(300),
        |r| {
            if let Some(last) = r.last() {
                *counts.entry(n_of(&last.payload)).or_default() += 1;
            }
            counts.len() >= total
        },
    )
    .await;
    bridge.kill().unwrap();
    bridge.wait().unwrap();
    let missing: Vec<&u64> = expected
        .iter()
        .filter(|n| !counts.contains_key(n))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {total} messages missing after 5 SIGKILLs (e.g. {missing:?}); bridge log:\n{}",
        total - counts.len(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let duplicates = records.len() - total;
    println!(
        "5 × SIGKILL: all {total} messages in Kafka; {} records, {duplicates} duplicates ({:.2} %)",
        records.len(),
        100.0 * duplicates as f64 / total as f64
    );
}
