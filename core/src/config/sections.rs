//! The sections of the config file. Each struct refuses unknown keys, documents every key, takes
//! its defaults from named functions and checks its own semantics in `validate`, pushing
//! (key path, message) pairs so that all problems are reported together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::decode::DecodeOptions;
use crate::duration::Duration;
use crate::topic::{KeyTemplate, TopicPattern};

type Problems = Vec<(String, String)>;

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `"info"` or `"info,fjord_ingest=debug"`. `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

impl LogConfig {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            p.push(("log.level".into(), format!("not a valid log filter: {e}")));
        }
    }
}

/// `[kafka]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Prefix of every fjord topic (`fjord.` gives `fjord.readings`).
    pub topic_prefix: String,
    /// Kafka `client.id`.
    pub client_id: String,
    /// Partitions of the topics fjord creates when they are missing.
    pub partitions: i32,
    /// Replication factor of the topics fjord creates (`-1`: the broker's default).
    pub replication_factor: i32,
    /// How long a broker may hold a consumer's fetch that finds no new data (librdkafka's
    /// `fetch.wait.max.ms`), for every consumer of fjord. It bounds the latency of each Kafka hop on
    /// brokers that answer only when the wait is over (librdkafka's mock cluster, which the demo
    /// embeds, and tansu); Apache Kafka and Redpanda answer as soon as data arrives, so there a
    /// longer wait only saves idle requests. `[kafka.options]` still overrides it.
    pub fetch_wait: Duration,
    /// Extra librdkafka properties passed through verbatim, e.g. `"security.protocol" = "SASL_SSL"`.
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: "fjord.".into(),
            client_id: "fjord".into(),
            partitions: 6,
            replication_factor: -1,
            fetch_wait: Duration::from_millis(10),
            options: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The full name of fjord topic `name` (`readings` → `fjord.readings`).
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.brokers.split(',').any(|b| {
            let b = b.trim();
            b.rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        }) {
            p.push((
                "kafka.brokers".into(),
                format!("expected host:port[,host:port…], got {:?}", self.brokers),
            ));
        }
        let bad = |c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if self.topic_prefix.chars().any(bad) || self.topic_prefix.len() > 200 {
            p.push((
                "kafka.topic_prefix".into(),
                format!(
                    "topic names may only contain letters, digits, '.', '_' and '-', got {:?}",
                    self.topic_prefix
                ),
            ));
        }
        if self.partitions < 1 {
            p.push(("kafka.partitions".into(), "must be at least 1".into()));
        }
        // librdkafka wants it well below socket.timeout.ms (60 s by default)
        if self.fetch_wait.as_millis_i64() > 30_000 {
            p.push((
                "kafka.fetch_wait".into(),
                format!("at most 30s, got {}", self.fetch_wait),
            ));
        }
        if self.replication_factor == 0 || self.replication_factor < -1 {
            p.push((
                "kafka.replication_factor".into(),
                "must be at least 1, or -1 for the broker's default".into(),
            ));
        }
    }
}

/// `[mqtt]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Broker URL: `mqtt://host:port` (or `mqtts://` for TLS).
    pub url: String,
    /// MQTT client id; the broker keeps this client's persistent session.
    pub client_id: String,
    /// User name, if the broker requires one.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<String>,
    /// With `mqtts://`: the CA certificates (PEM) to trust for the broker's certificate; unset:
    /// the operating system's trusted roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: "fjord-bridge".into(),
            username: None,
            password: None,
            ca_file: None,
        }
    }
}

