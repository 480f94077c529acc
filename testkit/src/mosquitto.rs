//! A real MQTT broker for tests: Debian's `mosquitto` on a free port.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use super::error::{Error, Result};
use super::process::{ServerProcess, find_binary, free_port, port_open, wait_until};

/// The settings the README recommends for a mosquitto that feeds fjord: unlimited queues for
/// persistent sessions (the default 1000 messages silently drops the rest while the bridge is away)
/// and no cap on in-flight messages (the bridge's MQTT 5 receive-maximum decides).
pub const RECOMMENDED_CONFIG: &str = "max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 0
set_tcp_nodelay true
";

const INSTALL: &str = "apt-get install -y mosquitto (or bash scripts/test-deps.sh)";

/// A running mosquitto, stopped when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    process: ServerProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts mosquitto with anonymous access on a free loopback port.
    pub fn start() -> Result<Self> {
        Self::start_with("")
    }

    /// Starts mosquitto with [`RECOMMENDED_CONFIG`].
    pub fn start_recommended() -> Result<Self> {
        Self::start_with(RECOMMENDED_CONFIG)
    }

    /// Starts mosquitto with extra lines appended to its config (e.g. `max_queued_messages 0`).
    pub fn start_with(extra_config: &str) -> Result<Self> {
        let bin = find_binary("mosquitto", INSTALL)?;
        let dir = crate::temp_dir();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port();
            let conf = dir.path().join(format!("mosquitto-{port}.conf"));
            let mut text = String::new();
            let _ = writeln!(text, "listener {port} 127.0.0.1");
            let _ = writeln!(text, "allow_anonymous true");
            let _ = writeln!(text, "persistence false");
            text.push_str(extra_config);
            text.push('\n');
            std::fs::write(&conf, text).map_err(|e| Error::io("writing mosquitto.conf", e))?;
            let log = dir.path().join(format!("mosquitto-{port}.log"));
            let mut cmd = Command::new(&bin);
            cmd.arg("-c").arg(&conf);
            let mut process = ServerProcess::spawn("mosquitto", cmd, &log)?;
            let ready = wait_until(Duration::from_secs(10), || {
                process.check_running().is_ok() && port_open(port)
            });
            match (process.check_running(), ready) {
                (Ok(()), true) => {
                    return Ok(Self {
                        process,
                        port,
                        _dir: dir,
                    });
                }
                (Err(e), _) if attempt >= 3 => return Err(e),
                (Ok(()), false) if attempt >= 3 => {
                    return Err(Error::ServerStart {
                        name: "mosquitto",
                        reason: format!("port {port} not open within 10 s"),
                        log,
                    });
                }
                _ => {}
            }
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's process (log, pid, signals).
    pub fn process(&self) -> &ServerProcess {
        &self.process
    }
}
