//! The forecast as a newcomer meets it in `fjord demo` (defaults, simulator on): the demo lands
//! four weeks of simulated history in a fresh lake, the batch job learns the profiles, and
//! `occupancy_forecast` is served on every interface — SQL over HTTP, `GET /api/lots/{id}/forecast`,
//! `psql` and Flight SQL through ADBC — with the shape of docs/contract.md §4.4 and §7. A
//! restart on the same data dir adds no history. Through the real binary and real clients.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fjord_testkit::{free_port, temp_dir};
use serde_json::Value;

const FJORD: &str = env!("CARGO_BIN_EXE_fjord");
const TOKEN: &str = "forecast-test-token-1";
/// Landing the history, its views and the profiles in a debug build on a busy 2-core machine.
const LANDED: Duration = Duration::from_secs(300);

struct Demo {
    child: Child,
    http: String,
    pg: u16,
    flight: u16,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data_dir: &Path, stdout: &Path) -> Demo {
    let (http, pg, flight) = (free_port(), free_port(), free_port());
    let child = Command::new(FJORD)
        .args(["demo", "--auth-token", TOKEN])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--mqtt-port", &free_port().to_string()])
        .args(["--http-port", &http.to_string()])
        .args(["--pg-port", &pg.to_string()])
        .args(["--flight-port", &flight.to_string()])
        .env_remove("FJORD_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fjord demo");
    Demo {
        child,
        http: format!("http://127.0.0.1:{http}"),
        pg,
        flight,
    }
}

async fn sql(http: &str, query: &str) -> Option<Vec<Value>> {
    let r = reqwest::Client::new()
        .post(format!("{http}/api/sql"))
        .bearer_auth(TOKEN)
        .body(query.to_owned())
        .send()
        .await
        .ok()?;
    assert_eq!(r.status(), 200, "{query}: {:?}", r.text().await);
    r.json().await.ok()
}

