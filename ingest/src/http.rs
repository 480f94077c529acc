//! HTTP ingest: `POST /ingest/<mqtt-topic-path>` with a device credential, for devices that cannot
//! speak MQTT. The same rules as the MQTT bridge apply ([`crate::message`]). The answer is 202 only
//! once Kafka has stored the record; 4xx says what is wrong with the request (the rejected message is
//! also dead-lettered, like over MQTT); 503 means Kafka did not answer within
//! `bridge.http_kafka_timeout` and the client should retry.
//!
//! Authentication: `Authorization: Basic <user:password>` or `Authorization: Bearer <password>`, with
//! the `[[credentials]]` of the config; the user must be allowed to publish to the topic.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use fjord_core::config::Config;
use fjord_core::kafka::client_config;
use fjord_core::telemetry::Metrics;
use fjord_core::time::now_ms;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use crate::acl::Acl;
use crate::message::{Classifier, Disposition, Inbound, OutRecord, Source};
use crate::metrics::IngestMetrics;
use crate::{Error, Result};

/// Shared state of the HTTP ingest endpoints.
pub struct HttpIngest {
    classifier: Classifier,
    acl: Acl,
    producer: FutureProducer,
    metrics: IngestMetrics,
    registry: Metrics,
    max_payload_bytes: usize,
}

impl HttpIngest {
    /// Builds the endpoints' state from the config.
    pub fn new(
        config: &Config,
        acl: Acl,
        metrics: IngestMetrics,
        registry: Metrics,
    ) -> Result<Arc<Self>> {
        let timeout_ms = config.bridge.http_kafka_timeout.std().as_millis().max(1);
        // Not idempotent: an idempotent producer treats a timed-out record as fatal on brokers that
        // cannot bump the producer epoch, and a request answered 503 is simply sent again by the
        // client (readings are deduplicated downstream).
        let producer: FutureProducer = client_config(&config.kafka)
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.timeout.ms", timeout_ms.to_string())
            .create()
            .map_err(|e| Error::Kafka(format!("cannot create the HTTP ingest producer: {e}")))?;
        Ok(Arc::new(Self {
            classifier: crate::bridge::classifier(config)?,
            acl,
            producer,
            metrics,
            registry,
            max_payload_bytes: config.bridge.max_payload_bytes,
        }))
    }

    /// The axum router: `POST /ingest/{*topic}`, `GET /metrics`, `GET /healthz`.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/ingest/{*topic}", post(ingest))
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok" }))
            .layer(DefaultBodyLimit::max(self.max_payload_bytes))
            .with_state(self.clone())
    }

    /// [`router`](Self::router) and `GET /readyz` for `fjord bridge`: 200 while the bridge's MQTT
    /// session is up, else 503 with the reason.
    pub fn bridge_router(self: &Arc<Self>) -> axum::Router {
        let metrics = self.metrics.clone();
        self.router().route(
            "/readyz",
            get(move || {
                let m = metrics.clone();
                async move {
                    match mqtt_readiness(m.mqtt_connects.get(), m.mqtt_disconnects.get()) {
                        Ok(()) => (axum::http::StatusCode::OK, "ready\n".to_owned()),
                        Err(why) => (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: {why}\n"),
                        ),
                    }
                }
            }),
        )
    }

    async fn produce(&self, r: &OutRecord) -> std::result::Result<(i32, i64), String> {
        let record = FutureRecord::to(&r.topic)
            .key(r.key.as_bytes())
            .payload(&r.payload[..])
            .headers(r.kafka_headers());
        self.producer
            .send(record, Duration::from_secs(1))
            .await
            .map(|d| (d.partition, d.offset))
            .map_err(|(e, _)| e.to_string())
    }
}

/// The bridge is ready while it holds an MQTT connection: more connections made than lost.
fn mqtt_readiness(connects: u64, disconnects: u64) -> std::result::Result<(), String> {
    match (connects, disconnects) {
        (0, _) => Err("not yet connected to the MQTT broker".into()),
        (c, d) if c > d => Ok(()),
        _ => Err("the MQTT connection is lost; reconnecting".into()),
    }
}

