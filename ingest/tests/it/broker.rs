//! The embedded MQTT broker: authentication, the per-lot ACL, both protocol versions on one port,
//! and the queue that holds messages for a bridge that is down.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{RunningBridge, await_flowing, config, n_of, readings};
use fjord_core::config::{BrokerConfig, Credential, MqttProtocol};
use fjord_core::telemetry::Metrics;
use fjord_core::time::now_ms;
use fjord_ingest::acl::Acl;
use fjord_ingest::broker::EmbeddedBroker;
use fjord_ingest::broker::intake::Intake;
use fjord_ingest::metrics::IngestMetrics;
use fjord_testkit::{Tansu, free_port, kafka, mqtt, unique_name};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, LastWill, MqttOptions, Packet, QoS};

const ADMIN: (&str, &str) = ("fjord", "admin-secret-1");
const DEVICE_A: (&str, &str) = ("gw-a", "device-a-secret");

fn credentials() -> Vec<Credential> {
    vec![
        Credential::admin(ADMIN.0, ADMIN.1),
        Credential {
            user: DEVICE_A.0.into(),
            password: DEVICE_A.1.into(),
            publish: vec!["parking/A/#".into(), "presence/gw-a".into()],
            subscribe: vec![],
        },
    ]
}

async fn start(metrics: &Metrics) -> EmbeddedBroker {
    let listen = ([127, 0, 0, 1], free_port()).into();
    EmbeddedBroker::start(
        listen,
        &BrokerConfig::default(),
        Acl::new(credentials()),
        metrics,
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

fn options(port: u16, (user, password): (&str, &str)) -> MqttOptions {
    let mut o = MqttOptions::new(unique_name("c"), "127.0.0.1", port);
    o.set_credentials(user, password)
        .set_keep_alive(Duration::from_secs(10));
    o
}

/// Polls until the CONNACK; returns its code (or `None` when the connection failed first).
async fn connack(events: &mut rumqttc::EventLoop) -> Option<ConnectReturnCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(a)))) => return Some(a.code),
            Ok(Ok(_)) => {}
            Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code))) => return Some(code),
            _ => return None,
        }
    }
}