impl MqttConfig {
    /// Host and port of `url`, if it is well formed.
    pub fn host_port(&self) -> Option<(String, u16)> {
        let rest = self
            .url
            .strip_prefix("mqtt://")
            .or_else(|| self.url.strip_prefix("mqtts://"))
            .or_else(|| self.url.strip_prefix("tcp://"))?;
        let (host, port) = rest.trim_end_matches('/').rsplit_once(':')?;
        if host.is_empty() {
            return None;
        }
        Some((host.to_owned(), port.parse().ok()?))
    }

    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.host_port().is_none() {
            p.push((
                "mqtt.url".into(),
                format!(
                    "expected mqtt://host:port or mqtts://host:port, got {:?}",
                    self.url
                ),
            ));
        }
        if self.client_id.is_empty() {
            p.push(("mqtt.client_id".into(), "may not be empty".into()));
        }
        if self.password.is_some() && self.username.is_none() {
            p.push((
                "mqtt.password".into(),
                "is set but mqtt.username is not".into(),
            ));
        }
    }
}

/// `[[mapping]]`: one topic mapping rule (docs/contract.md §3.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRule {
    /// MQTT topic filter with named segments, e.g. `parking/+lot_id/+space_id`.
    pub filter: String,
    /// Kafka topic, relative to `kafka.topic_prefix`: `readings` or `presence` (or any other name).
    pub topic: String,
    /// Kafka key template using the filter's segment names, e.g. `{lot_id}`.
    pub key: String,
}

impl MappingRule {
    /// The rules used when the config has no `[[mapping]]`: docs/contract.md §3.1's layout.
    pub fn defaults() -> Vec<MappingRule> {
        vec![
            MappingRule {
                filter: "parking/+lot_id/+space_id".into(),
                topic: "readings".into(),
                key: "{lot_id}".into(),
            },
            MappingRule {
                filter: "presence/+gateway_id".into(),
                topic: "presence".into(),
                key: "{gateway_id}".into(),
            },
        ]
    }

    /// The parsed filter and key template.
    pub fn compile(&self) -> Result<(TopicPattern, KeyTemplate), crate::topic::PatternError> {
        let pattern = TopicPattern::parse(&self.filter)?;
        let key = KeyTemplate::parse(&self.key, &pattern)?;
        Ok((pattern, key))
    }

    pub(crate) fn validate(&self, at: &str, p: &mut Problems) {
        match self.compile() {
            Err(e) => p.push((at.to_owned(), e.to_string())),
            Ok((pattern, _)) => {
                let required: &[&str] = match self.topic.as_str() {
                    "readings" => &["lot_id", "space_id"],
                    "presence" => &["gateway_id"],
                    _ => &[],
                };
                for name in required {
                    if !pattern.names().any(|n| n == *name) {
                        p.push((
                            format!("{at}.filter"),
                            format!(
                                "a rule for topic {:?} must name a segment +{name}, e.g. parking/+lot_id/+space_id",
                                self.topic
                            ),
                        ));
                    }
                }
            }
        }
        if self.topic.is_empty() {
            p.push((format!("{at}.topic"), "may not be empty".into()));
        }
    }
}

/// `[readings]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadingsConfig {
    /// How far a device's `ts` may be ahead of the receive time before the reading is rejected.
    pub max_ts_ahead: Duration,
}

impl Default for ReadingsConfig {
    fn default() -> Self {
        Self {
            max_ts_ahead: Duration::from_mins(10),
        }
    }
}

impl ReadingsConfig {
    /// The decoder settings.
    pub fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            max_ts_ahead_ms: self.max_ts_ahead.as_millis_i64(),
        }
    }

    pub(crate) fn validate(&self, _p: &mut Problems) {}
}

/// Delivery guarantee of the stream processor's outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingGuarantee {
    /// Outputs, state and input offsets in one Kafka transaction (real Kafka clusters).
    #[default]
    ExactlyOnce,
    /// Idempotent keyed outputs, offsets committed after them (brokers without transactions).
    AtLeastOnce,
}