/// Serves the router on `listen` until `shutdown` turns true; HTTPS with `tls`.
pub async fn serve(
    router: axum::Router,
    listen: std::net::SocketAddr,
    tls: Option<std::sync::Arc<fjord_core::tls::ServerConfig>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Io {
            context: format!("HTTP ingest cannot listen on {listen}"),
            source,
        })?;
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let served = match tls {
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
        }
        Some(config) => {
            let listener = fjord_core::tls::TlsListener::new(listener, config)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
        }
    };
    served.map_err(|source| Error::Io {
        context: "HTTP ingest server".into(),
        source,
    })
}

fn reply(state: &HttpIngest, status: StatusCode, body: serde_json::Value) -> Response {
    state
        .metrics
        .http_responses
        .with_label_values(&[status.as_str()])
        .inc();
    let mut r = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"fjord\", Bearer realm=\"fjord\""),
        );
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    r
}

async fn ingest(
    State(state): State<Arc<HttpIngest>>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(user) = authenticate(&state.acl, &headers) else {
        return reply(
            &state,
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or wrong credentials: send Authorization: Basic <user:password> or Bearer <token>"}),
        );
    };
    if !user.may_publish(&topic) {
        return reply(
            &state,
            StatusCode::FORBIDDEN,
            json!({"error": format!("user {:?} may not publish to {topic:?}", user.name())}),
        );
    }
    state.metrics.received.with_label_values(&["http"]).inc();
    let inbound = Inbound {
        topic,
        payload: body,
        // HTTP clients often send a form content type by default (curl -d): treat it as undeclared.
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|ct| !ct.starts_with("application/x-www-form-urlencoded"))
            .map(str::to_owned),
        received_at: now_ms(),
        source: Source::Http,
    };
    match state.classifier.classify(&inbound) {
        Disposition::Forward(record) => match state.produce(&record).await {
            Ok((partition, offset)) => {
                state
                    .metrics
                    .forwarded
                    .with_label_values(&[&record.topic])
                    .inc();
                reply(
                    &state,
                    StatusCode::ACCEPTED,
                    json!({"status": "accepted", "topic": record.topic, "partition": partition, "offset": offset}),
                )
            }
            Err(e) => unavailable(&state, &e),
        },
        Disposition::DeadLetter {
            record,
            reason,
            error,
        } => {
            if let Err(e) = state.produce(&record).await {
                return unavailable(&state, &e);
            }
            state
                .metrics
                .dead_lettered
                .with_label_values(&[reason])
                .inc();
            let status = match reason {
                "no_route" => StatusCode::NOT_FOUND,
                "content_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            reply(&state, status, json!({"error": error, "reason": reason}))
        }
    }
}

fn unavailable(state: &HttpIngest, e: &str) -> Response {
    tracing::warn!(error = %e, "HTTP ingest: Kafka did not acknowledge a record");
    reply(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": format!("Kafka is unavailable ({e}); retry later")}),
    )
}

async fn metrics(State(state): State<Arc<HttpIngest>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.registry.encode(),
    )
}

fn authenticate<'a>(acl: &'a Acl, headers: &HeaderMap) -> Option<crate::acl::User<'a>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return acl.authenticate_token(rest.trim().as_bytes());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        return acl.authenticate(user, password.as_bytes());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::mqtt_readiness;

    #[test]
    fn the_bridge_is_ready_while_its_mqtt_connection_is_up() {
        assert!(
            mqtt_readiness(0, 0)
                .unwrap_err()
                .contains("not yet connected")
        );
        assert_eq!(mqtt_readiness(1, 0), Ok(()));
        assert!(mqtt_readiness(1, 1).unwrap_err().contains("lost"));
        assert_eq!(mqtt_readiness(3, 2), Ok(()));
    }
}
