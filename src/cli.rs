//! The `fjord` command line (docs/contract.md §2): one binary, one subcommand per component.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use fjord_core::duration::Duration;

/// fjord — IoT analytics pipeline: MQTT→Kafka bridge, stream processor, Delta lake, SQL.
#[derive(Debug, Parser)]
#[command(name = "fjord", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Config file (TOML). Every key can also be set as FJORD__SECTION__KEY.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "FJORD_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// fjord's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process on embedded defaults: brokers, pipeline, query server, simulator
    #[command(
        after_help = "Examples:\n  fjord demo\n  fjord demo --data-dir /tmp/fjord --no-simulate\n  fjord demo --kafka 127.0.0.1:9092 --mqtt mqtt://127.0.0.1:1883"
    )]
    Demo(DemoArgs),
    /// MQTT (and HTTP) → Kafka bridge that acknowledges a message only once Kafka has it
    #[command(after_help = "Example:\n  fjord bridge --config fjord.toml")]
    Bridge,
    /// Stream processor (occupancy windows, alerts) and alert dispatcher
    #[command(
        after_help = "Examples:\n  fjord stream --config fjord.toml\n  fjord stream --config fjord.toml --only-deliver"
    )]
    Stream(StreamArgs),
    /// Batch jobs on the lake: run, ingest, compact, views, vacuum, import
    #[command(
        after_help = "Examples:\n  fjord batch run\n  fjord batch run --every 10m\n  fjord batch import readings.jsonl"
    )]
    Batch(BatchArgs),
    /// Query server: HTTP SQL API, dashboard, Postgres wire, Flight SQL
    #[command(after_help = "Example:\n  fjord serve --config fjord.toml")]
    Serve,
    /// Run one SQL query against the lake and print the result
    #[command(
        after_help = "Examples:\n  fjord sql \"SELECT lot_id, count(*) FROM readings GROUP BY 1\"\n  fjord sql --format csv \"SELECT * FROM alerts WHERE status = 'firing'\""
    )]
    Sql(SqlArgs),
    /// Device simulator and load generator over MQTT
    #[command(
        after_help = "Examples:\n  fjord simulate --lots 5 --spaces 100 --rate 200\n  fjord simulate --rate max --count 1000000 --mqtt mqtt://127.0.0.1:1883\n  fjord simulate --duration 10m --duplicates 0.01 --late 0.001 --garbage 0.001"
    )]
    Simulate(SimulateArgs),
    /// Configuration tools
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `fjord config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file (and the environment) and print every problem at once
    #[command(
        after_help = "Examples:\n  fjord config check --config fjord.toml\n  FJORD__KAFKA__BROKERS=k:9092 fjord config check -c fjord.toml --print"
    )]
    Check {
        /// Also print the effective configuration (file + environment + defaults) as TOML.
        #[arg(long)]
        print: bool,
    },
}

/// `fjord stream` flags.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Only deliver `fjord.alerts` to the configured webhooks (no stream processing).
    #[arg(long, conflicts_with = "no_deliver")]
    pub only_deliver: bool,
    /// Only process the stream; leave webhook delivery to a `--only-deliver` instance.
    #[arg(long)]
    pub no_deliver: bool,
}

/// `fjord demo` flags (docs/contract.md §2).
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the lake and state.
    #[arg(long, value_name = "DIR", default_value = "./fjord-data")]
    pub data_dir: PathBuf,
    /// Do not run the device simulator.
    #[arg(long)]
    pub no_simulate: bool,
    /// Do not land 4 weeks of simulated history in an empty lake at start.
    #[arg(long)]
    pub no_history: bool,
    /// Deliver alerts to this webhook URL (repeatable).
    #[arg(long, value_name = "URL")]
    pub webhook: Vec<String>,
    /// Secret for the webhooks' HMAC-SHA256 signature.
    #[arg(long, value_name = "S")]
    pub webhook_secret: Option<String>,
    /// Port of the embedded MQTT broker.
    #[arg(long, default_value_t = 1883)]
    pub mqtt_port: u16,
    /// Port of the HTTP API and dashboard.
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Port of the Postgres wire protocol.
    #[arg(long, default_value_t = 5433)]
    pub pg_port: u16,
    /// Port of Arrow Flight SQL.
    #[arg(long, default_value_t = 50051)]
    pub flight_port: u16,
    /// Use this external Kafka (bootstrap servers) instead of the embedded one.
    #[arg(long, value_name = "BROKERS")]
    pub kafka: Option<String>,
    /// Use this external MQTT broker (mqtt://host:port) instead of the embedded one.
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// Lots registry CSV (lot_id,name,zone,capacity,lat,lon).
    #[arg(long, value_name = "FILE")]
    pub lots: Option<PathBuf>,
    /// How often the batch job runs.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub batch_every: Duration,
    /// Password/token of user `fjord` on every interface; generated and printed when absent.
    #[arg(long, value_name = "TOKEN", env = "FJORD_AUTH_TOKEN")]
    pub auth_token: Option<String>,
    /// MQTT over TLS, HTTPS, TLS on the Postgres wire and Flight SQL, with a throw-away CA made in
    /// <data-dir>/tls (trust its ca.pem); without it, `[tls]` of the config decides
    #[arg(long)]
    pub tls: bool,
}

/// `fjord simulate` flags.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Number of lots (default: the lots registry, else 3).
    #[arg(long)]
    pub lots: Option<u32>,
    /// Spaces per lot (default: each registered lot's capacity, else 40).
    #[arg(long)]
    pub spaces: Option<u32>,
    /// Messages per second, or `max` for as fast as the broker acknowledges.
    #[arg(long, default_value = "50")]
    pub rate: String,
    /// Stop after this long (e.g. 10m); default: until Ctrl-C or --count.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Random seed (the same seed replays the same messages).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of readings sent twice.
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Share of readings sent after later ones.
    #[arg(long, default_value_t = 0.0)]
    pub out_of_order: f64,
    /// Share of readings with a ts minutes in the past.
    #[arg(long, default_value_t = 0.0)]
    pub late: f64,
    /// Share of invalid payloads.
    #[arg(long, default_value_t = 0.0)]
    pub garbage: f64,
    /// Share of sensors that go silent after their first reading.
    #[arg(long, default_value_t = 0.0)]
    pub silent: f64,
    /// Share of sensors with a low battery.
    #[arg(long, default_value_t = 0.0)]
    pub low_battery: f64,
    /// MQTT broker URL (default: [mqtt] url of the config).
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// MQTT user name (default: [mqtt] username).
    #[arg(long)]
    pub username: Option<String>,
    /// MQTT password (default: [mqtt] password).
    #[arg(long, env = "FJORD_MQTT_PASSWORD")]
    pub password: Option<String>,
    /// PEM file of the CA that signed the broker's certificate, for `mqtts://` (default: [mqtt]
    /// ca_file; without either, the system's roots).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Unacknowledged messages per connection.
    #[arg(long, default_value_t = 1000)]
    pub inflight: u16,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Instead of publishing: simulate DURATION of parking ending now (or at --history-end) and
    /// write the transitions to --out as JSON lines for `fjord batch import`.
    #[arg(long, value_name = "DURATION", requires = "out")]
    pub history: Option<Duration>,
    /// Where --history writes.
    #[arg(long, value_name = "FILE", requires = "history")]
    pub out: Option<std::path::PathBuf>,
    /// End of --history (RFC 3339; default: now).
    #[arg(long, value_name = "TIME", requires = "history")]
    pub history_end: Option<String>,
    /// Write every message the broker acknowledged to FILE, one JSON line each
    /// ({"topic": …, "payload": …}): the exact set a pipeline must not lose.
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
}

