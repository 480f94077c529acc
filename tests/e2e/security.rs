//! Security: hostile input and TLS against the real `fjord demo` binary with real clients (HTTP, psql, psycopg for
//! the Postgres extended protocol, MQTT): each case gets a clear refusal or a bounded answer, and
//! the process keeps serving and loses nothing it acknowledged.
//!
//! * a statement nested 2,000 levels deep (which overflowed a thread's stack and aborted the whole
//!   process) is refused by `serve.max_sql_depth` on HTTP and Postgres; 1,000 levels are answered;
//!   a chain of names the SQL parser backtracks over for hours is refused before parsing;
//! * `SELECT … INTO` is refused on the Postgres wire (simple and extended protocol);
//! * `repeat('x', 2100000000)` is refused before it allocates;
//! * a client that stops reading does not keep its query (and its memory) past the time limit;
//! * a device cannot take the bridge's MQTT session, nor another device's;
//! * a device publishing to a 50,000-character space id is dead-lettered; a lot whose state is
//!   larger than a Kafka record is checkpointed in parts and every lot stays live;
//! * health checks and HTTP ingest answer while two queries run into their time limit;
//! * `endpoints.json`, which holds the token, is readable by its owner only; a short token is
//!   refused;
//! * `fjord demo --tls`: curl trusts the demo's throw-away CA for HTTPS SQL and ingest, psql
//!   connects with `sslmode=verify-full` (SCRAM-SHA-256 inside TLS), ADBC's Flight SQL driver with
//!   `grpc+tls://`, a device over MQTT with TLS; a connection without the CA, plain HTTP or MQTT
//!   on a TLS port, a Postgres connection without TLS and a wrong password are refused.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fjord_testkit::{free_port, temp_dir};
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

const FJORD: &str = env!("CARGO_BIN_EXE_fjord");
const TOKEN: &str = "hostile-test-token-0123";
const TIMEOUT_S: u64 = 4;
const TLS_TOKEN: &str = "tls-test-token-0123456";

struct Demo {
    child: Child,
    http: String,
    pg_port: u16,
    mqtt_port: u16,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path) -> Demo {
    let config = dir.join("fjord.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nquery_timeout = \"{TIMEOUT_S}s\"\nquery_memory_mb = 64\nmax_function_output_mb = 16\n\n\
             [[credentials]]\nuser = \"dev-a\"\npassword = \"dev-a-password\"\npublish = [\"parking/A/#\"]\n\n\
             [[credentials]]\nuser = \"dev-b\"\npassword = \"dev-b-password\"\npublish = [\"parking/B/#\"]\n"
        ),
    )
    .unwrap();
    let (mqtt_port, http_port, pg_port) = (free_port(), free_port(), free_port());
    let child = Command::new(FJORD)
        .arg("--config")
        .arg(&config)
        .args([
            "demo",
            "--no-simulate",
            "--no-history",
            "--auth-token",
            TOKEN,
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--mqtt-port", &mqtt_port.to_string()])
        .args(["--http-port", &http_port.to_string()])
        .args(["--pg-port", &pg_port.to_string()])
        .args(["--flight-port", &free_port().to_string()])
        .args(["--batch-every", "1h"])
        .env_remove("FJORD_CONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("demo.log")).unwrap())
        .spawn()
        .expect("start fjord demo");
    let endpoints = dir.join("data/endpoints.json");
    assert!(
        fjord_testkit::wait_until(Duration::from_secs(120), || endpoints.exists()),
        "the demo did not start: {}",
        std::fs::read_to_string(dir.join("demo.log")).unwrap_or_default()
    );
    Demo {
        child,
        http: format!("http://127.0.0.1:{http_port}"),
        pg_port,
        mqtt_port,
    }
}

impl Demo {
    /// HTTP SQL: status and body.
    async fn sql(&self, query: &str) -> (u16, String) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/sql", self.http))
            .bearer_auth(TOKEN)
            .body(query.to_owned())
            .send()
            .await
            .expect("HTTP SQL answers");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    async fn rows(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.sql(query).await;
        assert_eq!(status, 200, "{query}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// psql's answer: success and what it printed (stdout then stderr).
    fn psql(&self, query: &str) -> (bool, String) {
        let o = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.pg_port.to_string()])
            .args(["-U", "fjord", "-d", "fjord", "-X", "-A", "-t", "-c", query])
            .env("PGPASSWORD", TOKEN)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("run psql");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text)
    }

    fn alive(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the demo process died"
        );
    }

    async fn metric(&self, line_start: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(line_start))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Polls `query` until `done` holds, at most `limit`.
    async fn until(&self, query: &str, limit: Duration, done: impl Fn(&[Value]) -> bool) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if done(&self.rows(query).await) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// An MQTT 3.1.1 connection: the client, or the broker's refusal.
async fn mqtt(
    port: u16,
    client_id: &str,
    user: &str,
    password: &str,
) -> Result<AsyncClient, ConnectionError> {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_credentials(user, password);
    opts.set_clean_session(false);
    opts.set_max_packet_size(200 * 1024, 200 * 1024);
    let (client, mut lp) = AsyncClient::new(opts, 1000);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), lp.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => panic!("no CONNACK from the broker"),
        }
    }
    tokio::spawn(async move { while lp.poll().await.is_ok() {} });
    Ok(client)
}

