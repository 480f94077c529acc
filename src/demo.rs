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

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
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
use serde::Serialize;

use crate::cli::DemoArgs;
use crate::lifecycle::shutdown_signal;

/// The user name every demo interface accepts, with the auth token as password.
const DEMO_USER: &str = "fjord";

/// The content of `endpoints.json`: where everything that runs can be reached, and the credentials.
#[derive(Debug, Serialize)]
struct Endpoints {
    /// The CA that signed the listeners' certificate, when they speak TLS with the demo's own.
    tls_ca: Option<String>,
    /// The window sizes of `stream.windows` (`1m`, `10m`): tables `occupancy_<size>`.
    windows: Vec<String>,
    /// `exactly once` or `at least once`.
    processing: String,
    mqtt: MqttEndpoint,
    kafka: KafkaEndpoint,
    http: HttpEndpoint,
    postgres: PgEndpoint,
    flight_sql: FlightEndpoint,
    lake: LakeEndpoint,
}

#[derive(Debug, Serialize)]
struct LakeEndpoint {
    url: String,
    batch_every: String,
}

#[derive(Debug, Serialize)]
struct MqttEndpoint {
    url: String,
    embedded: bool,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Serialize)]
struct KafkaEndpoint {
    bootstrap_servers: String,
    embedded: bool,
    topics: Topics,
}

#[derive(Debug, Serialize)]
struct HttpEndpoint {
    url: String,
    dashboard: String,
    sql: String,
    ingest: String,
    metrics: String,
    token: String,
}

#[derive(Debug, Serialize)]
struct PgEndpoint {
    host: String,
    port: u16,
    user: String,
    password: String,
    database: String,
    psql: String,
}

#[derive(Debug, Serialize)]
struct FlightEndpoint {
    uri: String,
    user: String,
    password: String,
    /// The same credentials as a header, for clients that take one.
    authorization: String,
    python: String,
}

