//! The processor behind `fjord stream`'s consumer: the assigned partitions' state, what a record
//! does to it, and the commit of outputs, checkpoints and offsets together (or the rewind to the
//! last commit when one fails).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use fjord_core::decode::record::RecordHeaders;
use fjord_core::kafka::{HEADER_CONTENT_TYPE, HEADER_MQTT_TOPIC, HEADER_RECEIVED_AT, Topics};
use fjord_core::time::now_ms;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::alerts::{PresenceState, gateway};
use crate::metrics::StreamMetrics;
use crate::output::{self, OutRecord, window_label};
use crate::partition::{Fate, InRecord, Output, PartitionState, Settings};
use crate::{Error, Result};

use super::sink::{self, Sink};
use super::{KAFKA_TIMEOUT, Summary, restore};

/// The state of one consumer's partitions and what it has not committed yet.
pub(super) struct Processor {
    pub(super) settings: Settings,
    /// `gateway_offline` state of the assigned `presence` partitions.
    pub(super) presence: BTreeMap<i32, PresenceState>,
    pub(super) presence_dirty: BTreeSet<i32>,
    /// Presence partitions changed since the last successful commit (what a rewind restores).
    pub(super) presence_uncommitted: BTreeSet<i32>,
    /// Partitions of the changelog (= of `readings`); presence partition p uses p mod this.
    pub(super) state_partitions: i32,
    pub(super) topics: Topics,
    pub(super) restorer: restore::Restorer,
    pub(super) sink: Sink,
    pub(super) states: BTreeMap<i32, PartitionState>,
    pub(super) metrics: StreamMetrics,
    pub(super) summary: Summary,
    /// Something to commit.
    pub(super) changed: bool,
    /// An error raised in a rebalance callback, returned by the main loop.
    pub(super) fatal: Option<Error>,
    pub(super) last_tick: i64,
}

impl Processor {
    pub(super) fn restore(&mut self, partition: i32) -> Result<()> {
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

    pub(super) fn restore_presence(&mut self, partition: i32) -> Result<()> {
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

    pub(super) fn process_presence(
        &mut self,
        m: &rdkafka::message::BorrowedMessage<'_>,
    ) -> Result<()> {
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

    pub(super) fn process(&mut self, m: &rdkafka::message::BorrowedMessage<'_>) -> Result<()> {
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
    pub(super) fn tick(&mut self) {
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

    pub(super) fn emit(&mut self, outputs: Vec<Output>) -> Result<()> {
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

    /// Commits outputs, changed state and offsets (see the module docs). At least once and
    /// without `wait`, the offsets are committed once the outputs are delivered ([`Sink`]); with
    /// `wait` (before a revocation, at the end) every earlier commit is completed too.
    pub(super) fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        wait: bool,
    ) -> Result<()> {
        if !self.changed {
            return if wait {
                self.sink.commit_waiting(consumer).map_err(commit_fatal)
            } else {
                Ok(())
            };
        }
        let started = Instant::now();
        let mut records: Vec<OutRecord> = Vec::new();
        let mut checkpoints: Vec<OutRecord> = Vec::new();
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
                checkpoints.push(output::checkpoint_record(
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
            checkpoints.push(output::checkpoint_record(
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
        match self.sink.commit(consumer, checkpoints, &offsets, wait) {
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

    /// Serves the producer's delivery reports and commits the offsets whose outputs are delivered.
    pub(super) fn settle<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        self.sink.poll();
        self.sink.settle(consumer).map_err(commit_fatal)
    }

    /// Drops what was processed since the last commit: restores every partition from its
    /// checkpoint and seeks the consumer back to the checkpointed offsets.
    pub(super) fn rewind<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
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

/// Settling waiting commits never aborts a transaction: any error of it stops the processor.
fn commit_fatal(e: sink::CommitError) -> Error {
    match e {
        sink::CommitError::Fatal(e) => e,
        sink::CommitError::Aborted(reason) => Error::Kafka(reason),
    }
}

fn status_label(s: fjord_core::model::AlertStatus) -> &'static str {
    match s {
        fjord_core::model::AlertStatus::Firing => "firing",
        fjord_core::model::AlertStatus::Resolved => "resolved",
    }
}