/// Publishes one reading with QoS 1.
async fn send(client: &AsyncClient, topic: impl Into<String>, payload: &str) {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.to_owned())
        .await
        .unwrap();
}

fn sum_of_ones(n: usize) -> String {
    format!("SELECT 1{} AS v", "+1".repeat(n - 1))
}

async fn deep_statements_are_refused_not_fatal(demo: &mut Demo) {
    let rows = demo.rows(&sum_of_ones(1000)).await;
    assert_eq!(rows[0]["v"], 1000);
    let (status, body) = demo.sql(&sum_of_ones(2000)).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("serve.max_sql_depth"), "{body}");
    let (ok, text) = demo.psql(&sum_of_ones(2000));
    assert!(!ok && text.contains("serve.max_sql_depth"), "{text}");
    let (status, body) = demo.sql(&"SELECT 1 ".repeat(40_000)).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("serve.max_sql_bytes"), "{body}");
    // 130 bytes that the SQL parser backtracks over for hours (found by the alert_expr fuzz
    // target): a long chain of names is refused before parsing, on HTTP and Postgres alike
    let backtracking = format!(
        "SELECT $0. o.e$0. $0. o. o.e. o. o.e$0. $0. o.e. o. o.e$0. $0. o. o.e$0. $0. o.e. {}o.~~,",
        "o. o.e. ".repeat(4)
    );
    let (status, body) = demo.sql(&backtracking).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("not written as in a name"), "{body}");
    let (ok, text) = demo.psql(&backtracking);
    assert!(!ok && text.contains("not written as in a name"), "{text}");
    // a pattern no name rule catches (subscripts, slices and casts between dots; the fuzzer's
    // fourth finding): its parse runs out of steps and the text is refused
    let found = std::fs::read(fjord_testkit::source_path(
        "fuzz/seeds/alert_expr/regression_backtracking_slices",
    ))
    .unwrap();
    let slices = format!("SELECT {}", String::from_utf8_lossy(&found[1..]));
    let (status, body) = demo.sql(&slices).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("backtrack"), "{body}");
    assert_eq!(demo.rows("SELECT 1 AS v").await[0]["v"], 1);
    demo.alive();
}

async fn the_postgres_wire_cannot_create_tables(demo: &mut Demo) {
    let (ok, text) = demo.psql("SELECT * INTO t FROM lots");
    assert!(!ok && text.contains("read-only"), "{text}");
    // the extended protocol (psycopg binds the parameter on the server)
    let script = format!(
        "import psycopg\n\
         c = psycopg.connect(host='127.0.0.1', port={}, user='fjord', password='{TOKEN}', dbname='fjord')\n\
         try:\n    c.execute('SELECT * INTO t2 FROM lots WHERE lot_id = %s', ['A'])\n    print('created')\n\
         except Exception as e:\n    print('refused:', e)\n\
         c.rollback()\n\
         try:\n    c.execute('SELECT %s' + ' + 1' * 100000, [1])\n    print('long answered')\n\
         except Exception as e:\n    print('long refused:', e)\n",
        demo.pg_port
    );
    let o = Command::new(fjord_testkit::python())
        .args(["-c", &script])
        .output()
        .expect("run psycopg");
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        out.contains("refused:") && out.contains("read-only"),
        "{out}"
    );
    assert!(
        out.contains("long refused:") && out.contains("serve.max_sql_bytes"),
        "the extended protocol bounds the SQL text too: {out}"
    );
    for t in ["t", "t2"] {
        let (status, body) = demo.sql(&format!("SELECT count(*) FROM {t}")).await;
        assert_eq!(status, 400, "table {t} exists: {body}");
    }
}

