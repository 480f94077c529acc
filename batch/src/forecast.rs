//! `fjord batch forecast` (also the last step of `fjord batch run`): learns each lot's profile
//! from the final windows of `occupancy_10m` (those up to the batch high-water mark, the latest
//! `forecast.history` of them) and writes it to the lake table `forecast_profile`
//! (docs/contract.md §4.4). Skipped when the profile already covers the high-water mark.
//! `--evaluate 7d` runs the backtest of the accuracy table instead and writes nothing.

use std::fmt;

use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int32Type, TimestampMicrosecondType};
use fjord_core::config::Config;
use fjord_core::forecast::evaluate::{Evaluation, evaluate as backtest};
use fjord_core::forecast::learn::{Series, WindowObs, learn};
use fjord_core::forecast::{STEP_MS, floor_step};
use fjord_core::time::{TimestampMs, epoch_day, format_date, format_rfc3339_ms};
use fjord_lake::forecast::{load_profiles, write_profiles};
use fjord_lake::hwm::HWM_APP_ID;

use crate::Table;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::query::{collect, session, string_column, ts_literal};

/// The horizons of the accuracy table, in 10-minute steps: 10 min, 1 h, 3 h, 24 h.
pub const HORIZONS: [usize; 4] = [1, 6, 18, 144];

/// What a training did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForecastSummary {
    /// Lots with a profile.
    pub lots: usize,
    /// Windows learned from.
    pub windows: u64,
    /// The model version now in the lake.
    pub model_version: Option<String>,
    /// Why nothing was trained, if so.
    pub skipped: Option<String>,
}

impl fmt::Display for ForecastSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.skipped, &self.model_version) {
            (Some(why), _) => write!(f, "forecast: skipped ({why})"),
            (None, Some(v)) => write!(
                f,
                "forecast: {} lots from {} windows → model {v}",
                self.lots, self.windows
            ),
            (None, None) => write!(f, "forecast: nothing to learn from"),
        }
    }
}

/// The final windows of `occupancy_10m` starting at or after `from`, and the high-water mark
/// (windows end at or before it); `None` when there is no such table or mark yet.
pub async fn final_windows(
    lake: &Lake,
    from: Option<TimestampMs>,
) -> Result<Option<(Series, TimestampMs, u64)>> {
    let table = Table::Occupancy(STEP_MS);
    let name = table.name();
    let Some(t) = lake.open_existing(table).await? else {
        return Ok(None);
    };
    let Some(hwm) = fjord_lake::hwm::txn_version(&t, name, HWM_APP_ID).await? else {
        return Ok(None);
    };
    let hwm = floor_step(hwm);
    let ctx = session(&[(name, &t)]).await?;
    let mut sql = format!(
        "SELECT lot_id, window_start, occupancy_ratio, occupied_end, capacity FROM {name} \
         WHERE window_end <= {}",
        ts_literal(hwm)
    );
    if let Some(from) = from {
        sql.push_str(&format!(
            " AND date >= DATE '{}' AND window_start >= {}",
            format_date(epoch_day(from)),
            ts_literal(from)
        ));
    }
    let mut series = Series::new();
    let mut n = 0;
    for b in collect(&ctx, name, &sql).await? {
        let lots = string_column(&b, 0)?;
        let start = b.column(1).as_primitive::<TimestampMicrosecondType>();
        let ratio = b.column(2).as_primitive::<Float64Type>();
        let end = b.column(3).as_primitive::<Int32Type>();
        let cap = b.column(4).as_primitive::<Int32Type>();
        for i in 0..b.num_rows() {
            let capacity = u32::try_from(cap.value(i)).unwrap_or(0);
            let end_ratio = if capacity == 0 {
                0.0
            } else {
                f64::from(end.value(i)) / f64::from(capacity)
            };
            series.entry(lots.value(i).to_owned()).or_default().insert(
                start.value(i) / 1000,
                WindowObs {
                    ratio: ratio.value(i),
                    end_ratio,
                    capacity,
                },
            );
            n += 1;
        }
    }
    Ok(Some((series, hwm, n)))
}

/// Learns the profiles and writes them to the lake, unless the lake's already cover the
/// high-water mark.
pub async fn train(cfg: &Config, lake: &Lake) -> Result<ForecastSummary> {
    if !cfg.forecast_enabled() {
        return Ok(ForecastSummary {
            skipped: Some("off: forecast.enabled is false or stream.windows has no 10m".into()),
            ..ForecastSummary::default()
        });
    }
    let hwm = match lake.open_existing(Table::Occupancy(STEP_MS)).await? {
        Some(t) => fjord_lake::hwm::txn_version(&t, "occupancy_10m", HWM_APP_ID)
            .await?
            .map(floor_step),
        None => None,
    };
    let Some(hwm) = hwm else {
        return Ok(ForecastSummary {
            skipped: Some("occupancy_10m has no final windows yet".into()),
            ..ForecastSummary::default()
        });
    };
    // a table this fjord cannot read (an older schema, a torn rewrite) is replaced, not a failure
    let current = match load_profiles(lake).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "the forecast profiles in the lake cannot be read; retraining");
            None
        }
    };
    if let Some(current) = current
        && current.trained_through >= hwm
    {
        return Ok(ForecastSummary {
            lots: current.lots.len(),
            model_version: Some(current.model_version.clone()),
            skipped: Some(format!("model {} is up to date", current.model_version)),
            ..ForecastSummary::default()
        });
    }
    let from = hwm - cfg.forecast.history.as_millis_i64();
    let Some((series, until, windows)) = final_windows(lake, Some(from)).await? else {
        return Ok(ForecastSummary::default());
    };
    let profiles = learn(&series, from, until);
    if profiles.lots.is_empty() {
        return Ok(ForecastSummary {
            windows,
            skipped: Some("no lot has a day of windows yet".into()),
            ..ForecastSummary::default()
        });
    }
    write_profiles(lake, &profiles).await?;
    tracing::info!(
        model = %profiles.model_version,
        lots = profiles.lots.len(),
        windows,
        "forecast profiles written"
    );
    Ok(ForecastSummary {
        lots: profiles.lots.len(),
        windows,
        model_version: Some(profiles.model_version),
        skipped: None,
    })
}

/// The backtest: learn from the windows before the last `holdout_ms` (at most
/// `forecast.history` of them) and score forecasts of the rest at [`HORIZONS`].
pub async fn evaluate(cfg: &Config, lake: &Lake, holdout_ms: i64) -> Result<Evaluation> {
    let history = cfg.forecast.history.as_millis_i64();
    let hwm = match lake.open_existing(Table::Occupancy(STEP_MS)).await? {
        Some(t) => fjord_lake::hwm::txn_version(&t, "occupancy_10m", HWM_APP_ID).await?,
        None => None,
    };
    // the training span before the held-out days, and those days (not the whole table)
    let from = hwm.map(|h| floor_step(h - holdout_ms) - history);
    let Some((series, hwm, _)) = final_windows(lake, from).await? else {
        return Err(Error::Config(
            "occupancy_10m has no final windows: land readings and run `fjord batch views` first"
                .into(),
        ));
    };
    let split = floor_step(hwm - holdout_ms);
    let from = split - history;
    let first = series
        .values()
        .filter_map(|w| w.keys().next().copied())
        .min()
        .unwrap_or(split);
    if first >= split {
        return Err(Error::Config(format!(
            "no windows before {} to learn from: the lake's occupancy_10m starts at {}",
            format_rfc3339_ms(split),
            format_rfc3339_ms(first)
        )));
    }
    Ok(backtest(&series, from, split, &HORIZONS))
}
