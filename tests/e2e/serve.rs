//! `fjord serve` against a real Kafka-protocol broker (tansu) and a lake filled by `fjord batch`:
//!
//! * the merged `occupancy_1m` switches from speed to batch rows exactly at the batch high-water
//!   mark, and after late data and another batch run (no restart) the served numbers equal the
//!   brute-force reference of docs/contract.md §4.1;
//! * HTTP answers in JSON, CSV, NDJSON and Arrow IPC; `/api/lots`, `/api/alerts`, the live tables,
//!   the dashboard and the OpenAPI description;
//! * `psql` runs a query, `\dt` and a parameterised prepared statement;
//! * a real Flight SQL client (ADBC's driver, from Python) runs a query and a parameterised
//!   prepared statement and lists the tables;
//! * wrong credentials are refused on HTTP, Postgres and Flight SQL; DDL/DML are refused; each limit
//!   ends only its query while another connection's query succeeds.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use fjord_core::model::{Alert, AlertStatus, LiveRow, OccupancyWindow, Severity, WindowSource};
use fjord_core::occupancy::reference::{RefReading, windows};
use fjord_testkit::kafka::{BridgeRecord, produce_alerts, produce_readings};
use fjord_testkit::temp_dir;
use fjord_testkit::{ServerProcess, Tansu, free_port};
use rdkafka::producer::{FutureProducer, FutureRecord};

const TOKEN: &str = "serve-test-token-1";
/// 2026-11-20T10:00:00Z: an hour boundary safely in the past.
const T0: i64 = 1_795_168_800_000;
const MIN: i64 = 60_000;