fn peak_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// SQL-level `PREPARE` over the simple protocol (libpq's `PQexec` through psycopg) is refused;
/// drivers' prepared statements, from two connections at once, stay each with its connection.
fn prepared_statements_belong_to_their_connection(demo: &mut Demo) {
    // SQL-level PREPARE/EXECUTE/DEALLOCATE would live in the session every connection shares:
    // refused in every spelling, also where the text has a statement only the server's parser
    // knows; drivers' prepared statements (Parse/Bind, psycopg's `prepare=True`) are per
    // connection: two connections prepare different queries under the same name (`_pg3_0`).
    let script = format!(
        "import psycopg\n\
         def connect():\n    return psycopg.connect(host='127.0.0.1', port={}, user='fjord', password='{TOKEN}', dbname='fjord', autocommit=True)\n\
         def run(c, q):\n    r = c.pgconn.exec_(q.encode())\n    if r.error_message:\n        return 'error: ' + r.error_message.decode().strip()\n    return r.get_value(0, 0).decode() if r.ntuples else 'ok'\n\
         def prepared(c, q):\n    return c.execute(q, ('none',), prepare=True).fetchone()[0]\n\
         a, b = connect(), connect()\n\
         for q in [\"PREPARE by_lot(text) AS SELECT count(*) FROM lots WHERE lot_id = $1\", \"EXECUTE by_lot('none')\", \"EXEC by_lot('none')\", \"EXECUTE by_lot('x'); ABORT\"]:\n    print('sql-level:', run(a, q))\n\
         print('deallocate one:', run(a, 'DEALLOCATE by_lot'))\n\
         print('deallocate all:', run(a, 'DEALLOCATE ALL'))\n\
         print('a prepared:', prepared(a, 'SELECT count(*) + 41 FROM lots WHERE lot_id = %s'))\n\
         print('b prepared:', prepared(b, 'SELECT count(*) + 7 FROM lots WHERE lot_id = %s'))\n\
         print('a again:', prepared(a, 'SELECT count(*) + 41 FROM lots WHERE lot_id = %s'))\n\
         print('b again:', prepared(b, 'SELECT count(*) + 7 FROM lots WHERE lot_id = %s'))\n\
         a.prepared_max = 2\n\
         for k in range(5):\n    print('evicting %d:' % k, prepared(a, 'SELECT count(*) + %d FROM lots WHERE lot_id = %%s' % k))\n\
         for k in range(5):\n    print('again %d:' % k, prepared(a, 'SELECT count(*) + %d FROM lots WHERE lot_id = %%s' % k))\n",
        demo.pg_port
    );
    let o = Command::new(fjord_testkit::python())
        .args(["-c", &script])
        .output()
        .expect("run psycopg");
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    let refusals: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("sql-level:"))
        .collect();
    assert_eq!(refusals.len(), 4, "{out}");
    for r in refusals {
        assert!(
            r.contains("SQL-level PREPARE and EXECUTE are not available"),
            "{out}"
        );
    }
    let line = |start: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(start))
            .unwrap_or_else(|| panic!("no {start:?} in {out}"))
            .trim()
            .to_owned()
    };
    assert_eq!(line("a prepared:"), "41", "{out}");
    assert_eq!(line("b prepared:"), "7", "{out}");
    assert_eq!(line("a again:"), "41", "{out}");
    assert_eq!(line("b again:"), "7", "{out}");
    // DEALLOCATE acts on the connection's own protocol-level statements: psycopg evicting from
    // its cache of 2 (5 queries, each prepared, then each again) gets every answer right
    assert_eq!(line("deallocate one:"), "ok", "{out}");
    assert_eq!(line("deallocate all:"), "ok", "{out}");
    for k in 0..5 {
        assert_eq!(line(&format!("evicting {k}:")), k.to_string(), "{out}");
        assert_eq!(line(&format!("again {k}:")), k.to_string(), "{out}");
    }
    demo.alive();
}

