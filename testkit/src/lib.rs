//! The test kit: real servers on free loopback ports, one set per test, stopped when dropped.
//!
//! * [`Tansu`] — a Kafka-protocol broker (`tansu`, in-memory storage).
//! * [`Mosquitto`] — an MQTT broker.
//! * [`S3Server`] — an S3-compatible object store (`s3s-fs` over a temporary directory).
//! * [`WebhookReceiver`] — an HTTP webhook receiver that records requests and answers as told.
//! * [`unique_name`], [`temp_dir`], [`free_port`] — isolation helpers, so tests run in parallel.
//! * [`python`] — the Python of the test venv (deltalake, pyarrow, duckdb, the ADBC Flight SQL
//!   driver), the independent readers and clients of the tests; [`flight_sql`] runs requests
//!   through ADBC's Flight SQL driver.
//! * [`kafka::collect`] reads a topic back; [`mqtt::publish_all`] publishes and awaits the PUBACKs.
//!
//! A missing server binary is reported with the command that installs it. Binaries are looked up in
//! `FJORD_<NAME>` (a path), then `~/.cache/fjord-ci/tools/bin` (where `.ci/run` installs them), then
//! `PATH` and `/usr/sbin`. A dev-only crate: only tests and benchmarks depend on it, and its errors
//! are its own ([`Error`]), not variants of fjord-core's.

mod error;
pub mod kafka;
mod mosquitto;
pub mod mqtt;
mod process;
mod s3;
mod tansu;
mod webhook;

pub use error::{Error, Result};
pub use mosquitto::{Mosquitto, RECOMMENDED_CONFIG as MOSQUITTO_RECOMMENDED};
pub use process::{ServerProcess, find_binary, free_port, wait_until};
pub use s3::S3Server;
pub use tansu::Tansu;
pub use webhook::{Received, WebhookReceiver, alert_changes, ids_per_key};

use rand::Rng;

/// A file of the repository, `rel` to the directory of the crate whose test is running. Read at run
/// time (cargo sets `CARGO_MANIFEST_DIR` for every test it runs), not baked in at compile time: a
/// test binary built in another checkout that shares the target directory reads this checkout.
pub fn source_path(rel: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|| panic!("CARGO_MANIFEST_DIR is not set: run tests through cargo"));
    std::path::PathBuf::from(dir).join(rel)
}

/// `prefix` plus a random suffix: a topic, group or client id no other test uses.
pub fn unique_name(prefix: &str) -> String {
    let n: u64 = rand::rng().random();
    format!("{prefix}-{n:016x}")
}

/// A fresh temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fjord-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}

/// The Python of the test venv: `FJORD_VENV`, else `~/.cache/fjord-ci/venv` (where
/// `scripts/test-deps.sh` installs deltalake, pyarrow, duckdb and adbc-driver-flightsql).
pub fn python() -> std::path::PathBuf {
    let venv = std::env::var("FJORD_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/fjord-ci/venv")
        });
    let py = venv.join("bin/python");
    assert!(
        py.is_file(),
        "{} missing: run `bash scripts/test-deps.sh` (installs the test venv)",
        py.display()
    );
    py
}

/// Runs `requests` through ADBC's Flight SQL driver (Python `adbc-driver-flightsql`, the Go driver
/// of Apache Arrow ADBC) against `uri` (`grpc://host:port`); one answer per request. See
/// `adbc_flight_sql.py` for the request and answer shapes.
pub fn flight_sql(uri: &str, requests: serde_json::Value) -> Vec<serde_json::Value> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(python())
        .args(["-c", include_str!("adbc_flight_sql.py")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the test venv's python");
    let job = serde_json::json!({"uri": uri, "requests": requests});
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(job.to_string().as_bytes())
        .expect("write the requests");
    let out = child.wait_with_output().expect("the Flight SQL client");
    assert!(
        out.status.success(),
        "the Flight SQL client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}
