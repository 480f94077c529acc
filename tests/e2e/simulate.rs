//! `fjord simulate` against a real mosquitto: it publishes what its summary says, with gateways'
//! presence, and faults at the requested rates.

use std::process::Command;
use std::time::Duration;

use fjord_testkit::{Mosquitto, unique_name};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_publishes_what_its_summary_says() {
    let mosquitto = Mosquitto::start_recommended().unwrap_or_else(|e| panic!("{e}"));
    let (sub, mut events) = AsyncClient::new(
        MqttOptions::new(unique_name("sub"), "127.0.0.1", mosquitto.port()),
        100,
    );
    sub.subscribe("parking/#", QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = events.poll().await {
            break;
        }
    }
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
