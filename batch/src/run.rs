//! Running batch jobs: once (for cron, Kubernetes CronJobs, Airflow — exit status says whether it
//! worked) or on a [`Schedule`], with a summary line per run and Prometheus metrics.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use fjord_core::config::Config;
use fjord_core::telemetry::Metrics;
use fjord_core::time::{format_rfc3339_ms, now_ms};
use prometheus::{IntCounterVec, IntGauge, Opts};
use tokio::sync::watch;

use crate::compact::{CompactSummary, compact};
use crate::error::{Error, Result};
use crate::forecast::{ForecastSummary, train};
use crate::import::{ImportSummary, import};
use crate::ingest::{IngestSummary, ingest};
use crate::lake::Lake;
use crate::schedule::Schedule;
use crate::vacuum::{VacuumSummary, vacuum};
use crate::views::{ViewsSummary, views};

/// A batch job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// ingest → compact → views → forecast.
    Run,
    /// Kafka → `readings`.
    Ingest,
    /// Small files → large sorted files.
    Compact,
    /// The batch views.
    Views,
    /// Delete unreferenced files.
    Vacuum,
    /// Files → `readings`.
    Import(Vec<PathBuf>),
    /// `occupancy_10m` → `forecast_profile`.
    Forecast,
}

impl Job {
    /// The job's name in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Job::Run => "run",
            Job::Ingest => "ingest",
            Job::Compact => "compact",
            Job::Views => "views",
            Job::Vacuum => "vacuum",
            Job::Import(_) => "import",
            Job::Forecast => "forecast",
        }
    }
}

