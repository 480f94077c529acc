//! `fjord demo`: the whole pipeline in one process on embedded defaults.
//!
//! Starts the embedded MQTT broker (user `fjord` with the auth token, plus `[[credentials]]`) and the
//! embedded Kafka-protocol cluster (librdkafka's mock cluster: in memory, empty at every start)
//! unless `--mqtt` / `--kafka` point at external ones, creates fjord's topics, takes MQTT into Kafka
//! (the embedded broker's front does it itself; with `--mqtt`, the bridge), runs HTTP ingest, the
//! stream processor, the batch layer, the query server and the device simulator, writes
//! `<data-dir>/endpoints.json` and prints how to connect. Ctrl-C (or SIGTERM) stops everything
//! cleanly — what is in flight to Kafka is finished first — and removes
//! `endpoints.json`, so a script never finds the endpoints of a demo that is gone.

//!
//! `run` goes through the phases in order: [`prepare`] (token, TLS, lots), [`start_kafka`],
//! [`start_mqtt`], the interfaces and processors, then the [`endpoints`] file and banner, and at
//! the end [`Running::stop`], which reports what each part did. The batch task first lands the
//! [`history`] of a fresh data dir.

mod endpoints;
pub mod history;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use fjord_core::config::Config;
use fjord_core::kafka::{self, Topics};
use fjord_core::lots::LotsRegistry;
use fjord_core::telemetry::Metrics;
use fjord_ingest::acl::Acl;
use fjord_ingest::broker::EmbeddedBroker;
use fjord_ingest::broker::intake::Intake;
use fjord_ingest::http::HttpIngest;
use fjord_ingest::metrics::IngestMetrics;
use fjord_ingest::simulate::model::{Faults, SimLot};
use fjord_ingest::simulate::{self, SimulateOptions};
use rand::Rng;
use rdkafka::mocking::MockCluster;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::DemoArgs;
use crate::lifecycle::shutdown_signal;
use endpoints::{Endpoints, MqttEndpoint, Started};

/// The user name every demo interface accepts, with the auth token as password.
const DEMO_USER: &str = "fjord";

/// The simulator's pace in the demo: a lively but readable stream.
const DEMO_RATE: f64 = 20.0;

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs, mut config: Config, metrics: Metrics) -> anyhow::Result<()> {
    let (token, demo_ca) = prepare(&args, &mut config)?;
    let lots = config.lots_registry()?;

    let shutdown = shutdown_signal()?;
    let ingest_metrics = IngestMetrics::new(&metrics)?;
    // the cluster must outlive everything using it
    let (cluster, topics) = start_kafka(&args, &mut config).await?;
    let (mqtt, broker) = start_mqtt(&args, &mut config, &token, &metrics, &ingest_metrics).await?;
    config.mqtt.client_id = "fjord-demo-bridge".into();

    // The bridge (for an external MQTT broker only) and HTTP ingest.
    let bridge = args.mqtt.is_some().then(|| {
        let (config, metrics, stop) = (config.clone(), ingest_metrics.clone(), shutdown.clone());
        tokio::spawn(async move { fjord_ingest::bridge::run(&config, metrics, stop).await })
    });
    let http_listen = SocketAddr::from(([127, 0, 0, 1], args.http_port));
    let http = HttpIngest::new(
        &config,
        Acl::new(config.all_credentials()),
        ingest_metrics.clone(),
        metrics.clone(),
    )?;
    // The query server (SQL API, dashboard, Postgres wire, Flight SQL) shares the HTTP port with ingest.
    config.serve.http_listen = http_listen;
    config.serve.pg_listen = SocketAddr::from(([127, 0, 0, 1], args.pg_port));
    config.serve.flight_listen = SocketAddr::from(([127, 0, 0, 1], args.flight_port));
    let server = fjord_queries::serve::start(
        &config,
        fjord_queries::auth::Credentials::new(token.clone()),
        &metrics,
        fjord_queries::serve::Options {
            extra_routes: Some(http.router()),
        },
        shutdown.clone(),
    )
    .await
    .context("cannot start the query server (use --http-port / --pg-port for other ports)")?;

    // The stream processor: exactly once on the embedded cluster (it accepts transactions).
    let stream = {
        let metrics = fjord_stream::metrics::StreamMetrics::new(&metrics)?;
        let forecast = crate::lifecycle::forecast_profiles(&config, &shutdown).await?;
        let options = fjord_stream::runtime::RunOptions {
            // the embedded cluster lets a closing consumer go only after its session timeout
            session_timeout: args.kafka.is_none().then(|| Duration::from_secs(6)),
            ready: None,
            forecast,
        };
        tokio::spawn(crate::lifecycle::run_stream(
            config.clone(),
            metrics,
            shutdown.clone(),
            options,
        ))
    };
    add_webhooks(&args, &mut config, &token)?;
    // Webhook delivery of the alerts (the processor logs every alert either way).
    let delivery = (!config.alerts.webhooks.is_empty()).then(|| {
        let (config, stop) = (config.clone(), shutdown.clone());
        let metrics = fjord_stream::metrics::DeliveryMetrics::new(&metrics);
        tokio::spawn(async move { fjord_stream::delivery::run(&config, metrics?, stop).await })
    });
    let history = (!args.no_history).then(|| simulated_lots(&lots));
    let batch = spawn_batch(&args, &config, &metrics, &shutdown, history)?;
    let simulator = (!args.no_simulate).then(|| spawn_simulator(&config, &lots, &shutdown));

    let endpoints = Endpoints::new(
        &args,
        &config,
        Started {
            token: &token,
            demo_ca: demo_ca.as_deref(),
            mqtt,
            bootstrap: config.kafka.brokers.clone(),
            topics,
            http_listen,
            pg: server.pg,
            flight: server.flight,
        },
    );
    let endpoints_path = args.data_dir.join("endpoints.json");
    endpoints::write(&endpoints_path, &endpoints)?;
    endpoints::print_banner(&args, &endpoints, &endpoints_path, lots.len());
    tracing::info!(
        mqtt = %endpoints.mqtt.url,
        kafka = %endpoints.kafka.bootstrap_servers,
        http = %endpoints.http.url,
        "demo running"
    );

    let mut stop = shutdown.clone();
    let _ = stop.wait_for(|s| *s).await;
    tracing::info!("shutting down");
    Running {
        simulator,
        bridge,
        intake: broker.as_ref().map(|(_, intake)| intake.clone()),
        stream,
        delivery,
        batch,
        server: server.tasks,
    }
    .stop()
    .await;
    let _ = std::fs::remove_file(&endpoints_path);
    // The embedded cluster is in memory and discarded with the process. Destroying it explicitly
    // waits for every connected client to leave (up to a consumer's 45 s session timeout), so it is
    // left to process exit instead.
    std::mem::forget(cluster);
    drop(broker);
    println!("fjord demo stopped.");
    Ok(())
}