async fn functions_cannot_allocate_without_bound(demo: &mut Demo) {
    let (status, body) = demo
        .sql("SELECT length(repeat('x', 2100000000)) AS n")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("repeat()") && body.contains("serve.max_function_output_mb"),
        "{body}"
    );
    // each step within the cap, the chain doubling a value 20 times (8 GiB uncapped)
    let mut chain = String::from("WITH s0 AS (SELECT repeat('x', 8192) s)");
    for i in 1..=20 {
        chain.push_str(&format!(", s{i} AS (SELECT s || s s FROM s{})", i - 1));
    }
    chain.push_str(" SELECT length(s) FROM s20");
    let (status, body) = demo.sql(&chain).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("concat()") && body.contains("serve.max_function_output_mb"),
        "{body}"
    );
    // functions that grow their argument by a factor are checked after each call
    let mut chain = String::from("WITH s0 AS (SELECT repeat('x', 8192) s)");
    for i in 1..=20 {
        chain.push_str(&format!(
            ", s{i} AS (SELECT encode(s, 'hex') s FROM s{})",
            i - 1
        ));
    }
    chain.push_str(" SELECT length(s) FROM s20");
    let (status, body) = demo.sql(&chain).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("encode()") && body.contains("serve.max_function_output_mb"),
        "{body}"
    );
    let peak = peak_rss_mb(demo.child.id());
    assert!(peak < 1500, "peak RSS {peak} MiB");
    demo.alive();
}

async fn a_client_that_stops_reading_does_not_keep_its_query(demo: &mut Demo) {
    // a result far larger than the socket buffers, from a sort holding pool memory
    let sort = "SELECT v, repeat('x', 60) AS pad FROM generate_series(1, 300000) t(v) ORDER BY v DESC LIMIT 300000";
    let running = "fjord_queries_running";
    assert_eq!(demo.metric(running).await, 0.0);
    let addr = demo.http.trim_start_matches("http://").to_owned();
    let mut stuck = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stuck,
        "POST /api/sql HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: {}\r\n\r\n{sort}",
        sort.len()
    )
    .unwrap();
    // the client never reads: the query runs, then ends at its time limit, the connection open
    let t0 = Instant::now();
    while demo.metric(running).await < 1.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the query never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while demo.metric(running).await > 0.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(TIMEOUT_S + 15),
            "the query still runs past its time limit while its client does not read"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        t0.elapsed() >= Duration::from_secs(TIMEOUT_S - 1),
        "ended before its time limit: {:?}",
        t0.elapsed()
    );
    drop(stuck);
    demo.alive();
}

async fn devices_cannot_take_sessions(demo: &mut Demo) {
    let port = demo.mqtt_port;
    let forwarded = r#"fjord_bridge_forwarded_total{topic="fjord.readings"}"#;
    let before = demo.metric(forwarded).await;
    match mqtt(port, "fjord-demo-bridge", "dev-a", "dev-a-password").await {
        Err(ConnectionError::ConnectionRefused(_)) => {}
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("a device took the bridge's client id"),
    }
    let a = mqtt(port, "sensor-a-1", "dev-a", "dev-a-password")
        .await
        .expect("dev-a connects with its own id");
    match mqtt(port, "sensor-a-1", "dev-b", "dev-b-password").await {
        Err(ConnectionError::ConnectionRefused(_)) => {}
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("dev-b took dev-a's session"),
    }
    // everything dev-a publishes arrives: the bridge kept its session
    for i in 0..40 {
        let payload = format!(r#"{{"occupied":{}}}"#, i % 2 == 0);
        send(&a, format!("parking/A/S{i}"), &payload).await;
    }
    let t0 = Instant::now();
    while demo.metric(forwarded).await < before + 40.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "readings lost: {} of 40 forwarded",
            demo.metric(forwarded).await - before
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        demo.until(
            "SELECT count(*) AS n FROM spaces_live WHERE lot_id = 'A'",
            Duration::from_secs(30),
            |r| r[0]["n"] == 40
        )
        .await
    );
}

