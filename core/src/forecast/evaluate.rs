//! The backtest behind the accuracy table (docs/contract.md §4.4): learn the profiles from the
//! windows before `split`, then, from every 10-minute origin after it, forecast the windows
//! ahead and compare the mean absolute error of the occupancy ratio with two baselines:
//! *last value* (the ratio of the window just closed) and *same time last week* (the ratio of
//! the target window seven days earlier). Only targets that all three can forecast are counted.
//! Pure.

use std::fmt;

use super::learn::{Series, learn};
use super::predict::{Observed, predict};
use super::{SLOTS_PER_WEEK, STEP_MS};
use crate::time::TimestampMs;

/// The scores at one horizon.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Score {
    /// Horizon in steps of 10 minutes.
    pub steps: usize,
    /// Forecasts compared.
    pub n: u64,
    /// MAE of the forecast.
    pub forecast: f64,
    /// MAE of the last value.
    pub last_value: f64,
    /// MAE of the same time last week.
    pub last_week: f64,
    /// Share of actual values inside the forecast's 10–90 % interval.
    pub coverage: f64,
}

/// The backtest's result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evaluation {
    /// Training data ends (and forecasting starts) here.
    pub split: TimestampMs,
    /// Lots with a profile.
    pub lots: usize,
    /// One per horizon asked for.
    pub scores: Vec<Score>,
}

/// Learns from windows in `[from, split)` and scores forecasts from every origin at or after
/// `split`, at `horizons` (in steps).
pub fn evaluate(
    series: &Series,
    from: TimestampMs,
    split: TimestampMs,
    horizons: &[usize],
) -> Evaluation {
    let profiles = learn(series, from, split);
    let week = i64::try_from(SLOTS_PER_WEEK).unwrap_or(0) * STEP_MS;
    let max = horizons.iter().copied().max().unwrap_or(0);
    let mut sums = vec![(0u64, 0.0, 0.0, 0.0, 0u64); horizons.len()];
    for (lot, p) in &profiles.lots {
        let Some(windows) = series.get(lot) else {
            continue;
        };
        for (&origin, _) in windows.range(split..) {
            let Some(last) = windows.get(&(origin - STEP_MS)) else {
                continue;
            };
            let obs = Observed {
                at: origin,
                ratio: last.end_ratio,
            };
            let steps: Vec<_> = predict(p, origin, Some(obs), max).collect();
            for (i, &h) in horizons.iter().enumerate() {
                let Some(step) = h.checked_sub(1).and_then(|k| steps.get(k)) else {
                    continue;
                };
                let (Some(actual), Some(week_ago)) = (
                    windows.get(&step.target_time),
                    windows.get(&(step.target_time - week)),
                ) else {
                    continue;
                };
                let s = &mut sums[i];
                s.0 += 1;
                s.1 += (step.ratio - actual.ratio).abs();
                s.2 += (last.ratio - actual.ratio).abs();
                s.3 += (week_ago.ratio - actual.ratio).abs();
                if (step.lower..=step.upper).contains(&actual.ratio) {
                    s.4 += 1;
                }
            }
        }
    }
    let scores = horizons
        .iter()
        .zip(sums)
        .map(|(&steps, (n, f, l, w, c))| {
            let div = |x: f64| if n == 0 { f64::NAN } else { x / n as f64 };
            Score {
                steps,
                n,
                forecast: div(f),
                last_value: div(l),
                last_week: div(w),
                coverage: div(c as f64),
            }
        })
        .collect();
    Evaluation {
        split,
        lots: profiles.lots.len(),
        scores,
    }
}

impl Evaluation {
    /// Whether the forecast beats both baselines at every horizon (and was scored at all).
    pub fn beats_baselines(&self) -> bool {
        !self.scores.is_empty()
            && self
                .scores
                .iter()
                .all(|s| s.n > 0 && s.forecast < s.last_value && s.forecast < s.last_week)
    }
}

/// `60` → `1 h`, `10` → `10 min`.
fn horizon_text(steps: usize) -> String {
    let minutes = steps * 10;
    if minutes.is_multiple_of(60) {
        format!("{} h", minutes / 60)
    } else {
        format!("{minutes} min")
    }
}

impl fmt::Display for Evaluation {
    /// A Markdown table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| horizon | fjord forecast | last value | same time last week | 10–90 % interval covers | forecasts |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|")?;
        for s in &self.scores {
            writeln!(
                f,
                "| {} | **{:.4}** | {:.4} | {:.4} | {:.0} % | {} |",
                horizon_text(s.steps),
                s.forecast,
                s.last_value,
                s.last_week,
                s.coverage * 100.0,
                s.n
            )?;
        }
        Ok(())
    }
}
