//! The test kit against real servers: produce to and consume from a real tansu broker through
//! rdkafka, and publish and receive through a real mosquitto with rumqttc.

use std::time::Duration;

use fjord_core::kafka::{self, HEADER_MQTT_TOPIC};
use fjord_testkit::{Mosquitto, Tansu, unique_name};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_through_tansu() {
    let broker = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let cfg = broker.kafka_config();
    let topic = cfg.topic("readings");
    kafka::ensure_topics(&cfg, &[&topic], 3).await.unwrap();
    // creating it again is not an error
    kafka::ensure_topics(&cfg, &[&topic], 3).await.unwrap();

    let producer: FutureProducer = kafka::client_config(&cfg)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .unwrap();
    let n = 200;
    for i in 0..n {
        let lot = format!("L{}", i % 4);
        let payload = format!(r#"{{"occupied":{},"i":{i}}}"#, i % 2 == 0);
        let headers = OwnedHeaders::new().insert(Header {
            key: HEADER_MQTT_TOPIC,
            value: Some(&format!("parking/{lot}/S{i}")),
        });
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&lot)
                    .payload(&payload)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    let consumer: StreamConsumer = kafka::consumer_config(&cfg)
        .set("group.id", unique_name("g"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = vec![false; n];
    let mut count = 0;
    while count < n {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("records within 30 s")
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let i = v["i"].as_u64().unwrap() as usize;
        let lot = std::str::from_utf8(m.key().unwrap()).unwrap();
        assert_eq!(lot, format!("L{}", i % 4));
        let h = m.headers().unwrap().get(0);
        assert_eq!(h.key, HEADER_MQTT_TOPIC);
        assert_eq!(h.value.unwrap(), format!("parking/{lot}/S{i}").as_bytes());
        assert!(!seen[i], "record {i} delivered twice");
        seen[i] = true;
        count += 1;
    }
    assert!(seen.iter().all(|s| *s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_receive_through_mosquitto() {
    let broker = Mosquitto::start().unwrap_or_else(|e| panic!("{e}"));
    let topic = format!("parking/{}/S1", unique_name("lot"));

    let mut sub_opts = MqttOptions::new(unique_name("sub"), "127.0.0.1", broker.port());
    sub_opts.set_keep_alive(Duration::from_secs(5));
    let (sub, mut sub_loop) = AsyncClient::new(sub_opts, 100);
    sub.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    // wait for the SUBACK so that nothing published afterwards can be missed
    loop {
        match tokio::time::timeout(Duration::from_secs(10), sub_loop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("no SUBACK: {other:?}"),
        }
    }

    let (publisher, mut pub_loop) = AsyncClient::new(
        MqttOptions::new(unique_name("pub"), "127.0.0.1", broker.port()),
        100,
    );
    tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    let n = 50;
    for i in 0..n {
        let payload = format!(r#"{{"occupied":true,"i":{i}}}"#);
        publisher
            .publish(&topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), sub_loop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                assert_eq!(p.topic, topic);
                let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                got.push(v["i"].as_u64().unwrap());
            }
            Ok(Ok(_)) => {}
            other => panic!("after {} messages: {other:?}", got.len()),
        }
    }
    assert_eq!(
        got,
        (0..n as u64).collect::<Vec<_>>(),
        "QoS 1 from one publisher arrives in order"
    );
}

#[test]
fn a_missing_binary_says_how_to_install_it() {
    let err = fjord_testkit::find_binary("fjord-no-such-server", "apt-get install nothing")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("fjord-no-such-server is not installed"),
        "{err}"
    );
    assert!(
        err.ends_with("install it with: apt-get install nothing"),
        "{err}"
    );
}

#[test]
fn the_documented_mosquitto_settings_are_the_tested_ones() {
    let conf = std::fs::read_to_string(fjord_testkit::source_path(
        "../docker/mosquitto/mosquitto.conf",
    ))
    .unwrap();
    for line in fjord_testkit::MOSQUITTO_RECOMMENDED.lines() {
        assert!(
            conf.lines().any(|l| l.trim() == line),
            "docker/mosquitto/mosquitto.conf lacks `{line}`"
        );
    }
    let guide = std::fs::read_to_string(fjord_testkit::source_path("../docs/ingest.md")).unwrap();
    for line in fjord_testkit::MOSQUITTO_RECOMMENDED.lines() {
        assert!(
            guide.contains(&format!("`{line}`")),
            "docs/ingest.md lacks `{line}`"
        );
    }
}