async fn one_device_cannot_freeze_the_speed_layer(demo: &mut Demo) {
    let port = demo.mqtt_port;
    let bad_id = r#"fjord_bridge_dead_lettered_total{reason="bad_id"}"#;
    let a = mqtt(port, "sensor-a-2", "dev-a", "dev-a-password")
        .await
        .unwrap();
    let poison = format!("parking/A/{}", "x".repeat(50_000));
    for _ in 0..25 {
        send(&a, poison.clone(), r#"{"occupied":true}"#).await;
    }
    let t0 = Instant::now();
    while demo.metric(bad_id).await < 25.0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "not dead-lettered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // lot B: 5,000 spaces with 120-byte ids, a state larger than a Kafka record (1 MB)
    let b = mqtt(port, "sensor-b-1", "dev-b", "dev-b-password")
        .await
        .unwrap();
    for i in 0..5000 {
        send(&b, format!("parking/B/{i:0>120}"), r#"{"occupied":true}"#).await;
    }
    assert!(
        demo.until(
            "SELECT count(*) AS n FROM spaces_live WHERE lot_id = 'B'",
            Duration::from_secs(60),
            |r| r[0]["n"] == 5000
        )
        .await,
        "lot B's spaces are not all served"
    );
    // every lot stays live: a change in lot A shows in occupancy_live
    let before: Vec<Value> = demo
        .rows("SELECT occupied FROM occupancy_live WHERE lot_id = 'A'")
        .await;
    let was = before[0]["occupied"].as_i64().unwrap();
    send(&a, "parking/A/S1", r#"{"occupied":true}"#).await;
    assert!(
        demo.until(
            "SELECT occupied FROM occupancy_live WHERE lot_id = 'A'",
            Duration::from_secs(20),
            |r| r[0]["occupied"].as_i64() == Some(was + 1)
        )
        .await,
        "lot A's occupancy stopped"
    );
    let aborted = demo
        .metric(r#"fjord_stream_commits_total{outcome="aborted"}"#)
        .await;
    assert_eq!(aborted, 0.0, "the processor aborted commits");
}

async fn health_and_ingest_answer_while_queries_hit_their_limits(demo: &mut Demo) {
    let heavy = "SELECT max(a.value + b.value) FROM generate_series(1, 300000) a CROSS JOIN generate_series(1, 300000) b";
    let running: Vec<_> = (0..2)
        .map(|_| {
            let http = demo.http.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{http}/api/sql"))
                    .bearer_auth(TOKEN)
                    .body(heavy)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let web = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    let mut i = 0;
    while !running.iter().all(tokio::task::JoinHandle::is_finished) {
        let t = Instant::now();
        let r = web
            .get(format!("{}/healthz", demo.http))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let ingest = web
            .post(format!("{}/ingest/parking/A/H{i}", demo.http))
            .basic_auth("dev-a", Some("dev-a-password"))
            .header("content-type", "application/json")
            .body(r#"{"occupied":true}"#)
            .send()
            .await
            .unwrap();
        assert!(ingest.status().is_success(), "{}", ingest.status());
        slowest = slowest.max(t.elapsed());
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for r in running {
        let body = r.await.unwrap();
        assert!(body.contains("serve.query_timeout"), "{body}");
    }
    // loose on purpose (a shared machine); the figure itself is in the issue's note
    assert!(
        slowest < Duration::from_secs(1),
        "health + ingest took {slowest:?} while queries ran ({i} rounds)"
    );
    demo.alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_or_bounded_and_the_demo_keeps_serving() {
    let dir = temp_dir();
    let mut demo = start(dir.path());
    let mode = std::fs::metadata(dir.path().join("data/endpoints.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "endpoints.json holds the token");
    deep_statements_are_refused_not_fatal(&mut demo).await;
    the_postgres_wire_cannot_create_tables(&mut demo).await;
    prepared_statements_belong_to_their_connection(&mut demo);
    functions_cannot_allocate_without_bound(&mut demo).await;
    a_client_that_stops_reading_does_not_keep_its_query(&mut demo).await;
    devices_cannot_take_sessions(&mut demo).await;
    one_device_cannot_freeze_the_speed_layer(&mut demo).await;
    health_and_ingest_answer_while_queries_hit_their_limits(&mut demo).await;
    let rows = demo.rows("SELECT count(*) AS n FROM lots").await;
    assert!(rows[0]["n"].as_i64().is_some());
    demo.alive();
}

#[test]
fn a_short_token_is_refused() {
    for token in ["", "short"] {
        let dir = temp_dir();
        let o = Command::new(FJORD)
            .args([
                "demo",
                "--no-simulate",
                "--no-history",
                "--auth-token",
                token,
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("FJORD_CONFIG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("at least 16 characters"),
            "{token:?}: {err}"
        );
    }
}

struct TlsDemo(Child);

impl Drop for TlsDemo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl")
}

fn psql_tls(conninfo: &str, password: &str) -> Output {
    Command::new("psql")
        .args([
            conninfo,
            "-X",
            "-A",
            "-t",
            "-c",
            "SELECT count(*) FROM lots",
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn start_tls(dir: &Path) -> (TlsDemo, [u16; 4], PathBuf) {
    let (http_port, pg_port, flight_port, mqtt_port) =
        (free_port(), free_port(), free_port(), free_port());
    let child = Command::new(FJORD)
        .args([
            "demo",
            "--no-simulate",
            "--no-history",
            "--tls",
            "--auth-token",
            TLS_TOKEN,
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--mqtt-port", &mqtt_port.to_string()])
        .args(["--http-port", &http_port.to_string()])
        .args(["--pg-port", &pg_port.to_string()])
        .args(["--flight-port", &flight_port.to_string()])
        .env_remove("FJORD_CONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("demo.log")).unwrap())
        .spawn()
        .expect("start fjord demo --tls");
    let demo = TlsDemo(child);
    let endpoints = dir.join("data/endpoints.json");
    assert!(
        fjord_testkit::wait_until(Duration::from_secs(120), || endpoints.exists()),
        "the demo did not start: {}",
        std::fs::read_to_string(dir.join("demo.log")).unwrap_or_default()
    );
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&endpoints).unwrap()).unwrap();
    let ca = PathBuf::from(e["tls_ca"].as_str().expect("endpoints.json names the CA"));
    assert!(
        e["http"]["sql"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    assert!(
        e["postgres"]["psql"]
            .as_str()
            .unwrap()
            .contains("sslmode=verify-full")
    );
    assert!(
        e["flight_sql"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("grpc+tls://")
    );
    assert!(e["mqtt"]["url"].as_str().unwrap().starts_with("mqtts://"));
    (demo, [http_port, pg_port, flight_port, mqtt_port], ca)
}

/// An MQTT client trusting `ca_pem` (TLS) or plain; the broker's CONNACK or the failure.
async fn mqtt_tls(port: u16, ca_pem: Option<&str>) -> Result<AsyncClient, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut opts = MqttOptions::new("tls-device-1", "127.0.0.1", port);
    opts.set_credentials("fjord", TLS_TOKEN);
    if let Some(pem) = ca_pem {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(config)),
        ));
    }
    let (client, mut lp) = AsyncClient::new(opts, 10);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), lp.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("no CONNACK within 10 s".into()),
        }
    }
    tokio::spawn(async move { while lp.poll().await.is_ok() {} });
    Ok(client)
}

#[test]
fn https_postgres_and_flight_tls_with_the_demo_ca() {
    let dir = temp_dir();
    let (_demo, [http_port, pg_port, flight_port, mqtt_port], ca) = start_tls(dir.path());
    let ca = ca.to_str().unwrap();
    let bearer = format!("Authorization: Bearer {TLS_TOKEN}");

    // HTTPS SQL and ingest, the CA trusted
    let url = format!("https://127.0.0.1:{http_port}/api/sql");
    let o = curl(&[
        "--cacert",
        ca,
        "-H",
        &bearer,
        "--data",
        "SELECT 41 + 1 AS v",
        &url,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), r#"[{"v":42}]"#);
    let ingest = format!("https://127.0.0.1:{http_port}/ingest/parking/T1/S1");
    let o = curl(&[
        "--cacert",
        ca,
        "-H",
        &bearer,
        "-H",
        "content-type: application/json",
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        "--data",
        r#"{"occupied":true}"#,
        &ingest,
    ]);
    let code = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        code.starts_with('2'),
        "ingest over HTTPS: {code} {}",
        text(&o)
    );
    // without the CA the certificate is not trusted; plain HTTP gets no answer
    let o = curl(&["-H", &bearer, "--data", "SELECT 1", &url]);
    assert!(!o.status.success(), "{}", text(&o));
    let o = curl(&[
        "-H",
        &bearer,
        "--data",
        "SELECT 1",
        &format!("http://127.0.0.1:{http_port}/api/sql"),
    ]);
    assert!(
        !o.status.success() || !String::from_utf8_lossy(&o.stdout).contains("1"),
        "{}",
        text(&o)
    );

    // Postgres: verify-full against the CA; SCRAM inside
    let base = format!("host=127.0.0.1 port={pg_port} user=fjord dbname=fjord");
    let o = psql_tls(
        &format!("{base} sslmode=verify-full sslrootcert={ca}"),
        TLS_TOKEN,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<u64>()
            .is_ok(),
        "{}",
        text(&o)
    );
    let o = psql_tls(&format!("{base} sslmode=disable"), TLS_TOKEN);
    assert!(
        !o.status.success() && text(&o).contains("requires TLS"),
        "{}",
        text(&o)
    );
    let o = psql_tls(
        &format!("{base} sslmode=verify-full sslrootcert={ca}"),
        "wrong-password-0123456",
    );
    assert!(!o.status.success(), "{}", text(&o));

    // Flight SQL over TLS (ADBC's driver): with the CA answered, without it refused
    let pem = std::fs::read_to_string(ca).unwrap();
    let answers = fjord_testkit::flight_sql(
        &format!("grpc+tls://127.0.0.1:{flight_port}"),
        serde_json::json!([
            {"auth": {"user": "fjord", "password": TLS_TOKEN, "tls_root_certs": pem},
             "sql": "SELECT 41 + 1 AS v"},
            {"auth": {"user": "fjord", "password": TLS_TOKEN}, "sql": "SELECT 1 AS v"},
        ]),
    );
    assert_eq!(answers[0]["rows"], serde_json::json!([[42]]), "{answers:?}");
    assert!(answers[1]["error"].is_string(), "{answers:?}");

    // MQTT over TLS: a device trusting the CA publishes, the reading is served; plain MQTT on the
    // TLS port gets no CONNACK
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ca_pem = std::fs::read_to_string(ca).unwrap();
        let device = mqtt_tls(mqtt_port, Some(&ca_pem))
            .await
            .expect("MQTT over TLS");
        send(&device, "parking/T2/S1", r#"{"occupied":true}"#).await;
        assert!(
            mqtt_tls(mqtt_port, None).await.is_err(),
            "plain MQTT on the TLS port"
        );
    });
    // `fjord simulate` over mqtts:// with the demo's CA: every reading acknowledged
    let sim = Command::new(FJORD)
        .args([
            "simulate", "--lots", "1", "--spaces", "5", "--count", "50", "--rate", "max",
        ])
        .args([
            "--mqtt",
            &format!("mqtts://localhost:{mqtt_port}"),
            "--ca-file",
            ca,
        ])
        .args(["--username", "fjord", "--password", TLS_TOKEN, "--json"])
        .env_remove("FJORD_CONFIG")
        .output()
        .expect("run fjord simulate");
    let summary: Value = serde_json::from_slice(&sim.stdout)
        .unwrap_or_else(|e| panic!("simulate --json: {e}: {}", text(&sim)));
    assert_eq!(summary["acked"], 50, "{summary}");
    let query = "SELECT count(*) AS n FROM spaces_live WHERE lot_id = 'T2'";
    let t0 = std::time::Instant::now();
    loop {
        let o = curl(&["--cacert", ca, "-H", &bearer, "--data", query, &url]);
        if String::from_utf8_lossy(&o.stdout).contains(r#""n":1"#) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the reading over TLS is not served: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
