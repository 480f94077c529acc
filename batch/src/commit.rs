//! Appending to a Delta table in two visible steps — write the Parquet files, then commit them
//! with the application transactions that record what they cover — so a crash between the two
//! leaves only unreferenced files (which `fjord batch vacuum` removes) and nothing half-landed.

use arrow::array::RecordBatch;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Transaction};
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
    let mut adds = Vec::new();
    if rows > 0 {
        let mut writer = RecordBatchWriter::for_table(table).map_err(|e| Error::delta(name, e))?;
        for batch in batches.into_iter().filter(|b| b.num_rows() > 0) {
            writer
                .write(batch)
                .await
                .map_err(|e| Error::delta(name, e))?;
        }
        adds = writer.flush().await.map_err(|e| Error::delta(name, e))?;
    }
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
