//! `fjord batch …`: runs a batch job once (exit status 0 on success, for external schedulers) or
//! on a schedule (`--every` / `--cron`) until Ctrl-C or SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use fjord_batch::{BatchMetrics, Cron, Job, Lake, Schedule};
use fjord_core::config::Config;
use fjord_core::duration::Duration;
use fjord_core::telemetry::{self, Metrics};

use crate::cli::{BatchArgs, BatchJob, Schedule as ScheduleArgs};

/// The job and its schedule from the command line.
fn job_of(args: BatchArgs) -> (Job, Option<ScheduleArgs>) {
    match args.job {
        BatchJob::Run(s) => (Job::Run, Some(s)),
        BatchJob::Ingest(s) => (Job::Ingest, Some(s)),
        BatchJob::Compact(s) => (Job::Compact, Some(s)),
        BatchJob::Views(s) => (Job::Views, Some(s)),
        BatchJob::Vacuum(s) => (Job::Vacuum, Some(s)),
        BatchJob::Import { files } => (Job::Import(files), None),
        BatchJob::Forecast { schedule, .. } => (Job::Forecast, Some(schedule)),
    }
}

/// `fjord batch forecast --evaluate DURATION`: the accuracy table; exit 1 unless the forecast
/// beats both baselines at every horizon.
async fn evaluate(config: &Config, lake: &Lake, holdout: Duration) -> anyhow::Result<ExitCode> {
    let e = match fjord_batch::forecast::evaluate(config, lake, holdout.as_millis_i64()).await {
        Ok(e) => e,
        Err(err) => {
            eprintln!("error: batch forecast --evaluate failed: {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "forecast accuracy: trained on occupancy_10m before {}, {} lots, mean absolute error of the occupancy ratio\n",
        fjord_core::time::format_rfc3339_ms(e.split),
        e.lots
    );
    println!("{e}");
    if e.beats_baselines() {
        println!("the forecast beats both baselines at every horizon");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("the forecast does NOT beat both baselines at every horizon");
        Ok(ExitCode::FAILURE)
    }
}

/// Parses `--every` / `--cron`.
pub fn schedule_of(args: &ScheduleArgs) -> Result<Option<Schedule>, String> {
    if let Some(every) = args.every {
        let ms = every.as_millis_i64();
        if ms < 1000 {
            return Err(format!("--every {every}: must be at least 1s"));
        }
        return Ok(Some(Schedule::Every(ms)));
    }
    if let Some(expr) = &args.cron {
        return Cron::parse(expr)
            .map(|c| Some(Schedule::Cron(c)))
            .map_err(|e| format!("--cron: {e}"));
    }
    Ok(None)
}

/// The lake of `config`.
pub fn lake_of(config: &Config) -> anyhow::Result<Lake> {
    Ok(Lake::new(&config.lake_url(), &config.lake.storage_options)?)
}

/// `fjord batch`
pub fn batch(config: Config, args: BatchArgs) -> anyhow::Result<ExitCode> {
    telemetry::init_tracing(&config.log)?;
    let holdout = match &args.job {
        BatchJob::Forecast { evaluate, .. } => *evaluate,
        _ => None,
    };
    let (job, schedule_args) = job_of(args);
    let schedule = match schedule_args.as_ref().map(schedule_of).transpose() {
        Ok(s) => s.flatten(),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let lake = lake_of(&config)?;
        if let Some(holdout) = holdout {
            return evaluate(&config, &lake, holdout).await;
        }
        match schedule {
            None => match fjord_batch::run_once(&config, &lake, &job).await {
                Ok(summary) => {
                    println!("batch {} done\n{summary}", job.name());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: batch {} failed: {e}", job.name());
                    Ok(ExitCode::FAILURE)
                }
            },
            Some(schedule) => {
                let shutdown = crate::lifecycle::shutdown_signal()?;
                let metrics = Metrics::new();
                let ready = telemetry::Readiness::not_ready("the first run has not finished");
                let batch_metrics = BatchMetrics::new(&metrics)?.with_readiness(ready.clone());
                if let Some(listen) = config.batch.metrics_listen {
                    let addr =
                        telemetry::serve_metrics(listen, metrics.clone(), ready, shutdown.clone())
                            .await?;
                    tracing::info!(%addr, "metrics at /metrics, probes at /healthz and /readyz");
                }
                fjord_batch::run_scheduled(
                    &config,
                    &lake,
                    &job,
                    &schedule,
                    Some(&batch_metrics),
                    shutdown,
                )
                .await?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// Loads the config and runs `fjord batch`.
pub fn command(path: Option<&Path>, args: BatchArgs) -> anyhow::Result<ExitCode> {
    match Config::load_from_env(path) {
        Ok(c) => batch(c, args),
        Err(e) => {
            eprint!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
