//! What the end-to-end benchmarks share: `fjord demo` started as a user would (release binary,
//! embedded MQTT broker, Kafka embedded or external), MQTT clients, a background load, percentiles.

#![allow(dead_code)] // each benchmark uses a part

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, MqttOptions, QoS};

/// The demo's token in every benchmark.
pub const TOKEN: &str = "bench-token-0123";

/// `name` from the environment, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How to start the demo.
pub struct DemoSpec<'a> {
    /// `--data-dir`.
    pub dir: &'a Path,
    /// `--lots`.
    pub lots: &'a Path,
    /// `--mqtt-port`.
    pub mqtt_port: u16,
    /// `--http-port`.
    pub http_port: u16,
    /// The config file's text.
    pub config: String,
    /// More arguments of `fjord demo`.
    pub args: Vec<String>,
    /// Environment overrides (`FJORD__…`).
    pub env: Vec<(String, String)>,
    /// Where its log goes.
    pub log: &'a str,
}

/// Starts `fjord demo` without the simulator.
pub fn start_demo(spec: &DemoSpec<'_>) -> Child {
    let config = spec.dir.with_extension("toml");
    std::fs::write(&config, &spec.config).expect("write the config");
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .arg("--config")
        .arg(&config)
        .args(["demo", "--no-simulate", "--auth-token", TOKEN])
        .arg("--data-dir")
        .arg(spec.dir)
        .arg("--lots")
        .arg(spec.lots)
        .args(["--mqtt-port", &spec.mqtt_port.to_string()])
        .args(["--http-port", &spec.http_port.to_string()])
        .args(["--pg-port", &fjord_testkit::free_port().to_string()])
        .args(["--flight-port", &fjord_testkit::free_port().to_string()])
        .args(&spec.args)
        .env_remove("FJORD_CONFIG")
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("FJORD__LOG__LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(std::env::temp_dir().join(spec.log)).expect("demo log"))
        .spawn()
        .expect("start fjord demo")
}

/// Stops the demo with Ctrl-C and waits for it.
pub fn stop_demo(mut demo: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status();
    let _ = demo.wait();
}

/// A connected MQTT client whose event loop runs in the background.
pub async fn client(port: u16, name: &str, inflight: u16) -> AsyncClient {
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

/// A lots registry with `n` background lots `B0…` of 200 spaces (never near full) and the probe
/// lot `P0` of 10.
pub fn lots_csv(path: &Path, n: usize) {
    let mut csv = String::from("lot_id,name,zone,capacity,lat,lon\nP0,Probe,bench,10,,\n");
    for b in 0..n {
        csv.push_str(&format!("B{b},Background {b},bench,200,,\n"));
    }
    std::fs::write(path, csv).unwrap();
}

/// Publishes `rate` readings/s over the 50 background lots until `stop`; returns the rate achieved.
pub fn background_load(
    port: u16,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<f64> {
    tokio::spawn(async move {
        let background = client(port, "bench-background", 1000).await;
        // 100 ticks a second, or one per reading below 100 readings/s
        let (per_tick, every) = if rate >= 100 {
            (rate / 100, Duration::from_millis(10))
        } else {
            (1, Duration::from_secs_f64(1.0 / rate.max(1) as f64))
        };
        let mut tick = tokio::time::interval(every);
        let (mut sent, started) = (0u64, Instant::now());
        while !stop.load(Ordering::Relaxed) {
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
}

/// `fjord simulate` over MQTT as the background load instead of [`background_load`]: 50 lots of
/// 200 spaces (`lot-1`…`lot-50`), one connection per lot as gateways have, each space reporting
/// about once per `10000 / rate` seconds with the simulator's share of state changes (about one
/// reading in eight; the rest are heartbeats). Stop it with [`stop_simulator`].
pub fn simulator_load(port: u16, rate: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["simulate", "--lots", "50", "--spaces", "200"])
        .args(["--rate", &rate.to_string()])
        .args(["--mqtt", &format!("mqtt://127.0.0.1:{port}")])
        .args(["--username", "fjord", "--password", TOKEN])
        .env_remove("FJORD_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fjord simulate")
}

/// Stops the simulator with Ctrl-C; the rate it reached, from its summary line
/// (`… = N msg/s: …`).
pub fn stop_simulator(sim: Child) -> f64 {
    let _ = Command::new("kill")
        .args(["-INT", &sim.id().to_string()])
        .status();
    let out = sim.wait_with_output().map(|o| o.stdout).unwrap_or_default();
    let text = String::from_utf8_lossy(&out);
    text.split(" = ")
        .nth(1)
        .and_then(|rest| rest.split(" msg/s").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The `p` quantile of `sorted`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// "p50 … ms, p90 … ms, p99 … ms, max … ms" of `values` (sorted here).
pub fn summary(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(values, 0.5),
        percentile(values, 0.9),
        percentile(values, 0.99),
        values.last().copied().unwrap_or(f64::NAN)
    )
}
