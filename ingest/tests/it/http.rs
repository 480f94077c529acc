//! HTTP ingest against a real Kafka-protocol broker: 202 only after Kafka's ack, each 4xx with its
//! reason, and 503 while Kafka is unavailable.

use std::sync::Arc;
use std::time::Duration;

use fjord_core::config::{Config, Credential};
use fjord_core::duration::Duration as ConfigDuration;
use fjord_core::kafka::HEADER_SOURCE;
use fjord_core::telemetry::Metrics;
use fjord_ingest::acl::Acl;
use fjord_ingest::http::HttpIngest;
use fjord_ingest::metrics::IngestMetrics;
use fjord_testkit::{Tansu, free_port, kafka};
use reqwest::StatusCode;
use serde_json::Value;

struct Server {
    base: String,
    cfg: Config,
    _stop: tokio::sync::watch::Sender<bool>,
    _http: Arc<HttpIngest>,
}

async fn server(tansu: &Tansu) -> Server {
    let mut cfg = Config::default();
    cfg.kafka = tansu.kafka_config();
    cfg.bridge.max_payload_bytes = 1000;
    cfg.bridge.http_kafka_timeout = ConfigDuration::from_secs(3);
    cfg.credentials = vec![
        Credential::admin("fjord", "admin-secret-1"),
        Credential {
            user: "gw-a".into(),
            password: "device-a-secret".into(),
            publish: vec!["parking/A/#".into()],
            subscribe: vec![],
        },
    ];
    fjord_ingest::bridge::ensure_topics(&cfg).await;
    let metrics = Metrics::new();
    let http = HttpIngest::new(
        &cfg,
        Acl::new(cfg.credentials.clone()),
        IngestMetrics::new(&metrics).unwrap(),
        metrics,
    )
    .unwrap();
    let port = free_port();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let router = http.router();
    tokio::spawn(fjord_ingest::http::serve(
        router,
        ([127, 0, 0, 1], port).into(),
        None,
        rx,
    ));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        base,
        cfg,
        _stop: stop,
        _http: http,
    }
}

async fn post(
    s: &Server,
    path: &str,
    auth: Option<&str>,
    ct: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/ingest/{path}", s.base))
        .body(body.to_owned());
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    if let Some(ct) = ct {
        req = req.header("Content-Type", ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

const ADMIN: &str = "Bearer admin-secret-1";
// base64("gw-a:device-a-secret")
const DEVICE_A: &str = "Basic Z3ctYTpkZXZpY2UtYS1zZWNyZXQ=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_only_after_kafka_and_every_refusal_says_why() {
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let s = server(&tansu).await;

    let (status, body) = post(
        &s,
        "parking/A/S1",
        Some(ADMIN),
        Some("application/json"),
        r#"{"occupied":true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["topic"], s.cfg.kafka.topic("readings"));
    let (status, _) = post(
        &s,
        "parking/A/S2",
        Some(DEVICE_A),
        None,
        r#"{"occupied":false}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let stored = kafka::collect(
        &s.cfg.kafka,
        &s.cfg.kafka.topic("readings"),
        Duration::from_secs(30),
        |r| r.len() >= 2,
    )
    .await;
    assert_eq!(stored.len(), 2);
    assert!(
        stored
            .iter()
            .all(|r| r.header(HEADER_SOURCE) == Some("http"))
    );

    // (path, Authorization, Content-Type, body, expected status, the error mentions)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        String,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "parking/A/S1",
            None,
            None,
            r#"{"occupied":true}"#.into(),
            StatusCode::UNAUTHORIZED,
            "credentials",
        ),
        (
            "parking/A/S1",
            Some("Bearer nope"),
            None,
            r#"{"occupied":true}"#.into(),
            StatusCode::UNAUTHORIZED,
            "credentials",
        ),
        (
            "parking/B/S1",
            Some(DEVICE_A),
            None,
            r#"{"occupied":true}"#.into(),
            StatusCode::FORBIDDEN,
            "may not publish",
        ),
        (
            "weather/x",
            Some(ADMIN),
            None,
            "{}".into(),
            StatusCode::NOT_FOUND,
            "no mapping rule",
        ),
        (
            "parking/A/S1",
            Some(ADMIN),
            None,
            r#"{"occupied":true,"battery":140}"#.into(),
            StatusCode::BAD_REQUEST,
            "`battery` must be an integer 0–100, got 140",
        ),
        (
            "parking/A/S1",
            Some(ADMIN),
            Some("text/plain"),
            r#"{"occupied":true}"#.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not supported",
        ),
        (
            "parking/A/S1",
            Some(ADMIN),
            None,
            format!(r#"{{"occupied":true,"pad":"{}"}}"#, "x".repeat(2000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
    ];
    for (path, auth, ct, body, expected, says) in cases {
        let (status, reply) = post(&s, path, auth, ct, &body).await;
        assert_eq!(status, expected, "{path} {auth:?}: {reply}");
        if !says.is_empty() {
            let error = reply["error"].as_str().unwrap_or_default();
            assert!(
                error.contains(says),
                "{expected}: {error:?} should mention {says:?}"
            );
        }
    }
    // the rejected readings were dead-lettered too
    let dlq = kafka::collect(
        &s.cfg.kafka,
        &s.cfg.kafka.topic("dlq"),
        Duration::from_secs(30),
        |r| r.len() >= 3,
    )
    .await;
    let reasons: Vec<&str> = dlq
        .iter()
        .filter_map(|r| r.header("fjord-error-reason"))
        .collect();
    assert!(
        reasons.contains(&"no_route")
            && reasons.contains(&"invalid_field")
            && reasons.contains(&"content_type"),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_unavailable_while_kafka_is_down_then_accepted_again() {
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let s = server(&tansu).await;
    let (status, _) = post(
        &s,
        "parking/A/S1",
        Some(ADMIN),
        None,
        r#"{"occupied":true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    tansu.pause().unwrap();
    let started = std::time::Instant::now();
    let (status, body) = post(
        &s,
        "parking/A/S2",
        Some(ADMIN),
        None,
        r#"{"occupied":true}"#,
    )
    .await;
    tansu.resume().unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Kafka is unavailable"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered within the configured timeout"
    );

    let mut accepted = false;
    for _ in 0..30 {
        let (status, _) = post(
            &s,
            "parking/A/S3",
            Some(ADMIN),
            None,
            r#"{"occupied":true}"#,
        )
        .await;
        if status == StatusCode::ACCEPTED {
            accepted = true;
            break;
        }
    }
    assert!(accepted, "accepted again once Kafka is back");
}
