//! The long-running commands: load the config, set up logs and metrics, run the component on a
//! tokio runtime until Ctrl-C or SIGTERM, and print its summary.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use fjord_core::config::Config;
use fjord_core::telemetry::{self, Metrics};
use fjord_ingest::acl::Acl;
use fjord_ingest::http::HttpIngest;
use fjord_ingest::metrics::IngestMetrics;
use fjord_ingest::simulate::model::{Faults, SimLot};
use fjord_ingest::simulate::{self, SimulateOptions};

use crate::cli::{DemoArgs, SimulateArgs};
use crate::lifecycle::{run_stream, shutdown_signal};

/// Loads the config (file + environment); prints every problem and returns `None` when invalid.
fn load(path: Option<&Path>) -> Option<Config> {
    match Config::load_from_env(path) {
        Ok(c) => Some(c),
        Err(e) => {
            eprint!("{e}");
            None
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// `fjord demo`
pub fn demo(path: Option<&Path>, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let Some(config) = load(path) else {
        return Ok(ExitCode::FAILURE);
    };
    let metrics = Metrics::new();
    let drops = fjord_ingest::broker::DropCounter::new(&metrics)?;
    telemetry::init_tracing_with(&config.log, vec![Box::new(drops)])?;
    runtime()?.block_on(crate::demo::run(args, config, metrics))?;
    Ok(ExitCode::SUCCESS)
}

/// `fjord bridge`
pub fn bridge(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(config) = load(path) else {
        return Ok(ExitCode::FAILURE);
    };
    telemetry::init_tracing(&config.log)?;
    runtime()?.block_on(async {
        let metrics = Metrics::new();
        let ingest = IngestMetrics::new(&metrics)?;
        let shutdown = shutdown_signal()?;
        fjord_ingest::bridge::ensure_topics(&config).await;
        if let Some(listen) = config.bridge.http_listen {
            let http = HttpIngest::new(
                &config,
                Acl::new(config.all_credentials()),
                ingest.clone(),
                metrics.clone(),
            )?;
            let router = http.bridge_router();
            let stop = shutdown.clone();
            let tls = fjord_core::tls::server_config(&config.tls, fjord_core::tls::ALPN_HTTP)?;
            tokio::spawn(async move {
                if let Err(e) = fjord_ingest::http::serve(router, listen, tls, stop).await {
                    tracing::error!(error = %e, "HTTP ingest stopped");
                }
            });
            tracing::info!(%listen, "HTTP ingest and /metrics listening");
        }
        let summary = fjord_ingest::bridge::run(&config, ingest, shutdown).await?;
        println!(
            "bridge stopped: {} received, {} forwarded, {} dead-lettered, {} acknowledged, {} redelivered",
            summary.received, summary.forwarded, summary.dead_lettered, summary.acked, summary.redelivered
        );
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// `fjord stream`: the processor and, when webhooks are configured, their delivery.
pub fn stream(path: Option<&Path>, args: &crate::cli::StreamArgs) -> anyhow::Result<ExitCode> {
    let Some(config) = load(path) else {
        return Ok(ExitCode::FAILURE);
    };
    telemetry::init_tracing(&config.log)?;
    runtime()?.block_on(async {
        let metrics = Metrics::new();
        let shutdown = shutdown_signal()?;
        let listen = if args.only_deliver {
            config.alerts.delivery.metrics_listen
        } else {
            config.stream.metrics_listen
        };
        // ready once the consumer group assigned this instance its partitions (a delivery-only
        // instance: once it runs)
        let ready = telemetry::Readiness::not_ready("waiting for the consumer group's assignment");
        if args.only_deliver {
            ready.set_ready();
        }
        if let Some(listen) = listen {
            let addr =
                telemetry::serve_metrics(listen, metrics.clone(), ready.clone(), shutdown.clone())
                    .await?;
            tracing::info!(%addr, "metrics at /metrics, probes at /healthz and /readyz");
        }
        let deliver = !args.no_deliver && !config.alerts.webhooks.is_empty();
        if args.only_deliver && config.alerts.webhooks.is_empty() {
            eprintln!("error: --only-deliver needs at least one [[alerts.webhooks]] in the config");
            return Ok(ExitCode::from(2));
        }
        let delivery = deliver.then(|| {
            let (config, stop) = (config.clone(), shutdown.clone());
            let metrics = fjord_stream::metrics::DeliveryMetrics::new(&metrics);
            tokio::spawn(async move { fjord_stream::delivery::run(&config, metrics?, stop).await })
        });
        if !args.only_deliver {
            let stream_metrics = fjord_stream::metrics::StreamMetrics::new(&metrics)?;
            if let Err(e) = fjord_stream::runtime::ensure_topics(&config).await {
                tracing::warn!(error = %e, "could not create the stream topics; they must exist");
            }
            // an error ends the process, and delivery with it: what it had not settled is sent
            // again by the next run
            let forecast = crate::lifecycle::forecast_profiles(&config, &shutdown).await?;
            let summary =
                run_stream(
                config,
                stream_metrics,
                shutdown.clone(),
                fjord_stream::runtime::RunOptions {
                    ready: Some(ready),
                    forecast,
                    ..Default::default()
                },
            )
            .await?;
            println!(
                "stream stopped: {} records, {} windows, {} alerts, {} late, {} duplicates, {} dead-lettered, {} commits",
                summary.records, summary.windows, summary.alerts, summary.late, summary.duplicates, summary.dead, summary.commits
            );
        }
        if let Some(task) = delivery {
            for s in task.await?? {
                println!(
                    "webhook {}: {} delivered, {} dead-lettered, {} retries",
                    s.webhook, s.delivered, s.dead_lettered, s.retries
                );
            }
        }
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// The lots to simulate: `--lots`/`--spaces`, else the registry, else 3 lots of 40 spaces.
pub fn sim_lots(
    config: &Config,
    lots: Option<u32>,
    spaces: Option<u32>,
) -> anyhow::Result<Vec<SimLot>> {
    let registry = config.lots_registry()?;
    if lots.is_none() && !registry.is_empty() {
        return Ok(registry
            .iter()
            .map(|l| SimLot {
                lot_id: l.lot_id.clone(),
                spaces: spaces.unwrap_or(l.capacity),
            })
            .collect());
    }
    Ok((1..=lots.unwrap_or(3))
        .map(|i| SimLot {
            lot_id: format!("lot-{i}"),
            spaces: spaces.unwrap_or(40),
        })
        .collect())
}

/// `fjord simulate`
pub fn simulate(path: Option<&Path>, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let Some(mut config) = load(path) else {
        return Ok(ExitCode::FAILURE);
    };
    telemetry::init_tracing(&config.log)?;
    if let (Some(span), Some(out)) = (args.history, &args.out) {
        let lots = sim_lots(&config, args.lots, args.spaces)?;
        let until = match &args.history_end {
            Some(t) => fjord_core::time::parse_rfc3339(t)
                .map_err(|e| anyhow::anyhow!("--history-end {t:?}: {e}"))?,
            None => fjord_core::time::now_ms(),
        };
        let n = crate::demo::history::write_history(
            &lots,
            until - span.as_millis_i64(),
            until,
            args.seed,
            out,
        )?;
        println!(
            "{n} readings of {span} of simulated history ({} lots) written to {}",
            lots.len(),
            out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(url) = args.mqtt {
        config.mqtt.url = url;
    }
    if args.username.is_some() {
        config.mqtt.username = args.username;
    }
    if args.password.is_some() {
        config.mqtt.password = args.password;
    }
    if args.ca_file.is_some() {
        config.mqtt.ca_file = args.ca_file;
    }
    let rate = match args.rate.as_str() {
        "max" => None,
        r => Some(
            r.parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0)
                .with_context(|| format!("--rate must be a positive number or `max`, got {r:?}"))?,
        ),
    };
    for (name, p) in [
        ("--duplicates", args.duplicates),
        ("--out-of-order", args.out_of_order),
        ("--late", args.late),
        ("--garbage", args.garbage),
        ("--silent", args.silent),
        ("--low-battery", args.low_battery),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&p),
            "{name} must be between 0 and 1, got {p}"
        );
    }
    let opts = SimulateOptions {
        lots: sim_lots(&config, args.lots, args.spaces)?,
        mqtt: config.mqtt.clone(),
        rate,
        duration: args.duration.map(Into::into),
        count: args.count,
        seed: args.seed,
        faults: Faults {
            duplicate: args.duplicates,
            out_of_order: args.out_of_order,
            late: args.late,
            garbage: args.garbage,
            silent: args.silent,
            low_battery: args.low_battery,
        },
        inflight: args.inflight,
        record: args.record,
    };
    let summary = runtime()?.block_on(async {
        let shutdown = shutdown_signal()?;
        Ok::<_, anyhow::Error>(simulate::run(opts, shutdown).await?)
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `fjord sql`: one read-only query against the lake, printed as a table, CSV or JSON. Exit 1 with
/// the reason when the query is refused or fails.
pub fn sql(path: Option<&Path>, args: &crate::cli::SqlArgs) -> anyhow::Result<ExitCode> {
    let Some(config) = load(path) else {
        return Ok(ExitCode::FAILURE);
    };
    let format: fjord_queries::format::Format = match args.format.parse() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let result = runtime()?.block_on(fjord_queries::exec::query(&config, &args.query));
    match result.and_then(|batches| fjord_queries::format::write(&batches, format)) {
        Ok(text) => {
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `fjord serve`: the query server (HTTP API and dashboard, Postgres wire, Flight SQL) until SIGINT/SIGTERM.
pub fn serve(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(config) = load(path) else {
        return Ok(ExitCode::FAILURE);
    };
    telemetry::init_tracing(&config.log)?;
    let (token, generated) = match &config.auth.token {
        Some(t) => (t.clone(), false),
        None => (crate::lifecycle::generate_token(), true),
    };
    runtime()?.block_on(async {
        let metrics = Metrics::new();
        let shutdown = shutdown_signal()?;
        let server = fjord_queries::serve::start(
            &config,
            fjord_queries::auth::Credentials::new(token.clone()),
            &metrics,
            fjord_queries::serve::Options::default(),
            shutdown.clone(),
        )
        .await?;
        if generated {
            println!("auth.token is not set; this run's token: {token}");
        }
        println!("dashboard     http://{}/#token={token}", server.http);
        println!("SQL over HTTP curl -H 'Authorization: Bearer {token}' --data 'SELECT * FROM occupancy_live' http://{}/api/sql", server.http);
        println!(
            "postgres      PGPASSWORD={token} psql -h {} -p {} -U {} fjord",
            server.pg.ip(),
            server.pg.port(),
            fjord_queries::auth::USER
        );
        println!(
            "flight sql    grpc://{} (user {}, password {token}, or header 'authorization: Bearer {token}')",
            server.flight,
            fjord_queries::auth::USER
        );
        for task in server.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "query server interface failed"),
                Err(e) => tracing::error!(error = %e, "query server task panicked"),
            }
        }
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}
