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
//! * `at_least_once` (brokers without transactions, e.g. tansu): outputs and checkpoints are
//!   flushed, then the offsets are committed. After a crash the input is replayed from the
//!   committed offsets; each lot's checkpoint records the last offset it applied, so a replay
//!   repeats exactly the records that had already been written — byte for byte — and nothing else.
//!   Consumers that upsert windows by (lot, window_start, window_end) get the exact result.
//!
//! Why checkpoints in a Kafka topic rather than in the object store: the state is small (about
//! 100 bytes per space plus the held readings: `out_of_orderness + allowed_lateness +
//! dedup_horizon` of input) and rides in the same transaction as outputs and offsets, so no
//! second system has to agree on what was committed. A commit writes only what changed: the
//! changed lots' records and, of their held readings, the one-second buckets that changed
//! (`partition::buckets`), not the whole state again.

mod restore;
mod sink;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fjord_core::config::Config;
use fjord_core::decode::record::{ReadingsTopics, RecordHeaders};
use fjord_core::kafka::{self, HEADER_CONTENT_TYPE, HEADER_MQTT_TOPIC, HEADER_RECEIVED_AT, Topics};
use fjord_core::time::now_ms;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{error, info, warn};

use self::sink::Sink;
use crate::alerts::{PresenceState, Rules, gateway};
use crate::metrics::StreamMetrics;
use crate::output::{self, OutRecord, window_label};
use crate::partition::{Fate, InRecord, Output, PartitionState, Settings};
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
}

