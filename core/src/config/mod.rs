//! fjord's configuration: one TOML file, every key overridable by an environment variable
//! `FJORD__SECTION__KEY`, unknown keys refused, durations written with units (`"30s"`).
//!
//! [`Config::load`] reads the file and the environment and reports *every* problem at once — syntax,
//! unknown keys, wrong types and semantic checks from [`Config::validate`] — each with the file line
//! or the environment variable it came from. `fjord.example.toml` at the repository root documents
//! every key and is checked by a test to load.

mod alerts;
mod ingest;
mod load;
mod sections;

pub use alerts::*;
pub use ingest::{BridgeConfig, BrokerConfig, Credential, MqttProtocol};
pub use load::{ConfigErrors, ConfigProblem};
pub use sections::*;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lots::{LotRecord, LotsRegistry};

/// The whole configuration. Every section has defaults, so an empty file is a valid config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for state and the default lake location.
    pub data_dir: PathBuf,
    /// A lots registry CSV file (`lot_id,name,zone,capacity,lat,lon`), relative to the config file.
    /// Its lots are added to those of `[[lots]]`.
    pub lots_file: Option<PathBuf>,
    /// Logging.
    pub log: LogConfig,
    /// Kafka client settings shared by every component.
    pub kafka: KafkaConfig,
    /// MQTT client settings (the bridge and the simulator).
    pub mqtt: MqttConfig,
    /// Topic mapping rules (docs/contract.md §3.3); the first rule that matches a message wins.
    pub mapping: Vec<MappingRule>,
    /// How readings are decoded.
    pub readings: ReadingsConfig,
    /// The MQTT/HTTP → Kafka bridge.
    pub bridge: BridgeConfig,
    /// The embedded MQTT broker (`fjord demo`).
    pub broker: BrokerConfig,
    /// Event time, windows and processing guarantee of the stream processor.
    pub stream: StreamConfig,
    /// Where the lake lives.
    pub lake: LakeConfig,
    /// The batch layer.
    pub batch: BatchConfig,
    /// Alert rules and webhooks (docs/contract.md §5).
    pub alerts: AlertsConfig,
    /// The occupancy forecast (docs/contract.md §4.4).
    pub forecast: ForecastConfig,
    /// Listen addresses of the query server.
    pub serve: ServeConfig,
    /// Credentials every interface checks.
    pub auth: AuthConfig,
    /// TLS of every listener.
    pub tls: TlsConfig,
    /// Users of the embedded MQTT broker and of HTTP ingest, with what they may publish.
    pub credentials: Vec<Credential>,
    /// The lots registry (docs/contract.md §3.4), inline.
    pub lots: Vec<LotRecord>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./fjord-data"),
            lots_file: None,
            log: LogConfig::default(),
            kafka: KafkaConfig::default(),
            mqtt: MqttConfig::default(),
            mapping: MappingRule::defaults(),
            readings: ReadingsConfig::default(),
            bridge: BridgeConfig::default(),
            broker: BrokerConfig::default(),
            stream: StreamConfig::default(),
            lake: LakeConfig::default(),
            batch: BatchConfig::default(),
            alerts: AlertsConfig::default(),
            forecast: ForecastConfig::default(),
            serve: ServeConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            credentials: Vec::new(),
            lots: Vec::new(),
        }
    }
}

impl Config {
    /// Loads `path` (or only defaults and the environment when `None`), applies `FJORD__…`
    /// overrides from `env`, checks everything and loads the lots registry file. Returns every
    /// problem found, not just the first.
    pub fn load<I>(path: Option<&Path>, env: I) -> Result<Config, ConfigErrors>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        load::load(path, env)
    }

    /// Loads with the process environment.
    pub fn load_from_env(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        Self::load(path, std::env::vars())
    }

    /// Semantic checks that types alone cannot express. Returns (key path, message) pairs.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        self.log.validate(&mut problems);
        self.kafka.validate(&mut problems);
        self.mqtt.validate(&mut problems);
        if self.mapping.is_empty() {
            problems.push((
                "mapping".into(),
                "at least one mapping rule is required".into(),
            ));
        }
        for (i, rule) in self.mapping.iter().enumerate() {
            rule.validate(&format!("mapping[{i}]"), &mut problems);
        }
        self.readings.validate(&mut problems);
        self.bridge.validate(&mut problems);
        self.broker.validate(&mut problems);
        for (i, c) in self.credentials.iter().enumerate() {
            c.validate(&format!("credentials[{i}]"), &mut problems);
            if self.credentials[..i].iter().any(|o| o.user == c.user) {
                problems.push((
                    format!("credentials[{i}].user"),
                    format!("user {:?} is listed twice", c.user),
                ));
            }
        }
        self.stream.validate(&mut problems);
        self.lake.validate(&mut problems);
        self.batch.validate(&mut problems);
        self.alerts.validate(&self.stream.windows, &mut problems);
        self.forecast.validate(&mut problems);
        self.serve.validate(&mut problems);
        self.auth.validate(&mut problems);
        self.tls.validate(&mut problems);
        for (i, lot) in self.lots.iter().enumerate() {
            for msg in lot.problems() {
                problems.push((format!("lots[{i}]"), msg));
            }
        }
        problems
    }

    /// Whether the forecast runs: `[forecast] enabled` and 10-minute windows configured (it learns
    /// from `occupancy_10m`).
    pub fn forecast_enabled(&self) -> bool {
        self.forecast.enabled
            && self
                .stream
                .windows
                .iter()
                .any(|w| w.as_millis_i64() == crate::forecast::STEP_MS)
    }

    /// The lots registry: `[[lots]]` plus `lots_file`, already validated by [`Config::load`].
    pub fn lots_registry(&self) -> Result<LotsRegistry, crate::Error> {
        let mut records = self.lots.clone();
        if let Some(file) = &self.lots_file {
            records.extend(LotsRegistry::read_csv_file(file)?);
        }
        LotsRegistry::new(records)
    }

    /// `[[credentials]]` plus, when `auth.token` is set, user `fjord` with that token as password and
    /// every right.
    pub fn all_credentials(&self) -> Vec<Credential> {
        let mut all = self.credentials.clone();
        if let Some(token) = &self.auth.token
            && !all.iter().any(|c| c.user == "fjord")
        {
            all.push(Credential::admin("fjord", token));
        }
        all
    }

    /// The lake URL: `lake.url`, or `file://<data_dir>/lake`.
    pub fn lake_url(&self) -> String {
        match &self.lake.url {
            Some(url) => url.clone(),
            None => {
                let dir = self.data_dir.join("lake");
                let abs = std::path::absolute(&dir).unwrap_or(dir);
                format!("file://{}", abs.display())
            }
        }
    }
}

#[cfg(test)]
mod tests;
