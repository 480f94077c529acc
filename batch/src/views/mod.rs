//! `fjord batch views`: recomputes the views tables `occupancy_<size>` — one per configured
//! `stream.windows` size, `occupancy_1m` and `occupancy_10m` by default — for the dates whose
//! readings changed since the last run, and records the batch high-water mark (docs/contract.md §4.1, §4.3).
//! A size added to the config later gets its table computed from the first date on.
//!
//! Bookkeeping lives in the views tables themselves, as Delta application transactions committed
//! with the rows: `fjord:views:readings-version` (the `readings` version the views reflect) and
//! `fjord:views:hwm` (epoch ms; batch rows are authoritative for windows ending at or before it).
//! The dates to recompute are those whose files changed in the `readings` log since that version
//! (compaction commits excluded), plus the day of the previous high-water mark when it moved. Each
//! recomputed day starts from the state its spaces carried over midnight, kept per day in the
//! internal table `_space_state`; days after a recomputed one are recomputed too, up to the
//! high-water mark, because the state they start from may have changed.

pub mod compute;
pub mod log;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use fjord_core::config::Config;
use fjord_core::time::{TimestampMs, epoch_day, format_date, now_ms};

use crate::commit::{self, OPERATION_KEY};
use crate::error::{Error, Result};
use crate::lake::{Lake, Table};
use crate::query;
use crate::rows::occupancy_batch;
use compute::{DayReading, SpaceEnd, compute_day};

/// Application id of the `readings` version the views reflect.
pub const READINGS_VERSION_APP_ID: &str = "fjord:views:readings-version";
/// Application id of the batch high-water mark (epoch ms).
pub use fjord_lake::hwm::HWM_APP_ID;
/// Days written per commit of the views tables.
const DAYS_PER_COMMIT: i32 = 7;

/// What a run of `fjord batch views` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewsSummary {
    /// Days recomputed.
    pub days: u32,
    /// Rows written to each views table, by table name.
    pub rows: BTreeMap<&'static str, u64>,
    /// Readings read.
    pub readings: u64,
    /// The high-water mark after the run.
    pub hwm: Option<TimestampMs>,
    /// The `readings` version the views now reflect.
    pub readings_version: Option<i64>,
}

/// Schema of `_space_state`: each space's last reading as of the end of `date`.
pub use fjord_lake::tables::state_schema;

/// The batch high-water mark for landed readings up to `max_ts`: everything at least the
/// out-of-orderness bound plus the allowed lateness older, never in the wall-clock future,
/// aligned down to `align_ms` (a multiple of every window size, see [`alignment`]) so that every
/// view ends at the same instant.
pub fn high_water_mark(
    max_ts: TimestampMs,
    now: TimestampMs,
    slack_ms: i64,
    align_ms: i64,
) -> TimestampMs {
    let t = max_ts.min(now).saturating_sub(slack_ms);
    t.div_euclid(align_ms.max(1)) * align_ms.max(1)
}

/// The least common multiple of the window sizes: the high-water mark's step. The config allows
/// only sizes that divide a day, so this divides a day too.
pub fn alignment(sizes_ms: &[i64]) -> i64 {
    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    sizes_ms
        .iter()
        .copied()
        .filter(|s| *s > 0)
        .fold(1, |l, s| l / gcd(l, s) * s)
}