/// The settings of the partitions, from the config.
pub fn settings(config: &Config) -> Result<Settings> {
    let s = &config.stream;
    let windows_ms: Vec<i64> = s.windows.iter().map(|w| w.as_millis_i64()).collect();
    let rules = Rules::from_config(&config.alerts, &windows_ms).map_err(Error::Config)?;
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
    let settings = settings(config)?;
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
    let shared = Arc::new(Mutex::new(processor));
    let consumer: BaseConsumer<Ctx> = consumer_cfg
        .create_with_context(Ctx {
            shared: shared.clone(),
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
        p.sink.poll();
        p.tick();
        if last_commit.elapsed() >= interval {
            p.commit(&consumer)?;
            last_commit = Instant::now();
        }
    }
    let mut p = lock(&shared);
    p.commit(&consumer)?;
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

fn lock(shared: &Mutex<Processor>) -> MutexGuard<'_, Processor> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Ctx {
    shared: Arc<Mutex<Processor>>,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut p = lock(&self.shared);
            // commit what was processed before the partitions go to another instance
            if let Err(e) = p.commit(consumer) {
                error!(error = %e, "commit before revocation failed");
                p.fatal.get_or_insert(e);
            }
            for e in tpl.elements() {
                if e.topic() == p.topics.presence {
                    p.presence.remove(&e.partition());
                } else {
                    p.states.remove(&e.partition());
                }
            }
            info!(partitions = ?tpl.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut p = lock(&self.shared);
                let partitions: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                for (topic, partition) in &partitions {
                    let restored = if *topic == p.topics.presence {
                        p.restore_presence(*partition)
                    } else {
                        p.restore(*partition)
                    };
                    if let Err(e) = restored {
                        error!(%topic, partition, error = %e, "cannot restore a partition's state");
                        p.fatal.get_or_insert(e);
                    }
                }
                let (presence, readings): (Vec<_>, Vec<_>) = partitions
                    .iter()
                    .partition(|(t, _)| *t == p.topics.presence);
                let numbers =
                    |v: Vec<&(String, i32)>| v.iter().map(|(_, n)| *n).collect::<Vec<_>>();
                if !presence.is_empty() {
                    info!(partitions = ?numbers(presence), "presence partitions assigned and restored");
                }
                info!(partitions = ?numbers(readings), "partitions assigned and restored");
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

struct Processor {
    settings: Settings,
    /// `gateway_offline` state of the assigned `presence` partitions.
    presence: BTreeMap<i32, PresenceState>,
    presence_dirty: BTreeSet<i32>,
    /// Presence partitions changed since the last successful commit (what a rewind restores).
    presence_uncommitted: BTreeSet<i32>,
    /// Partitions of the changelog (= of `readings`); presence partition p uses p mod this.
    state_partitions: i32,
    topics: Topics,
    restorer: restore::Restorer,
    sink: Sink,
    states: BTreeMap<i32, PartitionState>,
    metrics: StreamMetrics,
    summary: Summary,
    /// Something to commit.
    changed: bool,
    /// An error raised in a rebalance callback, returned by the main loop.
    fatal: Option<Error>,
    last_tick: i64,
}

impl Processor {
    fn restore(&mut self, partition: i32) -> Result<()> {
        let records =
            self.restorer
                .read_changelog(&self.topics.stream_state, partition, KAFKA_TIMEOUT)?;
        let n = records.len();
        let state = PartitionState::restore(partition, &self.settings, records)
            .map_err(|reason| Error::Checkpoint { partition, reason })?;
        info!(
            partition,
            records = n,
            next_offset = state.next_offset(),
            "partition state restored"
        );
        self.metrics.restores.inc();
        self.states.insert(partition, state);
        Ok(())
    }

    fn restore_presence(&mut self, partition: i32) -> Result<()> {
        let records = self.restorer.read_changelog(
            &self.topics.stream_state,
            partition % self.state_partitions,
            KAFKA_TIMEOUT,
        )?;
        let state = match records.get(&gateway::checkpoint_key(partition)) {
            Some(bytes) => PresenceState::decode(bytes)
                .map_err(|reason| Error::Checkpoint { partition, reason })?,
            None => PresenceState::default(),
        };
        info!(
            partition,
            next_offset = state.next_offset,
            firing = state.active_len(),
            "presence state restored"
        );
        self.presence.insert(partition, state);
        Ok(())
    }

    fn process_presence(&mut self, m: &rdkafka::message::BorrowedMessage<'_>) -> Result<()> {
        let partition = m.partition();
        let Some(state) = self.presence.get_mut(&partition) else {
            warn!(
                partition,
                "presence record of a partition without state; skipped"
            );
            return Ok(());
        };
        let mut alerts = Vec::new();
        let payload = m.payload().unwrap_or_default();
        let mut out = Vec::new();
        match state.process(&self.settings.rules, m.offset(), payload, &mut alerts) {
            Ok(_) => {}
            Err(error) => {
                warn!(partition, offset = m.offset(), %error, "presence record dead-lettered");
                self.summary.dead += 1;
                out.push(Output::DeadLetter {
                    key: m.key().map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                    headers: Vec::new(),
                    reason: "presence_record",
                    error,
                });
            }
        }
        self.presence_dirty.insert(partition);
        self.presence_uncommitted.insert(partition);
        self.changed = true;
        out.extend(alerts.into_iter().map(Output::Alert));
        self.emit(out)
    }

    fn process(&mut self, m: &rdkafka::message::BorrowedMessage<'_>) -> Result<()> {
        if m.topic() == self.topics.presence {
            return self.process_presence(m);
        }
        let partition = m.partition();
        let Some(state) = self.states.get_mut(&partition) else {
            warn!(partition, "record of a partition without state; skipped");
            return Ok(());
        };
        let mut headers: Vec<(&str, &[u8])> = Vec::new();
        let mut wanted = RecordHeaders::default();
        if let Some(hs) = m.headers() {
            for h in hs.iter() {
                let value = h.value.unwrap_or_default();
                headers.push((h.key, value));
                let text = std::str::from_utf8(value).ok();
                match h.key {
                    HEADER_MQTT_TOPIC => wanted.mqtt_topic = text,
                    HEADER_RECEIVED_AT => wanted.received_at = text,
                    HEADER_CONTENT_TYPE => wanted.content_type = text,
                    _ => {}
                }
            }
        }
        let input = InRecord {
            offset: m.offset(),
            key: m.key(),
            payload: m.payload().unwrap_or_default(),
            headers: wanted,
            all_headers: &headers,
        };
        let mut out = Vec::new();
        let fate = state.process(&self.settings, &input, now_ms(), &mut out);
        self.summary.records += 1;
        let label = match fate {
            Fate::Accepted => "accepted",
            Fate::Duplicate => {
                self.summary.duplicates += 1;
                "duplicate"
            }
            Fate::Late => {
                self.summary.late += 1;
                "late"
            }
            Fate::Dead => {
                self.summary.dead += 1;
                "dead"
            }
            Fate::Skipped => "skipped",
        };
        self.metrics.records.with_label_values(&[label]).inc();
        self.changed = true;
        self.emit(out)
    }

    /// Idle advance, at most every 100 ms.
    fn tick(&mut self) {
        let now = now_ms();
        if now - self.last_tick < 100 {
            return;
        }
        self.last_tick = now;
        let mut out = Vec::new();
        for (partition, state) in &mut self.presence {
            let mut alerts = Vec::new();
            if state.tick(&self.settings.rules, now, &mut alerts) {
                self.presence_dirty.insert(*partition);
                self.presence_uncommitted.insert(*partition);
                out.extend(alerts.into_iter().map(Output::Alert));
            }
        }
        for (partition, state) in &mut self.states {
            state.tick(&self.settings, now, &mut out);
            let wm = state.watermark();
            if wm > i64::MIN {
                self.metrics
                    .watermark_lag_seconds
                    .with_label_values(&[&partition.to_string()])
                    .set((now - wm) / 1000);
            }
        }
        if !out.is_empty() {
            self.changed = true;
            if let Err(e) = self.emit(out) {
                self.fatal.get_or_insert(e);
            }
        }
    }

    fn emit(&mut self, outputs: Vec<Output>) -> Result<()> {
        for o in outputs {
            match &o {
                Output::Window(w) => {
                    self.summary.windows += 1;
                    self.metrics
                        .windows
                        .with_label_values(&[&window_label(w.window_end - w.window_start)])
                        .inc();
                }
                Output::Alert(a) => {
                    self.summary.alerts += 1;
                    self.metrics
                        .alerts
                        .with_label_values(&[&a.rule, status_label(a.status)])
                        .inc();
                    info!(key = %a.key, status = status_label(a.status), event_time = %fjord_core::time::format_rfc3339_ms(a.event_time), value = ?a.value, "alert");
                }
                _ => {}
            }
            self.sink.send(&output::record(&self.topics, o))?;
        }
        Ok(())
    }

    /// Commits outputs, changed state and offsets (see the module docs).
    fn commit(&mut self, consumer: &BaseConsumer<Ctx>) -> Result<()> {
        if !self.changed {
            return Ok(());
        }
        let started = Instant::now();
        let mut records: Vec<OutRecord> = Vec::new();
        let mut offsets = TopicPartitionList::new();
        let (mut bytes, mut spaces) = (0usize, 0usize);
        for (&partition, state) in &mut self.states {
            for row in state.take_live() {
                records.push(output::live_record(&self.topics, &row));
            }
            for row in state.take_spaces() {
                records.push(output::space_record(&self.topics, &row));
            }
            for (key, value) in state.take_checkpoint() {
                let written = value.as_ref().map_or(0, Vec::len);
                self.metrics.checkpoint_bytes.inc_by(written as u64);
                records.push(output::checkpoint_record(
                    &self.topics,
                    partition,
                    key,
                    value,
                ));
            }
            offsets
                .add_partition_offset(
                    &self.topics.readings,
                    partition,
                    Offset::Offset(state.next_offset()),
                )
                .map_err(|e| Error::Kafka(e.to_string()))?;
            let size = state.size();
            spaces += size.spaces;
            bytes += size.total();
        }
        for partition in std::mem::take(&mut self.presence_dirty) {
            let Some(state) = self.presence.get(&partition) else {
                continue;
            };
            records.push(output::checkpoint_record(
                &self.topics,
                partition % self.state_partitions,
                gateway::checkpoint_key(partition),
                Some(state.encode()),
            ));
        }
        for (&partition, state) in &self.presence {
            offsets
                .add_partition_offset(
                    &self.topics.presence,
                    partition,
                    Offset::Offset(state.next_offset),
                )
                .map_err(|e| Error::Kafka(e.to_string()))?;
        }
        for r in &records {
            self.sink.send(r)?;
        }
        match self.sink.commit(consumer, &offsets) {
            Ok(()) => {
                self.changed = false;
                self.presence_uncommitted.clear();
                self.summary.commits += 1;
                self.metrics.commits.with_label_values(&["committed"]).inc();
                self.metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.metrics
                    .state_bytes
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
                self.metrics
                    .spaces
                    .set(i64::try_from(spaces).unwrap_or(i64::MAX));
                Ok(())
            }
            Err(sink::CommitError::Aborted(reason)) => {
                warn!(%reason, "commit aborted; rewinding to the last checkpoint");
                self.metrics.commits.with_label_values(&["aborted"]).inc();
                self.rewind(consumer)
            }
            Err(sink::CommitError::Fatal(e)) => Err(e),
        }
    }

    /// Drops what was processed since the last commit: restores every partition from its
    /// checkpoint and seeks the consumer back to the checkpointed offsets.
    fn rewind(&mut self, consumer: &BaseConsumer<Ctx>) -> Result<()> {
        let partitions: Vec<i32> = self.states.keys().copied().collect();
        for p in partitions {
            self.restore(p)?;
            let offset = self.states.get(&p).map_or(0, PartitionState::next_offset);
            consumer
                .seek(
                    &self.topics.readings,
                    p,
                    Offset::Offset(offset),
                    KAFKA_TIMEOUT,
                )
                .map_err(|e| {
                    Error::Kafka(format!("cannot seek partition {p} back to {offset}: {e}"))
                })?;
        }
        // presence partitions that changed nothing since the last commit are at their checkpoint
        let presence: Vec<i32> = std::mem::take(&mut self.presence_uncommitted)
            .into_iter()
            .filter(|p| self.presence.contains_key(p))
            .collect();
        for p in presence {
            self.restore_presence(p)?;
            let offset = self.presence.get(&p).map_or(0, |s| s.next_offset);
            consumer
                .seek(
                    &self.topics.presence,
                    p,
                    Offset::Offset(offset),
                    KAFKA_TIMEOUT,
                )
                .map_err(|e| {
                    Error::Kafka(format!(
                        "cannot seek presence partition {p} back to {offset}: {e}"
                    ))
                })?;
        }
        self.presence_dirty.clear();
        self.changed = false;
        Ok(())
    }
}

fn status_label(s: fjord_core::model::AlertStatus) -> &'static str {
    match s {
        fjord_core::model::AlertStatus::Firing => "firing",
        fjord_core::model::AlertStatus::Resolved => "resolved",
    }
}
