//! `fjord demo` starts with history: on a fresh data dir it lands [`HISTORY_DAYS`] days of
//! simulated readings of its lots (the weekly patterns of the live simulator) in the lake, then
//! computes the batch views and learns the forecast, so the dashboard, the analyst queries and
//! `occupancy_forecast` have something to show from the first minute. Skipped when the lake
//! already has readings, and with `--no-history`. [`write_history`] is also `fjord simulate
//! --history`.

use anyhow::Context;
use fjord_batch::{Job, Lake, Table};
use fjord_core::config::Config;
use fjord_core::time::now_ms;
use fjord_ingest::simulate::model::SimLot;
use std::path::Path;

/// Days of history landed (fewer for a large registry: see [`history_days`]).
pub const HISTORY_DAYS: i64 = 28;
/// Space-days of history at most (80 spaces × 28 days is about 57,000 readings; this bound keeps
/// a registry of thousands of spaces from writing gigabytes at start).
const MAX_SPACE_DAYS: i64 = 56_000;

/// Days of history for `spaces` spaces: [`HISTORY_DAYS`], fewer when there are more than 2,000
/// spaces, at least 2.
pub fn history_days(spaces: i64) -> i64 {
    (MAX_SPACE_DAYS / spaces.max(1)).clamp(2, HISTORY_DAYS)
}

/// Lands the history unless the lake has readings; prints what it does.
pub async fn land(config: &Config, lots: &[SimLot], seed: u64) -> anyhow::Result<()> {
    let lake = Lake::new(&config.lake_url(), &config.lake.storage_options)?;
    if let Some(t) = lake.open_existing(Table::Readings).await?
        && t.version().is_some_and(|v| v > 0)
    {
        println!("History: the lake already has readings; none added.");
        return Ok(());
    }
    let spaces: i64 = lots.iter().map(|l| i64::from(l.spaces)).sum();
    let days = history_days(spaces);
    let until = now_ms();
    let from = until - days * 86_400_000;
    let path = config.data_dir.join(".history.jsonl");
    let n = write_history(lots, from, until, seed, &path)?;
    println!(
        "History: landing {days} days of simulated parking ({n} readings of {} lots) in the lake; --no-history skips this.",
        lots.len()
    );
    let result = async {
        let import = fjord_batch::run_once(config, &lake, &Job::Import(vec![path.clone()]))
            .await
            .context("cannot import the simulated history")?;
        let views = fjord_batch::run_once(config, &lake, &Job::Views)
            .await
            .context("cannot compute the views of the simulated history")?;
        let forecast = fjord_batch::run_once(config, &lake, &Job::Forecast)
            .await
            .context("cannot learn the forecast from the simulated history")?;
        anyhow::Ok(import.seconds + views.seconds + forecast.seconds)
    }
    .await;
    let _ = std::fs::remove_file(&path);
    let seconds = result?;
    println!("History: landed, views computed and forecast learned in {seconds:.1} s.");
    Ok(())
}

/// Simulated history of `lots` in `[from, until)` as JSON lines in `out`; returns how many.
pub fn write_history(
    lots: &[SimLot],
    from: fjord_core::time::TimestampMs,
    until: fjord_core::time::TimestampMs,
    seed: u64,
    out: &Path,
) -> anyhow::Result<u64> {
    use std::io::Write as _;
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut failed = None;
    let n = fjord_ingest::simulate::history::generate(lots, from, until, seed, |r| {
        if failed.is_none()
            && let Err(e) = writeln!(w, "{}", r.to_json())
        {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(anyhow::Error::new(e).context(format!("cannot write {}", out.display())));
    }
    w.flush()
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_large_registry_gets_fewer_days() {
        assert_eq!(super::history_days(80), 28);
        assert_eq!(super::history_days(2_000), 28);
        assert_eq!(super::history_days(8_000), 7);
        assert_eq!(super::history_days(1_000_000), 2);
    }
}