/// Runs the views job once.
pub async fn views(cfg: &Config, lake: &Lake) -> Result<ViewsSummary> {
    let mut summary = ViewsSummary::default();
    let Some(readings) = lake.open_existing(Table::Readings).await? else {
        tracing::info!("no readings table yet: nothing to compute");
        return Ok(summary);
    };
    let Some(rv) = readings.version() else {
        return Ok(summary);
    };
    let rv = i64::try_from(rv).unwrap_or(i64::MAX);
    let sizes: Vec<i64> = cfg
        .stream
        .windows
        .iter()
        .map(|w| w.as_millis_i64())
        .collect();
    // Written in this order: the state, then the views with the first configured size last, so
    // the first one's high-water mark never runs ahead of another's after a crash in between.
    let mut tables: Vec<(DeltaTable, &'static str)> = vec![(
        lake.open(Table::SpaceState).await?,
        Table::SpaceState.name(),
    )];
    for &size in sizes.iter().rev() {
        let t = Table::Occupancy(size);
        tables.push((lake.open(t).await?, t.name()));
    }

    let mut processed: Option<i64> = Some(i64::MAX);
    for (t, name) in &tables {
        let v = commit::txn_version(t, name, READINGS_VERSION_APP_ID).await?;
        processed = match (processed, v) {
            (Some(a), Some(b)) => Some(a.min(b)),
            _ => None,
        };
    }
    let old_hwm = match tables.last() {
        Some((t, name)) => commit::txn_version(t, name, HWM_APP_ID).await?,
        None => None,
    };
    // the mark never moves back, also when a size added to the config (a table without a mark, or
    // one with a coarser alignment) comes first: the highest mark of any views table is its floor
    let mut floor = old_hwm;
    for (t, name) in &tables[1..] {
        floor = floor.max(commit::txn_version(t, name, HWM_APP_ID).await?);
    }
    summary.readings_version = processed;
    summary.hwm = old_hwm;

    let all_dates = partition_dates(&readings)?;
    let (Some(&first_date), Some(&last_date)) = (all_dates.first(), all_dates.last()) else {
        return Ok(summary);
    };
    let touched: BTreeSet<i32> = match processed {
        Some(p) if p >= rv => BTreeSet::new(),
        Some(p) => match touched_since(&readings, p, rv).await? {
            Some(t) => t,
            None => all_dates.iter().copied().collect(),
        },
        None => all_dates.iter().copied().collect(),
    };

    let ctx = query::session(&[("readings", &readings)]).await?;
    let max_ts = {
        let sql = format!(
            "SELECT max(ts) FROM readings WHERE date = {}",
            query::date_list(&[last_date])
        );
        query::scalar_i64(&query::collect(&ctx, "readings", &sql).await?)?.map(|us| us / 1000)
    };
    let slack =
        cfg.stream.out_of_orderness.as_millis_i64() + cfg.stream.allowed_lateness.as_millis_i64();
    let align = alignment(&sizes);
    let new_hwm = max_ts
        .map(|m| high_water_mark(m, now_ms(), slack, align))
        .into_iter()
        .chain(floor)
        .max();
    let Some(hwm) = new_hwm else {
        return Ok(summary);
    };
    let mut dates = touched;
    if let Some(old) = old_hwm
        && hwm > old
    {
        dates.insert(epoch_day(old));
    }
    let last = epoch_day(hwm - 1);
    let Some(&first) = dates.iter().find(|d| **d <= last) else {
        tracing::info!(hwm = %fjord_core::time::format_rfc3339_ms(hwm), "views are up to date");
        if processed != Some(rv) {
            record_only(&mut tables, rv, hwm).await?;
        }
        summary.readings_version = Some(rv);
        return Ok(summary);
    };
    let first = first.max(first_date);

    let registry = cfg.lots_registry()?;
    let (mut carried, first) = {
        let state_ctx = query::session(&[("space_state", &tables[0].0)]).await?;
        let carried = load_state(&state_ctx, first - 1).await?;
        if carried.is_empty() && first_date < first {
            tracing::warn!(
                "no carried state for {}: recomputing from the first date, {}",
                format_date(first - 1),
                format_date(first_date)
            );
            (Vec::new(), first_date)
        } else {
            (carried, first)
        }
    };
    tracing::info!(
        from = %format_date(first),
        to = %format_date(last),
        hwm = %fjord_core::time::format_rfc3339_ms(hwm),
        "recomputing batch views"
    );

    let mut day = first;
    while day <= last {
        let chunk_last = (day + DAYS_PER_COMMIT - 1).min(last);
        let mut windows: BTreeMap<i64, Vec<_>> = BTreeMap::new();
        let mut ends: Vec<(i32, Vec<SpaceEnd>)> = Vec::new();
        for d in day..=chunk_last {
            let day_readings = load_day(&ctx, d).await?;
            summary.readings += day_readings.len() as u64;
            let v = compute_day(
                d,
                hwm,
                &carried,
                &day_readings,
                &|lot| registry.capacity(lot),
                &sizes,
            );
            for (size, w) in v.windows {
                windows.entry(size).or_default().extend(w);
            }
            if let Some(end) = v.end {
                carried = end.clone();
                ends.push((d, end));
            }
            summary.days += 1;
        }
        let final_chunk = chunk_last == last;
        let txns = if final_chunk {
            vec![
                Transaction::new(READINGS_VERSION_APP_ID, rv),
                Transaction::new(HWM_APP_ID, hwm),
            ]
        } else {
            Vec::new()
        };
        for (i, (table, name)) in tables.iter_mut().enumerate() {
            let name: &'static str = name;
            let batch = if i == 0 {
                state_batch(&ends)
            } else {
                let size = sizes[sizes.len() - i];
                let rows = windows.remove(&size).unwrap_or_default();
                *summary.rows.entry(name).or_default() += rows.len() as u64;
                occupancy_batch(&rows)
            };
            replace_days(table, name, batch, day, chunk_last, &txns).await?;
        }
        day = chunk_last + 1;
    }
    summary.hwm = Some(hwm);
    summary.readings_version = Some(rv);
    Ok(summary)
}

