//! Shared helpers of the stream integration tests: generated readings, producing them as the
//! bridge does, running the processor in-process, reading the windows back.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fjord_core::config::{Config, KafkaConfig, ProcessingGuarantee};
use fjord_core::duration::Duration as D;
use fjord_core::model::OccupancyWindow;
use fjord_core::occupancy::reference::RefReading;
use fjord_core::telemetry::Metrics;
use fjord_stream::metrics::StreamMetrics;
use fjord_testkit::kafka::{BridgeRecord, Record};
use rand::{Rng, SeedableRng};

pub const MIN: i64 = 60_000;

/// A stream config for tests: at-least-once, quick idle advance, short session timeout.
pub fn config(kafka: KafkaConfig) -> Config {
    let mut c = Config::default();
    c.kafka = kafka;
    c.stream.processing_guarantee = ProcessingGuarantee::AtLeastOnce;
    c.stream.idle_after = D::from_secs(3);
    c.stream.session_timeout = D::from_secs(6);
    c.stream.metrics_listen = None;
    c.stream.group_id = fjord_testkit::unique_name("stream");
    c
}

/// Readings of `lots` × `spaces` between `from` and `to` (event time): a reading per space every
/// few minutes, with duplicates, in event-time order up to `disorder_ms`.
pub fn generate(
    seed: u64,
    lots: usize,
    spaces: usize,
    from: i64,
    to: i64,
    disorder_ms: i64,
) -> Vec<RefReading> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for lot in 0..lots {
        for space in 0..spaces {
            let mut t = from + rng.random_range(0..5 * MIN);
            let mut occupied = false;
            while t < to {
                if rng.random_bool(0.4) {
                    occupied = !occupied;
                }
                let r = RefReading {
                    lot_id: format!("L{lot}"),
                    space_id: format!("S{space}"),
                    ts: t,
                    occupied,
                };
                if rng.random_bool(0.02) {
                    out.push(r.clone());
                }
                out.push(r);
                t += rng.random_range(MIN..12 * MIN);
            }
        }
    }
    // arrival order: by event time, shuffled within the allowed disorder
    let mut keyed: Vec<(i64, RefReading)> = out
        .into_iter()
        .map(|r| (r.ts + rng.random_range(0..=disorder_ms), r))
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// Produces readings as the bridge does (key = lot, value = payload, the fjord headers).
pub async fn produce(kafka: &KafkaConfig, readings: &[RefReading]) {
    let records: Vec<BridgeRecord> = readings
        .iter()
        .map(|r| BridgeRecord::of_reference(r, 100))
        .collect();
    fjord_testkit::kafka::produce_readings(kafka, &records).await;
}

/// A processor running on a blocking thread in this process.
pub struct Running {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<fjord_stream::Result<fjord_stream::runtime::Summary>>,
    pub metrics: StreamMetrics,
}

impl Running {
    pub fn start(config: &Config) -> Running {
        Self::start_with(config, Default::default())
    }

    /// With these run options (the forecast's profiles, …).
    pub fn start_with(config: &Config, options: fjord_stream::runtime::RunOptions) -> Running {
        let metrics = StreamMetrics::new(&Metrics::new()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (config, metrics, stop) = (config.clone(), metrics.clone(), stop.clone());
            tokio::task::spawn_blocking(move || {
                fjord_stream::runtime::run(&config, metrics, stop, options)
            })
        };
        Running {
            stop,
            task,
            metrics,
        }
    }

    pub async fn stop(self) -> fjord_stream::Result<fjord_stream::runtime::Summary> {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("stops")
            .expect("join")
    }
}

/// Parses occupancy records; checks that repeated records (same lot and window) are byte-identical;
/// returns one window per key.
pub fn windows(records: &[Record]) -> HashMap<(String, i64, i64), OccupancyWindow> {
    let mut first: HashMap<(String, i64, i64), Vec<u8>> = HashMap::new();
    let mut out = HashMap::new();
    for r in records {
        let w: OccupancyWindow = serde_json::from_slice(&r.payload).expect("window JSON");
        let key = (w.lot_id.clone(), w.window_start, w.window_end);
        if let Some(previous) = first.get(&key) {
            assert_eq!(
                previous, &r.payload,
                "a repeated window record must be byte-identical: {key:?}"
            );
        } else {
            first.insert(key.clone(), r.payload.clone());
        }
        out.insert(key, w);
    }
    out
}