/// What a job did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Ingest part.
    pub ingest: Option<IngestSummary>,
    /// Compaction part.
    pub compact: Option<CompactSummary>,
    /// Views part.
    pub views: Option<ViewsSummary>,
    /// Vacuum part.
    pub vacuum: Option<VacuumSummary>,
    /// Import part.
    pub import: Option<ImportSummary>,
    /// Forecast part.
    pub forecast: Option<ForecastSummary>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(i) = &self.ingest {
            parts.push(format!(
                "ingest: {} records → {} rows ({} duplicates, {} quarantined), {} files, {} bytes, {} commits",
                i.records, i.rows, i.duplicates, i.quarantined, i.files, i.bytes, i.commits
            ));
            if i.alert_records > 0 {
                parts.push(format!(
                    "  alerts: {} records → {} rows",
                    i.alert_records, i.alerts
                ));
            }
            for r in &i.resets {
                parts.push(format!("  reset: {r}"));
            }
        }
        if let Some(i) = &self.import {
            let secs = self.seconds.max(1e-9);
            parts.push(format!(
                "import: {} lines ({} MB) → {} rows ({} duplicates, {} quarantined), {} files, {} bytes, {} commits; \
                 {:.0} lines/s, {:.1} MB/s of input",
                i.lines,
                i.input_bytes / 1_000_000,
                i.rows,
                i.duplicates,
                i.quarantined,
                i.files,
                i.bytes,
                i.commits,
                i.lines as f64 / secs,
                i.input_bytes as f64 / 1e6 / secs
            ));
        }
        if let Some(c) = &self.compact {
            parts.push(format!(
                "compact: {} partitions, {} → {} files, {} bytes rewritten{}",
                c.partitions,
                c.files_before,
                c.files_after,
                c.bytes,
                if c.skipped > 0 {
                    format!(", {} skipped (changed concurrently)", c.skipped)
                } else {
                    String::new()
                }
            ));
        }
        if let Some(v) = &self.views {
            if self.ingest.is_none() {
                parts.push(format!(
                    "views throughput: {:.0} readings/s",
                    v.readings as f64 / self.seconds.max(1e-9)
                ));
            }
            parts.push(format!(
                "views: {} days from {} readings → {}; high-water mark {}",
                v.days,
                v.readings,
                if v.rows.is_empty() {
                    "no rows".to_owned()
                } else {
                    v.rows
                        .iter()
                        .map(|(t, n)| format!("{n} rows {t}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                v.hwm.map_or_else(|| "none".into(), format_rfc3339_ms)
            ));
        }
        if let Some(fc) = &self.forecast {
            parts.push(fc.to_string());
        }
        if let Some(v) = &self.vacuum {
            parts.push(format!("vacuum: {} files deleted", v.files_deleted));
        }
        parts.push(format!("in {:.1} s", self.seconds));
        write!(f, "{}", parts.join("\n"))
    }
}

/// Runs `job` once.
pub async fn run_once(cfg: &Config, lake: &Lake, job: &Job) -> Result<Summary> {
    let started = Instant::now();
    let mut s = Summary::default();
    match job {
        Job::Run => {
            s.ingest = Some(ingest(cfg, lake).await?);
            s.compact = Some(compact(cfg, lake).await?);
            s.views = Some(views(cfg, lake).await?);
            s.forecast = Some(train(cfg, lake).await?);
        }
        Job::Ingest => s.ingest = Some(ingest(cfg, lake).await?),
        Job::Compact => s.compact = Some(compact(cfg, lake).await?),
        Job::Views => s.views = Some(views(cfg, lake).await?),
        Job::Vacuum => s.vacuum = Some(vacuum(cfg, lake).await?),
        Job::Import(paths) => s.import = Some(import(cfg, lake, paths).await?),
        Job::Forecast => s.forecast = Some(train(cfg, lake).await?),
    }
    s.seconds = started.elapsed().as_secs_f64();
    Ok(s)
}

/// Metrics of scheduled runs.
#[derive(Clone)]
pub struct BatchMetrics {
    runs: IntCounterVec,
    rows: IntCounterVec,
    last_success: IntGauge,
    /// `/readyz` of a scheduled batch: ready while the last run succeeded.
    ready: Option<fjord_core::telemetry::Readiness>,
}

impl BatchMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Metrics) -> Result<Self> {
        let e = |err: prometheus::Error| Error::Core(fjord_core::Error::Telemetry(err.to_string()));
        let m = Self {
            runs: IntCounterVec::new(
                Opts::new("batch_runs_total", "Batch job runs, by job and outcome"),
                &["job", "outcome"],
            )
            .map_err(e)?,
            rows: IntCounterVec::new(
                Opts::new("batch_rows_total", "Rows written to the lake, by table"),
                &["table"],
            )
            .map_err(e)?,
            last_success: IntGauge::new(
                "batch_last_success_timestamp_seconds",
                "When a batch job last succeeded (Unix seconds)",
            )
            .map_err(e)?,
            ready: None,
        };
        registry.register(&m.runs)?;
        registry.register(&m.rows)?;
        registry.register(&m.last_success)?;
        Ok(m)
    }

    /// Also reports each run's outcome to `ready`: ready after a successful run, not ready (with
    /// the error) after a failed one.
    #[must_use]
    pub fn with_readiness(mut self, ready: fjord_core::telemetry::Readiness) -> Self {
        self.ready = Some(ready);
        self
    }

    fn record(&self, job: &Job, result: &Result<Summary>) {
        match result {
            Ok(s) => {
                self.runs.with_label_values(&[job.name(), "ok"]).inc();
                self.last_success.set(now_ms() / 1000);
                let rows = |t: &str, n: u64| self.rows.with_label_values(&[t]).inc_by(n);
                if let Some(i) = &s.ingest {
                    rows("readings", i.rows);
                    rows("quarantine", i.quarantined);
                }
                if let Some(i) = &s.import {
                    rows("readings", i.rows);
                    rows("quarantine", i.quarantined);
                }
                if let Some(v) = &s.views {
                    for (table, n) in &v.rows {
                        rows(table, *n);
                    }
                }
            }
            Err(_) => self.runs.with_label_values(&[job.name(), "failed"]).inc(),
        }
        if let Some(ready) = &self.ready {
            match result {
                Ok(_) => ready.set_ready(),
                Err(e) => ready.set_not_ready(format!("the last {} run failed: {e}", job.name())),
            }
        }
    }
}

/// Runs `job` on `schedule` until `shutdown` turns true. A failed run is logged and retried at
/// the next tick (the lake is never left half-written, so the next run picks up cleanly).
pub async fn run_scheduled(
    cfg: &Config,
    lake: &Lake,
    job: &Job,
    schedule: &Schedule,
    metrics: Option<&BatchMetrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    loop {
        let result = run_once(cfg, lake, job).await;
        if let Some(m) = metrics {
            m.record(job, &result);
        }
        match &result {
            Ok(s) => tracing::info!(job = job.name(), "batch run done\n{s}"),
            Err(e) => {
                tracing::error!(job = job.name(), error = %e, "batch run failed; retrying at the next tick")
            }
        }
        let next = schedule.next_after(now_ms());
        tracing::info!(job = job.name(), next = %format_rfc3339_ms(next), "next batch run");
        let wait = std::time::Duration::from_millis(u64::try_from(next - now_ms()).unwrap_or(0));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
    }
}
