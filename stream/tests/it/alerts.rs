//! Alerts end to end on a real Kafka-protocol broker (tansu) and a real HTTP receiver on loopback:
//! `lot_full` from readings through the processor to a signed webhook (signatures checked by
//! Python's `hmac`), retries through 20 s of HTTP 500 in order per key, and a 400 dead-lettered
//! while later alerts still arrive; `lot_full_predicted` from readings and a forecast profile to
//! the same webhook.

use std::time::Duration;

use crate::common::{Running, config};
use fjord_core::config::{Config, Webhook};
use fjord_core::duration::Duration as D;
use fjord_core::lots::LotRecord;
use fjord_core::model::{Alert, AlertStatus, Severity};
use fjord_core::telemetry::Metrics;
use fjord_core::time::now_ms;
use fjord_stream::metrics::DeliveryMetrics;
use fjord_testkit::kafka::{self, BridgeRecord, Record};
use fjord_testkit::{Received, Tansu, WebhookReceiver, alert_changes, ids_per_key, temp_dir};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

const SECRET: &str = "test-secret-1234";

fn webhook(url: &str) -> Webhook {
    Webhook {
        name: "test".into(),
        url: url.into(),
        secret: SECRET.into(),
        rules: Vec::new(),
        timeout: D::from_secs(2),
    }
}

fn with_delivery(mut cfg: Config, url: &str) -> Config {
    cfg.alerts.webhooks = vec![webhook(url)];
    cfg.alerts.delivery.group_id = fjord_testkit::unique_name("hooks");
    cfg.alerts.delivery.initial_backoff = D::from_millis(200);
    cfg.alerts.delivery.max_backoff = D::from_secs(2);
    cfg
}

struct Delivery {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<fjord_stream::Result<Vec<fjord_stream::delivery::Summary>>>,
    metrics: DeliveryMetrics,
}

fn start_delivery(cfg: &Config) -> Delivery {
    let (stop, rx) = watch::channel(false);
    let cfg = cfg.clone();
    let metrics = DeliveryMetrics::new(&Metrics::new()).unwrap();
    let m = metrics.clone();
    let task = tokio::spawn(async move { fjord_stream::delivery::run(&cfg, m, rx).await });
    Delivery {
        stop,
        task,
        metrics,
    }
}

impl Delivery {
    async fn stop(self) -> Vec<fjord_stream::delivery::Summary> {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("delivery stops")
            .expect("join")
            .expect("delivery ran")
    }
}

fn alerts_of(records: &[Record]) -> Vec<Alert> {
    records
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).expect("alert JSON"))
        .collect()
}

