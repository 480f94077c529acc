//! Freshness of the serving layer as a user meets it: `fjord demo` (release binary, default settings
//! but the simulator off) under a background load over MQTT, queried over HTTP SQL like the
//! dashboard does. Per broker (the embedded mock cluster; tansu through `--kafka`, at least once)
//! and per load it prints:
//!
//! * start → `/readyz` 200;
//! * MQTT publish of a probe reading → visible in `spaces_live` and in `occupancy_live`;
//! * a window's record in `fjord.occupancy` → the window visible in `occupancy_1m`/`_10m`.
//!
//! Run: `cargo bench --bench freshness` (env: `RATES` readings/s, default `20,10000`; `BROKERS`,
//! default `embedded`, plus `tansu` when `FJORD_TANSU` names its binary, as for the tests;
//! `RUN_SECONDS` per run, default 150, long enough for 1-minute windows; `LOAD`, default
//! `publisher`: one MQTT connection of the benchmark's own publishing round-robin over 50 lots of
//! 200 spaces, state changing on most readings; `simulator`: `fjord simulate` with 50 lots of 200
//! spaces, a connection per lot, about one reading in eight a state change).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{DemoSpec, client, env_or, summary};
use fjord_testkit::{Tansu, free_port, temp_dir};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use rumqttc::QoS;
use serde_json::Value;

async fn sql(http: &str, query: &str) -> Vec<Value> {
    match reqwest::Client::new()
        .post(format!("{http}/api/sql"))
        .bearer_auth(common::TOKEN)
        .body(query.to_owned())
        .send()
        .await
    {
        Ok(r) if r.status() == 200 => r.json().await.unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Milliseconds until `query`'s rows satisfy `done` (polling every 25 ms, so a figure is up to
/// 25 ms late), at most 10 s.
async fn visible_after(
    t0: Instant,
    http: &str,
    query: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Option<f64> {
    while t0.elapsed() < Duration::from_secs(10) {
        if done(&sql(http, query).await) {
            return Some(t0.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Windows written to `fjord.occupancy` while `stop` is unset: (lot, size label, start, when seen).
fn watch_windows(
    bootstrap: String,
    stop: Arc<AtomicBool>,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, String, String, Instant)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "bench-freshness")
            .set("fetch.wait.max.ms", "10")
            .create()
            .unwrap();
        let topic = "fjord.occupancy";
        let n = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map(|md| md.topics()[0].partitions().len() as i32)
            .unwrap_or(0);
        let mut tpl = TopicPartitionList::new();
        for p in 0..n {
            tpl.add_partition_offset(topic, p, Offset::End).unwrap();
        }
        c.assign(&tpl).unwrap();
        while !stop.load(Ordering::Relaxed) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                let at = Instant::now();
                let Ok(w) = serde_json::from_slice::<Value>(m.payload().unwrap_or_default()) else {
                    continue;
                };
                let size = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "fjord-window"))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                let _ = tx.send((
                    w["lot_id"].as_str().unwrap_or("").to_owned(),
                    size,
                    w["window_start"].as_str().unwrap_or("").to_owned(),
                    at,
                ));
            }
        }
    });
    rx
}

