//! Alert latency: from the MQTT publish of the reading that crosses `lot_full` (either way) to the
//! webhook request arriving at a real HTTP receiver on loopback, while background readings flow
//! over MQTT through the bridge and the stream processor with exactly-once on (`fjord demo`: the
//! embedded MQTT broker and Kafka cluster, transactions every `stream.commit_interval`).
//!
//! Run: `cargo bench --bench alert_latency` (env: `ALERTS` per run, default 300; `RATE` background
//! readings/s, default 10000; `RUNS` as `commit_interval/fetch.wait.max.ms` pairs, default
//! `50ms/10,100ms/10,250ms/10,100ms/500`). librdkafka's mock cluster answers a fetch that finds no
//! data only after `fetch.wait.max.ms` (500 ms by default) even if data arrives meanwhile, so
//! the consumers' wait is part of each run's settings.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fjord_core::testkit::{WebhookReceiver, free_port, temp_dir, wait_until};
use rumqttc::{AsyncClient, MqttOptions, QoS};

const TOKEN: &str = "bench-token-0123";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start_demo(
    dir: &Path,
    lots: &Path,
    mqtt_port: u16,
    hook: &str,
    interval: &str,
    fetch_wait: &str,
) -> Child {
    let config = dir.with_extension("toml");
    std::fs::write(
        &config,
        format!("[kafka.options]\n\"fetch.wait.max.ms\" = \"{fetch_wait}\"\n"),
    )
    .expect("write the config");
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .arg("--config")
        .arg(&config)
        .args(["demo", "--no-simulate", "--auth-token", TOKEN])
        .arg("--data-dir")
        .arg(dir)
        .arg("--lots")
        .arg(lots)
        .args(["--mqtt-port", &mqtt_port.to_string()])
        .args(["--http-port", &free_port().to_string()])
        .args(["--batch-every", "1h", "--webhook", hook])
        .env_remove("FJORD_CONFIG")
        .env("FJORD__STREAM__COMMIT_INTERVAL", interval)
        .env("FJORD__ALERTS__SENSOR_SILENT__ENABLED", "false")
        .env("FJORD__LOG__LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(std::env::temp_dir().join("fjord-alert-latency-demo.log"))
                .expect("demo log"),
        )
        .spawn()
        .expect("start fjord demo")
}

async fn client(port: u16, name: &str, inflight: u16) -> AsyncClient {
    let mut opts = MqttOptions::new(name, "127.0.0.1", port);
    opts.set_credentials("fjord", TOKEN);
    opts.set_inflight(inflight);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (c, mut lp) = AsyncClient::new(opts, 10_000);
    tokio::spawn(async move {
        loop {
            if lp.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    c
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(interval: &str, fetch_wait: &str, alerts: usize, rate: u64) {
    let dir = temp_dir();
    let lots = dir.path().join("lots.csv");
    let mut csv = String::from("lot_id,name,zone,capacity,lat,lon\nP0,Probe,bench,10,,\n");
    for b in 0..50 {
        csv.push_str(&format!("B{b},Background {b},bench,200,,\n"));
    }
    std::fs::write(&lots, csv).unwrap();
    let receiver = WebhookReceiver::start().await.unwrap();
    let mqtt_port = free_port();
    let data = dir.path().join("data");
    let mut demo = start_demo(
        &data,
        &lots,
        mqtt_port,
        &receiver.url(),
        interval,
        fetch_wait,
    );
    let endpoints = data.join("endpoints.json");
    assert!(
        wait_until(Duration::from_secs(60), || endpoints.exists()),
        "the demo did not start"
    );

    // background load: `rate` readings/s over 50 lots, never near full
    let background = client(mqtt_port, "bench-background", 1000).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let per_tick = (rate / 100).max(1);
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let (mut sent, started) = (0u64, Instant::now());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                for _ in 0..per_tick {
                    let topic = format!("parking/B{}/S{}", sent % 50, (sent / 50) % 200);
                    let occupied = (sent / 7) % 3 == 0;
                    let payload = format!(r#"{{"occupied":{occupied}}}"#);
                    if background
                        .publish(topic, QoS::AtLeastOnce, false, payload)
                        .await
                        .is_err()
                    {
                        break;
                    }
                    sent += 1;
                }
            }
            sent as f64 / started.elapsed().as_secs_f64()
        })
    };

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
        let probe_alert = |r: &fjord_core::testkit::Received| r.json()["key"] == "lot_full/P0";
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
    let _ = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status();
    let _ = demo.wait();
    latencies.sort_by(f64::total_cmp);
    println!(
        "commit_interval {interval:>6}, fetch.wait.max.ms {fetch_wait:>3}: {} alerts, p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms; \
         background {achieved:.0} readings/s over MQTT; {lost} not delivered within 10 s",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs benches with no arguments: do nothing then
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let alerts: usize = env_or("ALERTS", 300);
    let rate: u64 = env_or("RATE", 10_000);
    let runs =
        std::env::var("RUNS").unwrap_or_else(|_| "50ms/10,100ms/10,250ms/10,100ms/500".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for run_spec in runs.split(',') {
        let (interval, fetch_wait) = run_spec
            .trim()
            .split_once('/')
            .unwrap_or((run_spec.trim(), "500"));
        rt.block_on(run(interval, fetch_wait, alerts, rate));
    }
}
