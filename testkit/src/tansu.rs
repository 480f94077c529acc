//! A real Kafka-protocol broker for tests: `tansu` with in-memory storage on a free port.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::error::{Error, Result};
use super::process::{ServerProcess, find_binary, free_port, port_open, wait_until};
use fjord_core::config::KafkaConfig;

const INSTALL: &str =
    "cargo install tansu --locked --features dynostore (or bash scripts/test-deps.sh)";

/// A running tansu broker, stopped when dropped.
#[derive(Debug)]
pub struct Tansu {
    process: ServerProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Tansu {
    /// Starts a broker and waits until it answers a metadata request.
    pub fn start() -> Result<Self> {
        Self::start_with_cluster_id("tansu_cluster")
    }

    /// [`Tansu::start`] with a given Kafka cluster id (tansu's default is `tansu_cluster`).
    pub fn start_with_cluster_id(cluster_id: &str) -> Result<Self> {
        let bin = find_binary("tansu", INSTALL)?;
        let dir = crate::temp_dir();
        // A port found free can be taken before tansu binds it; try a few.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port();
            match Self::start_on(
                &bin,
                port,
                cluster_id,
                dir.path().join(format!("tansu-{port}.log")),
            ) {
                Ok(process) => {
                    return Ok(Self {
                        process,
                        port,
                        _dir: dir,
                    });
                }
                Err(e) if attempt >= 3 => return Err(e),
                Err(_) => {}
            }
        }
    }

    fn start_on(
        bin: &std::path::Path,
        port: u16,
        cluster_id: &str,
        log: PathBuf,
    ) -> Result<ServerProcess> {
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(bin);
        cmd.args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--cluster-id", cluster_id])
            .env(
                "RUST_LOG",
                std::env::var("FJORD_TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            );
        let mut process = ServerProcess::spawn("tansu", cmd, &log)?;
        let ready = wait_until(Duration::from_secs(30), || {
            process.check_running().is_ok() && port_open(port) && metadata_ok(port)
        });
        process.check_running()?;
        if !ready {
            return Err(Error::ServerStart {
                name: "tansu",
                reason: format!("no metadata answer on port {port} within 30 s"),
                log,
            });
        }
        Ok(process)
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A `[kafka]` config pointing at this broker with a unique topic prefix, so tests sharing a
    /// broker never see each other's topics.
    pub fn kafka_config(&self) -> KafkaConfig {
        KafkaConfig {
            brokers: self.bootstrap(),
            topic_prefix: format!("{}.", crate::unique_name("t")),
            partitions: 3,
            ..KafkaConfig::default()
        }
    }

    /// Creates `name` with `partitions` partitions.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let cfg = self.kafka_config();
        Ok(fjord_core::kafka::ensure_topics(&cfg, &[name], partitions).await?)
    }

    /// Pauses the broker (SIGSTOP): clients see a broker that stopped answering.
    pub fn pause(&self) -> Result<()> {
        self.process.signal("STOP")
    }

    /// Resumes a paused broker (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.process.signal("CONT")
    }

    /// The broker's process (log, pid).
    pub fn process(&self) -> &ServerProcess {
        &self.process
    }
}

fn metadata_ok(port: u16) -> bool {
    let consumer: std::result::Result<BaseConsumer, _> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("log_level", "0")
        .create();
    consumer.is_ok_and(|c| c.fetch_metadata(None, Duration::from_secs(2)).is_ok())
}
