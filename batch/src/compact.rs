//! `fjord batch compact`: rewrites the small files of a date partition into files of about
//! `batch.target_file_bytes`, sorted so that row-group statistics prune well, in one Delta commit
//! per partition (readers see the old files or the new ones, never both or neither). Partitions
//! that are already compact are left alone.

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use arrow::array::RecordBatch;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use fjord_core::config::Config;
use fjord_core::time::format_date;

use crate::commit::OPERATION_KEY;
use crate::error::{Error, Result};
use crate::lake::{Lake, Table};
use crate::query;
use crate::views::log::parse_date;

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactSummary {
    /// Partitions rewritten.
    pub partitions: u32,
    /// Partitions skipped because a concurrent job changed them (compacted next time).
    pub skipped: u32,
    /// Files before, in the rewritten partitions.
    pub files_before: u64,
    /// Files after, in the rewritten partitions.
    pub files_after: u64,
    /// Bytes rewritten.
    pub bytes: u64,
}

/// Whether a partition with files of these sizes needs compacting: it has at least `min_files`
/// files smaller than half the target.
pub fn needs_compaction(sizes: &[i64], target: u64, min_files: u32) -> bool {
    let half = i64::try_from(target / 2).unwrap_or(i64::MAX);
    sizes.iter().filter(|s| **s < half).count() >= min_files as usize
}

/// The sort order of a table's rewritten files.
fn sort_order(table: Table) -> &'static str {
    match table {
        Table::Quarantine => "kafka_topic, kafka_partition, kafka_offset",
        Table::Occupancy(_) => "lot_id, window_start",
        Table::SpaceState => "lot_id, space_id",
        Table::Readings => "lot_id, space_id, ts",
        Table::Alerts => "key, event_time",
        Table::ForecastProfile => "lot_id, slot",
    }
}

/// Compacts `readings` and `quarantine`. (The views tables are rewritten whole per partition by
/// every views run, so they do not accumulate small files.)
pub async fn compact(cfg: &Config, lake: &Lake) -> Result<CompactSummary> {
    let mut summary = CompactSummary::default();
    for table in [Table::Readings, Table::Quarantine, Table::Alerts] {
        if let Some(t) = lake.open_existing(table).await? {
            compact_table(cfg, table, t, &mut summary).await?;
        }
    }
    Ok(summary)
}

async fn compact_table(
    cfg: &Config,
    table: Table,
    mut t: DeltaTable,
    summary: &mut CompactSummary,
) -> Result<()> {
    let name = table.name();
    let mut partitions: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    {
        let snapshot = t.snapshot().map_err(|e| Error::delta(name, e))?;
        for f in snapshot.log_data().iter() {
            let date = f
                .partition_values_map()
                .get("date")
                .cloned()
                .flatten()
                .and_then(|d| parse_date(&d));
            if let Some(d) = date {
                partitions.entry(d).or_default().push(f.size());
            }
        }
    }
    let target = cfg.batch.target_file_bytes;
    for (date, sizes) in partitions {
        if !needs_compaction(&sizes, target, cfg.batch.compact_min_files) {
            continue;
        }
        let ctx = query::session(&[("t", &t)]).await?;
        let sql = format!(
            "SELECT * FROM t WHERE date = {} ORDER BY {}",
            query::date_list(&[date]),
            sort_order(table)
        );
        let batches: Vec<RecordBatch> = query::collect(&ctx, name, &sql)
            .await?
            .iter()
            .map(|b| conform(b, &table.schema()))
            .collect::<Result<_>>()?;
        let props = CommitProperties::default()
            .with_metadata([(OPERATION_KEY.to_owned(), serde_json::json!("compact"))]);
        let result = t
            .clone()
            .write(batches)
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(format!("date = '{}'", format_date(date)))
            .with_target_file_size(NonZeroU64::new(target))
            .with_commit_properties(props)
            .await;
        match result.map_err(|e| Error::delta(name, e)) {
            Ok(new) => {
                t = new;
                let after = t
                    .snapshot()
                    .map_err(|e| Error::delta(name, e))?
                    .log_data()
                    .iter()
                    .filter(|f| {
                        f.partition_values_map().get("date").cloned().flatten()
                            == Some(format_date(date))
                    })
                    .count() as u64;
                tracing::info!(table = name, date = %format_date(date), files_before = sizes.len(), files_after = after, "compacted");
                summary.partitions += 1;
                summary.files_before += sizes.len() as u64;
                summary.files_after += after;
                summary.bytes += sizes
                    .iter()
                    .map(|s| u64::try_from(*s).unwrap_or(0))
                    .sum::<u64>();
            }
            Err(e) if e.conflict().is_some() => {
                let detail = e.conflict().unwrap_or_default();
                tracing::warn!(table = name, date = %format_date(date), %detail, "a concurrent job changed the partition; compacting it next time");
                summary.skipped += 1;
                t.update_state().await.map_err(|e| Error::delta(name, e))?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Casts `batch` to `schema` (scans may return view or dictionary string types).
pub fn conform(batch: &RecordBatch, schema: &arrow::datatypes::SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let col = batch.column_by_name(f.name()).ok_or_else(|| {
                Error::Config(format!("column {} missing from the scan", f.name()))
            })?;
            Ok(arrow::compute::cast(col, f.data_type())?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partitions_with_enough_small_files_are_compacted() {
        let mib = 1024 * 1024;
        let target = 128 * mib;
        assert!(!needs_compaction(&[1000, 1000, 1000], target, 4));
        assert!(needs_compaction(&[1000, 1000, 1000, 1000], target, 4));
        // Large files do not count as small.
        let big = i64::try_from(100 * mib).unwrap();
        assert!(!needs_compaction(&[big, big, big, big, 1000], target, 4));
        assert!(!needs_compaction(&[], target, 2));
    }
}