/// `fjord batch` arguments.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// The job.
    #[command(subcommand)]
    pub job: BatchJob,
}

/// The batch jobs.
#[derive(Debug, Subcommand)]
pub enum BatchJob {
    /// ingest → compact → views → forecast
    #[command(
        after_help = "Examples:\n  fjord batch run                       # once; exit 0 on success (cron, CronJob, Airflow)\n  fjord batch run --every 10m\n  fjord batch run --cron \"0 * * * *\"      # UTC\n  FJORD__LAKE__URL=s3://bucket/fjord fjord batch run"
    )]
    Run(Schedule),
    /// Land new records of fjord.readings in the lake, exactly once
    #[command(
        after_help = "Examples:\n  fjord batch ingest\n  fjord batch ingest --every 1m -c fjord.toml"
    )]
    Ingest(Schedule),
    /// Rewrite small files into large ones
    #[command(
        after_help = "Examples:\n  fjord batch compact\n  fjord batch compact --cron \"30 3 * * *\""
    )]
    Compact(Schedule),
    /// Recompute the batch views for the dates touched since the last run
    #[command(after_help = "Examples:\n  fjord batch views\n  fjord batch views --every 15m")]
    Views(Schedule),
    /// Remove files no longer referenced, after the retention period
    #[command(
        after_help = "Examples:\n  fjord batch vacuum\n  FJORD__BATCH__VACUUM_RETENTION=1d fjord batch vacuum"
    )]
    Vacuum(Schedule),
    /// Backfill historical readings from JSON-lines or CSV files
    #[command(
        after_help = "Examples:\n  fjord batch import history.jsonl\n  fjord batch import 2025-*.csv\n\nJSON lines: {\"lot_id\":\"L1\",\"space_id\":\"S1\",\"ts\":\"2025-10-01T08:00:00Z\",\"occupied\":true}\nCSV header: lot_id,space_id,ts,occupied[,battery,…]"
    )]
    Import {
        /// Files to import.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Learn each lot's forecast profile from occupancy_10m (or, with --evaluate, measure its accuracy)
    #[command(
        after_help = "Examples:\n  fjord batch forecast\n  fjord batch forecast --every 1h\n  fjord batch forecast --evaluate 7d   # train on all but the last 7 days, forecast them, print MAE next to the baselines"
    )]
    Forecast {
        /// Repetition.
        #[command(flatten)]
        schedule: Schedule,
        /// Instead of training: learn from all but the last DURATION of occupancy_10m, forecast
        /// it, print the mean absolute error at 10 min, 1 h, 3 h and 24 h next to the last value
        /// and the same time last week, and exit 1 unless the forecast beats both everywhere.
        #[arg(long, value_name = "DURATION", conflicts_with_all = ["every", "cron"])]
        evaluate: Option<Duration>,
    },
}

/// Repetition of a batch job; without either flag the job runs once.
#[derive(Debug, Args)]
pub struct Schedule {
    /// Repeat every DURATION (e.g. 10m).
    #[arg(long, value_name = "DURATION", conflicts_with = "cron")]
    pub every: Option<Duration>,
    /// Repeat on a cron schedule (e.g. "0 * * * *").
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
}

/// `fjord sql` arguments.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query.
    pub query: String,
    /// Output format: table, csv or json.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
}