/// `[stream]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Tumbling window sizes, aligned to the UTC epoch.
    pub windows: Vec<Duration>,
    /// Bounded out-of-orderness: watermark = max event time seen − this.
    pub out_of_orderness: Duration,
    /// Wall-clock idleness after which a partition's watermark follows the clock.
    pub idle_after: Duration,
    /// How far behind the watermark a reading may be and still count; older ones go to `fjord.late`.
    pub allowed_lateness: Duration,
    /// `exactly_once` or `at_least_once`.
    pub processing_guarantee: ProcessingGuarantee,
    /// How often outputs, state and offsets are committed.
    pub commit_interval: Duration,
    /// How long applied readings are remembered to recognise a duplicate that arrives after its
    /// original was counted.
    pub dedup_horizon: Duration,
    /// Kafka consumer group of the stream processors; instances in one group split the partitions.
    pub group_id: String,
    /// This instance's name, part of its transactional id. Unset: random per start. Two live
    /// instances with the same name fence each other (the older one stops).
    pub instance_id: Option<String>,
    /// Where `fjord stream` serves `/metrics`; unset: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Kafka consumer session timeout: how long a crashed instance keeps its partitions before
    /// the group gives them to another (also used by the webhook dispatchers).
    pub session_timeout: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            windows: vec![Duration::from_mins(1), Duration::from_mins(10)],
            out_of_orderness: Duration::from_secs(5),
            idle_after: Duration::from_secs(10),
            allowed_lateness: Duration::from_mins(1),
            processing_guarantee: ProcessingGuarantee::ExactlyOnce,
            commit_interval: Duration::from_millis(100),
            dedup_horizon: Duration::from_mins(2),
            group_id: "fjord-stream".into(),
            instance_id: None,
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9465))),
            session_timeout: Duration::from_secs(45),
        }
    }
}

impl StreamConfig {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.windows.is_empty() {
            p.push((
                "stream.windows".into(),
                "at least one window size is required".into(),
            ));
        }
        for (i, w) in self.windows.iter().enumerate() {
            let ms = w.as_millis_i64();
            if !(1000..=86_400_000).contains(&ms) || 86_400_000 % ms != 0 {
                p.push((
                    format!("stream.windows[{i}]"),
                    format!("a window must be between 1s and 1d and divide a day evenly, got {w}"),
                ));
            }
            if self.windows[..i].contains(w) {
                p.push((
                    format!("stream.windows[{i}]"),
                    format!("{w} is listed twice"),
                ));
            }
        }
        if self.idle_after.is_zero() {
            p.push(("stream.idle_after".into(), "must be longer than 0s".into()));
        }
        if self.commit_interval.is_zero() {
            p.push((
                "stream.commit_interval".into(),
                "must be longer than 0ms".into(),
            ));
        }
    }
}

/// `[lake]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// Object store URL of the lake: `file:///abs/path` or `s3://bucket/prefix`.
    /// Default: `file://<data_dir>/lake`.
    pub url: Option<String>,
    /// Options of the object store, passed to `object_store`/delta-rs as they are, e.g.
    /// `aws_endpoint`, `aws_region`, `aws_allow_http`, `aws_access_key_id`,
    /// `aws_secret_access_key`. The usual `AWS_*` environment variables work as well.
    pub storage_options: std::collections::BTreeMap<String, String>,
}

impl LakeConfig {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if let Some(url) = &self.url {
            let ok = url
                .strip_prefix("file://")
                .is_some_and(|path| path.starts_with('/'))
                || url
                    .strip_prefix("s3://")
                    .is_some_and(|rest| !rest.is_empty());
            if !ok {
                p.push((
                    "lake.url".into(),
                    format!("expected file:///absolute/path or s3://bucket/prefix, got {url:?}"),
                ));
            }
        }
    }
}

/// `[forecast]`: the occupancy forecast (docs/contract.md §4.4). It learns from `occupancy_10m`,
/// so it runs only when `stream.windows` has `10m` (the default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// Whether the batch job trains the profiles and `occupancy_forecast` is served.
    pub enabled: bool,
    /// The profiles learn from this much of the latest `occupancy_10m`.
    pub history: Duration,
    /// How often the stream processor and the query server look for newer profiles in the lake.
    pub refresh: Duration,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            history: Duration::from_secs(56 * 86_400),
            refresh: Duration::from_secs(60),
        }
    }
}