/// The data dir, the token (from `--auth-token`, the config, or a new one), `--tls` (a throw-away
/// CA, whose certificate is returned) and `--lots`, applied to `config`.
fn prepare(args: &DemoArgs, config: &mut Config) -> anyhow::Result<(String, Option<PathBuf>)> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
    config.data_dir = args.data_dir.clone();
    let token = args
        .auth_token
        .clone()
        .or_else(|| config.auth.token.clone())
        .unwrap_or_else(crate::lifecycle::generate_token);
    if let Some(problem) = fjord_core::config::AuthConfig::token_problem(&token) {
        bail!("--auth-token {problem}");
    }
    config.auth.token = Some(token.clone());
    let demo_ca = if args.tls {
        let tls = tls::ensure(&args.data_dir)?;
        config.tls = fjord_core::config::TlsConfig {
            cert_file: Some(tls.cert),
            key_file: Some(tls.key),
        };
        Some(tls.ca)
    } else {
        None
    };
    if let Some(file) = &args.lots {
        // the stream processor, the alerts and the batch views use the registry too
        config.lots_file = Some(std::path::absolute(file).unwrap_or_else(|_| file.clone()));
    }
    Ok((token, demo_ca))
}

/// Kafka: the embedded mock cluster (returned: it must outlive its clients) unless `--kafka`;
/// fjord's topics created either way and `config.kafka.brokers` pointed at it.
async fn start_kafka(
    args: &DemoArgs,
    config: &mut Config,
) -> anyhow::Result<(
    Option<MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
    Topics,
)> {
    let topics = Topics::new(&config.kafka);
    let mut cluster = None;
    let bootstrap = match &args.kafka {
        Some(brokers) => {
            config.kafka.brokers = brokers.clone();
            kafka::ensure_topics(&config.kafka, &topics.all(), config.kafka.partitions)
                .await
                .with_context(|| format!("cannot create fjord's topics on {brokers}"))?;
            brokers.clone()
        }
        None => {
            let c = MockCluster::new(1).context("cannot start the embedded Kafka cluster")?;
            for t in topics.all() {
                c.create_topic(t, config.kafka.partitions, 1)
                    .with_context(|| format!("cannot create topic {t} on the embedded Kafka"))?;
            }
            let b = c.bootstrap_servers();
            cluster = Some(c);
            b
        }
    };
    config.kafka.brokers = bootstrap;
    Ok((cluster, topics))
}

