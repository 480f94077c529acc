//! `fjord batch ingest`: `fjord.readings` → the Delta table `readings`, exactly once.
//!
//! Each run reads every partition from the offset recorded in the table (see [`crate::offsets`])
//! to its end, in chunks of at most `batch.max_records_per_commit` records. A chunk becomes, in
//! this order: one `quarantine` commit (undecodable records, with their own offsets so a repeat
//! skips them), then one `readings` commit holding the deduplicated rows *and* the new offsets of
//! every partition in the chunk. A crash anywhere leaves either the old offsets (the chunk is read
//! again and dedup drops nothing that was not landed) or the new ones with their rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::DeltaTable;
use fjord_core::config::Config;
use fjord_core::decode::DecodeOptions;
use fjord_core::decode::record::{ReadingsTopics, decode_record};
use fjord_core::kafka::Topics;
use fjord_core::time::{now_ms, parse_rfc3339};
use rdkafka::Message;
use rdkafka::message::BorrowedMessage;

use crate::commit::{self, Appended};
use crate::error::{Error, Result};
use crate::lake::{Lake, Table};
use crate::landing::{
    Decode, Position, Resume, land_quarantine, moved, next_chunk, offset_txns, reader, resume,
};
use crate::rows::{Origin, QuarantineRow, ReadingRow};

/// What a run of `fjord batch ingest` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Kafka records read.
    pub records: u64,
    /// Rows added to `readings`.
    pub rows: u64,
    /// Readings dropped as duplicates of landed ones or of each other.
    pub duplicates: u64,
    /// Records added to `quarantine`.
    pub quarantined: u64,
    /// Delta commits made.
    pub commits: u32,
    /// Data files written.
    pub files: usize,
    /// Bytes of those files.
    pub bytes: u64,
    /// Partitions of the topic.
    pub partitions: usize,
    /// Partitions read again from their beginning because the topic was recreated.
    pub resets: Vec<String>,
    /// Records of `fjord.alerts` read.
    pub alert_records: u64,
    /// Rows added to `alerts`.
    pub alerts: u64,
}

/// What a chunk of records decoded into.
#[derive(Default)]
struct Chunk {
    rows: Vec<ReadingRow>,
    quarantine: Vec<QuarantineRow>,
}

/// Runs one ingest: every partition of `fjord.readings`, then of `fjord.alerts`, up to its end.
pub async fn ingest(cfg: &Config, lake: &Lake) -> Result<IngestSummary> {
    let mut summary = ingest_readings(cfg, lake).await?;
    let alerts = crate::alerts::ingest_alerts(cfg, lake).await?;
    summary.alert_records = alerts.records;
    summary.alerts = alerts.rows;
    summary.quarantined += alerts.quarantined;
    summary.commits += alerts.commits;
    summary.files += alerts.files;
    summary.bytes += alerts.bytes;
    summary.resets.extend(alerts.resets);
    Ok(summary)
}

/// `fjord.readings` → `readings`.
async fn ingest_readings(cfg: &Config, lake: &Lake) -> Result<IngestSummary> {
    let topic = Topics::new(&cfg.kafka).readings;
    let timeout = cfg.batch.kafka_timeout.std();
    let consumer = reader(cfg)?;
    let mut readings = lake.open(Table::Readings).await?;
    let mut quarantine = lake.open(Table::Quarantine).await?;
    let Resume {
        cluster,
        mut positions,
        resets,
        ..
    } = resume(
        &consumer,
        &topic,
        &readings,
        "readings",
        &quarantine,
        timeout,
    )
    .await?;
    let mut summary = IngestSummary {
        partitions: positions.len(),
        resets,
        ..IngestSummary::default()
    };
    if positions.is_empty() {
        tracing::warn!(%topic, "the topic does not exist yet: nothing to ingest");
        return Ok(summary);
    }
    let decoder = Arc::new(Decoder {
        topics: ReadingsTopics::new(&cfg.mapping)
            .map_err(|e| Error::Config(format!("mapping: {e}")))?,
        opts: cfg.readings.decode_options(),
        topic: topic.clone(),
    });
    let max = cfg.batch.max_records_per_commit as usize;
    loop {
        let (records, chunk, pos) =
            next_chunk(&consumer, &decoder, &positions, max, timeout).await?;
        let moved = moved(&positions, &pos);
        summary.records += records;
        if !moved.is_empty() {
            land(
                &mut readings,
                &mut quarantine,
                &cluster,
                &topic,
                chunk,
                &positions,
                &pos,
                &moved,
                &mut summary,
            )
            .await?;
        }
        positions = pos;
        if positions.values().all(|p| p.at_end) {
            break;
        }
    }
    Ok(summary)
}

/// Commits one chunk: quarantine first, then readings with the offsets.
#[allow(clippy::too_many_arguments)]
async fn land(
    readings: &mut DeltaTable,
    quarantine: &mut DeltaTable,
    cluster: &str,
    topic: &str,
    chunk: Chunk,
    before: &BTreeMap<i32, Position>,
    after: &BTreeMap<i32, Position>,
    moved: &[i32],
    summary: &mut IngestSummary,
) -> Result<()> {
    let Chunk {
        rows,
        quarantine: q_rows,
        ..
    } = chunk;
    // Quarantine rows not committed by an earlier, interrupted run.
    if let Some(a) = land_quarantine(quarantine, cluster, topic, q_rows, before, after).await? {
        summary.quarantined += a.0;
        count(summary, a.1);
    }
    let txns = offset_txns(cluster, topic, after, moved);
    let (landed, duplicates, a) = commit::land_readings(readings, rows, txns, "ingest").await?;
    summary.duplicates += duplicates;
    summary.rows += landed;
    count(summary, a);
    tracing::info!(
        rows = landed,
        total_rows = summary.rows,
        records = summary.records,
        version = a.version,
        "landed a chunk of readings"
    );
    Ok(())
}

fn count(summary: &mut IngestSummary, a: Appended) {
    if a.version.is_some() {
        summary.commits += 1;
    }
    summary.files += a.files;
    summary.bytes += a.bytes;
}

/// Turns Kafka records into rows.
struct Decoder {
    topics: ReadingsTopics,
    opts: DecodeOptions,
    topic: String,
}

impl Decode for Decoder {
    type Chunk = Chunk;

    fn topic(&self) -> &str {
        &self.topic
    }

    fn decode(&self, m: &BorrowedMessage<'_>, chunk: &mut Chunk) {
        let headers = fjord_core::decode::record::RecordHeaders::from_kafka(m.headers());
        let payload = m.payload().unwrap_or_default();
        let origin = Origin {
            mqtt_topic: headers.mqtt_topic.map(str::to_owned),
            received_at: headers.received_at.and_then(|t| parse_rfc3339(t).ok()),
            partition: Some(m.partition()),
            offset: Some(m.offset()),
        };
        match decode_record(&self.topics, &headers, payload, &self.opts) {
            Ok(reading) => chunk.rows.push(ReadingRow { reading, origin }),
            Err(e) => chunk.quarantine.push(QuarantineRow {
                raw: payload.to_vec(),
                reason: e.reason().to_owned(),
                error: e.to_string(),
                source: self.topic.clone(),
                seen_at: origin.received_at.unwrap_or_else(now_ms),
                origin,
            }),
        }
    }
}