async fn run(broker: &str, rate: u64, seconds: u64) {
    let dir = temp_dir();
    let lots = dir.path().join("lots.csv");
    common::lots_csv(&lots, 50);
    let (mqtt_port, http_port) = (free_port(), free_port());
    let http = format!("http://127.0.0.1:{http_port}");
    let data = dir.path().join("data");
    let tansu = (broker == "tansu").then(|| Tansu::start().expect("tansu (FJORD_TANSU)"));
    let (mut args, mut env) = (
        vec!["--batch-every".to_owned(), "1h".to_owned()],
        Vec::new(),
    );
    if let Some(t) = &tansu {
        args.extend(["--kafka".to_owned(), t.bootstrap()]);
        env.push((
            "FJORD__STREAM__PROCESSING_GUARANTEE".to_owned(),
            "at_least_once".to_owned(),
        ));
    }
    let started = Instant::now();
    let demo = common::start_demo(&DemoSpec {
        dir: &data,
        lots: &lots,
        mqtt_port,
        http_port,
        config: String::new(),
        args,
        env,
        log: "fjord-freshness-demo.log",
    });
    let web = reqwest::Client::new();
    let mut ready = None;
    while started.elapsed() < Duration::from_secs(120) {
        if let Ok(r) = web.get(format!("{http}/readyz")).send().await
            && r.status() == 200
        {
            ready = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Some(ready) = ready else {
        println!("{broker:>8} {rate:>6}/s: /readyz never 200 within 120 s");
        common::stop_demo(demo);
        return;
    };
    // the demo writes endpoints.json once everything runs, which is after the server is ready
    let endpoints_path = data.join("endpoints.json");
    assert!(
        fjord_testkit::wait_until(Duration::from_secs(60), || endpoints_path.exists()),
        "the demo did not start"
    );
    let endpoints: Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("endpoints.json")).expect("endpoints.json"),
    )
    .unwrap();
    let bootstrap = endpoints["kafka"]["bootstrap_servers"]
        .as_str()
        .unwrap()
        .to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let simulated = std::env::var("LOAD").is_ok_and(|l| l == "simulator");
    let (load, simulator) = if simulated {
        (None, Some(common::simulator_load(mqtt_port, rate)))
    } else {
        (
            Some(common::background_load(mqtt_port, rate, stop.clone())),
            None,
        )
    };
    let mut windows = watch_windows(bootstrap, stop.clone());
    let probe = client(mqtt_port, "bench-probe", 10).await;
    // warm-up: the stream processor joins its consumer group after the server is ready
    probe
        .publish(
            "parking/P0/W",
            QoS::AtLeastOnce,
            false,
            r#"{"occupied":false}"#,
        )
        .await
        .unwrap();
    let warm = Instant::now();
    while sql(&http, "SELECT 1 FROM spaces_live WHERE space_id = 'W'")
        .await
        .is_empty()
        && warm.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (mut spaces, mut live, mut window_lag) = (Vec::new(), Vec::new(), Vec::new());
    let (mut window_checks, mut slow) = (Vec::new(), Vec::new());
    let loaded = Instant::now();
    let mut occupied: BTreeMap<u32, bool> = BTreeMap::new();
    let (mut missed, mut i) = (0, 0u32);
    let t_end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < t_end {
        // a probe reading: space S(i mod 10) of P0 flips
        let space = i % 10;
        let now_occupied = !occupied.get(&space).copied().unwrap_or(false);
        occupied.insert(space, now_occupied);
        let want_lot = occupied.values().filter(|o| **o).count() as i64;
        let t0 = Instant::now();
        probe
            .publish(
                format!("parking/P0/S{space}"),
                QoS::AtLeastOnce,
                false,
                format!(r#"{{"occupied":{now_occupied}}}"#),
            )
            .await
            .unwrap();
        let q = format!(
            "SELECT occupied FROM spaces_live WHERE lot_id = 'P0' AND space_id = 'S{space}'"
        );
        match visible_after(t0, &http, &q, |r| {
            r.first().is_some_and(|r| r["occupied"] == now_occupied)
        })
        .await
        {
            Some(ms) => {
                if ms > 1000.0 {
                    slow.push((t0.duration_since(loaded).as_secs(), ms as u64));
                }
                spaces.push(ms)
            }
            None => missed += 1,
        }
        let q = "SELECT occupied FROM occupancy_live WHERE lot_id = 'P0'";
        match visible_after(t0, &http, q, |r| {
            r.first().is_some_and(|r| r["occupied"] == want_lot)
        })
        .await
        {
            Some(ms) => live.push(ms),
            None => missed += 1,
        }
        // the windows written meanwhile, of the probe lot and five background lots
        while let Ok((lot, size, start, at)) = windows.try_recv() {
            if !matches!(
                lot.as_str(),
                "P0" | "B0" | "B1" | "B2" | "B3" | "B4" | "lot-1" | "lot-2" | "lot-3"
            ) {
                continue;
            }
            let Ok(start_ms) = fjord_core::time::parse_rfc3339(&start) else {
                continue;
            };
            let q = format!(
                "SELECT count(*) AS n FROM occupancy_{size} WHERE lot_id = '{lot}' \
                 AND CAST(window_start AS BIGINT) = {}",
                start_ms * 1000
            );
            // each window is looked for by its own task: checked one after the other, a late
            // check would count the earlier checks' time as this window's lag
            let http = http.clone();
            window_checks.push(tokio::spawn(async move {
                visible_after(at, &http, &q, |r| r.first().is_some_and(|r| r["n"] == 1)).await
            }));
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for check in window_checks {
        match check.await.ok().flatten() {
            Some(ms) => window_lag.push(ms),
            None => missed += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    if !slow.is_empty() {
        println!("  probes slower than 1 s (seconds since the load started: ms): {slow:?}");
    }
    let achieved = match (load, simulator) {
        (Some(load), _) => load.await.unwrap_or(0.0),
        (None, Some(sim)) => common::stop_simulator(sim),
        (None, None) => 0.0,
    };
    let load = if simulated { "simulator" } else { "publisher" };
    common::stop_demo(demo);
    println!(
        "{broker:>8}, {achieved:>6.0} readings/s ({load}): /readyz after {:.1} s; publish → spaces_live ({} probes) {}; \
         publish → occupancy_live {}; fjord.occupancy → SQL ({} windows) {}; {missed} not visible within 10 s",
        ready.as_secs_f64(),
        spaces.len(),
        summary(&mut spaces),
        summary(&mut live),
        window_lag.len(),
        summary(&mut window_lag),
    );
    drop(tansu);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs benches with no arguments: do nothing then
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rates = std::env::var("RATES").unwrap_or_else(|_| "20,10000".into());
    let brokers = std::env::var("BROKERS").unwrap_or_else(|_| {
        if std::env::var_os("FJORD_TANSU").is_some() {
            "embedded,tansu".into()
        } else {
            "embedded".into()
        }
    });
    let seconds: u64 = env_or("RUN_SECONDS", 150);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("fjord demo, release build, HTTP SQL polled every 25 ms (latencies include that):");
    for broker in brokers.split(',') {
        for rate in rates.split(',') {
            let rate: u64 = rate.trim().parse().expect("RATES: numbers");
            rt.block_on(run(broker.trim(), rate, seconds));
        }
    }
}
