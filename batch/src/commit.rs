//! Appending to a Delta table in two visible steps — write the Parquet files, then commit them
//! with the application transactions that record what they cover — so a crash between the two
//! leaves only unreferenced files (which `fjord batch vacuum` removes) and nothing half-landed.

use arrow::array::RecordBatch;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use crate::error::{Error, Result};
use crate::fault;

/// Key of the commit-info field that says which fjord job wrote a commit.
pub const OPERATION_KEY: &str = "fjord.operation";

/// What one append added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// The new table version (`None`: nothing was committed).
    pub version: Option<i64>,
    /// Data files written.
    pub files: usize,
    /// Bytes of those files.
    pub bytes: u64,
}

/// Appends `batches` to `table` and sets `txns` in the same commit. With no batches and no
/// transactions nothing is committed. `operation` goes into the commit info.
pub async fn append(
    table: &mut DeltaTable,
    name: &str,
    batches: Vec<RecordBatch>,
    txns: Vec<Transaction>,
    operation: &str,
) -> Result<Appended> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 && txns.is_empty() {
        return Ok(Appended::default());
    }
    let adds = if rows > 0 {
        write_files(table, name, batches, rows).await?
    } else {
        Vec::new()
    };
    let files = adds.len();
    let bytes = adds
        .iter()
        .map(|a| u64::try_from(a.size).unwrap_or(0))
        .sum();
    fault::before_commit(name);
    let properties = CommitProperties::default()
        .with_application_transactions(txns)
        .with_metadata([(OPERATION_KEY.to_owned(), serde_json::json!(operation))]);
    let snapshot = table.snapshot().map_err(|e| Error::delta(name, e))?;
    let finalized = CommitBuilder::from(properties)
        .with_actions(adds.into_iter().map(Action::Add).collect())
        .build(
            Some(snapshot),
            table.log_store(),
            DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: Some(vec!["date".to_owned()]),
                predicate: None,
            },
        )
        .await
        .map_err(|e| Error::delta(name, e))?;
    let version = i64::try_from(finalized.version()).unwrap_or(i64::MAX);
    table
        .update_state()
        .await
        .map_err(|e| Error::delta(name, e))?;
    Ok(Appended {
        version: Some(version),
        files,
        bytes,
    })
}

/// Rows below which one writer writes them all: splitting smaller appends would only make more
/// small files (a Kafka ingest of a few seconds of data stays one file per date).
const ROWS_PER_WRITER: usize = 250_000;

/// Writes `batches` as Parquet files of `table` (not yet committed). delta-rs encodes inside
/// `write`, on the thread that polls it, so a large append is cut into one share per core, each
/// written by its own writer on a blocking-pool thread: every core encodes, and the runtime's
/// workers stay free for I/O (uploads, timers, the serving layer in `fjord demo`). Every share is
/// awaited, also after one fails (a dropped writer could leave an upload half done); the first
/// error is returned, and files no commit references are removed by vacuum.
async fn write_files(
    table: &DeltaTable,
    name: &str,
    batches: Vec<RecordBatch>,
    rows: usize,
) -> Result<Vec<Add>> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let writers = (rows / ROWS_PER_WRITER).clamp(1, cores);
    let runtime = tokio::runtime::Handle::current();
    let mut tasks = tokio::task::JoinSet::new();
    for share in split_rows(batches, writers) {
        let mut writer = RecordBatchWriter::for_table(table).map_err(|e| Error::delta(name, e))?;
        let runtime = runtime.clone();
        tasks.spawn_blocking(move || {
            runtime.block_on(async move {
                for batch in share {
                    writer.write(batch).await?;
                }
                writer.flush().await
            })
        });
    }
    let mut adds = Vec::new();
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let result = match done {
            Ok(written) => written.map_err(|e| Error::delta(name, e)),
            Err(e) => Err(Error::Task {
                table: name.to_owned(),
                source: e,
            }),
        };
        match result {
            Ok(written) => adds.extend(written),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(adds),
    }
}

/// Cuts `batches` into `n` shares of about equal row counts, in order, slicing batches where a
/// share ends (slices share the batches' buffers). Empty batches are dropped.
fn split_rows(batches: Vec<RecordBatch>, n: usize) -> Vec<Vec<RecordBatch>> {
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let n = n.max(1);
    let per = total.div_ceil(n).max(1);
    let mut shares: Vec<Vec<RecordBatch>> = vec![Vec::new()];
    let mut in_share = 0;
    for batch in batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if in_share == per {
                shares.push(Vec::new());
                in_share = 0;
            }
            let take = (per - in_share).min(batch.num_rows() - offset);
            if let Some(share) = shares.last_mut() {
                share.push(batch.slice(offset, take));
            }
            offset += take;
            in_share += take;
        }
    }
    shares.retain(|s| !s.is_empty());
    shares
}

/// The version of application transaction `app_id` in `table`'s current snapshot.
pub use fjord_lake::hwm::txn_version;

/// Deduplicates `rows` against each other and against the keys already in `readings` on the
/// dates they touch, then appends the rest with `txns` in one commit. Returns the rows landed,
/// the duplicates dropped and what the append added.
pub async fn land_readings(
    readings: &mut DeltaTable,
    mut rows: Vec<crate::rows::ReadingRow>,
    txns: Vec<Transaction>,
    operation: &str,
) -> Result<(u64, u64, Appended)> {
    let mut known = match crate::dedup::extent(&rows) {
        Some((dates, min, max)) => crate::query::existing_keys(readings, &dates, min, max).await?,
        None => Default::default(),
    };
    let duplicates = crate::dedup::dedup(&mut rows, &mut known) as u64;
    let mut builder = crate::rows::ReadingsBuilder::with_capacity(rows.len());
    for r in &rows {
        builder.push(&r.reading, &r.origin);
    }
    let landed = rows.len() as u64;
    drop(rows);
    let a = append(
        readings,
        "readings",
        vec![builder.finish()],
        txns,
        operation,
    )
    .await?;
    Ok((landed, duplicates, a))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(from: i64, n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(from..from + n))],
        )
        .unwrap()
    }

    fn values(share: &[RecordBatch]) -> Vec<i64> {
        share
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                (0..a.len()).map(|i| a.value(i)).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn shares_keep_every_row_once_in_order_and_are_balanced() {
        for (sizes, n) in [
            (vec![10], 1),
            (vec![10], 3),
            (vec![3, 0, 7, 5], 2),
            (vec![1, 1, 1], 5),
            (vec![0], 2),
            (vec![100, 1], 4),
        ] {
            let mut from = 0;
            let batches: Vec<RecordBatch> = sizes
                .iter()
                .map(|&k| {
                    let b = batch(from, k);
                    from += k;
                    b
                })
                .collect();
            let shares = split_rows(batches, n);
            let all: Vec<i64> = shares.iter().flat_map(|s| values(s)).collect();
            assert_eq!(all, (0..from).collect::<Vec<_>>(), "{sizes:?} into {n}");
            assert!(
                shares.len() <= n.max(1),
                "{sizes:?} into {n}: {}",
                shares.len()
            );
            let per = (from as usize).div_ceil(n);
            for s in &shares {
                let rows: usize = s.iter().map(RecordBatch::num_rows).sum();
                assert!(
                    rows > 0 && rows <= per,
                    "{sizes:?} into {n}: a share of {rows}"
                );
            }
        }
    }
}
