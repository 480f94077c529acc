//! `fjord stream`: the stream processor on Kafka.
//!
//! One consumer in group `stream.group_id` reads `fjord.readings`; instances in the same group
//! split the partitions. Each assigned partition's state is restored from the compacted
//! `fjord.stream-state` topic before its first record is processed. Every `stream.commit_interval`
//! (and before partitions are taken away) the outputs, the changed state and the input offsets are
//! committed together:
//!
//! * `exactly_once` (default, real Kafka): in one Kafka transaction, with the offsets sent through
//!   the transaction (KIP-447). An aborted commit rewinds the partitions to their last checkpoint.
//!   A read_committed consumer sees every window exactly once.
//! * `at_least_once` (brokers without transactions, e.g. tansu): the outputs are delivered, then
//!   the checkpoints written, then the offsets committed, each step once the previous one's
//!   deliveries are reported, while the loop reads on (module `sink`). After a crash the input is
//!   replayed from the committed offsets; each lot's checkpoint records the last offset it
//!   applied, so a replay repeats exactly the records that had already been written — byte for
//!   byte — and nothing else.
//!   Consumers that upsert windows by (lot, window_start, window_end) get the exact result.
//!
//! Why checkpoints in a Kafka topic rather than in the object store: the state is small (about
//! 100 bytes per space plus the held readings: `out_of_orderness + allowed_lateness +
//! dedup_horizon` of input) and rides in the same transaction as outputs and offsets, so no
//! second system has to agree on what was committed. A commit writes only what changed: the
//! changed lots' records and, of their held readings, the one-second buckets that changed
//! (`partition::buckets`), not the whole state again.

mod processor;
mod rebalance;
mod restore;
mod sink;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fjord_core::config::Config;
use fjord_core::decode::record::ReadingsTopics;
use fjord_core::kafka::{self, Topics};
use fjord_core::time::now_ms;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tracing::{info, warn};

use self::processor::Processor;
use self::rebalance::{Ctx, lock};
use self::sink::Sink;
use crate::alerts::Rules;
use crate::metrics::StreamMetrics;
use crate::partition::Settings;
use crate::{Error, Result};

/// How long one Kafka operation of a commit or restore may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// Records processed between two looks at the clock (idle advance, commit interval).
const BATCH: usize = 2000;

/// Totals of one run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Records processed.
    pub records: u64,
    /// Windows emitted.
    pub windows: u64,
    /// Late readings.
    pub late: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Dead letters.
    pub dead: u64,
    /// Alert state changes.
    pub alerts: u64,
    /// Commits that succeeded.
    pub commits: u64,
}

/// Options beyond the config, for embedding.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides the consumer's `session.timeout.ms` (the demo's embedded Kafka only lets a closing
    /// consumer go after its session timeout).
    pub session_timeout: Option<Duration>,
    /// Turned ready once the consumer group has assigned this instance its partitions (possibly
    /// none) and their state is restored: the `/readyz` of `fjord stream`.
    pub ready: Option<fjord_core::telemetry::Readiness>,
    /// The forecast's profiles for `lot_full_predicted`, kept up to date by the caller; `None`:
    /// the rule stays quiet.
    pub forecast: Option<fjord_core::forecast::SharedProfiles>,
}

/// The settings of the partitions, from the config.
pub fn settings(config: &Config) -> Result<Settings> {
    let s = &config.stream;
    let windows_ms: Vec<i64> = s.windows.iter().map(|w| w.as_millis_i64()).collect();
    let mut rules = Rules::from_config(&config.alerts, &windows_ms).map_err(Error::Config)?;
    if !config.forecast_enabled() {
        rules.lot_full_predicted = None;
    }
    Ok(Settings {
        rules: Arc::new(rules),
        windows_ms,
        out_of_orderness_ms: s.out_of_orderness.as_millis_i64(),
        idle_after_ms: s.idle_after.as_millis_i64(),
        allowed_lateness_ms: s.allowed_lateness.as_millis_i64(),
        dedup_horizon_ms: s.dedup_horizon.as_millis_i64(),
        decode: config.readings.decode_options(),
        topics: ReadingsTopics::new(&config.mapping).map_err(|e| Error::Config(e.to_string()))?,
        lots: config.lots_registry()?,
    })
}

/// Creates the processor's topics when missing: the outputs, and the checkpoint topic with as
/// many partitions as `readings` (checkpoints live in the partition of their input).
pub async fn ensure_topics(config: &Config) -> Result<()> {
    let topics = Topics::new(&config.kafka);
    let k = &config.kafka;
    kafka::ensure_topics(k, &[&topics.readings], k.partitions).await?;
    let partitions = readings_partitions(config, &topics.readings)?;
    kafka::ensure_topics(
        k,
        &[
            &topics.occupancy,
            &topics.alerts,
            &topics.presence,
            &topics.late,
            &topics.dlq,
            &topics.live,
            &topics.spaces_live,
            &topics.stream_state,
        ],
        partitions,
    )
    .await?;
    Ok(())
}

