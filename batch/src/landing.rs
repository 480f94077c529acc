//! The landing machinery that `fjord batch ingest` shares between its topics (`fjord.readings` →
//! `readings`, `fjord.alerts` → `alerts`): where each partition resumes from the offsets recorded
//! in the table, reading chunks on a blocking thread through a topic's [`Decode`], landing
//! undecodable records in `quarantine`, and the Delta `txn` actions that record the new offsets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use fjord_core::config::Config;
use fjord_core::kafka::{QuietEof, consumer_config};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::commit::{self, Appended};
use crate::error::{Error, Result};
use crate::offsets::{self, Probe, Start, fetch_from};
use crate::rows::{QuarantineRow, quarantine_batch};

/// Per-partition progress inside a run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position {
    /// Next offset to land.
    pub(crate) next: i64,
    /// Fingerprint of the last record read.
    pub(crate) check: Option<i64>,
    /// Quarantine rows below this offset were committed already.
    pub(crate) quarantined_until: i64,
    /// Reached the end of the partition since the last record.
    pub(crate) at_end: bool,
}

/// Turns the records of one topic into a chunk of rows (runs on a blocking thread).
pub(crate) trait Decode: Send + Sync + 'static {
    /// What a chunk holds.
    type Chunk: Default + Send + 'static;
    /// The topic read.
    fn topic(&self) -> &str;
    /// Adds one record to `chunk`.
    fn decode(&self, m: &BorrowedMessage<'_>, chunk: &mut Self::Chunk);
}

/// The consumer of a landing run.
pub(crate) type Reader = Arc<BaseConsumer<QuietEof>>;

pub(crate) fn reader(cfg: &Config) -> Result<Reader> {
    Ok(Arc::new(
        consumer_config(&cfg.kafka)
            .set("group.id", "fjord-batch")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "error")
            .create_with_context(QuietEof)
            .map_err(|e| Error::Kafka(format!("cannot create a consumer: {e}")))?,
    ))
}

/// Where a landing run starts: the partitions of the topic with their positions and log start
/// offsets, and the cluster id (empty partitions: the topic does not exist yet).
pub(crate) struct Resume {
    pub(crate) cluster: String,
    pub(crate) positions: BTreeMap<i32, Position>,
    pub(crate) lows: BTreeMap<i32, i64>,
    pub(crate) resets: Vec<String>,
}

/// Decides where each partition of `topic` resumes from the offsets recorded in `table` (and in
/// `quarantine` for quarantined records), then assigns the consumer there.
pub(crate) async fn resume(
    consumer: &Reader,
    topic: &str,
    table: &DeltaTable,
    table_name: &str,
    quarantine: &DeltaTable,
    timeout: Duration,
) -> Result<Resume> {
    let (partitions, cluster) = {
        let c = consumer.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || discover(&c, &topic, timeout))
            .await
            .map_err(|e| Error::Kafka(format!("metadata task failed: {e}")))??
    };
    let mut out = Resume {
        cluster,
        positions: BTreeMap::new(),
        lows: BTreeMap::new(),
        resets: Vec::new(),
    };
    let cluster = out.cluster.clone();
    for &p in &partitions {
        let id = offsets::app_id(&cluster, topic, p);
        let stored = commit::txn_version(table, table_name, &id).await?;
        let check = commit::txn_version(
            table,
            table_name,
            &offsets::check_app_id(&cluster, topic, p),
        )
        .await?;
        let (low, probe) = {
            let c = consumer.clone();
            let t = topic.to_owned();
            tokio::task::spawn_blocking(move || probe(&c, &t, p, stored.map(|n| n - 1), timeout))
                .await
                .map_err(|e| Error::Kafka(format!("probe task failed: {e}")))??
        };
        out.lows.insert(p, low);
        let start = offsets::decide(stored, check, probe, low);
        let q_stored = commit::txn_version(quarantine, "quarantine", &id).await?;
        let position = match start {
            Start::Beginning { reset } => {
                if let Some(why) = reset {
                    tracing::warn!(partition = p, %why, "reading the partition again from its beginning");
                    out.resets.push(format!("{topic}[{p}]: {why}"));
                }
                Position {
                    next: low,
                    check: None,
                    quarantined_until: 0,
                    at_end: false,
                }
            }
            Start::At { offset, skipped } => {
                if let Some((from, to)) = skipped {
                    tracing::error!(
                        partition = p,
                        from,
                        to,
                        "records were deleted by Kafka retention before they were landed; raise \
                         retention.ms or run the batch job more often"
                    );
                }
                Position {
                    next: offset,
                    check,
                    quarantined_until: q_stored.unwrap_or(0),
                    at_end: false,
                }
            }
        };
        out.positions.insert(p, position);
    }
    if !out.positions.is_empty() {
        let mut tpl = TopicPartitionList::new();
        for (&p, pos) in &out.positions {
            tpl.add_partition_offset(topic, p, Offset::Offset(fetch_from(pos.next, out.lows[&p])))
                .map_err(|e| Error::Kafka(e.to_string()))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| Error::Kafka(format!("cannot assign {topic}: {e}")))?;
    }
    Ok(out)
}