/// Python's hmac module checks every signature the receiver saw.
fn verify_signatures_in_python(receiver: &WebhookReceiver) -> String {
    let dir = temp_dir();
    let file = dir.path().join("received.jsonl");
    receiver.write_jsonl(&file).unwrap();
    let script = fjord_testkit::source_path("../scripts/verify-webhook-signatures.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(SECRET)
        .arg(&file)
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "signature check failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lot_full_fires_once_and_resolves_once_whatever_the_readings_in_between() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("fjord_stream=info")
        .try_init();
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let receiver = WebhookReceiver::start().await.unwrap();
    let mut cfg = with_delivery(config(tansu.kafka_config()), &receiver.url());
    cfg.lots = vec![LotRecord {
        lot_id: "L1".into(),
        name: "Central".into(),
        zone: "centre".into(),
        capacity: 10,
        lat: None,
        lon: None,
    }];
    cfg.alerts.sensor_silent.enabled = false;
    fjord_stream::runtime::ensure_topics(&cfg).await.unwrap();

    // fill the lot (crossing 0.9 at the 9th space), flap between 0.9 and 1.0 many times, drop to
    // 0.7 (crossing 0.8), then flap between 0.7 and 0.8 many times
    let t0 = now_ms() - 20 * 60_000;
    let mut t = t0;
    let mut records = Vec::new();
    let mut reading = |space: u32, occupied: bool| {
        t += 500;
        records.push(BridgeRecord::reading(
            "L1",
            &format!("S{space}"),
            t,
            format!(r#"{{"ts":{t},"occupied":{occupied}}}"#),
        ));
    };
    for s in 0..10 {
        reading(s, true);
    }
    for i in 0..200 {
        reading(9, i % 2 == 1);
    }
    reading(9, false);
    reading(8, false);
    reading(7, false);
    for i in 0..200 {
        reading(7, i % 2 == 1);
    }
    let produced = records.len() as u64;
    kafka::produce_readings(&cfg.kafka, &records).await;

    let running = Running::start(&cfg);
    let delivery = start_delivery(&cfg);
    let got = receiver
        .wait_for(Duration::from_secs(120), |r| r.len() >= 2)
        .await;
    assert!(got.len() >= 2, "two deliveries expected, got {}", got.len());
    // every reading processed and committed before counting the alerts
    let m = running.metrics.clone();
    let processed = || {
        ["accepted", "duplicate", "late", "dead", "skipped"]
            .iter()
            .map(|f| m.records.with_label_values(&[f]).get())
            .sum::<u64>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while processed() < produced && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(processed(), produced);
    let summary = running.stop().await.unwrap();
    let topic = alerts_of(
        &kafka::collect(
            &cfg.kafka,
            &cfg.kafka.topic("alerts"),
            Duration::from_secs(5),
            |_| false,
        )
        .await,
    );
    let states: Vec<(&str, AlertStatus)> =
        topic.iter().map(|a| (a.key.as_str(), a.status)).collect();
    assert_eq!(
        states,
        vec![
            ("lot_full/L1", AlertStatus::Firing),
            ("lot_full/L1", AlertStatus::Resolved)
        ],
        "summary {summary:?}"
    );
    let (fired, resolved) = (&topic[0], &topic[1]);
    assert_eq!(
        fired.event_time,
        t0 + 9 * 500,
        "fires on the reading that crosses 0.9"
    );
    assert_eq!(fired.value, Some(0.9));
    assert_eq!(fired.severity, Severity::Warning);
    assert_eq!(
        resolved.event_time,
        t0 + 212 * 500,
        "resolves on the reading that reaches 0.8"
    );
    assert_eq!(resolved.started_at, fired.event_time);
    // the webhook got both, in order, with the headers of docs/contract.md §5
    let got = receiver
        .wait_for(Duration::from_secs(30), |r| r.len() >= 2)
        .await;
    delivery.stop().await;
    let bodies: Vec<serde_json::Value> = got.iter().map(Received::json).collect();
    assert_eq!(bodies[0]["status"], "firing");
    assert_eq!(bodies[1]["status"], "resolved");
    assert_eq!(got[0].header("x-fjord-delivery"), Some(fired.id.as_str()));
    assert_eq!(
        got[1].header("x-fjord-delivery"),
        Some(resolved.id.as_str())
    );
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    for key in [
        "id",
        "key",
        "rule",
        "status",
        "severity",
        "lot_id",
        "space_id",
        "gateway_id",
        "value",
        "threshold",
        "started_at",
        "resolved_at",
        "event_time",
        "labels",
    ] {
        assert!(
            bodies[0].get(key).is_some(),
            "body field {key} missing: {}",
            bodies[0]
        );
    }
    let checked = verify_signatures_in_python(&receiver);
    assert!(checked.contains("2 signatures verified"), "{checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_500_for_20_seconds_gets_every_alert_afterwards_in_order_per_key() {
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let receiver = WebhookReceiver::start().await.unwrap();
    let cfg = with_delivery(config(tansu.kafka_config()), &receiver.url());
    fjord_stream::runtime::ensure_topics(&cfg).await.unwrap();
    receiver.set_status(500);
    let (sent, expected) = alert_changes("id", 6, 60);
    kafka::produce_alerts(&cfg.kafka, &sent).await;
    let delivery = start_delivery(&cfg);
    // failing attempts arrive for several keys at once: one key's failure holds back no other
    let failing = receiver
        .wait_for(Duration::from_secs(30), |r| ids_per_key(r).len() >= 6)
        .await;
    assert!(
        ids_per_key(&failing).len() >= 6,
        "every key is attempted while the receiver fails"
    );
    let outage = tokio::time::Instant::now();
    tokio::time::sleep_until(outage + Duration::from_secs(20)).await;
    receiver.set_status(200);
    let ok = |r: &[Received]| r.iter().filter(|x| x.status == 200).count() >= sent.len();
    let got = receiver.wait_for(Duration::from_secs(60), ok).await;
    let summaries = delivery.stop().await;
    let delivered: Vec<Received> = got.into_iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        delivered.len(),
        sent.len(),
        "every alert delivered once after the outage"
    );
    assert_eq!(ids_per_key(&delivered), expected, "in order per key");
    assert!(summaries[0].retries > 0);
    assert_eq!(summaries[0].delivered, sent.len() as u64);
    verify_signatures_in_python(&receiver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_goes_to_the_dead_letter_topic_with_its_status_and_later_alerts_still_arrive() {
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let receiver = WebhookReceiver::start().await.unwrap();
    let cfg = with_delivery(config(tansu.kafka_config()), &receiver.url());
    fjord_stream::runtime::ensure_topics(&cfg).await.unwrap();
    receiver.set_status(400);
    let (first, _) = alert_changes("first", 1, 1);
    kafka::produce_alerts(&cfg.kafka, &first).await;
    let delivery = start_delivery(&cfg);
    let dlq = kafka::collect(
        &cfg.kafka,
        &cfg.kafka.topic("dlq"),
        Duration::from_secs(60),
        |r| !r.is_empty(),
    )
    .await;
    assert_eq!(dlq.len(), 1, "the refused alert is dead-lettered");
    let d = &dlq[0];
    assert_eq!(d.header("fjord-http-status"), Some("400"));
    assert_eq!(d.header("fjord-webhook"), Some("test"));
    assert_eq!(d.header("fjord-error-reason"), Some("webhook_rejected"));
    assert!(
        d.header("fjord-error")
            .unwrap()
            .contains("answered HTTP 400"),
        "{:?}",
        d.header("fjord-error")
    );
    assert_eq!(d.key.as_deref(), Some(first[0].key.as_bytes()));
    let dead: Alert = serde_json::from_slice(&d.payload).unwrap();
    assert_eq!(dead, first[0]);
    // later alerts of the same key and others still arrive
    receiver.set_status(200);
    let (later, expected) = alert_changes("later", 3, 6);
    kafka::produce_alerts(&cfg.kafka, &later).await;
    let got = receiver
        .wait_for(Duration::from_secs(60), |r| {
            r.iter().filter(|x| x.status == 200).count() >= later.len()
        })
        .await;
    let summaries = delivery.stop().await;
    let delivered: Vec<Received> = got.into_iter().filter(|r| r.status == 200).collect();
    assert_eq!(ids_per_key(&delivered), expected);
    assert_eq!(summaries[0].dead_lettered, 1);
    assert_eq!(
        receiver
            .received()
            .iter()
            .filter(|r| r.status == 400)
            .count(),
        1,
        "a 4xx is not retried"
    );
}

async fn produce_presence(cfg: &Config, records: &[(&str, &str)]) {
    let producer: FutureProducer = fjord_core::kafka::client_config(&cfg.kafka)
        .create()
        .unwrap();
    let topic = cfg.kafka.topic("presence");
    for (i, (gw, status)) in records.iter().enumerate() {
        let ts = fjord_core::time::format_rfc3339_ms(1_795_255_200_000 + i as i64 * 1000);
        let body = if *status == "garbage" {
            "not json".to_owned()
        } else {
            format!(r#"{{"gateway_id":"{gw}","status":"{status}","ts":"{ts}"}}"#)
        };
        producer
            .send(
                FutureRecord::to(&topic).key(*gw).payload(&body),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_offline_follows_presence_across_a_restart_of_the_processor() {
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let cfg = config(tansu.kafka_config());
    fjord_stream::runtime::ensure_topics(&cfg).await.unwrap();
    let alerts_topic = cfg.kafka.topic("alerts");
    produce_presence(
        &cfg,
        &[
            ("gw1", "online"),
            ("gw1", "offline"),
            ("gw1", "offline"),
            ("gw2", "offline"),
            ("gw1", "garbage"),
            ("gw1", "online"),
        ],
    )
    .await;
    let running = Running::start(&cfg);
    let first = kafka::collect(&cfg.kafka, &alerts_topic, Duration::from_secs(60), |r| {
        r.len() >= 3
    })
    .await;
    let summary = running.stop().await.unwrap();
    let mut got: Vec<(String, AlertStatus)> = alerts_of(&first)
        .into_iter()
        .map(|a| (a.key, a.status))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("gateway_offline/gw1".to_owned(), AlertStatus::Firing),
            ("gateway_offline/gw1".to_owned(), AlertStatus::Resolved),
            ("gateway_offline/gw2".to_owned(), AlertStatus::Firing),
        ]
    );
    assert_eq!(
        summary.dead, 1,
        "the garbage presence record is dead-lettered"
    );
    let dlq = kafka::collect(
        &cfg.kafka,
        &cfg.kafka.topic("dlq"),
        Duration::from_secs(30),
        |r| !r.is_empty(),
    )
    .await;
    assert_eq!(dlq[0].header("fjord-error-reason"), Some("presence_record"));

    // a new processor restores the presence state: gw2 resolves, nothing earlier is repeated
    produce_presence(&cfg, &[("gw2", "online")]).await;
    let running = Running::start(&cfg);
    let all = kafka::collect(&cfg.kafka, &alerts_topic, Duration::from_secs(60), |r| {
        r.len() >= 4
    })
    .await;
    let summary = running.stop().await.unwrap();
    assert_eq!(
        summary.alerts, 1,
        "the restored processor emits gw2's resolution and repeats nothing earlier"
    );
    let all = alerts_of(&all);
    assert_eq!(all.len(), 4);
    // records of different keys may sit in different partitions, read in any order: the order
    // that holds is the one within a key
    let gw2: Vec<_> = all
        .iter()
        .filter(|a| a.key == "gateway_offline/gw2")
        .collect();
    assert_eq!(
        gw2.iter().map(|a| a.status).collect::<Vec<_>>(),
        vec![AlertStatus::Firing, AlertStatus::Resolved]
    );
    assert_eq!(gw2[1].gateway_id.as_deref(), Some("gw2"));
    assert_eq!(gw2[1].severity, Severity::Critical);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_holds_back_no_other_webhook() {
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let live = WebhookReceiver::start().await.unwrap();
    let mut cfg = with_delivery(config(tansu.kafka_config()), &live.url());
    // nothing listens on this port: every attempt is a connection error, retried forever
    let dead_port = fjord_testkit::free_port();
    cfg.alerts.webhooks.push(Webhook {
        name: "dead".into(),
        ..webhook(&format!("http://127.0.0.1:{dead_port}/hook"))
    });
    fjord_stream::runtime::ensure_topics(&cfg).await.unwrap();
    let (sent, expected) = alert_changes("both", 4, 20);
    kafka::produce_alerts(&cfg.kafka, &sent).await;
    let delivery = start_delivery(&cfg);
    let got = live
        .wait_for(Duration::from_secs(60), |r| r.len() >= sent.len())
        .await;
    // the dead webhook's consumer may join its group after the live one finished: await its retries
    let dead_retries = || {
        delivery
            .metrics
            .deliveries
            .with_label_values(&["dead", "retried"])
            .get()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while dead_retries() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let retried = dead_retries();
    let summaries = delivery.stop().await;
    assert_eq!(
        ids_per_key(&got),
        expected,
        "the live webhook got everything, in order"
    );
    assert!(retried > 0, "the dead endpoint is being retried meanwhile");
    let dead = summaries.iter().find(|s| s.webhook == "dead").unwrap();
    assert_eq!(dead.delivered, 0);
    let live_summary = summaries.iter().find(|s| s.webhook == "test").unwrap();
    assert_eq!(live_summary.delivered, sent.len() as u64);
}

/// `lot_full_predicted` through the processor to the webhook: L1 (capacity 10) usually holds 30 %,
/// but 100 % from 20 to 60 minutes after `t0`. A reading at `t0` with 2 of 10 occupied fires (the
/// forecast reaches 0.9 within 30 minutes), a reading two hours later with 3 of 10 resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lot_full_predicted_fires_and_resolves_through_the_webhook() {
    use fjord_core::forecast::{
        LotProfile, Profiles, SLOTS_PER_WEEK, STEP_MS, SharedProfiles, floor_step, slot_of_week,
    };
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let receiver = WebhookReceiver::start().await.unwrap();
    let mut cfg = with_delivery(config(tansu.kafka_config()), &receiver.url());
    cfg.lots = vec![LotRecord {
        lot_id: "L1".into(),
        name: "Central".into(),
        zone: "centre".into(),
        capacity: 10,
        lat: None,
        lon: None,
    }];
    cfg.alerts.lot_full.enabled = false;
    cfg.alerts.sensor_silent.enabled = false;
    cfg.alerts.battery_low.enabled = false;
    fjord_stream::runtime::ensure_topics(&cfg).await.unwrap();

    let t0 = floor_step(now_ms() - 3 * 3_600_000);
    let mut expected = vec![0.3; SLOTS_PER_WEEK];
    for k in 2..6 {
        expected[slot_of_week(t0 + k * STEP_MS)] = 1.0;
    }
    let profiles = SharedProfiles::default();
    profiles.set(Profiles {
        model_version: Profiles::version_of(t0 - 86_400_000),
        trained_through: t0 - 86_400_000,
        lots: [(
            "L1".to_owned(),
            LotProfile {
                lot_id: "L1".into(),
                capacity: 10,
                expected,
                lower: vec![-0.1; SLOTS_PER_WEEK],
                upper: vec![0.1; SLOTS_PER_WEEK],
                weeks: vec![3; SLOTS_PER_WEEK],
                persistence: 0.9,
            },
        )]
        .into(),
    });
    let reading = |space: &str, t: i64, occupied: bool| {
        BridgeRecord::reading(
            "L1",
            space,
            t,
            format!(r#"{{"ts":{t},"occupied":{occupied}}}"#),
        )
    };
    let records = vec![
        // an hour before the rush: quiet
        reading("S0", t0 - 60 * 60_000, true),
        reading("S1", t0 - 60 * 60_000 + 1000, true),
        // at t0, 2 of 10: the forecast of the window at t0+20min is 1.0 − 0.9³·0.1 ≈ 0.927
        reading("S2", t0, false),
        // after the rush, 3 of 10 against 30 % expected
        reading("S3", t0 + 2 * 3_600_000, true),
    ];
    kafka::produce_readings(&cfg.kafka, &records).await;
    let running = Running::start_with(
        &cfg,
        fjord_stream::runtime::RunOptions {
            forecast: Some(profiles),
            ..Default::default()
        },
    );
    let delivery = start_delivery(&cfg);
    let got = receiver
        .wait_for(Duration::from_secs(120), |r| r.len() >= 2)
        .await;
    running.stop().await.unwrap();
    delivery.stop().await;
    let bodies: Vec<serde_json::Value> = got.iter().map(Received::json).collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["key"], "lot_full_predicted/L1");
    assert_eq!(bodies[0]["rule"], "lot_full_predicted");
    assert_eq!(bodies[0]["status"], "firing");
    assert_eq!(bodies[0]["severity"], "info");
    assert_eq!(bodies[0]["threshold"], 0.9);
    let value = bodies[0]["value"].as_f64().unwrap();
    assert!(
        (value - (1.0 - 0.9f64.powi(3) * 0.1)).abs() < 1e-9,
        "{value}"
    );
    assert_eq!(bodies[1]["key"], "lot_full_predicted/L1");
    assert_eq!(bodies[1]["status"], "resolved");
    let checked = verify_signatures_in_python(&receiver);
    assert!(checked.contains("2 signatures verified"), "{checked}");
}
