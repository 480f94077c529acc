//! Reading the lake with DataFusion: a session over Delta tables, and the few lookups the batch
//! jobs need (keys already landed, a day of readings).

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use fjord_core::time::{TimestampMs, format_date, format_rfc3339_ms};

use crate::dedup::Keys;
use crate::error::{Error, Result};

/// A DataFusion session with `tables` registered under their names.
pub async fn session(tables: &[(&str, &DeltaTable)]) -> Result<SessionContext> {
    let ctx = SessionContext::new();
    for (name, table) in tables {
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| Error::delta(name, e))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| Error::query(name, e))?;
        ctx.register_table(*name, provider)
            .map_err(|e| Error::query(name, e))?;
    }
    Ok(ctx)
}

/// Runs `sql` and collects the result.
pub async fn collect(ctx: &SessionContext, table: &str, sql: &str) -> Result<Vec<RecordBatch>> {
    ctx.sql(sql)
        .await
        .map_err(|e| Error::query(table, e))?
        .collect()
        .await
        .map_err(|e| Error::query(table, e))
}

/// A SQL list of dates: `DATE '2026-11-21', …`.
pub fn date_list(dates: &[i32]) -> String {
    dates
        .iter()
        .map(|d| format!("DATE '{}'", format_date(*d)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A SQL timestamp literal.
pub fn ts_literal(ts: TimestampMs) -> String {
    format!("TIMESTAMP '{}'", format_rfc3339_ms(ts))
}

/// Keys of the readings already in `readings` on `dates` with `ts` in `[min, max]`. Partition
/// pruning skips other dates, the files' `ts` statistics skip most of the rest.
pub async fn existing_keys(
    readings: &DeltaTable,
    dates: &[i32],
    min: TimestampMs,
    max: TimestampMs,
) -> Result<Keys> {
    if readings.version().is_none_or(|v| v == 0) || dates.is_empty() {
        return Ok(Keys::new());
    }
    let ctx = session(&[("readings", readings)]).await?;
    let sql = format!(
        "SELECT lot_id, space_id, ts FROM readings WHERE date IN ({}) AND ts >= {} AND ts <= {}",
        date_list(dates),
        ts_literal(min),
        ts_literal(max)
    );
    let mut keys = Keys::new();
    for batch in collect(&ctx, "readings", &sql).await? {
        let lots = string_column(&batch, 0)?;
        let spaces = string_column(&batch, 1)?;
        let ts = batch.column(2).as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            keys.insert(lots.value(i), spaces.value(i), ts.value(i) / 1000);
        }
    }
    Ok(keys)
}

/// Column `i` of `batch` as strings, whatever string encoding the scan chose.
pub fn string_column(batch: &RecordBatch, i: usize) -> Result<arrow::array::StringArray> {
    let col = arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8)?;
    Ok(col.as_string::<i32>().clone())
}

/// The first value of an `Int64` (or castable) column of a one-row result, if not null.
pub fn scalar_i64(batches: &[RecordBatch]) -> Result<Option<i64>> {
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let col = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Int64)?;
    let col = col.as_primitive::<Int64Type>();
    Ok((!col.is_null(0)).then(|| col.value(0)))
}
