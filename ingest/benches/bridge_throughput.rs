//! QoS 1 throughput MQTT → Kafka with the PUBACK sent only after Kafka's ack, next to the same
//! broker's plain publish → subscribe ceiling, measured the same way: from the first publish until
//! the last message has arrived (in Kafka, or at the subscriber).
//!
//! Real servers, started like the tests do: mosquitto with the README's settings and tansu.
//! Run: `cargo bench -p fjord-ingest --bench bridge_throughput` (env `N` = messages, default
//! 200000; `PUBLISHERS`, default 4).

use std::time::{Duration, Instant};

use fjord_core::config::{Config, MqttProtocol};
use fjord_core::telemetry::Metrics;
use fjord_core::time::now_ms;
use fjord_ingest::metrics::IngestMetrics;
use fjord_testkit::{Mosquitto, Tansu, mqtt, unique_name};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

fn messages(publisher: usize, n: usize) -> Vec<(String, Vec<u8>)> {
    let base = now_ms() - 3_600_000;
    (0..n)
        .map(|i| {
            (
                format!("parking/L{}/S{}", publisher, i % 500),
                format!(
                    r#"{{"ts":{},"occupied":{},"battery":87}}"#,
                    base + i as i64,
                    i % 2 == 0
                )
                .into_bytes(),
            )
        })
        .collect()
}

async fn publish(port: u16, publishers: usize, n: usize) {
    let tasks: Vec<_> = (0..publishers)
        .map(|p| {
            let msgs = messages(p, n / publishers);
            tokio::spawn(async move {
                mqtt::publish_all(
                    port,
                    None,
                    &unique_name("pub"),
                    msgs,
                    Duration::from_secs(600),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// The broker's ceiling with rumqttc as the QoS 1 subscriber (acknowledging at once).
async fn ceiling_rumqttc(mosquitto: &Mosquitto, publishers: usize, n: usize) -> f64 {
    let mut o = MqttOptions::new(unique_name("sub"), "127.0.0.1", mosquitto.port());
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true);
    let (sub, mut events) = AsyncClient::new(o, 100);
    sub.subscribe("parking/#", QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = events.poll().await {
            break;
        }
    }
    let start = Instant::now();
    let counter = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            if let Ok(Event::Incoming(Packet::Publish(_))) = events.poll().await {
                got += 1;
            }
        }
        Instant::now()
    });
    publish(mosquitto.port(), publishers, n).await;
    let end = counter.await.unwrap();
    n as f64 / end.duration_since(start).as_secs_f64()
}

/// The broker's ceiling with the bridge's own MQTT client as the subscriber, acknowledging at
/// once: the bridge's path without Kafka.
async fn ceiling_fjord_client(mosquitto: &Mosquitto, publishers: usize, n: usize) -> f64 {
    let mut cfg = Config::default();
    cfg.mqtt.url = mosquitto.url();
    cfg.mqtt.client_id = unique_name("sub");
    let mut conn = fjord_ingest::bridge::mqtt::Connection::open(
        &cfg.mqtt,
        &cfg.bridge,
        &["parking/#".to_owned()],
    )
    .await
    .expect("connect");
    // the SUBACK is not awaited by `open`: let it land before publishing
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    let counter = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            let m = conn.recv().await.expect("connection");
            if let Some(pkid) = m.pkid {
                conn.ack(pkid);
            }
            got += 1;
        }
        Instant::now()
    });
    publish(mosquitto.port(), publishers, n).await;
    let end = counter.await.unwrap();
    n as f64 / end.duration_since(start).as_secs_f64()
}

/// Through the bridge into Kafka, PUBACK after Kafka's ack.
async fn bridge(mosquitto: &Mosquitto, tansu: &Tansu, publishers: usize, n: usize) -> (f64, f64) {
    let mut cfg = Config::default();
    cfg.mqtt.url = mosquitto.url();
    cfg.mqtt.client_id = unique_name("bridge");
    cfg.kafka = tansu.kafka_config();
    cfg.bridge.protocol = MqttProtocol::V5;
    cfg.bridge.http_listen = None;
    fjord_ingest::bridge::ensure_topics(&cfg).await;
    let metrics = IngestMetrics::new(&Metrics::new()).unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = {
        let (cfg, metrics) = (cfg.clone(), metrics.clone());
        tokio::spawn(async move { fjord_ingest::bridge::run(&cfg, metrics, rx).await })
    };
    // wait until the bridge is subscribed: a probe reaches Kafka
    let readings = cfg.kafka.topic("readings");
    loop {
        publish(mosquitto.port(), 1, 1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if metrics.forwarded.with_label_values(&[&readings]).get() > 0 {
            break;
        }
    }
    let before = metrics.forwarded.with_label_values(&[&readings]).get();
    let start = Instant::now();
    publish(mosquitto.port(), publishers, n).await;
    let published = start.elapsed();
    while metrics.forwarded.with_label_values(&[&readings]).get() < before + n as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = start.elapsed();
    let _ = stop.send(true);
    let _ = task.await;
    (
        n as f64 / total.as_secs_f64(),
        n as f64 / published.as_secs_f64(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let publishers: usize = std::env::var("PUBLISHERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mosquitto = Mosquitto::start_recommended().expect("mosquitto");
        let tansu = Tansu::start().expect("tansu");
        let c1 = ceiling_rumqttc(&mosquitto, publishers, n).await;
        let c2 = ceiling_fjord_client(&mosquitto, publishers, n).await;
        let (b, acked_rate) = bridge(&mosquitto, &tansu, publishers, n).await;
        let c = c1.max(c2);
        println!("messages: {n} QoS 1 from {publishers} publishers (mosquitto, tansu, one machine)");
        println!("broker ceiling, rumqttc subscriber:            {c1:>9.0} msg/s");
        println!("broker ceiling, bridge's client, no Kafka:     {c2:>9.0} msg/s");
        println!("bridge MQTT → Kafka (ack after Kafka):         {b:>9.0} msg/s  ({:.0} % of the higher ceiling)", 100.0 * b / c);
        println!("  publishers' rate while bridging:             {acked_rate:>9.0} msg/s");
    });
}
