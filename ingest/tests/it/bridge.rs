//! The bridge against a real mosquitto and a real Kafka-protocol broker (tansu): nothing lost,
//! bytes unchanged, keys and headers as docs/contract.md §3.2 says, dead letters with reasons, a Kafka outage
//! survived without a restart, and messages queued by the broker while the bridge was down.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::common::{RunningBridge, await_flowing, config, n_of, readings};
use fjord_core::config::MqttProtocol;
use fjord_core::kafka::{HEADER_ERROR, HEADER_MQTT_TOPIC, HEADER_RECEIVED_AT, HEADER_SOURCE};
use fjord_core::time::now_ms;
use fjord_testkit::{Mosquitto, Tansu, kafka, mqtt, unique_name};

fn brokers() -> (Mosquitto, Tansu) {
    let m = Mosquitto::start_recommended().unwrap_or_else(|e| panic!("{e}"));
    let t = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    (m, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_qos1_messages_arrive_unchanged_with_keys_and_headers() {
    let (mosquitto, tansu) = brokers();
    let cfg = config(mosquitto.port(), tansu.kafka_config(), MqttProtocol::V5);
    let bridge = RunningBridge::start(&cfg).await;
    await_flowing(&cfg, mosquitto.port(), None).await;

    let base = now_ms() - 3_600_000;
    let publishers = 4;
    let per = 25_000;
    let mut expected: HashMap<u64, (String, Vec<u8>)> = HashMap::new();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let msgs = readings(p, per, 7, base);
        for (t, b) in &msgs {
            expected.insert(n_of(b), (t.clone(), b.clone()));
        }
        let port = mosquitto.port();
        tasks.push(tokio::spawn(async move {
            mqtt::publish_all(
                port,
                None,
                &unique_name("pub"),
                msgs,
                Duration::from_secs(300),
            )
            .await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = publishers * per;
    let mut seen = HashSet::new();
    let records = kafka::collect(
        &cfg.kafka,
        &cfg.kafka.topic("readings"),
        Duration::from_secs(300),
        |r| {
            if let Some(last) = r.last() {
                seen.insert(n_of(&last.payload));
            }
            seen.len() >= total
        },
    )
    .await;
    assert_eq!(
        seen.len(),
        total,
        "every message must arrive in fjord.readings"
    );
    for r in &records {
        let n = n_of(&r.payload);
        let (topic, payload) = &expected[&n];
        assert_eq!(&r.payload, payload, "payload forwarded byte for byte");
        assert_eq!(r.header(HEADER_MQTT_TOPIC), Some(topic.as_str()));
        let lot = topic.split('/').nth(1).unwrap();
        assert_eq!(r.key.as_deref(), Some(lot.as_bytes()), "key is the lot");
        assert_eq!(r.header(HEADER_SOURCE), Some("mqtt"));
        assert!(
            r.header(HEADER_RECEIVED_AT)
                .is_some_and(|t| t.ends_with('Z') && t.len() == 24)
        );
    }
    let summary = bridge.stop().await;
    println!(
        "100k run: {} records in Kafka for {total} distinct messages ({} duplicates); bridge {summary:?}",
        records.len(),
        records.len() - total
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dead_letter_reason_reaches_the_dlq_with_its_error() {
    let (mosquitto, tansu) = brokers();
    let mut cfg = config(mosquitto.port(), tansu.kafka_config(), MqttProtocol::V311);
    cfg.bridge.max_payload_bytes = 300;
    let bridge = RunningBridge::start(&cfg).await;
    await_flowing(&cfg, mosquitto.port(), None).await;

    let now = now_ms();
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        (
            "no_route",
            "parking/L1".into(),
            br#"{"occupied":true}"#.to_vec(),
        ),
        (
            "too_large",
            "parking/L1/S1".into(),
            format!(r#"{{"occupied":true,"pad":"{}"}}"#, "x".repeat(400)).into_bytes(),
        ),
        (
            "invalid_field",
            "parking/L1/S2".into(),
            br#"{"occupied":true,"battery":140}"#.to_vec(),
        ),
        (
            "malformed",
            "parking/L1/S3".into(),
            br#"{"occupied": tru}"#.to_vec(),
        ),
        ("not_an_object", "parking/L1/S4".into(), b"hello".to_vec()),
        (
            "id_mismatch",
            "parking/L1/S5".into(),
            br#"{"occupied":true,"lot_id":"L9"}"#.to_vec(),
        ),
        (
            "missing_field",
            "parking/L1/S6".into(),
            br#"{"battery":50}"#.to_vec(),
        ),
        (
            "duplicate_field",
            "parking/L1/S7".into(),
            br#"{"occupied":true,"occupied":false}"#.to_vec(),
        ),
        (
            "ts_out_of_range",
            "parking/L1/S8".into(),
            format!(r#"{{"occupied":true,"ts":{}}}"#, now / 1000).into_bytes(),
        ),
        ("empty", "parking/L1/S9".into(), Vec::new()),
        (
            "empty_id",
            "parking//S10".into(),
            br#"{"occupied":true}"#.to_vec(),
        ),
        (
            "presence_payload",
            "presence/gw-1".into(),
            b"sleeping".to_vec(),
        ),
    ];
    let msgs: Vec<(String, Vec<u8>)> = cases
        .iter()
        .map(|(_, t, p)| (t.clone(), p.clone()))
        .collect();
    let good = vec![(
        "parking/L1/S42".to_owned(),
        br#"{"occupied":false}"#.to_vec(),
    )];
    mqtt::publish_all(
        mosquitto.port(),
        None,
        &unique_name("pub"),
        msgs,
        Duration::from_secs(30),
    )
    .await;
    mqtt::publish_all(
        mosquitto.port(),
        None,
        &unique_name("pub"),
        good,
        Duration::from_secs(30),
    )
    .await;

    let dlq = kafka::collect(
        &cfg.kafka,
        &cfg.kafka.topic("dlq"),
        Duration::from_secs(60),
        |r| r.len() >= cases.len(),
    )
    .await;
    let by_topic: HashMap<&str, &kafka::Record> = dlq
        .iter()
        .map(|r| (r.header(HEADER_MQTT_TOPIC).unwrap(), r))
        .collect();
    for (reason, topic, payload) in &cases {
        let r = by_topic
            .get(topic.as_str())
            .unwrap_or_else(|| panic!("no dead letter for {reason} ({topic}); got {dlq:?}"));
        assert_eq!(r.header("fjord-error-reason"), Some(*reason), "{topic}");
        let error = r.header(HEADER_ERROR).unwrap();
        assert!(!error.is_empty(), "{reason}: fjord-error must explain");
        assert_eq!(
            &r.payload, payload,
            "{reason}: the dead letter keeps the original bytes"
        );
    }
    assert!(
        by_topic["parking/L1/S2"]
            .header(HEADER_ERROR)
            .unwrap()
            .contains("`battery` must be an integer 0–100, got 140")
    );
    assert!(
        by_topic["parking/L1"]
            .header(HEADER_ERROR)
            .unwrap()
            .contains("no mapping rule matches")
    );
    // the valid reading went to fjord.readings, not the DLQ
    let readings = kafka::collect(
        &cfg.kafka,
        &cfg.kafka.topic("readings"),
        Duration::from_secs(30),
        |r| !r.is_empty(),
    )
    .await;
    assert_eq!(readings.len(), 1);
    assert_eq!(
        readings[0].header(HEADER_MQTT_TOPIC),
        Some("parking/L1/S42")
    );
    let summary = bridge.stop().await;
    assert_eq!(summary.dead_lettered, cases.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_outage_loses_nothing_and_the_bridge_recovers_by_itself() {
    let (mosquitto, tansu) = brokers();
    let mut cfg = config(mosquitto.port(), tansu.kafka_config(), MqttProtocol::V5);
    cfg.bridge.max_in_flight = 500;
    let bridge = RunningBridge::start(&cfg).await;
    await_flowing(&cfg, mosquitto.port(), None).await;

    let base = now_ms() - 3_600_000;
    let total = 20_000;
    // publish in slices, so that the outage falls in the middle of the run
    let port = mosquitto.port();
    let publisher = tokio::spawn(async move {
        for slice in 0..20 {
            let msgs: Vec<_> = readings(slice, total / 20, 5, base);
            mqtt::publish_all(
                port,
                None,
                &unique_name("pub"),
                msgs,
                Duration::from_secs(120),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    tansu.pause().unwrap();
    let paused_at = std::time::Instant::now();
    let mut max_in_flight = 0;
    while paused_at.elapsed() < Duration::from_secs(12) {
        max_in_flight = max_in_flight.max(bridge.metrics.in_flight.get());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tansu.resume().unwrap();
    assert!(
        max_in_flight > 0,
        "messages were waiting for Kafka during the outage"
    );
    assert!(
        max_in_flight <= 500,
        "in flight stays within bridge.max_in_flight, got {max_in_flight}"
    );
    publisher.await.unwrap();

    let mut seen = HashSet::new();
    kafka::collect(
        &cfg.kafka,
        &cfg.kafka.topic("readings"),
        Duration::from_secs(180),
        |r| {
            if let Some(last) = r.last() {
                seen.insert(n_of(&last.payload));
            }
            seen.len() >= total
        },
    )
    .await;
    assert_eq!(seen.len(), total, "nothing lost across a 12 s Kafka outage");
    assert!(
        bridge.is_running(),
        "the bridge recovered without a restart"
    );
    let summary = bridge.stop().await;
    println!("outage run: max in flight {max_in_flight}; bridge {summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_while_the_bridge_is_down_arrive_when_it_returns() {
    let (mosquitto, tansu) = brokers();
    let cfg = config(mosquitto.port(), tansu.kafka_config(), MqttProtocol::V5);
    // the first run creates the bridge's persistent session and subscription
    let bridge = RunningBridge::start(&cfg).await;
    await_flowing(&cfg, mosquitto.port(), None).await;
    bridge.stop().await;

    let base = now_ms() - 3_600_000;
    let total = 200_000;
    let mut tasks = Vec::new();
    for p in 0..4 {
        let msgs = readings(p, total / 4, 9, base);
        let port = mosquitto.port();
        tasks.push(tokio::spawn(async move {
            mqtt::publish_all(
                port,
                None,
                &unique_name("pub"),
                msgs,
                Duration::from_secs(300),
            )
            .await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let bridge = RunningBridge::start(&cfg).await;
    let mut seen = HashSet::new();
    kafka::collect(
        &cfg.kafka,
        &cfg.kafka.topic("readings"),
        Duration::from_secs(400),
        |r| {
            if let Some(last) = r.last() {
                seen.insert(n_of(&last.payload));
            }
            seen.len() >= total
        },
    )
    .await;
    assert_eq!(
        seen.len(),
        total,
        "the broker queued every message for the bridge's session"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_split_the_load_with_a_shared_subscription() {
    let (mosquitto, tansu) = brokers();
    let mut a = config(mosquitto.port(), tansu.kafka_config(), MqttProtocol::V5);
    a.bridge.share_group = Some("fjord".into());
    let mut b = a.clone();
    b.mqtt.client_id = unique_name("bridge-b");
    let bridge_a = RunningBridge::start(&a).await;
    let bridge_b = RunningBridge::start(&b).await;
    // both must be subscribed before the run: wait until each has forwarded a probe
    let topic = a.kafka.topic("readings");
    let base = now_ms() - 3_600_000;
    let mut i = 0;
    while bridge_a
        .metrics
        .forwarded
        .with_label_values(&[&topic])
        .get()
        == 0
        || bridge_b
            .metrics
            .forwarded
            .with_label_values(&[&topic])
            .get()
            == 0
    {
        i += 1;
        assert!(
            i < 200,
            "both bridges should receive messages: a {} b {} (connects a {} b {}, disconnects a {} b {})",
            bridge_a
                .metrics
                .forwarded
                .with_label_values(&[&topic])
                .get(),
            bridge_b
                .metrics
                .forwarded
                .with_label_values(&[&topic])
                .get(),
            bridge_a.metrics.mqtt_connects.get(),
            bridge_b.metrics.mqtt_connects.get(),
            bridge_a.metrics.mqtt_disconnects.get(),
            bridge_b.metrics.mqtt_disconnects.get()
        );
        mqtt::publish_all(
            mosquitto.port(),
            None,
            &unique_name("probe"),
            readings_probe(base, i),
            Duration::from_secs(10),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = 10_000;
    mqtt::publish_all(
        mosquitto.port(),
        None,
        &unique_name("pub"),
        readings(7, total, 3, base),
        Duration::from_secs(120),
    )
    .await;
    let run = |n: u64| (7 * 10_000_000..7 * 10_000_000 + total as u64).contains(&n);
    let mut seen = HashSet::new();
    kafka::collect(&a.kafka, &topic, Duration::from_secs(120), |r| {
        if let Some(n) = r.last().map(|last| n_of(&last.payload)).filter(|n| run(*n)) {
            seen.insert(n);
        }
        seen.len() >= total
    })
    .await;
    let sa = bridge_a.stop().await;
    let sb = bridge_b.stop().await;
    assert!(
        sa.forwarded > 1000 && sb.forwarded > 1000,
        "both bridges take a share: {sa:?} {sb:?}"
    );
    assert!(sa.forwarded + sb.forwarded >= total as u64);
    assert!(
        (0..total).all(|k| seen.contains(&(7 * 10_000_000 + k as u64))),
        "nothing missing"
    );
}

fn readings_probe(base: i64, i: usize) -> Vec<(String, Vec<u8>)> {
    (0..10)
        .map(|k| {
            let n = 90_000_000 + i * 10 + k;
            (
                format!("parking/P/S{k}"),
                format!(
                    r#"{{"ts":{},"occupied":true,"n":{n}}}"#,
                    base + (i * 10 + k) as i64
                )
                .into_bytes(),
            )
        })
        .collect()
}