fn readings_partitions(config: &Config, readings: &str) -> Result<i32> {
    let probe: BaseConsumer = kafka::client_config(&config.kafka)
        .create()
        .map_err(|e| Error::Kafka(e.to_string()))?;
    let md = probe
        .fetch_metadata(Some(readings), KAFKA_TIMEOUT)
        .map_err(|e| Error::Kafka(format!("metadata of {readings}: {e}")))?;
    let n = md.topics().first().map_or(0, |t| t.partitions().len());
    i32::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::Kafka(format!("topic {readings} has no partitions")))
}

/// Runs the stream processor on this thread until `stop` is set, then commits and returns.
pub fn run(
    config: &Config,
    metrics: StreamMetrics,
    stop: Arc<AtomicBool>,
    options: RunOptions,
) -> Result<Summary> {
    let topics = Topics::new(&config.kafka);
    let mut settings = settings(config)?;
    if let Some(profiles) = options.forecast.clone() {
        Arc::make_mut(&mut settings.rules).set_profiles(profiles);
    }
    let guarantee = config.stream.processing_guarantee;
    let instance = config
        .stream
        .instance_id
        .clone()
        .unwrap_or_else(|| format!("{}-{:016x}", config.kafka.client_id, rand_u64()));
    let base = kafka::client_config(&config.kafka);
    let sink = Sink::new(
        &base,
        guarantee,
        &format!("{}-{instance}", config.stream.group_id),
    )?;
    // consumers read only committed records (a no-op without transactions)
    let mut read = kafka::consumer_config(&config.kafka);
    read.set("isolation.level", "read_committed");
    let mut consumer_cfg = read.clone();
    consumer_cfg
        .set("group.id", &config.stream.group_id)
        .set(
            "client.id",
            format!("{}-{instance}", config.kafka.client_id),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    let session = options
        .session_timeout
        .unwrap_or_else(|| config.stream.session_timeout.std());
    consumer_cfg.set("session.timeout.ms", session.as_millis().to_string());
    // the consumer lag of `fjord_stream_consumer_lag`
    consumer_cfg.set("statistics.interval.ms", "5000");
    consumer_cfg.set(
        "heartbeat.interval.ms",
        (session.as_millis() / 3).max(100).to_string(),
    );
    let state_partitions = readings_partitions(config, &topics.readings)?;
    let with_presence = settings.rules.gateway_offline.is_some();
    let processor = Processor {
        settings,
        presence: BTreeMap::new(),
        presence_dirty: BTreeSet::new(),
        presence_uncommitted: BTreeSet::new(),
        state_partitions,
        topics: topics.clone(),
        restorer: restore::Restorer::new(&read)?,
        sink,
        states: BTreeMap::new(),
        metrics,
        summary: Summary::default(),
        changed: false,
        fatal: None,
        last_tick: 0,
    };
    let lag_gauge = processor.metrics.consumer_lag.clone();
    let shared = Arc::new(Mutex::new(processor));
    let consumer: BaseConsumer<Ctx> = consumer_cfg
        .create_with_context(Ctx {
            shared: shared.clone(),
            ready: options.ready.clone(),
            lag: lag_gauge,
            readings_topic: topics.readings.clone(),
        })
        .map_err(|e| Error::Kafka(format!("cannot create the consumer: {e}")))?;
    let mut inputs = vec![topics.readings.as_str()];
    if with_presence {
        inputs.push(&topics.presence);
    }
    consumer
        .subscribe(&inputs)
        .map_err(|e| Error::Kafka(format!("cannot subscribe to {inputs:?}: {e}")))?;
    info!(
        group = %config.stream.group_id,
        %instance,
        guarantee = ?guarantee,
        windows = ?config.stream.windows.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "stream processor starting"
    );
    let interval = config.stream.commit_interval.std();
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // take what is there (up to a batch), waiting a little only for the first record
        let mut wait = Duration::from_millis(20);
        for _ in 0..BATCH {
            let polled = consumer.poll(wait);
            wait = Duration::ZERO;
            let mut p = lock(&shared);
            if let Some(e) = p.fatal.take() {
                return Err(e);
            }
            match polled {
                Some(Ok(m)) => p.process(&m)?,
                Some(Err(e)) => warn!(error = %e, "consumer error"),
                None => break,
            }
        }
        let mut p = lock(&shared);
        if let Some(e) = p.fatal.take() {
            return Err(e);
        }
        p.settle(&consumer)?;
        p.tick();
        if last_commit.elapsed() >= interval {
            p.commit(&consumer, false)?;
            last_commit = Instant::now();
        }
    }
    let mut p = lock(&shared);
    p.commit(&consumer, true)?;
    let summary = p.summary.clone();
    drop(p);
    info!(summary = ?summary, "stream processor stopped");
    Ok(summary)
}

fn rand_u64() -> u64 {
    let t = now_ms() as u64;
    let pid = u64::from(std::process::id());
    t.rotate_left(17) ^ pid.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