/// MQTT: the embedded broker, whose front hands readings to Kafka itself (no bridge in between),
/// unless `--mqtt`. The simulator's connection goes into `config.mqtt`.
async fn start_mqtt(
    args: &DemoArgs,
    config: &mut Config,
    token: &str,
    metrics: &Metrics,
    ingest_metrics: &IngestMetrics,
) -> anyhow::Result<(
    MqttEndpoint,
    Option<(EmbeddedBroker, std::sync::Arc<Intake>)>,
)> {
    if let Some(url) = &args.mqtt {
        config.mqtt.url = url.clone();
        if config.mqtt.host_port().is_none() {
            bail!("--mqtt: expected mqtt://host:port, got {url:?}");
        }
        let endpoint = MqttEndpoint {
            url: url.clone(),
            embedded: false,
            username: config.mqtt.username.clone(),
            password: config.mqtt.password.clone(),
        };
        return Ok((endpoint, None));
    }
    let listen = SocketAddr::from(([127, 0, 0, 1], args.mqtt_port));
    let acl = Acl::new(config.all_credentials());
    let tls = fjord_core::tls::server_config(&config.tls, &[])?;
    let public = if tls.is_some() { "mqtts" } else { "mqtt" };
    let intake = Intake::new(config, ingest_metrics.clone())?;
    let broker = EmbeddedBroker::start_with_intake(
        listen,
        &config.broker,
        acl,
        metrics,
        tls,
        Some(intake.clone()),
    )
    .await?;
    // the simulator connects on loopback (plain TCP when the public port speaks TLS), with the
    // same authentication and rights as everyone
    config.mqtt.url = format!("mqtt://{}", broker.internal_addr());
    config.mqtt.username = Some(DEMO_USER.into());
    config.mqtt.password = Some(token.to_owned());
    let endpoint = MqttEndpoint {
        url: format!("{public}://{listen}"),
        embedded: true,
        username: Some(DEMO_USER.into()),
        password: Some(token.to_owned()),
    };
    Ok((endpoint, Some((broker, intake))))
}

/// `--webhook URL` (repeatable) as webhooks of every rule, signed with `--webhook-secret` or
/// the token; refused with the config's own checks.
fn add_webhooks(args: &DemoArgs, config: &mut Config, token: &str) -> anyhow::Result<()> {
    for (i, url) in args.webhook.iter().enumerate() {
        config.alerts.webhooks.push(fjord_core::config::Webhook {
            name: format!("demo-{}", i + 1),
            url: url.clone(),
            secret: args
                .webhook_secret
                .clone()
                .unwrap_or_else(|| token.to_owned()),
            rules: Vec::new(),
            timeout: fjord_core::duration::Duration::from_secs(5),
        });
    }
    let problems: Vec<String> = config
        .validate()
        .into_iter()
        .filter(|(key, _)| key.starts_with("alerts.webhooks"))
        .map(|(key, msg)| format!("{key}: {msg}"))
        .collect();
    if !problems.is_empty() {
        bail!("--webhook: {}", problems.join("; "));
    }
    Ok(())
}

/// The batch layer: `batch run` every `--batch-every` on the lake in the data dir, after landing
/// the simulated `history` of these lots (when given; see [`history`]).
fn spawn_batch(
    args: &DemoArgs,
    config: &Config,
    metrics: &Metrics,
    shutdown: &watch::Receiver<bool>,
    history: Option<Vec<SimLot>>,
) -> anyhow::Result<JoinHandle<fjord_batch::Result<()>>> {
    let lake = fjord_batch::Lake::new(&config.lake_url(), &config.lake.storage_options)?;
    let batch_metrics = fjord_batch::BatchMetrics::new(metrics)?;
    let every = args.batch_every.as_millis_i64().max(1000);
    let (config, stop) = (config.clone(), shutdown.clone());
    let seed: u64 = rand::rng().random();
    Ok(tokio::spawn(async move {
        if let Some(lots) = history
            && let Err(e) = history::land(&config, &lots, seed).await
        {
            tracing::error!(
                error = format!("{e:#}"),
                "the simulated history was not landed"
            );
        }
        fjord_batch::run_scheduled(
            &config,
            &lake,
            &fjord_batch::Job::Run,
            &fjord_batch::Schedule::Every(every),
            Some(&batch_metrics),
            stop,
        )
        .await
    }))
}