fn fjord(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("FJORD_CONFIG")
        .output()
        .expect("run fjord")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Readings of lot L1 (4 spaces) from `from` to `to` (ms after T0), every 37 s per space, with
/// duplicates and out-of-order lines.
fn readings(from: i64, to: i64, seed: i64) -> Vec<RefReading> {
    let mut out = Vec::new();
    let mut t = T0 + from;
    let mut i = seed;
    while t < T0 + to {
        for s in 0..4 {
            i += 1;
            out.push(RefReading {
                lot_id: "L1".into(),
                space_id: format!("S{s}"),
                ts: t + s * 1_000,
                occupied: (i * 7 + s) % 3 != 0,
            });
        }
        t += 37_000;
    }
    // a duplicate and an out-of-order pair
    let dup = out[3].clone();
    out.push(dup);
    out.swap(1, 5);
    out
}

fn write_jsonl(path: &std::path::Path, rs: &[RefReading]) {
    let mut text = String::new();
    for r in rs {
        text.push_str(&format!(
            "{{\"lot_id\":\"{}\",\"space_id\":\"{}\",\"ts\":{},\"occupied\":{}}}\n",
            r.lot_id, r.space_id, r.ts, r.occupied
        ));
    }
    std::fs::write(path, text).unwrap();
}

fn speed_window(start: i64) -> OccupancyWindow {
    OccupancyWindow {
        lot_id: "L1".into(),
        window_start: start,
        window_end: start + MIN,
        capacity: 4,
        occupied_avg: 3.5,
        occupancy_ratio: 0.875,
        occupied_end: 3,
        arrivals: 9,
        departures: 9,
        readings: 99,
        source: WindowSource::Speed,
    }
}

async fn produce_json(
    kafka: &fjord_core::config::KafkaConfig,
    topic: &str,
    items: &[(String, Vec<u8>)],
) {
    let producer: FutureProducer = fjord_core::kafka::client_config(kafka).create().unwrap();
    for (key, value) in items {
        producer
            .send(
                FutureRecord::to(&kafka.topic(topic))
                    .key(key)
                    .payload(value),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn sql_as(&self, sql: &str, accept: &str, token: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/api/sql", self.base))
            .bearer_auth(token)
            .header("accept", accept)
            .body(sql.to_owned())
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> Vec<serde_json::Value> {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    }

    async fn json(&self, sql: &str) -> Vec<serde_json::Value> {
        let r = self.sql_as(sql, "application/json", TOKEN).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{sql}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn error(&self, sql: &str) -> (u16, String) {
        let r = self.sql_as(sql, "application/json", TOKEN).await;
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    }
}

/// Checks the served 1-minute windows of L1 against the reference up to `hwm`, and that the speed
/// windows after it are the speed layer's.
async fn check_merge(api: &Api, all: &[RefReading], hwm: i64, speed_until: i64) {
    let rows = api
        .json(
            "SELECT CAST(window_end AS BIGINT) / 1000 AS end_ms, source, occupied_avg, occupied_end, \
             arrivals, departures, readings FROM occupancy_1m WHERE lot_id = 'L1' ORDER BY window_end",
        )
        .await;
    let cap = |_: &str| Some(4);
    let want: BTreeMap<i64, OccupancyWindow> = windows(all, &[MIN], hwm, &cap)
        .into_iter()
        .map(|w| (w.window_end, w))
        .collect();
    let mut batch = 0;
    let mut speed = 0;
    let mut seen = std::collections::BTreeSet::new();
    for r in &rows {
        let end = r["end_ms"].as_i64().unwrap();
        assert!(seen.insert(end), "window ending {end} served twice");
        if end <= hwm {
            assert_eq!(r["source"], "batch", "window ending {end} ≤ hwm {hwm}");
            let w = &want[&end];
            assert!(
                (r["occupied_avg"].as_f64().unwrap() - w.occupied_avg).abs() < 1e-9,
                "{r} vs {w:?}"
            );
            assert_eq!(
                r["occupied_end"].as_u64().unwrap(),
                u64::from(w.occupied_end),
                "{r}"
            );
            assert_eq!(r["arrivals"].as_u64().unwrap(), w.arrivals, "{r}");
            assert_eq!(r["departures"].as_u64().unwrap(), w.departures, "{r}");
            assert_eq!(r["readings"].as_u64().unwrap(), w.readings, "{r}");
            batch += 1;
        } else {
            assert_eq!(r["source"], "speed", "window ending {end} > hwm {hwm}");
            assert_eq!(r["readings"], 99);
            speed += 1;
        }
    }
    assert_eq!(batch, want.len(), "every batch window up to the hwm");
    assert_eq!(
        speed as i64,
        (speed_until - hwm).max(0) / MIN,
        "every speed window after the hwm"
    );
}

fn hwm_of(config: &std::path::Path) -> i64 {
    let out = ok(fjord(config, &["batch", "views"]));
    // the summary names the hwm; read it back from the lake instead of parsing prose
    let _ = out;
    let v = ok(fjord(
        config,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT CAST(max(window_end) AS BIGINT) / 1000 AS m FROM occupancy_10m WHERE source = 'batch'",
        ],
    ));
    v.lines().nth(1).unwrap().trim().parse().unwrap()
}

/// Every SQL table of docs/contract.md §7 (this config's window sizes: 1m and 10m).
const SQL_TABLES: [&str; 9] = [
    "readings",
    "alerts",
    "lots",
    "quarantine",
    "occupancy_1m",
    "occupancy_10m",
    "occupancy_forecast",
    "occupancy_live",
    "spaces_live",
];
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_merges_layers_and_answers_http_and_psql_within_limits() {
    let tansu = Tansu::start().expect("tansu");
    let kafka = tansu.kafka_config();
    let dir = temp_dir();
    let (http_port, pg_port, flight_port) = (free_port(), free_port(), free_port());
    let config = dir.path().join("fjord.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"info\"\n\n[kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{}\"\npartitions = 2\n\n\
             [lake]\nurl = \"file://{}/lake\"\n\n\
             [serve]\nhttp_listen = \"127.0.0.1:{http_port}\"\npg_listen = \"127.0.0.1:{pg_port}\"\n\
             flight_listen = \"127.0.0.1:{flight_port}\"\nquery_timeout = \"4s\"\nquery_memory_mb = 32\nmax_result_rows = 2000\n\n\
             [auth]\ntoken = \"{TOKEN}\"\n\n\
             [[lots]]\nlot_id = \"L1\"\nname = \"Harbour\"\nzone = \"port\"\ncapacity = 4\n",
            kafka.brokers,
            kafka.topic_prefix,
            dir.path().display(),
        ),
    )
    .unwrap();
    let topics = fjord_core::kafka::Topics::new(&kafka);
    fjord_core::kafka::ensure_topics(&kafka, &topics.all(), 2)
        .await
        .unwrap();

    // batch layer: 35 minutes of readings → views up to the hwm (T0+30m)
    let mut all = readings(0, 35 * MIN, 0);
    let first = dir.path().join("first.jsonl");
    write_jsonl(&first, &all);
    ok(fjord(
        &config,
        &["batch", "import", first.to_str().unwrap()],
    ));
    let hwm = hwm_of(&config);
    assert_eq!(hwm, T0 + 30 * MIN);

    // speed layer: 1-minute windows from T0+20m to T0+45m, a live row, a reading, an alert
    let speed: Vec<(String, Vec<u8>)> = (20..45)
        .map(|m| {
            (
                "L1".to_owned(),
                serde_json::to_vec(&speed_window(T0 + m * MIN)).unwrap(),
            )
        })
        .collect();
    produce_json(&kafka, "occupancy", &speed).await;
    let live = LiveRow {
        lot_id: "L1".into(),
        capacity: 4,
        occupied: 3,
        occupancy_ratio: 0.75,
        updated_at: T0 + 45 * MIN,
    };
    produce_json(
        &kafka,
        "occupancy-live",
        &[("L1".into(), serde_json::to_vec(&live).unwrap())],
    )
    .await;
    // the twin the stream processor publishes; serve never reads fjord.readings (this raw
    // reading, with another battery, must not show)
    let twin = fjord_core::model::SpaceRow {
        lot_id: "L1".into(),
        space_id: "S9".into(),
        occupied: true,
        since: T0 + 40 * MIN,
        battery: Some(12),
        last_seen: T0 + 44 * MIN,
    };
    produce_json(
        &kafka,
        "spaces-live",
        &[("L1".into(), serde_json::to_vec(&twin).unwrap())],
    )
    .await;
    produce_readings(
        &kafka,
        &[BridgeRecord::reading(
            "L1",
            "S9",
            T0 + 44 * MIN + 1,
            r#"{"occupied":false,"battery":50}"#.into(),
        )],
    )
    .await;
    let alert = Alert {
        id: "a1".into(),
        key: "lot_full/L1".into(),
        rule: "lot_full".into(),
        status: AlertStatus::Firing,
        severity: Severity::Critical,
        lot_id: Some("L1".into()),
        space_id: None,
        gateway_id: None,
        value: Some(0.95),
        threshold: Some(0.9),
        started_at: T0 + 44 * MIN,
        resolved_at: None,
        event_time: T0 + 44 * MIN,
        labels: BTreeMap::new(),
    };
    produce_alerts(&kafka, &[alert]).await;

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fjord"));
    cmd.arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("FJORD_CONFIG");
    let mut server =
        ServerProcess::spawn("fjord serve", cmd, &dir.path().join("serve.log")).unwrap();
    let api = Api {
        base: format!("http://127.0.0.1:{http_port}"),
        client: reqwest::Client::new(),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = api.client.get(format!("{}/readyz", api.base)).send().await
            && r.status() == 200
        {
            break;
        }
        server.check_running().unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "not ready: {}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // --- the merge switches at the hwm
    check_merge(&api, &all, hwm, T0 + 45 * MIN).await;

    // --- live tables, lots and alerts
    let twin = api
        .json(
            "SELECT occupied, battery, CAST(since AS BIGINT) AS since_us \
             FROM spaces_live WHERE space_id = 'S9'",
        )
        .await;
    assert_eq!(
        twin,
        vec![
            serde_json::json!({"occupied": true, "battery": 12, "since_us": (T0 + 40 * MIN) * 1000})
        ]
    );
    let lots = api.get_json("/api/lots").await;
    assert_eq!(lots[0]["lot_id"], "L1");
    assert_eq!(lots[0]["name"], "Harbour");
    assert_eq!(lots[0]["occupied"], 3);
    let firing = api.get_json("/api/alerts?status=firing").await;
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0]["key"], "lot_full/L1");

    // --- four formats
    let q = "SELECT space_id, count(*) AS n FROM readings GROUP BY space_id ORDER BY space_id";
    let csv = api.sql_as(q, "text/csv", TOKEN).await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert_eq!(csv.lines().next(), Some("space_id,n"));
    assert_eq!(csv.lines().count(), 5, "{csv}");
    let nd = api
        .sql_as(q, "application/x-ndjson", TOKEN)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(nd.lines().count(), 4);
    let first_line: serde_json::Value = serde_json::from_str(nd.lines().next().unwrap()).unwrap();
    assert_eq!(first_line["space_id"], "S0");
    let ipc = api
        .sql_as(q, "application/vnd.apache.arrow.stream", TOKEN)
        .await
        .bytes()
        .await
        .unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc.to_vec()), None)
            .unwrap();
    let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(n, 4);
    // what the OpenAPI description promises for requests outside it (found by schemathesis): an
    // Accept naming no format is 406, a malformed query string a JSON 400, both saying what to send
    let r = api.sql_as(q, "image/png", TOKEN).await;
    assert_eq!(r.status(), 406);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("text/csv"),
        "{body}"
    );
    assert_eq!(
        api.sql_as(q, "text/html, */*;q=0.8", TOKEN).await.status(),
        200
    );
    assert_eq!(api.sql_as(q, "", TOKEN).await.status(), 406);
    for query in ["status=firing&status=resolved", "status=pending", "status="] {
        let r = api.get(&format!("/api/alerts?{query}")).await;
        assert_eq!(r.status(), 400, "{query}");
        assert_eq!(r.headers()["content-type"], "application/json", "{query}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("resolved"),
            "{body}"
        );
    }

    let json = api.json(q).await;
    let total: i64 = json.iter().map(|r| r["n"].as_i64().unwrap()).sum();
    let distinct = all
        .iter()
        .map(|r| (r.space_id.clone(), r.ts))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(
        total as usize, distinct,
        "readings deduplicated on (space_id, ts)"
    );

    // a result larger than the first chunk (256 KiB) is streamed whole
    let big = api
        .json("SELECT v, repeat('x', 200) AS pad FROM generate_series(1, 1900) t(v)")
        .await;
    assert_eq!(big.len(), 1900);
    assert_eq!(big[1899]["v"], 1900);

    // --- credentials
    assert_eq!(
        api.sql_as("SELECT 1", "application/json", "wrong")
            .await
            .status(),
        401
    );
    let anon = api
        .client
        .post(format!("{}/api/sql", api.base))
        .body("SELECT 1")
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let anon = api
        .client
        .get(format!("{}/api/lots", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);

    // --- refusals and limits; another connection keeps being served
    let (status, e) = api.error("DROP TABLE readings").await;
    assert_eq!(
        (status, e.contains("read-only") && e.contains("DROP TABLE")),
        (403, true),
        "{e}"
    );
    let (status, e) = api
        .error("INSERT INTO lots VALUES ('x','x','x',1,0,0)")
        .await;
    assert_eq!(status, 403, "{e}");
    let (status, e) = api.error("SELECT * FROM generate_series(1, 50000)").await;
    assert_eq!(status, 422);
    assert!(e.contains("row limit of 2000 rows"), "{e}");
    let (status, e) = api
        .error("SELECT count(*) FROM (SELECT v, repeat('x', 100) AS p FROM generate_series(1, 3000000) t(v) ORDER BY v DESC LIMIT 3000000)")
        .await;
    assert_eq!(status, 422);
    assert!(e.contains("memory than the limit of 32 MiB"), "{e}");
    let slow = {
        let (client, base) = (api.client.clone(), api.base.clone());
        tokio::spawn(async move {
            let r = client
                .post(format!("{base}/api/sql"))
                .bearer_auth(TOKEN)
                .body("SELECT max(a.value + b.value) FROM generate_series(1, 300000) a CROSS JOIN generate_series(1, 300000) b")
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        })
    };
    // give the slow request time to reach the server; the quick one is then sent while it runs
    // (its 4 s limit has not passed) and must succeed on its own connection
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !slow.is_finished(),
        "the slow query should still be running"
    );
    let quick = api.json("SELECT count(*) AS n FROM lots").await;
    assert_eq!(quick[0]["n"], 1);
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("time limit of 4s (serve.query_timeout)"),
        "{body}"
    );

    // --- psql: a query, \dt, a parameterised prepared statement, wrong password, refusals
    let psql = |password: &str, args: &[&str]| {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg_port.to_string(),
                "-U",
                "fjord",
                "-d",
                "fjord",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(args)
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql (postgresql-client) is installed")
    };
    let out = psql(TOKEN, &["-c", "SELECT count(*) FROM readings"]);
    assert_eq!(ok(out).trim(), total.to_string());
    // every SQL table of docs/contract.md §7 is listed, with its columns (as psql, DBeaver and Grafana ask)
    let out = ok(psql(TOKEN, &["-c", "\\dt"]));
    for t in SQL_TABLES {
        assert!(
            out.lines().any(|l| l.contains(&format!("|{t}|"))),
            "\\dt lacks {t}:\n{out}"
        );
    }
    let out = ok(psql(TOKEN, &["-c", "\\d spaces_live"]));
    for c in [
        "lot_id",
        "space_id",
        "occupied",
        "since",
        "battery",
        "last_seen",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{c}|"))),
            "\\d spaces_live lacks column {c}:\n{out}"
        );
    }
    // Grafana's table browser: its table list and its column list, as Grafana 11 sends them
    let search_path = r#"quote_ident(table_schema) IN (
          SELECT CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s)"#;
    let grafana_tables = format!(
        r#"SELECT CASE WHEN {search_path} THEN quote_ident(table_name)
             ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END AS "table"
           FROM information_schema.tables
           WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog',
             '_timescaledb_cache', '_timescaledb_catalog', '_timescaledb_internal',
             '_timescaledb_config', 'timescaledb_information', 'timescaledb_experimental')
           ORDER BY CASE WHEN {search_path} THEN 0 ELSE 1 END, 1"#
    );
    let listed = ok(psql(TOKEN, &["-c", &grafana_tables]));
    let grafana_columns = |table: &str| {
        format!(
            r#"SELECT quote_ident(column_name) AS "column", data_type AS "type"
               FROM information_schema.columns
               WHERE CASE WHEN array_length(parse_ident('{table}'),1) = 2
                 THEN quote_ident(table_schema) = (parse_ident('{table}'))[1]
                   AND quote_ident(table_name) = (parse_ident('{table}'))[2]
                 ELSE quote_ident(table_name) = '{table}' AND {search_path} END"#
        )
    };
    // DBeaver's navigator: the schemas, then the relations of the public schema
    let public = ok(psql(
        TOKEN,
        &[
            "-c",
            "SELECT n.oid FROM pg_catalog.pg_namespace n WHERE nspname = 'public'",
        ],
    ));
    let dbeaver_tables = format!(
        "SELECT c.oid,c.relname,c.relkind,d.description FROM pg_catalog.pg_class c \
         LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 \
         AND d.classoid='pg_class'::regclass \
         WHERE c.relnamespace={} AND c.relkind not in ('i','I','c')",
        public.trim()
    );
    let navigator = ok(psql(TOKEN, &["-c", &dbeaver_tables]));
    for t in SQL_TABLES {
        // (schema-qualified: Grafana compares the schema with `search_path` by hand)
        let shown = listed
            .lines()
            .find(|&l| l == t || l == format!("public.{t}"))
            .unwrap_or_else(|| panic!("Grafana's table list lacks {t}:\n{listed}"));
        assert!(
            navigator.lines().any(|l| l.split('|').nth(1) == Some(t)),
            "DBeaver's navigator lacks {t}:\n{navigator}"
        );
        let column = if t == "quarantine" {
            "reason"
        } else {
            "lot_id"
        };
        let columns = ok(psql(TOKEN, &["-c", &grafana_columns(shown)]));
        assert!(
            columns
                .lines()
                .any(|l| l.starts_with(&format!("{column}|"))),
            "Grafana's column list of {t} lacks {column}:\n{columns}"
        );
    }
    let out = ok(psql(
        TOKEN,
        &["-c", "SELECT count(*) FROM readings WHERE space_id = 'S1'"],
    ));
    // SQL-level PREPARE would be shared by every connection: refused with what to use instead
    let prepare = psql(
        TOKEN,
        &[
            "-c",
            "PREPARE by_space(text) AS SELECT count(*) FROM readings WHERE space_id = $1",
        ],
    );
    assert!(!prepare.status.success());
    assert!(
        String::from_utf8_lossy(&prepare.stderr).contains("driver's prepared statements"),
        "{}",
        String::from_utf8_lossy(&prepare.stderr)
    );
    let s1 = all
        .iter()
        .filter(|r| r.space_id == "S1")
        .map(|r| r.ts)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(out.trim(), s1.to_string());
    let bad = psql("wrong", &["-c", "SELECT 1"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("assword"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let drop = psql(TOKEN, &["-c", "DROP TABLE readings"]);
    assert!(!drop.status.success());
    assert!(
        String::from_utf8_lossy(&drop.stderr).contains("read-only"),
        "{}",
        String::from_utf8_lossy(&drop.stderr)
    );
    let set = psql(TOKEN, &["-c", "SET datafusion.execution.batch_size = 1"]);
    assert!(
        String::from_utf8_lossy(&set.stderr).contains("not allowed"),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let rows = psql(TOKEN, &["-c", "SELECT * FROM generate_series(1, 50000)"]);
    assert!(
        String::from_utf8_lossy(&rows.stderr).contains("row limit"),
        "{}",
        String::from_utf8_lossy(&rows.stderr)
    );

    // --- Flight SQL through ADBC's driver: basic auth (handshake) and a bearer header, a query, a
    // prepared statement with a parameter, the catalog; wrong credentials, DDL and a limit refused
    let user = serde_json::json!({"user": "fjord", "password": TOKEN});
    let bearer = serde_json::json!({"header": format!("Bearer {TOKEN}")});
    let answers = fjord_testkit::flight_sql(
        &format!("grpc://127.0.0.1:{flight_port}"),
        serde_json::json!([
            {"auth": user, "sql": q},
            {"auth": bearer, "sql": "SELECT count(*) AS n FROM readings WHERE space_id = $1", "params": ["S1"]},
            {"auth": user, "objects": true},
            {"auth": {"user": "fjord", "password": "wrong"}, "sql": "SELECT 1"},
            {"auth": {"header": "Bearer wrong"}, "sql": "SELECT 1"},
            {"auth": user, "sql": "DROP TABLE readings"},
            {"auth": bearer, "sql": "SELECT * FROM generate_series(1, 50000)"},
        ]),
    );
    assert_eq!(answers[0]["columns"], serde_json::json!(["space_id", "n"]));
    let via_http: Vec<serde_json::Value> = json
        .iter()
        .map(|r| serde_json::json!([r["space_id"], r["n"]]))
        .collect();
    assert_eq!(
        answers[0]["rows"],
        serde_json::json!(via_http),
        "{}",
        answers[0]
    );
    assert_eq!(
        answers[1]["rows"],
        serde_json::json!([[s1]]),
        "{}",
        answers[1]
    );
    let tables = answers[2]["tables"].as_array().expect("tables");
    for t in [
        "readings",
        "alerts",
        "occupancy_1m",
        "occupancy_live",
        "lots",
    ] {
        assert!(
            tables.contains(&serde_json::json!(format!("fjord.public.{t}"))),
            "{t} missing: {}",
            answers[2]
        );
    }
    assert!(
        answers[2]["readings_columns"]
            .as_array()
            .is_some_and(|c| c.contains(&serde_json::json!("space_id"))),
        "{}",
        answers[2]
    );
    for refused in &answers[3..5] {
        let e = refused["error"].as_str().unwrap_or_default();
        assert!(e.contains("wrong or missing credentials"), "{refused}");
    }
    let e = answers[5]["error"].as_str().unwrap_or_default();
    assert!(e.contains("read-only") && e.contains("DROP TABLE"), "{e}");
    let e = answers[6]["error"].as_str().unwrap_or_default();
    assert!(e.contains("row limit of 2000 rows"), "{e}");

    // --- late data and another batch run: the server sees the new commit without a restart
    let mut more = readings(35 * MIN, 55 * MIN, 1000);
    // late readings for early windows change batch numbers the speed layer never saw
    more.extend(readings(10 * MIN, 12 * MIN, 77).into_iter().map(|mut r| {
        r.ts += 500;
        r
    }));
    let second = dir.path().join("second.jsonl");
    write_jsonl(&second, &more);
    all.extend(more);
    ok(fjord(
        &config,
        &["batch", "import", second.to_str().unwrap()],
    ));
    let hwm2 = hwm_of(&config);
    assert_eq!(hwm2, T0 + 50 * MIN);
    check_merge(&api, &all, hwm2, T0 + 45 * MIN).await;

    // --- the dashboard and the API description are served
    let page = api
        .client
        .get(format!("{}/", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<title>fjord"), "{page}");
    let spec: serde_json::Value = api
        .client
        .get(format!("{}/api/openapi.json", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/api/sql"]["post"].is_object());
    let metrics = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (interface, outcome) in [
        ("http", "limit"),
        ("flight", "ok"),
        ("flight", "unauthorized"),
        ("flight", "refused"),
        ("flight", "limit"),
    ] {
        assert!(
            metrics.contains(&format!(
                "fjord_queries_total{{interface=\"{interface}\",outcome=\"{outcome}\"}}"
            )),
            "{interface}/{outcome}: {metrics}"
        );
    }

    server.signal("TERM").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_kafka_serve_answers_from_the_lake_and_is_not_ready() {
    let dir = temp_dir();
    let (http_port, pg_port, flight_port) = (free_port(), free_port(), free_port());
    let config = dir.path().join("fjord.toml");
    // nothing listens on the Kafka port: the speed layer cannot start
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"warn\"\n\n[kafka]\nbrokers = \"127.0.0.1:{}\"\n\n\
             [lake]\nurl = \"file://{}/lake\"\n\n\
             [serve]\nhttp_listen = \"127.0.0.1:{http_port}\"\npg_listen = \"127.0.0.1:{pg_port}\"\n\
             flight_listen = \"127.0.0.1:{flight_port}\"\n\n\
             [auth]\ntoken = \"{TOKEN}\"\n",
            free_port(),
            dir.path().display()
        ),
    )
    .unwrap();
    let data = dir.path().join("r.jsonl");
    write_jsonl(&data, &readings(0, 5 * MIN, 0));
    ok(fjord(&config, &["batch", "import", data.to_str().unwrap()]));

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fjord"));
    cmd.arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("FJORD_CONFIG");
    let mut server =
        ServerProcess::spawn("fjord serve", cmd, &dir.path().join("serve.log")).unwrap();
    let api = Api {
        base: format!("http://127.0.0.1:{http_port}"),
        client: reqwest::Client::new(),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !api
        .client
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        server.check_running().unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "not up: {}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = api
        .client
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "the speed layer has not read Kafka");
    let n = api.json("SELECT count(*) AS n FROM readings").await;
    let distinct = readings(0, 5 * MIN, 0)
        .iter()
        .map(|r| (r.space_id.clone(), r.ts))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(n[0]["n"], distinct, "the lake is served without Kafka");
    let live = api.json("SELECT count(*) AS n FROM occupancy_live").await;
    assert_eq!(live[0]["n"], 0);
    server.check_running().unwrap();
    server.signal("TERM").unwrap();
}
