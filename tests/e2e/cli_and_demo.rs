//! End-to-end tests of the `fjord` binary: the command surface of docs/contract.md §2, `fjord config check`, and
//! `fjord demo` with its embedded MQTT broker and Kafka cluster, driven by real clients.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use fjord_testkit::{free_port, temp_dir, unique_name, wait_until};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

const FJORD: &str = env!("CARGO_BIN_EXE_fjord");

fn fjord(args: &[&str]) -> Output {
    Command::new(FJORD)
        .args(args)
        .env_remove("FJORD_CONFIG")
        .output()
        .expect("run fjord")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_every_command_of_the_spec() {
    let out = fjord(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for cmd in [
        "demo", "bridge", "stream", "batch", "serve", "sql", "simulate", "config",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(cmd)),
            "`{cmd}` missing from:\n{help}"
        );
    }
    let batch = text(&fjord(&["batch", "--help"]).stdout);
    for job in ["run", "ingest", "compact", "views", "vacuum", "import"] {
        assert!(
            batch.lines().any(|l| l.trim_start().starts_with(job)),
            "{job}:\n{batch}"
        );
        let help = text(&fjord(&["batch", job, "--help"]).stdout);
        assert!(
            help.contains(&format!("fjord batch {job}")) && help.contains("Examples:"),
            "`fjord batch {job} --help` has no examples:\n{help}"
        );
    }
    let demo = text(&fjord(&["demo", "--help"]).stdout);
    for flag in [
        "--data-dir",
        "--no-simulate",
        "--webhook ",
        "--webhook-secret",
        "--mqtt-port",
        "--http-port",
        "--pg-port",
        "--flight-port",
        "--kafka",
        "--mqtt ",
        "--lots",
        "--batch-every",
        "--auth-token",
    ] {
        assert!(
            demo.contains(flag),
            "{flag} missing from demo --help:\n{demo}"
        );
    }
    assert!(demo.contains("Examples:"), "{demo}");
}

