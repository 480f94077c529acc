//! Start-up of the serving layer with a long raw topic: `N` readings (default 10 million) in
//! `fjord.readings` of a tansu broker, the speed-layer topics empty, then `fjord serve` (release
//! binary) started; prints the time from its start to `/readyz` answering 200 and its resident
//! memory then. `fjord serve` reads only the compacted and bounded speed-layer topics, so neither
//! should grow with `N`.
//!
//! Run: `cargo bench --bench serve_start` (env `N`; tansu from `FJORD_TANSU`, as the tests).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fjord_core::kafka::Topics;
use fjord_core::time::now_ms;
use fjord_testkit::kafka::BridgeRecord;
use fjord_testkit::{Tansu, free_port, temp_dir};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn produce(bootstrap: &str, topic: &str, n: u64) {
    let p: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "50")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let t0 = now_ms() - 86_400_000;
    let started = Instant::now();
    for i in 0..n {
        let lot = format!("L{}", i % 100);
        let ts = t0 + (i as i64) * 86_400_000 / n as i64;
        let r = BridgeRecord::reading(
            &lot,
            &format!("S{}", (i / 100) % 500),
            ts,
            format!(r#"{{"ts":{ts},"occupied":{},"battery":80}}"#, i % 3 == 0),
        );
        let mut rec = BaseRecord::to(topic)
            .key(&r.key)
            .payload(&r.payload)
            .headers(r.headers());
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    p.poll(Duration::from_millis(5));
                }
            }
        }
        if i % 1_000_000 == 999_999 {
            eprintln!(
                "  produced {} M in {:.0} s",
                (i + 1) / 1_000_000,
                started.elapsed().as_secs_f64()
            );
        }
    }
    p.flush(Duration::from_secs(600)).unwrap();
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: u64 = common::env_or("N", 10_000_000);
    let tansu = Tansu::start().expect("tansu (FJORD_TANSU)");
    let mut kafka = fjord_core::config::KafkaConfig::default();
    kafka.brokers = tansu.bootstrap();
    let topics = Topics::new(&kafka);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(fjord_core::kafka::ensure_topics(
        &kafka,
        &topics.all(),
        kafka.partitions,
    ))
    .unwrap();
    let t = Instant::now();
    produce(&kafka.brokers, &topics.readings, n);
    eprintln!(
        "produced {n} readings in {:.0} s",
        t.elapsed().as_secs_f64()
    );

    let dir = temp_dir();
    let http_port = free_port();
    let config = dir.path().join("fjord.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[kafka]\nbrokers = \"{}\"\n[serve]\nhttp_listen = \"127.0.0.1:{http_port}\"\n\
             pg_listen = \"127.0.0.1:{}\"\nflight_listen = \"127.0.0.1:{}\"\n[auth]\ntoken = \"{}\"\n",
            dir.path().join("data"),
            kafka.brokers,
            free_port(),
            free_port(),
            common::TOKEN
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("FJORD_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fjord serve");
    let url = format!("http://127.0.0.1:{http_port}/readyz");
    let ready = rt.block_on(async {
        let c = reqwest::Client::new();
        while started.elapsed() < Duration::from_secs(600) {
            if let Ok(r) = c.get(&url).send().await
                && r.status() == 200
            {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    });
    let rss = rss_mib(serve.id());
    let _ = serve.kill();
    let _ = serve.wait();
    match ready {
        Some(d) => println!(
            "fjord serve with {n} readings in fjord.readings (tansu): /readyz 200 after {:.2} s, {rss:.0} MiB resident",
            d.as_secs_f64()
        ),
        None => println!("fjord serve with {n} readings: /readyz not 200 within 600 s"),
    }
}