/// The distinct `date` partitions of a table, from its file list (no data is read).
pub fn partition_dates(table: &DeltaTable) -> Result<Vec<i32>> {
    let snapshot = table.snapshot().map_err(|e| Error::delta("readings", e))?;
    let mut dates: Vec<i32> = snapshot
        .log_data()
        .iter()
        .filter_map(|f| {
            f.partition_values_map()
                .get("date")
                .cloned()
                .flatten()
                .and_then(|d| log::parse_date(&d))
        })
        .collect();
    dates.sort_unstable();
    dates.dedup();
    Ok(dates)
}

/// Dates touched by the commits after `from` up to `to`; `None` when a commit file is gone
/// (log clean-up), so everything must be recomputed.
async fn touched_since(table: &DeltaTable, from: i64, to: i64) -> Result<Option<BTreeSet<i32>>> {
    let store = table.log_store();
    let mut dates = BTreeSet::new();
    for v in (from + 1)..=to {
        let Some(bytes) = store
            .read_commit_entry(u64::try_from(v).unwrap_or(0))
            .await
            .map_err(|e| Error::delta("readings", e))?
        else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        match log::touched_dates(&text) {
            Ok(Some(d)) => dates.extend(d),
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(version = v, %why, "cannot read a readings commit: recomputing all dates");
                return Ok(None);
            }
        }
    }
    Ok(Some(dates))
}

/// `(lot_id, space_id, ts, occupied)` of the rows of `table` (registered as `name`) on `day`.
async fn load_points(
    ctx: &datafusion::prelude::SessionContext,
    table: &str,
    name: &str,
    day: i32,
) -> Result<Vec<(String, String, TimestampMs, bool)>> {
    let sql = format!(
        "SELECT lot_id, space_id, ts, occupied FROM {name} WHERE date = {}",
        query::date_list(&[day])
    );
    let mut out = Vec::new();
    for b in query::collect(ctx, table, &sql).await? {
        let lots = query::string_column(&b, 0)?;
        let spaces = query::string_column(&b, 1)?;
        let ts = b.column(2).as_primitive::<TimestampMicrosecondType>();
        let occ = b.column(3).as_boolean();
        for i in 0..b.num_rows() {
            if lots.is_null(i) || spaces.is_null(i) {
                continue;
            }
            out.push((
                lots.value(i).to_owned(),
                spaces.value(i).to_owned(),
                ts.value(i) / 1000,
                occ.value(i),
            ));
        }
    }
    Ok(out)
}