fn refused(metrics: &Metrics, what: &str) -> u64 {
    let text = metrics.encode();
    text.lines()
        .find(|l| {
            l.starts_with(&format!(
                "fjord_mqtt_broker_refused_total{{what=\"{what}\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_of_lot_a_may_publish_only_under_lot_a() {
    let metrics = Metrics::new();
    let broker = start(&metrics).await;
    let port = broker.addr().port();

    // an observer that sees everything
    let (observer, mut observed) = AsyncClient::new(options(port, ADMIN), 100);
    assert_eq!(
        connack(&mut observed).await,
        Some(ConnectReturnCode::Success)
    );
    observer
        .subscribe("parking/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = observed.poll().await {
            break;
        }
    }

    // device A over MQTT 3.1.1: its lot goes through, lot B is acknowledged and dropped
    let (device, mut events) = AsyncClient::new(options(port, DEVICE_A), 100);
    assert_eq!(connack(&mut events).await, Some(ConnectReturnCode::Success));
    device
        .publish("parking/B/S1", QoS::AtLeastOnce, false, "b")
        .await
        .unwrap();
    device
        .publish("parking/A/S1", QoS::AtLeastOnce, false, "a")
        .await
        .unwrap();
    let mut acks = 0;
    while acks < 2 {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = events.poll().await {
            acks += 1;
        }
    }
    // a device may not subscribe to anything
    device
        .subscribe("parking/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let suback = loop {
        if let Ok(Event::Incoming(Packet::SubAck(s))) = events.poll().await {
            break s;
        }
    };
    assert_eq!(
        suback.return_codes,
        vec![rumqttc::SubscribeReasonCode::Failure]
    );

    let first = loop {
        match tokio::time::timeout(Duration::from_secs(10), observed.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => break p,
            Ok(Ok(_)) => {}
            other => panic!("observer: {other:?}"),
        }
    };
    assert_eq!(
        first.topic, "parking/A/S1",
        "the refused publish never reached subscribers"
    );

    // device A over MQTT 5: the refusal comes back as reason code 0x87
    let mut o5 = rumqttc::v5::MqttOptions::new(unique_name("v5"), "127.0.0.1", port);
    o5.set_credentials(DEVICE_A.0, DEVICE_A.1);
    let (d5, mut e5) = rumqttc::v5::AsyncClient::new(o5, 10);
    d5.publish(
        "parking/B/S2",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        false,
        "b",
    )
    .await
    .unwrap();
    let puback = loop {
        match tokio::time::timeout(Duration::from_secs(10), e5.poll()).await {
            Ok(Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubAck(a)))) => {
                break a;
            }
            Ok(Ok(_)) => {}
            other => panic!("v5 device: {other:?}"),
        }
    };
    assert_eq!(
        puback.reason,
        rumqttc::v5::mqttbytes::v5::PubAckReason::NotAuthorized
    );

    // wrong password, and a will on someone else's topic, are refused at CONNECT
    let (_c, mut bad) = AsyncClient::new(options(port, ("gw-a", "wrong-password")), 10);
    assert_eq!(
        connack(&mut bad).await,
        Some(ConnectReturnCode::BadUserNamePassword)
    );
    let mut o = options(port, DEVICE_A);
    o.set_last_will(LastWill::new(
        "presence/gw-b",
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    let (_c, mut will) = AsyncClient::new(o, 10);
    assert_eq!(
        connack(&mut will).await,
        Some(ConnectReturnCode::NotAuthorized)
    );

    assert_eq!(refused(&metrics, "publish"), 2);
    assert_eq!(refused(&metrics, "subscribe"), 1);
    assert_eq!(refused(&metrics, "auth"), 1);
    assert_eq!(refused(&metrics, "will"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_queues_for_a_stopped_bridge_over_both_protocols() {
    let metrics = Metrics::new();
    let broker = start(&metrics).await;
    let port = broker.addr().port();
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    for protocol in [MqttProtocol::V5, MqttProtocol::V311] {
        let mut cfg = config(port, tansu.kafka_config(), protocol);
        cfg.mqtt.username = Some(ADMIN.0.into());
        cfg.mqtt.password = Some(ADMIN.1.into());
        let bridge = RunningBridge::start(&cfg).await;
        await_flowing(&cfg, port, Some(ADMIN)).await;
        bridge.stop().await;

        // the acceptance figure for the embedded broker is 200,000; MQTT 3.1.1 runs a smaller round
        let total = if protocol == MqttProtocol::V5 {
            200_000
        } else {
            50_000
        };
        let msgs = readings(0, total, 5, now_ms() - 3_600_000);
        mqtt::publish_all(
            port,
            Some(ADMIN),
            &unique_name("pub"),
            msgs,
            Duration::from_secs(300),
        )
        .await;
        let bridge = RunningBridge::start(&cfg).await;
        let mut seen = HashSet::new();
        kafka::collect(
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
            "{protocol:?}: every queued message arrives"
        );
        bridge.stop().await;
    }
}

/// Connections that never send their CONNECT are bounded: past `MAX_PENDING_CONNECTS` the front
/// closes new ones at once (counted as `pending`), and once the idle ones reach
/// `broker.connect_timeout` a real client gets in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_waiting_for_their_connect_are_bounded() {
    use fjord_ingest::broker::proxy::MAX_PENDING_CONNECTS;
    use tokio::io::AsyncReadExt;
    let metrics = Metrics::new();
    let port = free_port();
    let config = BrokerConfig {
        connect_timeout: fjord_core::duration::Duration::from_secs(3),
        ..BrokerConfig::default()
    };
    let _broker = EmbeddedBroker::start(
        ([127, 0, 0, 1], port).into(),
        &config,
        Acl::new(credentials()),
        &metrics,
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut idle = Vec::new();
    for _ in 0..MAX_PENDING_CONNECTS {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    // one more than the bound: once the front has taken the idle ones in, it is closed at once
    let mut closed_at_once = false;
    for _ in 0..50 {
        let mut extra = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(500), extra.read(&mut byte)).await
        {
            closed_at_once = true;
            break;
        }
        idle.push(extra);
    }
    assert!(closed_at_once, "a connection beyond the bound was kept");
    assert!(refused(&metrics, "pending") >= 1);
    // the idle ones time out; then a real client connects and is accepted
    let (client, mut events) = AsyncClient::new(options(port, DEVICE_A), 10);
    let mut accepted = None;
    for _ in 0..20 {
        match connack(&mut events).await {
            Some(ConnectReturnCode::Success) => {
                accepted = Some(());
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    drop(idle);
    assert!(
        accepted.is_some(),
        "no client got in after the idle ones timed out"
    );
    let _ = client.disconnect().await;
}

/// Waits up to `within` for the next incoming packet that `want` accepts.
async fn next_incoming(
    events: &mut rumqttc::EventLoop,
    within: Duration,
    want: impl Fn(&Packet) -> bool,
) -> Option<Packet> {
    tokio::time::timeout(within, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(p)) if want(&p) => return p,
                Ok(_) => {}
                Err(e) => panic!("connection failed: {e}"),
            }
        }
    })
    .await
    .ok()
}

/// As in `fjord demo`: the front is the bridge. Every PUBACK (PUBREC) leaves only once Kafka has
/// stored the message — none while Kafka is paused —, MQTT subscribers still get every message,
/// and one connection is not held to rumqttd's 100 unacknowledged messages per subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_hands_readings_to_kafka_and_acknowledges_only_what_kafka_stored() {
    let metrics = Metrics::new();
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let cfg = config(0, tansu.kafka_config(), MqttProtocol::V5);
    fjord_ingest::bridge::ensure_topics(&cfg).await;
    let ingest = IngestMetrics::new(&metrics).unwrap_or_else(|e| panic!("{e}"));
    let intake = Intake::new(&cfg, ingest).unwrap_or_else(|e| panic!("{e}"));
    let broker = EmbeddedBroker::start_with_intake(
        ([127, 0, 0, 1], free_port()).into(),
        &BrokerConfig::default(),
        Acl::new(credentials()),
        &metrics,
        None,
        Some(intake.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let port = broker.addr().port();

    // a subscriber of the readings' topics (it gets the front's QoS 0 copies)
    let (watcher, mut watching) = AsyncClient::new(options(port, ADMIN), 100);
    watcher
        .subscribe("parking/#", QoS::AtLeastOnce)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    next_incoming(&mut watching, Duration::from_secs(10), |p| {
        matches!(p, Packet::SubAck(_))
    })
    .await
    .expect("SUBACK");
    let watched = tokio::spawn(async move {
        let mut n = 0usize;
        while let Ok(event) = watching.poll().await {
            if let Event::Incoming(Packet::Publish(_)) = event {
                n += 1;
            }
        }
        n
    });

    // 20,000 readings at QoS 1 from one connection: all acknowledged, all in Kafka
    let total = 20_000;
    let msgs = readings(0, total, 5, now_ms() - 3_600_000);
    mqtt::publish_all(
        port,
        Some(ADMIN),
        &unique_name("pub"),
        msgs,
        Duration::from_secs(120),
    )
    .await;
    let mut seen = HashSet::new();
    let records = kafka::collect(
        &cfg.kafka,
        &cfg.kafka.topic("readings"),
        Duration::from_secs(60),
        |r| {
            if let Some(last) = r.last() {
                seen.insert(n_of(&last.payload));
            }
            seen.len() >= total
        },
    )
    .await;
    assert_eq!(seen.len(), total, "every acknowledged reading is in Kafka");
    assert!(
        records
            .iter()
            .all(|r| r.header("fjord-content-type") == Some("application/json")),
        "the sniffed content type is on every record"
    );
    let s = intake.summary();
    assert_eq!((s.forwarded, s.acked), (total as u64, total as u64));

    // Kafka paused: a QoS 1 PUBLISH stays unacknowledged; once Kafka is back it is acknowledged
    let (device, mut events) = AsyncClient::new(options(port, DEVICE_A), 100);
    next_incoming(&mut events, Duration::from_secs(10), |p| {
        matches!(p, Packet::ConnAck(_))
    })
    .await
    .expect("CONNACK");
    tansu.pause().unwrap_or_else(|e| panic!("{e}"));
    let ts = now_ms();
    let reading = format!(r#"{{"ts":{ts},"occupied":true,"n":99000001}}"#);
    device
        .publish("parking/A/S1", QoS::AtLeastOnce, false, reading.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let early = next_incoming(&mut events, Duration::from_secs(3), |p| {
        matches!(p, Packet::PubAck(_))
    })
    .await;
    tansu.resume().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        early.is_none(),
        "no PUBACK while Kafka cannot store the message"
    );
    next_incoming(&mut events, Duration::from_secs(60), |p| {
        matches!(p, Packet::PubAck(_))
    })
    .await
    .expect("the PUBACK once Kafka is back");

    // QoS 2: PUBREC once stored, PUBCOMP after PUBREL; the message is stored once
    let reading2 = format!(r#"{{"ts":{},"occupied":false,"n":99000002}}"#, ts + 1);
    device
        .publish("parking/A/S1", QoS::ExactlyOnce, false, reading2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    next_incoming(&mut events, Duration::from_secs(30), |p| {
        matches!(p, Packet::PubComp(_))
    })
    .await
    .expect("PUBCOMP");
    let mut late = HashSet::new();
    kafka::collect(
        &cfg.kafka,
        &cfg.kafka.topic("readings"),
        Duration::from_secs(60),
        |r| {
            if let Some(last) = r.last() {
                late.insert(n_of(&last.payload));
            }
            late.contains(&99000001) && late.contains(&99000002)
        },
    )
    .await;
    assert!(late.contains(&99000001) && late.contains(&99000002));

    // the subscriber got all of them
    let _ = watcher.disconnect().await;
    let got = tokio::time::timeout(Duration::from_secs(10), watched)
        .await
        .expect("the watcher stops")
        .unwrap_or(0);
    assert_eq!(got, total + 2, "subscribers receive every message");
}