/// Reads the next chunk of at most `max` records on a blocking thread.
pub(crate) async fn next_chunk<D: Decode>(
    consumer: &Reader,
    decoder: &Arc<D>,
    positions: &BTreeMap<i32, Position>,
    max: usize,
    timeout: Duration,
) -> Result<(u64, D::Chunk, BTreeMap<i32, Position>)> {
    let c = consumer.clone();
    let d = decoder.clone();
    let pos = positions.clone();
    tokio::task::spawn_blocking(move || read_chunk(&c, &*d, pos, max, timeout))
        .await
        .map_err(|e| Error::Kafka(format!("consumer task failed: {e}")))?
}

/// The partitions whose position moved.
pub(crate) fn moved(before: &BTreeMap<i32, Position>, after: &BTreeMap<i32, Position>) -> Vec<i32> {
    after
        .iter()
        .filter(|(p, n)| before.get(p).is_none_or(|o| o.next != n.next))
        .map(|(p, _)| *p)
        .collect()
}

/// Commits the quarantine rows not committed by an earlier, interrupted run, with the offsets of
/// their partitions; returns how many, and the commit.
pub(crate) async fn land_quarantine(
    quarantine: &mut DeltaTable,
    cluster: &str,
    topic: &str,
    rows: Vec<QuarantineRow>,
    before: &BTreeMap<i32, Position>,
    after: &BTreeMap<i32, Position>,
) -> Result<Option<(u64, Appended)>> {
    let rows: Vec<QuarantineRow> = rows
        .into_iter()
        .filter(|r| {
            let p = r.origin.partition.unwrap_or(-1);
            let from = before.get(&p).map_or(0, |pos| pos.quarantined_until);
            r.origin.offset.unwrap_or(0) >= from
        })
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let partitions: BTreeSet<i32> = rows.iter().filter_map(|r| r.origin.partition).collect();
    let txns = partitions
        .iter()
        .filter_map(|p| {
            after
                .get(p)
                .map(|pos| Transaction::new(offsets::app_id(cluster, topic, *p), pos.next))
        })
        .collect();
    let n = rows.len() as u64;
    let a = commit::append(
        quarantine,
        "quarantine",
        vec![quarantine_batch(&rows)],
        txns,
        "ingest",
    )
    .await?;
    Ok(Some((n, a)))
}

/// The Delta `txn` actions that record where the `moved` partitions are.
pub(crate) fn offset_txns(
    cluster: &str,
    topic: &str,
    after: &BTreeMap<i32, Position>,
    moved: &[i32],
) -> Vec<Transaction> {
    let mut txns = Vec::new();
    for p in moved {
        let pos = after[p];
        txns.push(Transaction::new(
            offsets::app_id(cluster, topic, *p),
            pos.next,
        ));
        if let Some(check) = pos.check {
            txns.push(Transaction::new(
                offsets::check_app_id(cluster, topic, *p),
                check,
            ));
        }
    }
    txns
}