async fn load_day(ctx: &datafusion::prelude::SessionContext, day: i32) -> Result<Vec<DayReading>> {
    Ok(load_points(ctx, "readings", "readings", day)
        .await?
        .into_iter()
        .map(|(lot_id, space_id, ts, occupied)| DayReading {
            lot_id,
            space_id,
            ts,
            occupied,
        })
        .collect())
}

async fn load_state(ctx: &datafusion::prelude::SessionContext, day: i32) -> Result<Vec<SpaceEnd>> {
    Ok(load_points(ctx, "_space_state", "space_state", day)
        .await?
        .into_iter()
        .map(|(lot_id, space_id, ts, occupied)| SpaceEnd {
            lot_id,
            space_id,
            ts,
            occupied,
        })
        .collect())
}

fn state_batch(ends: &[(i32, Vec<SpaceEnd>)]) -> RecordBatch {
    use arrow::array::{BooleanBuilder, Date32Builder, StringBuilder, TimestampMicrosecondBuilder};
    let mut lot = StringBuilder::new();
    let mut space = StringBuilder::new();
    let mut ts = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut occ = BooleanBuilder::new();
    let mut date = Date32Builder::new();
    for (d, rows) in ends {
        for r in rows {
            lot.append_value(&r.lot_id);
            space.append_value(&r.space_id);
            ts.append_value(r.ts * 1000);
            occ.append_value(r.occupied);
            date.append_value(*d);
        }
    }
    RecordBatch::try_new(
        state_schema(),
        vec![
            Arc::new(lot.finish()),
            Arc::new(space.finish()),
            Arc::new(ts.finish()),
            Arc::new(occ.finish()),
            Arc::new(date.finish()),
        ],
    )
    .unwrap_or_else(|e| unreachable!("state batch does not match its schema: {e}"))
}

/// Atomically replaces the partitions `first..=last` of `table` with `batch`.
async fn replace_days(
    table: &mut DeltaTable,
    name: &str,
    batch: RecordBatch,
    first: i32,
    last: i32,
    txns: &[Transaction],
) -> Result<()> {
    let predicate = format!(
        "date >= '{}' AND date <= '{}'",
        format_date(first),
        format_date(last)
    );
    let props = CommitProperties::default()
        .with_application_transactions(txns.to_vec())
        .with_metadata([(OPERATION_KEY.to_owned(), serde_json::json!("views"))]);
    let written = table
        .clone()
        .write(vec![batch])
        .with_save_mode(SaveMode::Overwrite)
        .with_replace_where(predicate)
        .with_commit_properties(props)
        .await
        .map_err(|e| Error::delta(name, e))?;
    *table = written;
    Ok(())
}

/// Records the readings version and high-water mark without rewriting anything.
async fn record_only(tables: &mut [(DeltaTable, &'static str)], rv: i64, hwm: i64) -> Result<()> {
    for (t, name) in tables.iter_mut() {
        commit::append(
            t,
            name,
            Vec::new(),
            vec![
                Transaction::new(READINGS_VERSION_APP_ID, rv),
                Transaction::new(HWM_APP_ID, hwm),
            ],
            "views",
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_water_mark_trails_the_data_and_the_clock() {
        let m = 10 * 60_000;
        // 65 s of slack, aligned down to 10 minutes.
        assert_eq!(high_water_mark(3 * m + 70_000, i64::MAX, 65_000, m), 3 * m);
        assert_eq!(high_water_mark(3 * m + 60_000, i64::MAX, 65_000, m), 2 * m);
        // A device clock in the future does not move it past now.
        assert_eq!(high_water_mark(100 * m, 5 * m + 70_000, 65_000, m), 5 * m);
    }

    #[test]
    fn the_high_water_mark_steps_by_a_multiple_of_every_window() {
        let min = 60_000;
        assert_eq!(alignment(&[min, 10 * min]), 10 * min);
        assert_eq!(alignment(&[15 * min, 10 * min, min]), 30 * min);
        assert_eq!(alignment(&[60 * min]), 60 * min);
        assert_eq!(86_400_000 % alignment(&[45 * min, 32 * min]), 0);
    }
}
