//! Alert latency: from the MQTT publish of the reading that crosses `lot_full` (either way) to the
//! webhook request arriving at a real HTTP receiver on loopback, while background readings flow
//! over MQTT through the bridge and the stream processor with exactly-once on (`fjord demo`: the
//! embedded MQTT broker and Kafka cluster, transactions every `stream.commit_interval`).
//!
//! Run: `cargo bench --bench alert_latency` (env: `ALERTS` per run, default 300; `RATE` background
//! readings/s, default 10000; `RUNS` as `commit_interval/kafka.fetch_wait` pairs, default
//! `50ms/default,100ms/default,250ms/default,100ms/500ms`, `default` leaving the config's default).
//! librdkafka's mock cluster answers a fetch that finds no data only after the fetch wait even if
//! data arrives meanwhile, so the consumers' wait is part of each run's settings.

mod common;

use std::time::{Duration, Instant};

use common::{DemoSpec, client, env_or};
use fjord_testkit::{WebhookReceiver, free_port, temp_dir, wait_until};
use rumqttc::QoS;

async fn run(interval: &str, fetch_wait: &str, alerts: usize, rate: u64) {
    let dir = temp_dir();
    let lots = dir.path().join("lots.csv");
    common::lots_csv(&lots, 50);
    let receiver = WebhookReceiver::start().await.unwrap();
    let mqtt_port = free_port();
    let data = dir.path().join("data");
    let demo = common::start_demo(&DemoSpec {
        dir: &data,
        lots: &lots,
        mqtt_port,
        http_port: free_port(),
        config: if fetch_wait == "default" {
            String::new()
        } else {
            format!("[kafka]\nfetch_wait = \"{fetch_wait}\"\n")
        },
        args: ["--batch-every", "1h", "--webhook", &receiver.url()]
            .map(String::from)
            .to_vec(),
        env: vec![
            ("FJORD__STREAM__COMMIT_INTERVAL".into(), interval.into()),
            (
                "FJORD__ALERTS__SENSOR_SILENT__ENABLED".into(),
                "false".into(),
            ),
        ],
        log: "fjord-alert-latency-demo.log",
    });
    let endpoints = data.join("endpoints.json");
    assert!(
        wait_until(Duration::from_secs(60), || endpoints.exists()),
        "the demo did not start"
    );

    // background load: `rate` readings/s over 50 lots, never near full
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = common::background_load(mqtt_port, rate, stop.clone());

    // the probe lot: 8 of 10 occupied, then S8 toggles: every publish crosses 0.9 up or 0.8 down
    let probe = client(mqtt_port, "bench-probe", 10).await;
    for s in 0..8 {
        probe
            .publish(
                format!("parking/P0/S{s}"),
                QoS::AtLeastOnce,
                false,
                r#"{"occupied":true}"#,
            )
            .await
            .unwrap();
    }
    // warm-up: the pipeline is ready once the probe's first crossing is delivered
    probe
        .publish(
            "parking/P0/S8",
            QoS::AtLeastOnce,
            false,
            r#"{"occupied":true}"#,
        )
        .await
        .unwrap();
    let ready = receiver
        .wait_for(Duration::from_secs(120), |r| {
            r.iter().any(|x| x.json()["key"] == "lot_full/P0")
        })
        .await;
    assert!(
        !ready.is_empty(),
        "the pipeline never delivered the warm-up alert"
    );
    let mut latencies = Vec::with_capacity(alerts);
    let mut lost = 0;
    for i in 0..alerts {
        let before = receiver.received().len();
        let occupied = i % 2 == 1;
        let sent_at = Instant::now();
        probe
            .publish(
                "parking/P0/S8",
                QoS::AtLeastOnce,
                false,
                format!(r#"{{"occupied":{occupied}}}"#),
            )
            .await
            .unwrap();
        let probe_alert = |r: &fjord_testkit::Received| r.json()["key"] == "lot_full/P0";
        let got = receiver
            .wait_for(Duration::from_secs(10), |r| {
                r[before..].iter().any(probe_alert)
            })
            .await;
        match got[before..].iter().find(|r| probe_alert(r)) {
            Some(r) => latencies.push(r.at.duration_since(sent_at).as_secs_f64() * 1000.0),
            None => lost += 1,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let achieved = load.await.unwrap_or(0.0);
    common::stop_demo(demo);
    println!(
        "commit_interval {interval:>6}, kafka.fetch_wait {fetch_wait:>7}: {} alerts, {}; \
         background {achieved:.0} readings/s over MQTT; {lost} not delivered within 10 s",
        latencies.len(),
        common::summary(&mut latencies),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs benches with no arguments: do nothing then
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let alerts: usize = env_or("ALERTS", 300);
    let rate: u64 = env_or("RATE", 10_000);
    let runs = std::env::var("RUNS")
        .unwrap_or_else(|_| "50ms/default,100ms/default,250ms/default,100ms/500ms".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for run_spec in runs.split(',') {
        let (interval, fetch_wait) = run_spec
            .trim()
            .split_once('/')
            .unwrap_or((run_spec.trim(), "default"));
        rt.block_on(run(interval, fetch_wait, alerts, rate));
    }
}
