//! The embedded broker never drops silently: when a session falls further behind than
//! `broker.queue_max_bytes`, the loss is logged by rumqttd and counted in
//! `fjord_mqtt_broker_dropped_total`. (Its own test binary: it installs the global log subscriber.)

use std::time::Duration;

use fjord_core::config::{BrokerConfig, Credential};
use fjord_core::telemetry::Metrics;
use fjord_ingest::acl::Acl;
use fjord_ingest::broker::{DropCounter, EmbeddedBroker};
use fjord_testkit::{free_port, mqtt, unique_name};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn dropped(metrics: &Metrics) -> u64 {
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with("fjord_mqtt_broker_dropped_total "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_beyond_the_queue_limit_loses_messages_loudly() {
    let metrics = Metrics::new();
    tracing_subscriber::registry()
        .with(DropCounter::new(&metrics).unwrap())
        .init();
    let config = BrokerConfig {
        max_payload_bytes: 1024,
        queue_max_bytes: 10 * 1024,
        ..BrokerConfig::default()
    };
    let creds = vec![Credential::admin("fjord", "admin-secret-1")];
    let port = free_port();
    let _broker = EmbeddedBroker::start(
        ([127, 0, 0, 1], port).into(),
        &config,
        Acl::new(creds),
        &metrics,
        None,
    )
    .await
    .unwrap();
    let session = || {
        let mut o = MqttOptions::new("slow-subscriber", "127.0.0.1", port);
        o.set_credentials("fjord", "admin-secret-1")
            .set_clean_session(false);
        AsyncClient::new(o, 100)
    };
    // create the persistent session, then go away
    let (c, mut events) = session();
    c.subscribe("parking/#", QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = events.poll().await {
            break;
        }
    }
    c.disconnect().await.unwrap();
    while events.poll().await.is_ok() {}

    let n = 2000;
    let msgs = (0..n)
        .map(|i| {
            (
                format!("parking/L1/S{i}"),
                format!(r#"{{"occupied":true,"i":{i}}}"#).into_bytes(),
            )
        })
        .collect();
    mqtt::publish_all(
        port,
        Some(("fjord", "admin-secret-1")),
        &unique_name("pub"),
        msgs,
        Duration::from_secs(60),
    )
    .await;

    let (_c, mut events) = session();
    let mut received = 0;
    while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_secs(3), events.poll()).await {
        if let Event::Incoming(Packet::Publish(_)) = ev {
            received += 1;
        }
    }
    assert!(
        received < n,
        "the queue limit must have cut the backlog (received {received} of {n})"
    );
    assert!(
        dropped(&metrics) > 0,
        "the loss must be counted in fjord_mqtt_broker_dropped_total"
    );
    println!(
        "received {received} of {n}; drops counted: {}",
        dropped(&metrics)
    );
}
