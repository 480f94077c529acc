//! `fjord stream --only-deliver` SIGKILLed while deliveries are in flight (a slow receiver holds
//! them): after a restart every alert arrives, in order per key, and an alert that was in flight
//! at the kill is delivered again with the same `X-Fjord-Delivery` and the same body.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fjord_core::config::KafkaConfig;
use fjord_testkit::{Tansu, WebhookReceiver, alert_changes, ids_per_key, temp_dir, unique_name};

const SECRET: &str = "crash-test-secret";

fn write_config(dir: &Path, kafka: &KafkaConfig, url: &str) -> std::path::PathBuf {
    let path = dir.join("deliver.toml");
    let text = format!(
        "[log]\nlevel = \"info\"\n\n[kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{}\"\npartitions = 3\n\n\
         [stream]\nsession_timeout = \"6s\"\n\n\
         [alerts.delivery]\ngroup_id = \"{}\"\ninitial_backoff = \"200ms\"\nmax_backoff = \"1s\"\n\
         metrics_listen = \"127.0.0.1:0\"\n\n\
         [[alerts.webhooks]]\nname = \"ops\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\ntimeout = \"5s\"\n",
        kafka.brokers,
        kafka.topic_prefix,
        unique_name("hooks"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["stream", "--only-deliver", "--config"])
        .arg(config)
        .env_remove("FJORD_CONFIG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start fjord stream --only-deliver")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_killed_mid_delivery_resends_what_was_in_flight_with_the_same_delivery_id() {
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let kafka = tansu.kafka_config();
    let receiver = WebhookReceiver::start().await.unwrap();
    receiver.set_delay(Duration::from_millis(400));
    let dir = temp_dir();
    let config = write_config(dir.path(), &kafka, &receiver.url());
    let log = dir.path().join("deliver.log");
    let mut cfg = fjord_core::config::Config::default();
    cfg.kafka = kafka.clone();
    fjord_stream::runtime::ensure_topics(&cfg).await.unwrap();

    let (sent, expected) = alert_changes("crash", 8, 64);
    fjord_testkit::kafka::produce_alerts(&kafka, &sent).await;

    let mut first = start(&config, &log);
    let before = receiver
        .wait_for(Duration::from_secs(60), |r| r.len() >= 20)
        .await;
    assert!(before.len() >= 20, "deliveries started: {}", before.len());
    // the receiver holds every request 400 ms: some are in flight right now
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = receiver.received().len();
    assert!(
        at_kill < sent.len(),
        "killed before everything was delivered"
    );

    let mut second = start(&config, &log);
    let all_ids: HashSet<String> = sent.iter().map(|a| a.id.clone()).collect();
    let got = receiver
        .wait_for(Duration::from_secs(120), |r| {
            let ids: HashSet<String> = r
                .iter()
                .filter_map(|x| x.header("x-fjord-delivery").map(str::to_owned))
                .collect();
            ids.is_superset(&all_ids)
        })
        .await;
    let term = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = second.wait().unwrap();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "clean stop after SIGTERM; log:\n{log_text}"
    );

    let ids: HashSet<String> = got
        .iter()
        .filter_map(|x| x.header("x-fjord-delivery").map(str::to_owned))
        .collect();
    assert!(
        ids.is_superset(&all_ids),
        "every alert arrived; log:\n{log_text}"
    );
    assert_eq!(ids_per_key(&got), expected, "in order per key");
    // what was in flight at the kill came again: same delivery id, same body
    let mut bodies: HashMap<&str, &[u8]> = HashMap::new();
    let mut repeated = 0;
    for r in &got {
        let id = r.header("x-fjord-delivery").unwrap();
        assert_eq!(r.json()["id"], id, "X-Fjord-Delivery is the alert id");
        match bodies.get(id) {
            Some(body) => {
                assert_eq!(*body, &r.body[..], "a repeat carries the same body");
                repeated += 1;
            }
            None => {
                bodies.insert(id, &r.body);
            }
        }
    }
    assert!(
        repeated > 0,
        "the deliveries in flight at the kill were repeated"
    );
    println!(
        "{} requests for {} alerts ({repeated} repeats after the SIGKILL)",
        got.len(),
        sent.len()
    );
}