async fn get(http: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{http}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Stops the demo with SIGTERM and waits for it.
fn stop(mut demo: Demo) {
    let pid = demo.child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(90) {
        if demo.child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the demo did not stop within 90 s of SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_starts_with_history_and_serves_the_forecast_on_every_interface() {
    let dir = temp_dir();
    let data_dir = dir.path().join("data");
    let out1 = dir.path().join("first.out");
    let demo = start(&data_dir, &out1);

    // every lot of the demo gets 144 steps once the history is landed and learned from
    let t0 = Instant::now();
    let counts =
        "SELECT lot_id, count(*) AS n FROM occupancy_forecast GROUP BY lot_id ORDER BY lot_id";
    let mut last = None;
    while t0.elapsed() < LANDED {
        if let Some(rows) = sql(&demo.http, counts).await
            && rows.len() == 3
            && rows.iter().all(|r| r["n"] == 144)
        {
            last = Some(rows);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let banner = std::fs::read_to_string(&out1).unwrap();
    let rows =
        last.unwrap_or_else(|| panic!("no forecast within {LANDED:?}; demo said:\n{banner}"));
    let lots: Vec<&str> = rows.iter().map(|r| r["lot_id"].as_str().unwrap()).collect();
    assert_eq!(lots, ["central", "harbour", "museum"]);
    assert!(banner.contains("History: landing 28 days"), "{banner}");

    // the history is in the lake: four weeks of readings and of 10-minute windows
    let span = sql(
        &demo.http,
        "SELECT count(*) AS n, min(ts) < now() - INTERVAL '27 days' AS old FROM readings",
    )
    .await
    .unwrap();
    assert!(span[0]["n"].as_i64().unwrap() > 10_000, "{span:?}");
    assert_eq!(span[0]["old"], true, "{span:?}");

    // GET /api/lots/{id}/forecast: 144 consecutive 10-minute steps, the interval around the point
    let (status, body) = get(&demo.http, "/api/lots/central/forecast").await;
    assert_eq!(status, 200, "{body}");
    let steps = body.as_array().unwrap();
    assert_eq!(steps.len(), 144);
    let version = steps[0]["model_version"].as_str().unwrap().to_owned();
    assert!(version.starts_with("v1:"), "{version}");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["lot_id"], "central");
        assert_eq!(s["horizon"], 10 * (i as i64 + 1), "{s}");
        assert_eq!(s["model_version"], version.as_str());
        let (lo, p, hi) = (
            s["lower"].as_f64().unwrap(),
            s["occupancy_ratio"].as_f64().unwrap(),
            s["upper"].as_f64().unwrap(),
        );
        assert!(
            (0.0..=1.0).contains(&lo) && lo <= p && p <= hi && hi <= 1.0,
            "{s}"
        );
        assert!(s["occupied"].as_f64().unwrap() <= 40.0 + 1e-9, "{s}");
    }
    let times: Vec<i64> = steps
        .iter()
        .map(|s| fjord_core::time::parse_rfc3339(s["target_time"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == 600_000),
        "{times:?}"
    );
    let (status, body) = get(&demo.http, "/api/lots/nowhere/forecast").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("\"nowhere\" has no profile"),
        "{body}"
    );

    // psql and Flight SQL see the same table
    let psql = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &demo.pg.to_string(), "-U", "fjord", "-d", "fjord"])
        .args(["-At", "-c", "SELECT count(*), count(DISTINCT model_version) FROM occupancy_forecast WHERE lot_id = 'museum'"])
        .env("PGPASSWORD", TOKEN)
        .output()
        .expect("psql (postgresql-client) is installed");
    assert!(
        psql.status.success(),
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&psql.stdout).trim(), "144|1");
    let answers = fjord_testkit::flight_sql(
        &format!("grpc://127.0.0.1:{}", demo.flight),
        serde_json::json!([{
            "auth": {"user": "fjord", "password": TOKEN},
            "sql": "SELECT lot_id, horizon FROM occupancy_forecast WHERE horizon = 60 ORDER BY lot_id",
        }]),
    );
    assert_eq!(
        answers[0]["rows"],
        serde_json::json!([["central", 60], ["harbour", 60], ["museum", 60]]),
        "{}",
        answers[0]
    );

    // a restart on the same data dir adds no history, and the profiles are read from the lake
    let before = sql(
        &demo.http,
        "SELECT count(*) AS n FROM readings WHERE ts < now() - INTERVAL '1 day'",
    )
    .await
    .unwrap();
    stop(demo);
    let out2 = dir.path().join("second.out");
    let demo = start(&data_dir, &out2);
    let t0 = Instant::now();
    let mut served = None;
    while t0.elapsed() < Duration::from_secs(120) && served.is_none() {
        if let Some(rows) = sql(
            &demo.http,
            "SELECT DISTINCT model_version FROM occupancy_forecast",
        )
        .await
            && !rows.is_empty()
        {
            served = Some(rows);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let served = served.expect("the restarted demo serves the forecast from the lake's profiles");
    assert!(
        served[0]["model_version"]
            .as_str()
            .unwrap()
            .starts_with("v1:")
    );
    let after = sql(
        &demo.http,
        "SELECT count(*) AS n FROM readings WHERE ts < now() - INTERVAL '1 day'",
    )
    .await
    .unwrap();
    assert_eq!(before, after, "the restart added history");
    let banner = std::fs::read_to_string(&out2).unwrap();
    assert!(
        banner.contains("History: the lake already has readings; none added."),
        "{banner}"
    );
    stop(demo);
}

/// The README's accuracy table comes from `scripts/forecast-accuracy.sh`: generated history with
/// daily and weekly patterns, trained on all but the last week. The forecast must beat the last
/// value and the same time last week at every horizon (the command's exit status says so); the
/// data is generated from a fixed seed and end, so the table is the same every run.
#[test]
fn the_accuracy_script_shows_the_forecast_beating_both_baselines() {
    let script = fjord_testkit::source_path("scripts/forecast-accuracy.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(FJORD)
        .output()
        .expect("run the accuracy script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for horizon in ["| 10 min |", "| 1 h |", "| 3 h |", "| 24 h |"] {
        assert!(stdout.contains(horizon), "{stdout}");
    }
    assert!(
        stdout.contains("the forecast beats both baselines at every horizon"),
        "{stdout}"
    );
    assert!(stdout.contains("12 lots"), "{stdout}");
}
