//! `fjord.alerts` → the Delta table `alerts` (docs/contract.md §5, §6), exactly once, by the same mechanism
//! as `readings`: each chunk is one commit holding the rows and the Kafka offsets they cover
//! (records that are not alerts go to `quarantine` first, with their own offsets). Alert ids are a
//! function of the state change, so the copies an at-least-once stream processor repeats after a
//! crash are dropped by id — against each other and against the ids already landed on the dates
//! the chunk touches. Partitioned by the UTC date of `event_time`.

use std::collections::HashSet;
use std::sync::Arc;

use deltalake::DeltaTable;
use fjord_core::config::Config;
use fjord_core::kafka::Topics;
use fjord_core::model::Alert;
use fjord_core::time::{epoch_day, now_ms};
use rdkafka::Message;
use rdkafka::message::BorrowedMessage;

use crate::commit;
use crate::error::Result;
use crate::lake::{Lake, Table};
use crate::landing::{Decode, Resume, land_quarantine, moved, next_chunk, offset_txns, resume};
use crate::query;
use crate::rows::{Origin, QuarantineRow};

/// What one run landed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertsSummary {
    /// Kafka records read.
    pub records: u64,
    /// Rows added to `alerts`.
    pub rows: u64,
    /// Repeated state changes dropped.
    pub duplicates: u64,
    /// Records that are not alerts, added to `quarantine`.
    pub quarantined: u64,
    /// Delta commits made.
    pub commits: u32,
    /// Data files written.
    pub files: usize,
    /// Bytes of those files.
    pub bytes: u64,
    /// Partitions read again from their beginning because the topic was recreated.
    pub resets: Vec<String>,
}

#[derive(Default)]
pub(crate) struct AlertChunk {
    rows: Vec<Alert>,
    quarantine: Vec<QuarantineRow>,
}

struct AlertDecoder {
    topic: String,
}

impl Decode for AlertDecoder {
    type Chunk = AlertChunk;

    fn topic(&self) -> &str {
        &self.topic
    }

    fn decode(&self, m: &BorrowedMessage<'_>, chunk: &mut AlertChunk) {
        let payload = m.payload().unwrap_or_default();
        match serde_json::from_slice::<Alert>(payload) {
            Ok(a) => chunk.rows.push(a),
            Err(e) => chunk.quarantine.push(QuarantineRow {
                raw: payload.to_vec(),
                reason: "alert_record".into(),
                error: format!("not an alert state change: {e}"),
                source: self.topic.clone(),
                seen_at: m.timestamp().to_millis().unwrap_or_else(now_ms),
                origin: Origin {
                    mqtt_topic: None,
                    received_at: None,
                    partition: Some(m.partition()),
                    offset: Some(m.offset()),
                },
            }),
        }
    }
}

/// Lands every partition of `fjord.alerts` up to its end.
pub async fn ingest_alerts(cfg: &Config, lake: &Lake) -> Result<AlertsSummary> {
    let topic = Topics::new(&cfg.kafka).alerts;
    let timeout = cfg.batch.kafka_timeout.std();
    let consumer = crate::landing::reader(cfg)?;
    let mut alerts = lake.open(Table::Alerts).await?;
    let mut quarantine = lake.open(Table::Quarantine).await?;
    let Resume {
        cluster,
        mut positions,
        resets,
        ..
    } = resume(&consumer, &topic, &alerts, "alerts", &quarantine, timeout).await?;
    let mut summary = AlertsSummary {
        resets,
        ..AlertsSummary::default()
    };
    if positions.is_empty() {
        return Ok(summary);
    }
    let decoder = Arc::new(AlertDecoder {
        topic: topic.clone(),
    });
    let max = cfg.batch.max_records_per_commit as usize;
    loop {
        let (records, chunk, after) =
            next_chunk(&consumer, &decoder, &positions, max, timeout).await?;
        summary.records += records;
        let moved = moved(&positions, &after);
        if !moved.is_empty() {
            if let Some((n, a)) = land_quarantine(
                &mut quarantine,
                &cluster,
                &topic,
                chunk.quarantine,
                &positions,
                &after,
            )
            .await?
            {
                summary.quarantined += n;
                count(&mut summary, a);
            }
            let mut rows = chunk.rows;
            let known = landed_ids(&alerts, &rows).await?;
            let before = rows.len();
            let mut seen = HashSet::new();
            rows.retain(|a| !known.contains(&a.id) && seen.insert(a.id.clone()));
            summary.duplicates += (before - rows.len()) as u64;
            summary.rows += rows.len() as u64;
            let a = commit::append(
                &mut alerts,
                "alerts",
                vec![crate::rows::alerts_batch(&rows)],
                offset_txns(&cluster, &topic, &after, &moved),
                "ingest",
            )
            .await?;
            count(&mut summary, a);
        }
        positions = after;
        if positions.values().all(|p| p.at_end) {
            break;
        }
    }
    tracing::info!(
        rows = summary.rows,
        duplicates = summary.duplicates,
        "landed alerts"
    );
    Ok(summary)
}

fn count(summary: &mut AlertsSummary, a: commit::Appended) {
    if a.version.is_some() {
        summary.commits += 1;
    }
    summary.files += a.files;
    summary.bytes += a.bytes;
}

/// Ids of `rows` already in `alerts` (only the dates they touch are read).
async fn landed_ids(alerts: &DeltaTable, rows: &[Alert]) -> Result<HashSet<String>> {
    let mut dates: Vec<i32> = rows.iter().map(|a| epoch_day(a.event_time)).collect();
    dates.sort_unstable();
    dates.dedup();
    if alerts.version().is_none_or(|v| v == 0) || dates.is_empty() {
        return Ok(HashSet::new());
    }
    let ctx = query::session(&[("alerts", alerts)]).await?;
    let sql = format!(
        "SELECT id FROM alerts WHERE date IN ({})",
        query::date_list(&dates)
    );
    let mut ids = HashSet::new();
    for batch in query::collect(&ctx, "alerts", &sql).await? {
        let col = query::string_column(&batch, 0)?;
        for i in 0..batch.num_rows() {
            ids.insert(col.value(i).to_owned());
        }
    }
    Ok(ids)
}
