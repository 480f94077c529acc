//! A real S3-compatible server for tests: `s3s-fs` serving a temporary directory on a free port,
//! with a bucket created and credentials set.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use super::error::{Error, Result};
use super::process::{ServerProcess, find_binary, free_port, port_open, wait_until};

const INSTALL: &str = "cargo install s3s-fs --version 0.14.1 --locked --features binary (or bash scripts/test-deps.sh)";

/// Access key of the test server.
pub const ACCESS_KEY: &str = "fjord-test";
/// Secret key of the test server.
pub const SECRET_KEY: &str = "fjord-test-secret";

/// A running s3s-fs server, stopped when dropped.
#[derive(Debug)]
pub struct S3Server {
    process: ServerProcess,
    port: u16,
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts a server with an empty bucket `bucket`.
    pub fn start(bucket: &str) -> Result<Self> {
        let bin = find_binary("s3s-fs", INSTALL)?;
        let dir = crate::temp_dir();
        let root = dir.path().join("root");
        // s3s-fs maps buckets to directories under its root.
        std::fs::create_dir_all(root.join(bucket)).map_err(|e| Error::ServerStart {
            name: "s3s-fs",
            reason: format!("cannot create the bucket directory: {e}"),
            log: dir.path().to_path_buf(),
        })?;
        let port = free_port();
        let log = dir.path().join("s3s-fs.log");
        let mut cmd = Command::new(bin);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .env("RUST_LOG", "warn");
        let mut process = ServerProcess::spawn("s3s-fs", cmd, &log)?;
        let ready = wait_until(Duration::from_secs(20), || {
            process.check_running().is_ok() && port_open(port)
        });
        process.check_running()?;
        if !ready {
            return Err(Error::ServerStart {
                name: "s3s-fs",
                reason: format!("not listening on port {port} within 20 s"),
                log,
            });
        }
        Ok(Self { process, port, dir })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The object-store options that reach this server (`[lake.storage_options]`).
    pub fn storage_options(&self) -> BTreeMap<String, String> {
        [
            ("aws_endpoint", self.endpoint()),
            ("aws_region", "us-east-1".to_owned()),
            ("aws_allow_http", "true".to_owned()),
            ("aws_access_key_id", ACCESS_KEY.to_owned()),
            ("aws_secret_access_key", SECRET_KEY.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The directory the server stores objects in (bucket = subdirectory).
    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }

    /// The process.
    pub fn process(&self) -> &ServerProcess {
        &self.process
    }
}