/// The partitions of `topic` (empty when it does not exist) and the cluster id.
fn discover(
    consumer: &BaseConsumer<QuietEof>,
    topic: &str,
    timeout: Duration,
) -> Result<(Vec<i32>, String)> {
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| Error::Kafka(format!("cannot read the metadata of {topic}: {e}")))?;
    let partitions = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let cluster = consumer
        .client()
        .fetch_cluster_id(timeout)
        .unwrap_or_else(|| "unknown-cluster".to_owned());
    Ok((partitions, cluster))
}

/// The log start offset of `partition` and what is at `offset` (the last one landed), if any.
fn probe(
    consumer: &BaseConsumer<QuietEof>,
    topic: &str,
    partition: i32,
    offset: Option<i64>,
    timeout: Duration,
) -> Result<(i64, Option<Probe>)> {
    let (low, _high) = consumer
        .fetch_watermarks(topic, partition, timeout)
        .map_err(|e| {
            Error::Kafka(format!(
                "cannot read the offsets of {topic}[{partition}]: {e}"
            ))
        })?;
    let Some(offset) = offset.filter(|o| *o >= 0) else {
        return Ok((low, None));
    };
    if offset < low {
        return Ok((low, Some(Probe::Deleted)));
    }
    // The high watermark is not trusted (tansu 0.6 under-reports it): fetch and see, from a
    // little before (see RESUME_LOOKBACK).
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(fetch_from(offset, low)))
        .map_err(|e| Error::Kafka(e.to_string()))?;
    consumer
        .assign(&tpl)
        .map_err(|e| Error::Kafka(format!("cannot assign {topic}[{partition}]: {e}")))?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) if m.partition() == partition && m.offset() < offset => {}
            Some(Ok(m)) if m.partition() == partition => {
                let found = if m.offset() == offset {
                    Probe::Found(offsets::fingerprint(
                        m.key(),
                        m.payload(),
                        m.timestamp().to_millis(),
                    ))
                } else {
                    // A gap (e.g. transaction markers): the record itself is gone.
                    Probe::Deleted
                };
                return Ok((low, Some(found)));
            }
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => {
                return Ok((low, Some(Probe::PastEnd)));
            }
            Some(Err(KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::OffsetOutOfRange,
            ))) => {
                return Ok((low, Some(Probe::PastEnd)));
            }
            Some(Err(e)) => tracing::debug!(error = %e, "while probing"),
            _ => {}
        }
    }
    Err(Error::Kafka(format!(
        "no answer from {topic}[{partition}] at offset {offset} within {timeout:?}"
    )))
}

/// Reads until `max` records, or until every partition is at its end; returns the number of
/// records read.
fn read_chunk<D: Decode>(
    consumer: &BaseConsumer<QuietEof>,
    decoder: &D,
    mut positions: BTreeMap<i32, Position>,
    max: usize,
    timeout: Duration,
) -> Result<(u64, D::Chunk, BTreeMap<i32, Position>)> {
    let mut chunk = D::Chunk::default();
    let mut records = 0u64;
    let mut last_progress = Instant::now();
    while (records as usize) < max && !positions.values().all(|p| p.at_end) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                let Some(pos) = positions.get_mut(&m.partition()) else {
                    continue;
                };
                if m.offset() < pos.next {
                    continue;
                }
                pos.next = m.offset() + 1;
                pos.check = Some(offsets::fingerprint(
                    m.key(),
                    m.payload(),
                    m.timestamp().to_millis(),
                ));
                pos.at_end = false;
                records += 1;
                decoder.decode(&m, &mut chunk);
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                last_progress = Instant::now();
                if let Some(pos) = positions.get_mut(&p) {
                    pos.at_end = true;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, topic = decoder.topic(), "reading failed; retrying");
            }
            None => {
                if last_progress.elapsed() > timeout {
                    return Err(Error::Kafka(format!(
                        "no progress reading {} for {timeout:?} (is Kafka up?)",
                        decoder.topic()
                    )));
                }
            }
        }
    }
    Ok((records, chunk, positions))
}
