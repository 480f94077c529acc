//! The dashboard in headless Chromium against a running pipeline (`fjord demo` with its simulator):
//! it signs in with the token of the URL, shows live lot cards whose values change without a reload,
//! runs a query in the SQL console (table and chart), its chart continues into the future with the
//! forecast and its band (from the demo's simulated history), and a screenshot is saved under
//! `<target>/tmp/dashboard/`. Driven by `tests/browser/dashboard.cjs` (playwright-core, Debian's
//! chromium; `scripts/test-deps.sh` installs both).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use fjord_testkit::{free_port, temp_dir, wait_until};

fn node_modules() -> PathBuf {
    std::env::var_os("FJORD_NODE_MODULES").map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/fjord-ci/node/node_modules")
        },
        PathBuf::from,
    )
}

#[test]
fn dashboard_shows_live_values_and_runs_a_query_in_chromium() {
    let dir = temp_dir();
    let data_dir = dir.path().join("data");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["demo", "--auth-token", "dashboard-token-1"])
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--mqtt-port", &free_port().to_string()])
        .args(["--http-port", &free_port().to_string()])
        .args(["--pg-port", &free_port().to_string()])
        .args(["--flight-port", &free_port().to_string()])
        .env_remove("FJORD_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fjord demo");
    let endpoints_path = data_dir.join("endpoints.json");
    let up = wait_until(Duration::from_secs(60), || endpoints_path.exists());
    if !up {
        let _ = demo.kill();
        panic!("the demo did not write endpoints.json");
    }
    let endpoints: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&endpoints_path).unwrap()).unwrap();
    let url = endpoints["http"]["dashboard"].as_str().unwrap().to_owned();
    assert!(url.ends_with("/#token=dashboard-token-1"), "{url}");

    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&out_dir).unwrap();
    let _ = std::fs::remove_file(out_dir.join("dashboard.png"));
    let script = fjord_testkit::source_path("tests/browser/dashboard.cjs");
    let run = Command::new("node")
        .arg(&script)
        .arg(&url)
        .arg(&out_dir)
        .env("NODE_PATH", node_modules())
        .output()
        .expect("node is installed (scripts/test-deps.sh)");
    let _ = demo.kill();
    let _ = demo.wait();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "browser run failed:\n{stderr}\n{stdout}"
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_ne!(report["first"], report["changed"], "{report}");
    assert_eq!(
        report["header"],
        serde_json::json!(["lot_id", "spaces"]),
        "{report}"
    );
    assert!(report["rows"].as_u64().unwrap() >= 1, "{report}");
    // the chart continues into the future: the forecast of every demo lot, with its band
    assert_eq!(report["forecast"], 3, "{report}");
    assert_eq!(report["bands"], 3, "{report}");
    assert!(
        report["errors"].as_array().unwrap().is_empty(),
        "page errors: {report}"
    );
    let shot = std::fs::metadata(out_dir.join("dashboard.png")).expect("screenshot saved");
    assert!(
        shot.len() > 10_000,
        "screenshot too small: {} bytes",
        shot.len()
    );
}
