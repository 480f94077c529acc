//! Shared helpers of the ingest integration tests: a bridge running in-process against real
//! brokers, and waiting until messages flow through it.

#![allow(dead_code)]

use std::time::Duration;

use fjord_core::config::{Config, KafkaConfig, MqttProtocol};
use fjord_core::telemetry::Metrics;
use fjord_ingest::bridge::{self, Summary};
use fjord_ingest::metrics::IngestMetrics;
use fjord_testkit::{kafka, mqtt, unique_name};
use tokio::sync::watch;

/// A bridge config against `mqtt_port` and `kafka`.
pub fn config(mqtt_port: u16, kafka: KafkaConfig, protocol: MqttProtocol) -> Config {
    let mut c = Config::default();
    c.mqtt.url = format!("mqtt://127.0.0.1:{mqtt_port}");
    c.mqtt.client_id = unique_name("bridge");
    c.kafka = kafka;
    c.bridge.protocol = protocol;
    c.bridge.http_listen = None;
    c
}

/// A bridge running in this process.
pub struct RunningBridge {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<fjord_ingest::Result<Summary>>,
    pub metrics: IngestMetrics,
}

impl RunningBridge {
    /// Starts the bridge (creating its topics first).
    pub async fn start(config: &Config) -> RunningBridge {
        bridge::ensure_topics(config).await;
        let metrics = IngestMetrics::new(&Metrics::new()).unwrap();
        let (stop, rx) = watch::channel(false);
        let task = {
            let (config, metrics) = (config.clone(), metrics.clone());
            tokio::spawn(async move { bridge::run(&config, metrics, rx).await })
        };
        RunningBridge {
            stop,
            task,
            metrics,
        }
    }

    /// Stops it cleanly and returns its summary.
    pub async fn stop(self) -> Summary {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the bridge stops within 60 s")
            .expect("bridge task")
            .expect("bridge result")
    }

    /// True while the bridge task runs.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

/// Publishes a presence probe until it reaches `fjord.presence`: the bridge is then subscribed,
/// and its session exists at the broker.
pub async fn await_flowing(config: &Config, port: u16, credentials: Option<(&str, &str)>) {
    let gateway = unique_name("probe");
    let topic = format!("presence/{gateway}");
    for _ in 0..60 {
        mqtt::publish_all(
            port,
            credentials,
            &unique_name("p"),
            vec![(topic.clone(), b"online".to_vec())],
            Duration::from_secs(10),
        )
        .await;
        let got = kafka::collect(
            &config.kafka,
            &config.kafka.topic("presence"),
            Duration::from_millis(1500),
            |r| {
                r.iter()
                    .any(|r| r.key.as_deref() == Some(gateway.as_bytes()))
            },
        )
        .await;
        if got
            .iter()
            .any(|r| r.key.as_deref() == Some(gateway.as_bytes()))
        {
            return;
        }
    }
    panic!("no message got through the bridge within a minute");
}

/// `n` valid readings as (topic, payload), each with a unique `"n"` field, over `lots` lots.
pub fn readings(publisher: usize, n: usize, lots: usize, base_ts: i64) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let id = publisher * 10_000_000 + i;
            let topic = format!("parking/L{}/S{}", (publisher + i) % lots, i % 500);
            let payload = format!(
                r#"{{"ts":{},"occupied":{},"battery":{},"n":{id}}}"#,
                base_ts + i as i64,
                i % 2 == 0,
                i % 101
            );
            (topic, payload.into_bytes())
        })
        .collect()
}

/// The `"n"` field of a reading payload.
pub fn n_of(payload: &[u8]) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(payload).expect("JSON payload");
    v["n"].as_u64().expect("n")
}