impl ForecastConfig {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.history.as_millis_i64() < 86_400_000 {
            p.push((
                "forecast.history".into(),
                format!(
                    "must be at least 1d (a profile needs a day of windows), got {}",
                    self.history
                ),
            ));
        }
        if self.refresh.as_millis_i64() < 1000 {
            p.push((
                "forecast.refresh".into(),
                format!("must be at least 1s, got {}", self.refresh),
            ));
        }
    }
}

/// `[batch]`: the batch layer (docs/contract.md §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Compaction rewrites a partition's files into files of about this many bytes.
    pub target_file_bytes: u64,
    /// A partition is compacted when it has at least this many files smaller than half the target.
    pub compact_min_files: u32,
    /// `fjord batch ingest` commits to the lake after at most this many Kafka records.
    pub max_records_per_commit: u32,
    /// `fjord batch vacuum` deletes unreferenced files older than this.
    pub vacuum_retention: Duration,
    /// How long `fjord batch ingest` waits for Kafka before giving up on a run.
    pub kafka_timeout: Duration,
    /// Where a scheduled batch job (`--every`/`--cron`) serves /metrics; unset: nowhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            target_file_bytes: 128 * 1024 * 1024,
            compact_min_files: 4,
            max_records_per_commit: 500_000,
            vacuum_retention: Duration::from_secs(7 * 86_400),
            kafka_timeout: Duration::from_secs(30),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9466))),
        }
    }
}

impl BatchConfig {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.target_file_bytes < 1024 * 1024 {
            p.push((
                "batch.target_file_bytes".into(),
                format!(
                    "must be at least 1 MiB (1048576), got {}",
                    self.target_file_bytes
                ),
            ));
        }
        if self.compact_min_files < 2 {
            p.push((
                "batch.compact_min_files".into(),
                "must be at least 2 (compacting one file into one file gains nothing)".into(),
            ));
        }
        if self.max_records_per_commit == 0 {
            p.push((
                "batch.max_records_per_commit".into(),
                "must be at least 1".into(),
            ));
        }
        if self.kafka_timeout.is_zero() {
            p.push((
                "batch.kafka_timeout".into(),
                "must be longer than 0s".into(),
            ));
        }
    }
}

/// `[serve]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// HTTP API and dashboard.
    pub http_listen: SocketAddr,
    /// Postgres wire protocol.
    pub pg_listen: SocketAddr,
    /// Arrow Flight SQL.
    pub flight_listen: SocketAddr,
    /// Longest a query may run (planning, execution and sending its result); then it ends with an
    /// error naming this limit.
    pub query_timeout: Duration,
    /// Memory (MiB) that all running queries may hold together in DataFusion's memory pool; a query
    /// that needs more (and cannot spill, or has used up `query_spill_mb`) ends with an error naming
    /// this limit.
    pub query_memory_mb: u64,
    /// Disk (MiB, in the temporary directory) that sorts, aggregations and joins of all running
    /// queries may spill to together when their memory is used up; past it a query ends with an
    /// error naming this limit. `0`: nothing spills.
    pub query_spill_mb: u64,
    /// Most rows one query may return; a query that would return more ends with an error naming this
    /// limit (add a `LIMIT`).
    pub max_result_rows: u64,
    /// Largest result (MiB of Arrow data) one query may return; past it the query ends with an
    /// error naming this limit.
    pub max_result_mb: u64,
    /// Longest SQL text accepted, in bytes.
    pub max_sql_bytes: u64,
    /// Deepest nesting of expressions and subqueries accepted in one statement.
    pub max_sql_depth: u32,
    /// Most bytes one call of a function that builds values of a size its arguments ask for
    /// (`repeat`, `lpad`, `rpad`, `array_repeat`, `range`, …) may build for a batch of rows (at
    /// most `query_memory_mb` applies).
    pub max_function_output_mb: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            pg_listen: SocketAddr::from(([127, 0, 0, 1], 5433)),
            flight_listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            query_timeout: Duration::from_secs(60),
            query_memory_mb: 2048,
            query_spill_mb: 8192,
            max_result_rows: 1_000_000,
            max_result_mb: 1024,
            max_sql_bytes: 256 * 1024,
            max_sql_depth: 1024,
            max_function_output_mb: 64,
        }
    }
}

