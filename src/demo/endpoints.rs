//! What `fjord demo` tells its user: `<data-dir>/endpoints.json` (every address and the
//! credentials, mode 0600, written atomically) and the banner it prints at start.

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use fjord_core::config::Config;
use fjord_core::kafka::Topics;
use serde::Serialize;

use crate::cli::DemoArgs;

use super::DEMO_RATE;

/// The content of `endpoints.json`: where everything that runs can be reached, and the credentials.
#[derive(Debug, Serialize)]
pub struct Endpoints {
    /// The CA that signed the listeners' certificate, when they speak TLS with the demo's own.
    pub tls_ca: Option<String>,
    /// The window sizes of `stream.windows` (`1m`, `10m`): tables `occupancy_<size>`.
    pub windows: Vec<String>,
    /// `exactly once` or `at least once`.
    pub processing: String,
    pub mqtt: MqttEndpoint,
    pub kafka: KafkaEndpoint,
    pub http: HttpEndpoint,
    pub postgres: PgEndpoint,
    pub flight_sql: FlightEndpoint,
    pub lake: LakeEndpoint,
}

#[derive(Debug, Serialize)]
pub struct LakeEndpoint {
    pub url: String,
    pub batch_every: String,
}

#[derive(Debug, Serialize)]
pub struct MqttEndpoint {
    pub url: String,
    pub embedded: bool,
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct KafkaEndpoint {
    pub bootstrap_servers: String,
    pub embedded: bool,
    pub topics: Topics,
}

#[derive(Debug, Serialize)]
pub struct HttpEndpoint {
    pub url: String,
    pub dashboard: String,
    pub sql: String,
    pub ingest: String,
    pub metrics: String,
    pub token: String,
}

#[derive(Debug, Serialize)]
pub struct PgEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
    pub psql: String,
}

#[derive(Debug, Serialize)]
pub struct FlightEndpoint {
    pub uri: String,
    pub user: String,
    pub password: String,
    /// The same credentials as a header, for clients that take one.
    pub authorization: String,
    pub python: String,
}

/// Where the demo's parts listen, as they started.
pub struct Started<'a> {
    pub token: &'a str,
    pub demo_ca: Option<&'a Path>,
    pub mqtt: MqttEndpoint,
    pub bootstrap: String,
    pub topics: Topics,
    pub http_listen: SocketAddr,
    pub pg: SocketAddr,
    pub flight: SocketAddr,
}

impl Endpoints {
    /// Every address of the running demo, with the commands that reach it.
    pub fn new(args: &DemoArgs, config: &Config, s: Started<'_>) -> Self {
        let (scheme, grpc) = if config.tls.enabled() {
            ("https", "grpc+tls")
        } else {
            ("http", "grpc")
        };
        let (token, http_listen, user) = (s.token, s.http_listen, fjord_queries::auth::USER);
        let psql = match (s.demo_ca, config.tls.enabled()) {
            (Some(ca), _) => format!(
                "PGPASSWORD={token} psql 'host={} port={} user={user} dbname=fjord sslmode=verify-full sslrootcert={}'",
                s.pg.ip(),
                s.pg.port(),
                ca.display()
            ),
            (None, true) => format!(
                "PGPASSWORD={token} psql 'host={} port={} user={user} dbname=fjord sslmode=verify-full'",
                s.pg.ip(),
                s.pg.port(),
            ),
            (None, false) => format!(
                "PGPASSWORD={token} psql -h {} -p {} -U {user} fjord",
                s.pg.ip(),
                s.pg.port(),
            ),
        };
        Endpoints {
            tls_ca: s.demo_ca.map(|c| c.display().to_string()),
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
            mqtt: s.mqtt,
            kafka: KafkaEndpoint {
                bootstrap_servers: s.bootstrap,
                embedded: args.kafka.is_none(),
                topics: s.topics,
            },
            http: HttpEndpoint {
                url: format!("{scheme}://{http_listen}"),
                dashboard: format!("{scheme}://{http_listen}/#token={token}"),
                sql: format!("{scheme}://{http_listen}/api/sql"),
                ingest: format!("{scheme}://{http_listen}/ingest/"),
                metrics: format!("{scheme}://{http_listen}/metrics"),
                token: token.to_owned(),
            },
            postgres: PgEndpoint {
                host: s.pg.ip().to_string(),
                port: s.pg.port(),
                user: user.into(),
                password: token.to_owned(),
                database: "fjord".into(),
                psql,
            },
            flight_sql: FlightEndpoint {
                uri: format!("{grpc}://{}", s.flight),
                user: user.into(),
                password: token.to_owned(),
                authorization: format!("Bearer {token}"),
                python: format!(
                    "adbc_driver_flightsql.dbapi.connect('{grpc}://{}', db_kwargs={{'username': '{user}', 'password': '{token}'{}}})",
                    s.flight,
                    s.demo_ca
                        .map(|ca| format!(
                            ", 'adbc.flight.sql.client_option.tls_root_certs': open('{}').read()",
                            ca.display()
                        ))
                        .unwrap_or_default()
                ),
            },
            lake: LakeEndpoint {
                url: config.lake_url(),
                batch_every: args.batch_every.to_string(),
            },
        }
    }
}

/// Writes the file atomically (temp file + rename) so a reader never sees half of it; mode 0600.
pub fn write(path: &Path, endpoints: &Endpoints) -> anyhow::Result<()> {
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

pub fn print_banner(args: &DemoArgs, e: &Endpoints, endpoints_path: &Path, lots: usize) {
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
        "  Alerts        {} (lot_full, lot_full_predicted, sensor_silent, battery_low, gateway_offline); {}\n",
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
        "  Batch         {} → {}  (readings, {tables}, forecast_profile; every {})\n",
        e.kafka.topics.readings, e.lake.url, e.lake.batch_every
    ));
    out.push_str(&format!(
        "  Forecast      SQL table occupancy_forecast, GET {}  (the next 24 h per lot; profiles learned by the batch job)\n",
        e.http.sql.replace("/api/sql", "/api/lots/<lot>/forecast")
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
