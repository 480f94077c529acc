//! `fjord demo`: the whole pipeline in one process on embedded defaults.
//!
//! Starts the embedded MQTT broker (rumqttd, user `fjord` with the auth token) and the embedded
//! Kafka-protocol cluster (librdkafka's mock cluster: in memory, empty at every start) unless
//! `--mqtt` / `--kafka` point at external ones, creates fjord's topics, writes
//! `<data-dir>/endpoints.json` and prints how to connect. Components that have not been built yet
//! are named at start-up rather than faked. Ctrl-C (or SIGTERM) stops everything cleanly and removes
//! `endpoints.json`, so a script never finds the endpoints of a demo that is gone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fjord_core::config::Config;
use fjord_core::kafka::{self, Topics};
use fjord_core::lots::LotsRegistry;
use fjord_ingest::broker::{BrokerSettings, EmbeddedBroker};
use rand::Rng;
use rdkafka::mocking::MockCluster;
use serde::Serialize;

use crate::cli::DemoArgs;

/// The user name every demo interface accepts, with the auth token as password.
const DEMO_USER: &str = "fjord";

/// The content of `endpoints.json`: where everything that runs can be reached, and the credentials.
#[derive(Debug, Serialize)]
struct Endpoints {
    mqtt: MqttEndpoint,
    kafka: KafkaEndpoint,
    /// Components accepted on the command line that are not built yet (no endpoint to give).
    not_built_yet: Vec<&'static str>,
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

/// Components of the demo that later issues add; each is named at start-up until it lands.
const NOT_BUILT: [&str; 6] = [
    "bridge (MQTT → Kafka)",
    "stream processor",
    "batch scheduler",
    "query server (HTTP, Postgres wire, Flight SQL)",
    "dashboard",
    "device simulator",
];

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs, mut config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
    config.data_dir = args.data_dir.clone();
    let token = args
        .auth_token
        .clone()
        .or_else(|| config.auth.token.clone())
        .unwrap_or_else(generate_token);
    let lots = match &args.lots {
        Some(file) => LotsRegistry::new(LotsRegistry::read_csv_file(file)?)?,
        None => config.lots_registry()?,
    };

    // MQTT: embedded unless --mqtt.
    let (mqtt, _broker) = match &args.mqtt {
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
            let broker = EmbeddedBroker::start(&BrokerSettings::new(listen, DEMO_USER, &token))?;
            let endpoint = MqttEndpoint {
                url: format!("mqtt://{listen}"),
                embedded: true,
                username: Some(DEMO_USER.into()),
                password: Some(token.clone()),
            };
            (endpoint, Some(broker))
        }
    };

    // Kafka: embedded mock cluster unless --kafka. The cluster must outlive everything using it.
    let topics = Topics::new(&config.kafka);
    let mut _cluster = None;
    let bootstrap = match &args.kafka {
        Some(brokers) => {
            config.kafka.brokers = brokers.clone();
            kafka::ensure_topics(&config.kafka, &topics.all(), config.kafka.partitions)
                .await
                .with_context(|| format!("cannot create fjord's topics on {brokers}"))?;
            brokers.clone()
        }
        None => {
            let cluster = MockCluster::new(1).context("cannot start the embedded Kafka cluster")?;
            for t in topics.all() {
                cluster
                    .create_topic(t, config.kafka.partitions, 1)
                    .with_context(|| format!("cannot create topic {t} on the embedded Kafka"))?;
            }
            let b = cluster.bootstrap_servers();
            _cluster = Some(cluster);
            b
        }
    };
    config.kafka.brokers = bootstrap.clone();

    let endpoints = Endpoints {
        mqtt,
        kafka: KafkaEndpoint {
            bootstrap_servers: bootstrap,
            embedded: args.kafka.is_none(),
            topics,
        },
        not_built_yet: NOT_BUILT.to_vec(),
    };
    let endpoints_path = args.data_dir.join("endpoints.json");
    write_endpoints(&endpoints_path, &endpoints)?;
    print_banner(&args, &endpoints, &endpoints_path, lots.len());
    tracing::info!(
        mqtt = %endpoints.mqtt.url,
        kafka = %endpoints.kafka.bootstrap_servers,
        "demo running"
    );

    wait_for_shutdown().await?;
    tracing::info!("shutting down");
    let _ = std::fs::remove_file(&endpoints_path);
    // The embedded cluster is in memory and discarded with the process. Destroying it explicitly
    // waits for every connected client to leave (up to a consumer's 45 s session timeout), so it is
    // left to process exit instead.
    std::mem::forget(_cluster);
    println!("fjord demo stopped.");
    Ok(())
}

fn generate_token() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// Writes the file atomically (temp file + rename) so a reader never sees half of it.
fn write_endpoints(path: &Path, endpoints: &Endpoints) -> anyhow::Result<()> {
    let tmp: PathBuf = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(endpoints)?;
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
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
            "embedded"
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
    out.push_str(&format!("  Lots          {lots} registered\n\n"));
    out.push_str("  Not built yet (accepted, but nothing runs for them):\n");
    for c in &e.not_built_yet {
        out.push_str(&format!("    - {c}\n"));
    }
    let ignored: Vec<String> = [
        (!args.webhook.is_empty()).then(|| format!("--webhook {}", args.webhook.join(", "))),
        args.webhook_secret
            .as_ref()
            .map(|_| "--webhook-secret".to_owned()),
        Some(format!("--batch-every {}", args.batch_every)),
        Some(format!(
            "--http-port {} --pg-port {} --flight-port {}",
            args.http_port, args.pg_port, args.flight_port
        )),
        (!args.no_simulate).then(|| "simulator (use --no-simulate to silence)".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    out.push_str(&format!(
        "    settings waiting for them: {}\n\n",
        ignored.join("; ")
    ));
    if let Some((host, port)) = mqtt_host_port(&e.mqtt.url) {
        let creds = match (&e.mqtt.username, &e.mqtt.password) {
            (Some(u), Some(p)) => format!(" -u {u} -P {p}"),
            _ => String::new(),
        };
        out.push_str("Publish a reading:\n");
        out.push_str(&format!(
            "  mosquitto_pub -h {host} -p {port}{creds} -t parking/central/S1 -m '{{\"occupied\":true}}'\n\n"
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

async fn wait_for_shutdown() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