/// The simulator's pace in the demo: a lively but readable stream.
const DEMO_RATE: f64 = 20.0;

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs, mut config: Config, metrics: Metrics) -> anyhow::Result<()> {
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
        let tls = crate::demo_tls::ensure(&args.data_dir)?;
        config.tls = fjord_core::config::TlsConfig {
            cert_file: Some(tls.cert),
            key_file: Some(tls.key),
        };
        Some(tls.ca)
    } else {
        None
    };
    let (scheme, grpc) = if config.tls.enabled() {
        ("https", "grpc+tls")
    } else {
        ("http", "grpc")
    };
    if let Some(file) = &args.lots {
        // the stream processor, the alerts and the batch views use the registry too
        config.lots_file = Some(std::path::absolute(file).unwrap_or_else(|_| file.clone()));
    }
    let lots = config.lots_registry()?;
    let shutdown = shutdown_signal()?;
    let ingest_metrics = IngestMetrics::new(&metrics)?;

    // Kafka: embedded mock cluster unless --kafka. The cluster must outlive everything using it.
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
    config.kafka.brokers = bootstrap.clone();

    // MQTT: embedded unless --mqtt.
    let (mqtt, broker) = match &args.mqtt {
        Some(url) => {
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
            (endpoint, None)
        }
        None => {
            let listen = SocketAddr::from(([127, 0, 0, 1], args.mqtt_port));
            let acl = Acl::new(config.all_credentials());
            let tls = fjord_core::tls::server_config(&config.tls, &[])?;
            let public = if tls.is_some() { "mqtts" } else { "mqtt" };
            // the broker's front hands readings to Kafka itself: no bridge in between
            let intake = Intake::new(&config, ingest_metrics.clone())?;
            let broker = EmbeddedBroker::start_with_intake(
                listen,
                &config.broker,
                acl,
                &metrics,
                tls,
                Some(intake.clone()),
            )
            .await?;
            // the simulator connects on loopback (plain TCP when the public port speaks TLS),
            // with the same authentication and rights as everyone
            config.mqtt.url = format!("mqtt://{}", broker.internal_addr());
            config.mqtt.username = Some(DEMO_USER.into());
            config.mqtt.password = Some(token.clone());
            let endpoint = MqttEndpoint {
                url: format!("{public}://{listen}"),
                embedded: true,
                username: Some(DEMO_USER.into()),
                password: Some(token.clone()),
            };
            (endpoint, Some((broker, intake)))
        }
    };
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
        let options = fjord_stream::runtime::RunOptions {
            // the embedded cluster lets a closing consumer go only after its session timeout
            session_timeout: args.kafka.is_none().then(|| Duration::from_secs(6)),
        };
        tokio::spawn(crate::lifecycle::run_stream(
            config.clone(),
            metrics,
            shutdown.clone(),
            options,
        ))
    };

    // Webhook delivery of the alerts (the processor logs every alert either way).
    for (i, url) in args.webhook.iter().enumerate() {
        config.alerts.webhooks.push(fjord_core::config::Webhook {
            name: format!("demo-{}", i + 1),
            url: url.clone(),
            secret: args.webhook_secret.clone().unwrap_or_else(|| token.clone()),
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
    let delivery = (!config.alerts.webhooks.is_empty()).then(|| {
        let (config, stop) = (config.clone(), shutdown.clone());
        let metrics = fjord_stream::metrics::DeliveryMetrics::new(&metrics);
        tokio::spawn(async move { fjord_stream::delivery::run(&config, metrics?, stop).await })
    });

    // The batch layer: `batch run` every --batch-every on the lake in the data dir.
    let lake_url = config.lake_url();
    let batch = {
        let lake = fjord_batch::Lake::new(&lake_url, &config.lake.storage_options)?;
        let batch_metrics = fjord_batch::BatchMetrics::new(&metrics)?;
        let every = args.batch_every.as_millis_i64().max(1000);
        let config = config.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            fjord_batch::run_scheduled(
                &config,
                &lake,
                &fjord_batch::Job::Run,
                &fjord_batch::Schedule::Every(every),
                Some(&batch_metrics),
                stop,
            )
            .await
        })
    };

    // The device simulator.
    let simulator = (!args.no_simulate).then(|| {
        let opts = SimulateOptions {
            mqtt: fjord_core::config::MqttConfig {
                client_id: "fjord-demo-simulator".into(),
                ..config.mqtt.clone()
            },
            lots: simulated_lots(&lots),
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
        };
        let stop = shutdown.clone();
        tokio::spawn(async move { simulate::run(opts, stop).await })
    });

    let psql = match (&demo_ca, config.tls.enabled()) {
        (Some(ca), _) => format!(
            "PGPASSWORD={token} psql 'host={} port={} user={} dbname=fjord sslmode=verify-full sslrootcert={}'",
            server.pg.ip(),
            server.pg.port(),
            fjord_queries::auth::USER,
            ca.display()
        ),
        (None, true) => format!(
            "PGPASSWORD={token} psql 'host={} port={} user={} dbname=fjord sslmode=verify-full'",
            server.pg.ip(),
            server.pg.port(),
            fjord_queries::auth::USER
        ),
        (None, false) => format!(
            "PGPASSWORD={token} psql -h {} -p {} -U {} fjord",
            server.pg.ip(),
            server.pg.port(),
            fjord_queries::auth::USER
        ),
    };
    let endpoints = Endpoints {
        tls_ca: demo_ca.as_ref().map(|c| c.display().to_string()),
        windows: config
            .stream
            .windows
            .iter()
            .map(ToString::to_string)
            .collect(),
        processing: match config.stream.processing_guarantee {
            fjord_core::config::ProcessingGuarantee::ExactlyOnce => "exactly once".into(),
            fjord_core::config::ProcessingGuarantee::AtLeastOnce => "at least once".into(),
        },
        mqtt,
        kafka: KafkaEndpoint {
            bootstrap_servers: bootstrap,
            embedded: args.kafka.is_none(),
            topics,
        },
        http: HttpEndpoint {
            url: format!("{scheme}://{http_listen}"),
            dashboard: format!("{scheme}://{http_listen}/#token={token}"),
            sql: format!("{scheme}://{http_listen}/api/sql"),
            ingest: format!("{scheme}://{http_listen}/ingest/"),
            metrics: format!("{scheme}://{http_listen}/metrics"),
            token: token.clone(),
        },
        postgres: PgEndpoint {
            host: server.pg.ip().to_string(),
            port: server.pg.port(),
            user: fjord_queries::auth::USER.into(),
            password: token.clone(),
            database: "fjord".into(),
            psql,
        },
        flight_sql: FlightEndpoint {
            uri: format!("{grpc}://{}", server.flight),
            user: fjord_queries::auth::USER.into(),
            password: token.clone(),
            authorization: format!("Bearer {token}"),
            python: format!(
                "adbc_driver_flightsql.dbapi.connect('{grpc}://{}', db_kwargs={{'username': '{}', 'password': '{token}'{}}})",
                server.flight,
                fjord_queries::auth::USER,
                demo_ca
                    .as_ref()
                    .map(|ca| format!(
                        ", 'adbc.flight.sql.client_option.tls_root_certs': open('{}').read()",
                        ca.display()
                    ))
                    .unwrap_or_default()
            ),
        },
        lake: LakeEndpoint {
            url: lake_url,
            batch_every: args.batch_every.to_string(),
        },
    };
    let endpoints_path = args.data_dir.join("endpoints.json");
    write_endpoints(&endpoints_path, &endpoints)?;
    print_banner(&args, &endpoints, &endpoints_path, lots.len());
    tracing::info!(
        mqtt = %endpoints.mqtt.url,
        kafka = %endpoints.kafka.bootstrap_servers,
        http = %endpoints.http.url,
        "demo running"
    );

    let mut stop = shutdown.clone();
    let _ = stop.wait_for(|s| *s).await;
    tracing::info!("shutting down");
    if let Some(sim) = simulator {
        match tokio::time::timeout(Duration::from_secs(40), sim).await {
            Ok(Ok(Ok(summary))) => println!("simulator: {summary}"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "simulator failed"),
            _ => tracing::warn!("simulator did not stop in time"),
        }
    }
    if let Some(bridge) = bridge {
        match tokio::time::timeout(Duration::from_secs(40), bridge).await {
            Ok(Ok(Ok(s))) => println!(
                "bridge: {} received, {} forwarded, {} dead-lettered, {} acknowledged",
                s.received, s.forwarded, s.dead_lettered, s.acked
            ),
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "bridge failed"),
            _ => tracing::warn!("bridge did not stop in time"),
        }
    }
    if let Some((_, intake)) = &broker {
        // what the devices sent reaches Kafka before the stream processor stops
        intake.flush(Duration::from_secs(30));
        let s = intake.summary();
        println!(
            "MQTT intake: {} received, {} forwarded, {} dead-lettered, {} acknowledged",
            s.received, s.forwarded, s.dead_lettered, s.acked
        );
    }
    match tokio::time::timeout(Duration::from_secs(40), stream).await {
        Ok(Ok(Ok(s))) => println!(
            "stream: {} records, {} windows, {} alerts, {} late, {} duplicates, {} commits",
            s.records, s.windows, s.alerts, s.late, s.duplicates, s.commits
        ),
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "stream processor failed"),
        _ => tracing::warn!("stream processor did not stop in time"),
    }
    if let Some(task) = delivery {
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
    batch.abort();
    for task in server.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let _ = std::fs::remove_file(&endpoints_path);
    // The embedded cluster is in memory and discarded with the process. Destroying it explicitly
    // waits for every connected client to leave (up to a consumer's 45 s session timeout), so it is
    // left to process exit instead.
    std::mem::forget(cluster);
    println!("fjord demo stopped.");
    Ok(())
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

/// Writes the file atomically (temp file + rename) so a reader never sees half of it; mode 0600.
fn write_endpoints(path: &Path, endpoints: &Endpoints) -> anyhow::Result<()> {
    let tmp: PathBuf = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(endpoints)?;
    // it holds the token: readable by its owner only, from the first byte on
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn print_banner(args: &DemoArgs, e: &Endpoints, endpoints_path: &Path, lots: usize) {
    let mut out = String::new();
    out.push_str(&format!(
        "fjord demo is running (data dir {})\n\n",
        args.data_dir.display()
    ));
    let mqtt_auth = match (&e.mqtt.username, &e.mqtt.password) {
        (Some(u), Some(p)) => format!("user {u}, password {p}"),
        _ => "no credentials".into(),
    };
    out.push_str(&format!(
        "  MQTT broker   {}  ({}; {mqtt_auth})\n",
        e.mqtt.url,
        if e.mqtt.embedded {
            "embedded, MQTT 3.1.1 and 5"
        } else {
            "external"
        }
    ));
    out.push_str(&format!(
        "  Kafka         {}  ({})\n",
        e.kafka.bootstrap_servers,
        if e.kafka.embedded {
            "embedded, in memory: empty at every start"
        } else {
            "external"
        }
    ));
    out.push_str(&format!(
        "  Bridge        MQTT → {} (PUBACK after Kafka's ack{})\n",
        e.kafka.topics.readings,
        if e.mqtt.embedded {
            "; done by the broker itself"
        } else {
            ""
        }
    ));
    let sizes = match e.windows.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    };
    let tables = e
        .windows
        .iter()
        .map(|w| format!("occupancy_{w}"))
        .collect::<Vec<_>>()
        .join(", ");
    out.push_str(&format!(
        "  Stream        {} → {} ({sizes} windows, {}), {}, {}\n",
        e.kafka.topics.readings,
        e.kafka.topics.occupancy,
        e.processing,
        e.kafka.topics.live,
        e.kafka.topics.spaces_live
    ));
    out.push_str(&format!(
        "  Alerts        {} (lot_full, sensor_silent, battery_low, gateway_offline); {}\n",
        e.kafka.topics.alerts,
        if args.webhook.is_empty() {
            "logged here (add --webhook URL to deliver them)".to_owned()
        } else {
            format!(
                "delivered to {} (X-Fjord-Signature: HMAC-SHA256 with {})",
                args.webhook.join(", "),
                if args.webhook_secret.is_some() {
                    "--webhook-secret"
                } else {
                    "the demo token"
                }
            )
        }
    ));
    out.push_str(&format!(
        "  Batch         {} → {}  (readings, {tables}; every {})\n",
        e.kafka.topics.readings, e.lake.url, e.lake.batch_every
    ));
    out.push_str(&format!(
        "  HTTP ingest   POST {}parking/<lot>/<space>  (Authorization: Bearer {})\n",
        e.http.ingest, e.http.token
    ));
    out.push_str(&format!("  Dashboard     {}\n", e.http.dashboard));
    let cacert = e
        .tls_ca
        .as_ref()
        .map(|ca| format!("--cacert {ca} "))
        .unwrap_or_default();
    out.push_str(&format!(
        "  SQL (HTTP)    curl {cacert}-H 'Authorization: Bearer {}' --data 'SELECT * FROM occupancy_live' {}\n",
        e.http.token, e.http.sql
    ));
    out.push_str(&format!("  SQL (psql)    {}\n", e.postgres.psql));
    out.push_str(&format!(
        "  Flight SQL    {}  (user {}, password {}; ADBC: {})\n",
        e.flight_sql.uri, e.flight_sql.user, e.flight_sql.password, e.flight_sql.python
    ));
    out.push_str(&format!("  Metrics       {}\n", e.http.metrics));
    out.push_str(&format!(
        "  Simulator     {}\n",
        if args.no_simulate {
            "off (--no-simulate)".to_owned()
        } else {
            format!("{DEMO_RATE} readings/s over MQTT")
        }
    ));
    out.push_str(&format!("  Lots          {lots} registered\n\n"));
    if let Some((host, port)) = mqtt_host_port(&e.mqtt.url) {
        let creds = match (&e.mqtt.username, &e.mqtt.password) {
            (Some(u), Some(p)) => format!(" -u {u} -P {p}"),
            _ => String::new(),
        };
        let cafile = e
            .tls_ca
            .as_ref()
            .filter(|_| e.mqtt.url.starts_with("mqtts://"))
            .map(|ca| format!(" --cafile {ca}"))
            .unwrap_or_default();
        out.push_str("Publish a reading:\n");
        out.push_str(&format!(
            "  mosquitto_pub -h {host} -p {port}{cafile}{creds} -q 1 -t parking/central/S1 -m '{{\"occupied\":true}}'\n"
        ));
        out.push_str(&format!(
            "  curl {cacert}-H 'Authorization: Bearer {}' -d '{{\"occupied\":true}}' {}parking/central/S1\n\n",
            e.http.token, e.http.ingest
        ));
    }
    if let Some(ca) = &e.tls_ca {
        out.push_str(&format!(
            "TLS: MQTT (mqtts://), HTTPS, the Postgres wire and Flight SQL use a certificate of a\n  \
             throw-away CA; trust {ca} (mosquitto_pub --cafile, curl --cacert,\n  \
             psql sslrootcert=, ADBC tls_root_certs, a browser's certificate settings).\n\n"
        ));
    }
    out.push_str(&format!(
        "Endpoints and credentials: {}\nCtrl-C stops the demo.\n",
        endpoints_path.display()
    ));
    println!("{out}");
}

fn mqtt_host_port(url: &str) -> Option<(String, u16)> {
    let cfg = fjord_core::config::MqttConfig {
        url: url.to_owned(),
        ..Default::default()
    };
    cfg.host_port()
}