/// The device simulator at [`DEMO_RATE`], with a few of every fault.
fn spawn_simulator(
    config: &Config,
    lots: &LotsRegistry,
    shutdown: &watch::Receiver<bool>,
) -> JoinHandle<fjord_ingest::Result<simulate::SimSummary>> {
    let opts = SimulateOptions {
        mqtt: fjord_core::config::MqttConfig {
            client_id: "fjord-demo-simulator".into(),
            ..config.mqtt.clone()
        },
        lots: simulated_lots(lots),
        rate: Some(DEMO_RATE),
        duration: None,
        count: None,
        seed: rand::rng().random(),
        faults: Faults {
            duplicate: 0.01,
            out_of_order: 0.01,
            late: 0.002,
            garbage: 0.002,
            silent: 0.02,
            low_battery: 0.05,
        },
        inflight: 100,
        record: None,
    };
    let stop = shutdown.clone();
    tokio::spawn(async move { simulate::run(opts, stop).await })
}

/// The demo's tasks, stopped in order (devices first, then what carries their data on) at the end.
struct Running {
    simulator: Option<JoinHandle<fjord_ingest::Result<simulate::SimSummary>>>,
    bridge: Option<JoinHandle<fjord_ingest::Result<fjord_ingest::bridge::Summary>>>,
    intake: Option<std::sync::Arc<Intake>>,
    stream: JoinHandle<anyhow::Result<fjord_stream::runtime::Summary>>,
    delivery: Option<JoinHandle<fjord_stream::Result<Vec<fjord_stream::delivery::Summary>>>>,
    batch: JoinHandle<fjord_batch::Result<()>>,
    server: Vec<JoinHandle<fjord_queries::Result<()>>>,
}

impl Running {
    /// Waits for each part to finish what it has in flight, printing what it did.
    async fn stop(self) {
        if let Some(sim) = self.simulator {
            match tokio::time::timeout(Duration::from_secs(40), sim).await {
                Ok(Ok(Ok(summary))) => println!("simulator: {summary}"),
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "simulator failed"),
                _ => tracing::warn!("simulator did not stop in time"),
            }
        }
        if let Some(bridge) = self.bridge {
            match tokio::time::timeout(Duration::from_secs(40), bridge).await {
                Ok(Ok(Ok(s))) => println!(
                    "bridge: {} received, {} forwarded, {} dead-lettered, {} acknowledged",
                    s.received, s.forwarded, s.dead_lettered, s.acked
                ),
                Ok(Ok(Err(e))) => tracing::error!(error = %e, "bridge failed"),
                _ => tracing::warn!("bridge did not stop in time"),
            }
        }
        if let Some(intake) = &self.intake {
            // what the devices sent reaches Kafka before the stream processor stops
            intake.flush(Duration::from_secs(30));
            let s = intake.summary();
            println!(
                "MQTT intake: {} received, {} forwarded, {} dead-lettered, {} acknowledged",
                s.received, s.forwarded, s.dead_lettered, s.acked
            );
        }
        match tokio::time::timeout(Duration::from_secs(40), self.stream).await {
            Ok(Ok(Ok(s))) => println!(
                "stream: {} records, {} windows, {} alerts, {} late, {} duplicates, {} commits",
                s.records, s.windows, s.alerts, s.late, s.duplicates, s.commits
            ),
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "stream processor failed"),
            _ => tracing::warn!("stream processor did not stop in time"),
        }
        if let Some(task) = self.delivery {
            match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(Ok(Ok(summaries))) => {
                    for s in summaries {
                        println!(
                            "webhook {}: {} delivered, {} dead-lettered, {} retries",
                            s.webhook, s.delivered, s.dead_lettered, s.retries
                        );
                    }
                }
                Ok(Ok(Err(e))) => tracing::error!(error = %e, "webhook delivery failed"),
                _ => tracing::warn!("webhook delivery did not stop in time"),
            }
        }
        // A batch run in progress is cut short: the lake only ever sees whole commits.
        self.batch.abort();
        for task in self.server {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

fn simulated_lots(lots: &LotsRegistry) -> Vec<SimLot> {
    if lots.is_empty() {
        return ["central", "harbour", "museum"]
            .iter()
            .zip([40, 25, 15])
            .map(|(id, spaces)| SimLot {
                lot_id: (*id).into(),
                spaces,
            })
            .collect();
    }
    lots.iter()
        .map(|l| SimLot {
            lot_id: l.lot_id.clone(),
            spaces: l.capacity,
        })
        .collect()
}
