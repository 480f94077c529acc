//! `fjord simulate` against a real mosquitto: it publishes what its summary says, with gateways'
//! presence, and faults at the requested rates.

use std::process::Command;
use std::time::Duration;

use fjord_testkit::{Mosquitto, unique_name};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// A client subscribed to `filter` (QoS 1) once the broker's SUBACK arrived.
async fn subscribed(port: u16, filter: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let (sub, mut events) =
        AsyncClient::new(MqttOptions::new(unique_name("sub"), "127.0.0.1", port), 100);
    sub.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = events.poll().await {
            break;
        }
    }
    (sub, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_publishes_what_its_summary_says() {
    let mosquitto = Mosquitto::start_recommended().unwrap_or_else(|e| panic!("{e}"));
    let (_sub, mut events) = subscribed(mosquitto.port(), "parking/#").await;
    let counter = tokio::spawn(async move {
        let mut n = 0u64;
        while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
            if let Event::Incoming(Packet::Publish(_)) = ev {
                n += 1;
            }
        }
        n
    });
    let out = tokio::task::spawn_blocking({
        let url = mosquitto.url();
        move || {
            Command::new(env!("CARGO_BIN_EXE_fjord"))
                .args([
                    "simulate", "--mqtt", &url, "--lots", "2", "--spaces", "10", "--rate", "max",
                ])
                .args([
                    "--count",
                    "2000",
                    "--duplicates",
                    "0.05",
                    "--garbage",
                    "0.01",
                    "--seed",
                    "7",
                    "--json",
                ])
                .env_remove("FJORD_CONFIG")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["sent"], 2000);
    assert_eq!(summary["acked"], 2000);
    assert_eq!(summary["presence"], 2);
    assert!(summary["duplicates"].as_u64().unwrap() > 40, "{summary}");
    assert!(summary["garbage"].as_u64().unwrap() > 5, "{summary}");
    assert_eq!(
        counter.await.unwrap(),
        2000,
        "the subscriber saw every message the summary counts"
    );

    // each gateway left its retained `online` presence
    let (p, mut pe) = AsyncClient::new(
        MqttOptions::new(unique_name("p"), "127.0.0.1", mosquitto.port()),
        10,
    );
    p.subscribe("presence/#", QoS::AtLeastOnce).await.unwrap();
    let mut online = 0;
    while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_secs(2), pe.poll()).await {
        if let Event::Incoming(Packet::Publish(m)) = ev {
            assert!(m.retain && &m.payload[..] == b"online", "{m:?}");
            online += 1;
        }
    }
    assert_eq!(online, 2);
}

/// `--record` writes exactly the messages the broker acknowledged: every one a subscriber received,
/// each once, presence included, and as many as the summary counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_records_every_acknowledged_message() {
    let mosquitto = Mosquitto::start_recommended().unwrap_or_else(|e| panic!("{e}"));
    let (_sub, mut events) = subscribed(mosquitto.port(), "#").await;
    let received = tokio::spawn(async move {
        let mut got = std::collections::BTreeMap::<(String, String), u32>::new();
        while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let payload = String::from_utf8_lossy(&p.payload).into_owned();
                *got.entry((p.topic.to_string(), payload)).or_default() += 1;
            }
        }
        got
    });
    let dir = fjord_testkit::temp_dir();
    let ledger = dir.path().join("acked.jsonl");
    let out = tokio::task::spawn_blocking({
        let (url, ledger) = (mosquitto.url(), ledger.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_fjord"))
                .args(["simulate", "--mqtt", &url, "--lots", "3", "--spaces", "20"])
                .args([
                    "--rate",
                    "max",
                    "--count",
                    "3000",
                    "--inflight",
                    "50",
                    "--json",
                ])
                .arg("--record")
                .arg(&ledger)
                .env_remove("FJORD_CONFIG")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["acked"], 3000, "{summary}");
    let mut recorded = std::collections::BTreeMap::<(String, String), u32>::new();
    for line in std::fs::read_to_string(&ledger).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            v["topic"].as_str().unwrap().to_owned(),
            v["payload"].as_str().unwrap().to_owned(),
        );
        *recorded.entry(key).or_default() += 1;
    }
    let readings: u32 = recorded
        .iter()
        .filter(|((t, _), _)| t.starts_with("parking/"))
        .map(|(_, n)| n)
        .sum();
    let presence: u32 = recorded
        .iter()
        .filter(|((t, _), _)| t.starts_with("presence/"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        (readings, presence),
        (3000, 3),
        "one line per acknowledged message"
    );
    assert_eq!(
        recorded,
        received.await.unwrap(),
        "the record is what the broker delivered"
    );
}
