//! `fjord.alerts` → the Delta table `alerts` on a real broker (tansu) and a local lake: every
//! state change once (the identical copies an at-least-once processor repeats are dropped by id,
//! within a run and across runs), records that are not alerts quarantined, a re-run lands nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use arrow::array::AsArray;
use fjord_batch::{Job, Table};
use fjord_core::model::{Alert, AlertStatus, Severity};
use fjord_core::time::now_ms;
use fjord_testkit::{Tansu, temp_dir};
use rdkafka::producer::{FutureProducer, FutureRecord};

fn alert(i: usize, t0: i64) -> Alert {
    let status = if i.is_multiple_of(2) {
        AlertStatus::Firing
    } else {
        AlertStatus::Resolved
    };
    Alert {
        id: format!("a{i:03}"),
        key: format!("battery_low/L1/S{}", i / 2),
        rule: "battery_low".into(),
        status,
        severity: Severity::Info,
        lot_id: Some("L1".into()),
        space_id: Some(format!("S{}", i / 2)),
        gateway_id: None,
        value: Some(12.0),
        threshold: Some(15.0),
        started_at: t0 + (i as i64 / 2) * 1000,
        resolved_at: (status == AlertStatus::Resolved).then_some(t0 + i as i64 * 1000),
        event_time: t0 + i as i64 * 1000,
        labels: BTreeMap::from([("team".to_owned(), "ops".to_owned())]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_state_changes_land_once_and_garbage_is_quarantined() {
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let kafka = tansu.kafka_config();
    let topic = kafka.topic("alerts");
    tansu.create_topic(&topic, 2).await.unwrap();
    let dir = temp_dir();
    let mut cfg = config(
        &kafka,
        &format!("file://{}", dir.path().display()),
        BTreeMap::new(),
    );
    cfg.batch.max_records_per_commit = 7;
    let lake = lake(&cfg);
    let t0 = now_ms() - 3_600_000;
    let producer: FutureProducer = fjord_core::kafka::client_config(&kafka).create().unwrap();
    let send = |body: Vec<u8>, key: String| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&body),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    };
    // 20 changes; 5 of them repeated (as a replay after a crash would), one record of garbage
    for i in 0..20 {
        let a = alert(i, t0);
        send(serde_json::to_vec(&a).unwrap(), a.key.clone()).await;
        if i.is_multiple_of(4) {
            send(serde_json::to_vec(&a).unwrap(), a.key.clone()).await;
        }
    }
    send(b"{not an alert".to_vec(), "x".into()).await;

    let first = fjord_batch::run_once(&cfg, &lake, &Job::Ingest)
        .await
        .unwrap();
    let i = first.ingest.as_ref().unwrap();
    assert_eq!((i.alert_records, i.alerts), (26, 20), "{first}");
    assert_eq!(count(&lake, Table::Alerts).await, 20);
    assert_eq!(count(&lake, Table::Quarantine).await, 1);

    // a later repeat of a landed change, and two new changes
    for i in [3, 20, 21] {
        let a = alert(i, t0);
        send(serde_json::to_vec(&a).unwrap(), a.key.clone()).await;
    }
    let second = fjord_batch::run_once(&cfg, &lake, &Job::Ingest)
        .await
        .unwrap();
    let i = second.ingest.as_ref().unwrap();
    assert_eq!((i.alert_records, i.alerts), (3, 2), "{second}");
    let third = fjord_batch::run_once(&cfg, &lake, &Job::Ingest)
        .await
        .unwrap();
    assert_eq!(
        third.ingest.as_ref().unwrap().alert_records,
        0,
        "nothing read twice"
    );

    let t = lake.open_existing(Table::Alerts).await.unwrap().unwrap();
    let ctx = fjord_batch::query::session(&[("alerts", &t)])
        .await
        .unwrap();
    let b = fjord_batch::query::collect(
        &ctx,
        "alerts",
        "SELECT count(DISTINCT id), count(*) FILTER (WHERE status = 'resolved'), \
         min(labels), max(severity) FROM alerts",
    )
    .await
    .unwrap();
    assert_eq!(fjord_batch::query::scalar_i64(&b).unwrap(), Some(22));
    let resolved =
        arrow::compute::cast(b[0].column(1), &arrow::datatypes::DataType::Int64).unwrap();
    assert_eq!(
        resolved
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        11
    );
    assert_eq!(
        fjord_batch::query::string_column(&b[0], 2)
            .unwrap()
            .value(0),
        r#"{"team":"ops"}"#
    );
    assert_eq!(
        fjord_batch::query::string_column(&b[0], 3)
            .unwrap()
            .value(0),
        "info"
    );
    let q = lake
        .open_existing(Table::Quarantine)
        .await
        .unwrap()
        .unwrap();
    let ctx = fjord_batch::query::session(&[("q", &q)]).await.unwrap();
    let b = fjord_batch::query::collect(&ctx, "q", "SELECT reason, kafka_topic FROM q")
        .await
        .unwrap();
    assert_eq!(
        fjord_batch::query::string_column(&b[0], 0)
            .unwrap()
            .value(0),
        "alert_record"
    );
    assert_eq!(
        fjord_batch::query::string_column(&b[0], 1)
            .unwrap()
            .value(0),
        topic
    );
}