#[test]
fn config_check_prints_every_problem_at_once() {
    let dir = temp_dir();
    let path = dir.path().join("fjord.toml");
    std::fs::write(
        &path,
        "[kafka]\nbrokrs = \"k:9092\"\n\n[stream]\nidle_after = \"ten\"\nwindows = [\"7s\"]\n",
    )
    .unwrap();
    let out = fjord(&["config", "check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("3 problems in config"), "{err}");
    assert!(
        err.contains(":2: kafka.brokrs: unknown field `brokrs`"),
        "{err}"
    );
    assert!(
        err.contains(":5: stream.idle_after: invalid duration \"ten\""),
        "{err}"
    );
    assert!(
        err.contains(":6: stream.windows[0]: a window must be"),
        "{err}"
    );

    let example = fjord_testkit::source_path("fjord.example.toml");
    let out = fjord(&[
        "config",
        "check",
        "-c",
        example.to_str().unwrap(),
        "--print",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.starts_with("config OK"), "{printed}");
    assert!(printed.contains("topic_prefix = \"fjord.\""), "{printed}");
}

/// A running `fjord demo`, interrupted and reaped when dropped.
struct Demo {
    child: Child,
}

impl Demo {
    fn start(data_dir: &Path, mqtt_port: u16, token: &str, webhook: &[&str]) -> Demo {
        let child = Command::new(FJORD)
            .args([
                "demo",
                "--no-simulate",
                "--no-history",
                "--auth-token",
                token,
            ])
            .args(webhook)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--mqtt-port", &mqtt_port.to_string()])
            .args(["--http-port", &free_port().to_string()])
            .args(["--pg-port", &free_port().to_string()])
            .args(["--flight-port", &free_port().to_string()])
            .args(["--batch-every", "5s"])
            .env_remove("FJORD_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start fjord demo");
        Demo { child }
    }

    fn interrupt(&self) {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn mqtt_connect(port: u16, password: &str) -> (AsyncClient, rumqttc::EventLoop, bool) {
    let mut opts = MqttOptions::new(unique_name("c"), "127.0.0.1", port);
    opts.set_credentials("fjord", password);
    let (client, mut lp) = AsyncClient::new(opts, 100);
    let accepted = matches!(
        tokio::time::timeout(Duration::from_secs(10), lp.poll()).await,
        Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) if ack.code == rumqttc::ConnectReturnCode::Success
    );
    (client, lp, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_embedded_brokers_and_stops_cleanly() {
    let dir = temp_dir();
    let data_dir = dir.path().join("data");
    let mqtt_port = free_port();
    let token = "test-token-0123456";
    let receiver = fjord_testkit::WebhookReceiver::start().await.unwrap();
    let hook_url = receiver.url();
    let mut demo = Demo::start(
        &data_dir,
        mqtt_port,
        token,
        &[
            "--webhook",
            &hook_url,
            "--webhook-secret",
            "demo-hook-secret",
        ],
    );
    let endpoints_path = data_dir.join("endpoints.json");
    assert!(
        wait_until(Duration::from_secs(30), || endpoints_path.exists()),
        "endpoints.json not written"
    );
    let endpoints: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&endpoints_path).unwrap()).unwrap();
    assert_eq!(
        endpoints["mqtt"]["url"],
        format!("mqtt://127.0.0.1:{mqtt_port}")
    );
    assert_eq!(endpoints["mqtt"]["username"], "fjord");
    assert_eq!(endpoints["mqtt"]["password"], token);
    assert_eq!(endpoints["kafka"]["topics"]["readings"], "fjord.readings");
    let bootstrap = endpoints["kafka"]["bootstrap_servers"]
        .as_str()
        .unwrap()
        .to_owned();

    // MQTT: the right password publishes and receives; a wrong one is refused.
    let (sub, mut sub_loop, ok) = mqtt_connect(mqtt_port, token).await;
    assert!(ok, "the demo's credentials must be accepted");
    sub.subscribe("parking/#", QoS::AtLeastOnce).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), sub_loop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("no SUBACK: {other:?}"),
        }
    }
    let (publisher, mut pub_loop, ok) = mqtt_connect(mqtt_port, token).await;
    assert!(ok);
    tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    publisher
        .publish(
            "parking/central/S1",
            QoS::AtLeastOnce,
            false,
            r#"{"occupied":true}"#,
        )
        .await
        .unwrap();
    let received = loop {
        match tokio::time::timeout(Duration::from_secs(10), sub_loop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => break p,
            Ok(Ok(_)) => {}
            other => panic!("no message: {other:?}"),
        }
    };
    assert_eq!(received.topic, "parking/central/S1");
    assert_eq!(&received.payload[..], br#"{"occupied":true}"#);
    let (_c, _l, ok) = mqtt_connect(mqtt_port, "wrong-password").await;
    assert!(!ok, "a wrong password must be refused");

    // The bridge forwarded that reading to the embedded Kafka, and HTTP ingest adds another.
    let client: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let stored_in = |client: &BaseConsumer, topic: &str| -> i64 {
        let metadata = client
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let partitions = metadata.topics()[0].partitions().len() as i32;
        (0..partitions)
            .map(|p| {
                let (low, high) = client
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .unwrap();
                high - low
            })
            .sum()
    };
    let stored = |client: &BaseConsumer| stored_in(client, "fjord.readings");
    let through_bridge = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || stored(&client) == 1)
    });
    assert!(
        through_bridge,
        "the MQTT reading must reach fjord.readings through the bridge"
    );
    let http = endpoints["http"]["ingest"].as_str().unwrap().to_owned();
    let response = reqwest::Client::new()
        .post(format!("{http}parking/central/S2"))
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .body(r#"{"occupied":false}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let both = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || stored(&client) == 2)
    });
    assert!(both, "the HTTP reading must reach fjord.readings too");
    // the stream processor publishes the lot's current occupancy
    let live = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            stored_in(&client, "fjord.occupancy-live") >= 1
        })
    });
    assert!(
        live,
        "the stream processor must publish the lot's live occupancy"
    );

    drop(client);

    // The lot (capacity = spaces seen) was full with S1 (1 of 1), then half full with S2 free:
    // lot_full fired and resolved, both signed and delivered to the webhook in order.
    let hooks = receiver
        .wait_for(Duration::from_secs(60), |r| r.len() >= 2)
        .await;
    assert_eq!(hooks.len(), 2, "the demo delivers alerts to --webhook");
    let alert = hooks[0].json();
    assert_eq!(alert["key"], "lot_full/central", "{alert}");
    assert_eq!(alert["status"], "firing");
    assert_eq!(hooks[1].json()["status"], "resolved");
    assert_eq!(hooks[0].header("x-fjord-delivery"), alert["id"].as_str());
    assert!(
        hooks[0]
            .header("x-fjord-signature")
            .is_some_and(|s| s.starts_with("sha256=")),
        "{:?}",
        hooks[0].headers
    );

    // The batch scheduler lands both readings in the lake's `readings` table.
    let lake = fjord_batch::Lake::new(
        endpoints["lake"]["url"].as_str().unwrap(),
        &Default::default(),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let landed = loop {
        let n = match lake
            .open_existing(fjord_batch::Table::Readings)
            .await
            .unwrap()
        {
            Some(t) => {
                let ctx = fjord_batch::query::session(&[("r", &t)]).await.unwrap();
                let b = fjord_batch::query::collect(&ctx, "r", "SELECT count(*) FROM r")
                    .await
                    .unwrap();
                fjord_batch::query::scalar_i64(&b).unwrap().unwrap_or(0)
            }
            None => 0,
        };
        if n >= 2 || std::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        landed, 2,
        "the batch job must land both readings in the lake"
    );

    // The query server answers over HTTP (same port as ingest) and the Postgres wire.
    let sql = reqwest::Client::new()
        .post(endpoints["http"]["sql"].as_str().unwrap())
        .bearer_auth(token)
        .body("SELECT count(*) AS n FROM readings")
        .send()
        .await
        .unwrap();
    assert_eq!(sql.status(), 200);
    let rows: serde_json::Value = sql.json().await.unwrap();
    assert_eq!(rows, serde_json::json!([{"n": 2}]));
    let pg = &endpoints["postgres"];
    assert_eq!(pg["password"], token);
    let psql = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            pg["host"].as_str().unwrap(),
            "-U",
            "fjord",
            "-d",
            "fjord",
        ])
        .args([
            "-p",
            &pg["port"].to_string(),
            "-c",
            "SELECT count(*) FROM readings",
        ])
        .env("PGPASSWORD", token)
        .output()
        .expect("psql (postgresql-client) is installed");
    assert_eq!(text(&psql.stdout).trim(), "2", "{}", text(&psql.stderr));
    // … and Arrow Flight SQL, through ADBC's driver with the printed credentials
    let flight = &endpoints["flight_sql"];
    assert_eq!(flight["password"], token);
    let answers = fjord_testkit::flight_sql(
        flight["uri"].as_str().unwrap(),
        serde_json::json!([{
            "auth": {"user": flight["user"], "password": flight["password"]},
            "sql": "SELECT count(*) AS n FROM readings",
        }]),
    );
    assert_eq!(
        answers[0]["rows"],
        serde_json::json!([[2]]),
        "{}",
        answers[0]
    );

    // The command the demo prints, with Debian's mosquitto_pub: the reading shows up in
    // `spaces_live` (psql), and a payload that is not a reading goes to the dead-letter topic
    // with a specific reason while the process keeps serving.
    let mosquitto_pub = |space: &str, payload: &str| {
        let out = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &mqtt_port.to_string()])
            .args(["-u", "fjord", "-P", token, "-q", "1"])
            .args(["-t", &format!("parking/central/{space}"), "-m", payload])
            .output()
            .expect("mosquitto_pub (mosquitto-clients) is installed");
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    mosquitto_pub("S3", r#"{"occupied":true}"#);
    let psql_value = |sql: &str| -> String {
        let out = Command::new("psql")
            .args(["-X", "-A", "-t", "-h", pg["host"].as_str().unwrap()])
            .args(["-U", "fjord", "-d", "fjord", "-p", &pg["port"].to_string()])
            .args(["-c", sql])
            .env("PGPASSWORD", token)
            .output()
            .unwrap();
        text(&out.stdout).trim().to_owned()
    };
    let live_s3 = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            psql_value("SELECT occupied FROM spaces_live WHERE space_id = 'S3'") == "t"
        })
    });
    assert!(live_s3, "a mosquitto_pub reading must reach spaces_live");
    mosquitto_pub("S4", r#"{"occupied":"yes"}"#);
    let dlq = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", unique_name("dlq"))
        .set("auto.offset.reset", "earliest")
        .create::<BaseConsumer>()
        .unwrap();
    dlq.subscribe(&["fjord.dlq"]).unwrap();
    let dead = tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(m)) = dlq.poll(Duration::from_millis(200)) {
                break Some(m.detach());
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
        }
    })
    .expect("the garbage payload must reach fjord.dlq");
    use rdkafka::message::{Headers, Message};
    assert_eq!(dead.payload(), Some(&br#"{"occupied":"yes"}"#[..]));
    let header = |name: &str| {
        dead.headers()
            .unwrap()
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
            .unwrap_or_default()
    };
    assert_eq!(header("fjord-error-reason"), "invalid_field", "{dead:?}");
    assert!(
        header("fjord-error").contains("`occupied` must be true or false"),
        "{}",
        header("fjord-error")
    );
    drop(dlq);
    assert_eq!(psql_value("SELECT count(*) FROM spaces_live"), "3");

    // Ctrl-C: a clean exit that removes endpoints.json.
    demo.interrupt();
    let status = tokio::task::block_in_place(|| demo.child.wait()).unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(demo.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "demo exited with {status}");
    assert!(stdout.contains("mosquitto_pub -h 127.0.0.1"), "{stdout}");
    assert!(stdout.contains("psql -h 127.0.0.1 -p"), "{stdout}");
    assert!(stdout.contains("/#token=test-token-0123456"), "{stdout}");
    assert!(
        stdout.contains("Flight SQL    grpc://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("fjord demo stopped."), "{stdout}");
    assert!(
        stdout.contains(&format!("delivered to {hook_url}")),
        "{stdout}"
    );
    assert!(stdout.contains("webhook demo-1: 2 delivered"), "{stdout}");
    assert!(
        !endpoints_path.exists(),
        "endpoints.json must be removed on exit"
    );
}

#[test]
fn demo_refuses_a_busy_mqtt_port_with_a_clear_error() {
    let dir = temp_dir();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = Command::new(FJORD)
        .args([
            "demo",
            "--no-simulate",
            "--no-history",
            "--mqtt-port",
            &port.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("FJORD_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "the embedded MQTT broker cannot listen on 127.0.0.1:{port}"
        )),
        "{err}"
    );
    assert!(!dir.path().join("endpoints.json").exists());
}

/// The documentation holds together: every relative link of the README and of `docs/` names a
/// file of the repository (and a heading of it, when it names one), and every section of the
/// contract that the code cites (`docs/contract.md §4.1`) exists.
#[test]
fn the_docs_links_resolve_and_the_cited_contract_sections_exist() {
    let root = fjord_testkit::source_path("");
    let root = root.as_path();
    let slug = |heading: &str| -> String {
        heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect()
    };
    let headings = |file: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let mut fence = false;
        let mut out = Vec::new();
        for line in text.lines() {
            if line.starts_with("```") {
                fence = !fence;
            } else if !fence && line.starts_with('#') {
                out.push(slug(line.trim_start_matches('#')));
            }
        }
        out
    };
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = &rest[..end];
            if target.starts_with("http") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !path.exists() {
                broken.push(format!("{}: {target} (no such file)", page.display()));
            } else if !anchor.is_empty() && !headings(&path).iter().any(|h| h == anchor) {
                broken.push(format!("{}: {target} (no such heading)", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));

    // every `docs/contract.md §N` in the sources names a section of the contract
    let contract = std::fs::read_to_string(root.join("docs/contract.md")).unwrap();
    let sections: Vec<&str> = contract
        .lines()
        .filter(|l| l.starts_with("## ") || l.starts_with("### "))
        .filter_map(|l| l.trim_start_matches('#').split_whitespace().next())
        .map(|n| n.trim_end_matches('.'))
        .collect();
    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() && !name.starts_with('.') && name != "target" {
                sources(&path, out);
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(root, &mut files);
    let mut cited = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            !text.contains(concat!("SPEC", " §")),
            "{} cites a SPEC outside the repository",
            file.display()
        );
        for (i, _) in text.match_indices("docs/contract.md §") {
            let n: String = text[i + "docs/contract.md §".len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let n = n.trim_end_matches('.');
            if n.is_empty() {
                continue; // the phrase itself, as in this test
            }
            cited += 1;
            assert!(
                sections.contains(&n),
                "{} cites docs/contract.md §{n}, which does not exist (sections: {sections:?})",
                file.display()
            );
        }
    }
    assert!(cited > 50, "only {cited} citations found");
}