impl ServeConfig {
    pub(crate) fn validate(&self, p: &mut Problems) {
        let addrs = [
            ("serve.http_listen", self.http_listen),
            ("serve.pg_listen", self.pg_listen),
            ("serve.flight_listen", self.flight_listen),
        ];
        for (i, (key, addr)) in addrs.iter().enumerate() {
            if addr.port() != 0 && addrs[..i].iter().any(|(_, a)| a == addr) {
                p.push((
                    (*key).into(),
                    format!("{addr} is already used by another interface"),
                ));
            }
        }
        if self.query_timeout.is_zero() {
            p.push((
                "serve.query_timeout".into(),
                "must be longer than 0s".into(),
            ));
        }
        if self.query_memory_mb < 16 {
            p.push(("serve.query_memory_mb".into(), "must be at least 16".into()));
        }
        if self.max_result_rows == 0 {
            p.push(("serve.max_result_rows".into(), "must be at least 1".into()));
        }
        if self.max_result_mb == 0 {
            p.push(("serve.max_result_mb".into(), "must be at least 1".into()));
        }
        // the query threads' stack must hold the parser's tree of the longest text
        if !(64..=1024 * 1024).contains(&self.max_sql_bytes) {
            p.push((
                "serve.max_sql_bytes".into(),
                "must be between 64 and 1048576".into(),
            ));
        }
        if !(16..=4096).contains(&self.max_sql_depth) {
            p.push((
                "serve.max_sql_depth".into(),
                "must be between 16 and 4096".into(),
            ));
        }
        if self.max_function_output_mb == 0 {
            p.push((
                "serve.max_function_output_mb".into(),
                "must be at least 1".into(),
            ));
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Token (the password of user `fjord`) that every interface requires; at least
    /// [`MIN_TOKEN_CHARS`] characters. Unset: generated at start and printed.
    pub token: Option<String>,
}

/// Shortest `auth.token` accepted.
pub const MIN_TOKEN_CHARS: usize = 16;

impl AuthConfig {
    /// Why `token` cannot be the token, if it cannot (an empty or short token would open every
    /// interface to guessing).
    pub fn token_problem(token: &str) -> Option<String> {
        if token.chars().count() < MIN_TOKEN_CHARS {
            return Some(format!(
                "must be at least {MIN_TOKEN_CHARS} characters (got {}); leave it unset to have one generated",
                token.chars().count()
            ));
        }
        if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Some("may not contain spaces or control characters".into());
        }
        None
    }

    pub(crate) fn validate(&self, p: &mut Problems) {
        if let Some(problem) = self.token.as_deref().and_then(Self::token_problem) {
            p.push(("auth.token".into(), problem));
        }
    }
}

/// `[tls]`: one certificate and key for every listener of the process (HTTP API and ingest,
/// Flight SQL, the Postgres wire, the embedded MQTT broker). Both set: those listeners speak TLS
/// only.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file with the server's certificate, then its chain.
    pub cert_file: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
}

impl TlsConfig {
    /// True when listeners speak TLS.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }

    pub(crate) fn validate(&self, p: &mut Problems) {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => {
                p.push(("tls.key_file".into(), "is needed with tls.cert_file".into()))
            }
            (None, Some(_)) => {
                p.push(("tls.cert_file".into(), "is needed with tls.key_file".into()))
            }
            _ => {}
        }
        for (key, file) in [
            ("tls.cert_file", &self.cert_file),
            ("tls.key_file", &self.key_file),
        ] {
            if let Some(f) = file
                && !f.is_file()
            {
                p.push((
                    key.into(),
                    format!("{} is not a readable file", f.display()),
                ));
            }
        }
    }
}
