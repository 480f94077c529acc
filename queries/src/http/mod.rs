//! `fjord serve`'s HTTP interface (docs/contract.md §7):
//!
//! | route | auth | answers |
//! |---|---|---|
//! | `GET /` , `/assets/*` | no (no data) | the dashboard |
//! | `POST /api/sql` | yes | the result as JSON, CSV, NDJSON or Arrow IPC by `Accept`; body SQL text or `{"sql": …}` |
//! | `GET /api/lots` | yes | every lot with its current occupancy |
//! | `GET /api/lots/{id}/forecast` | yes | the lot's next 24 h in 10-minute steps (`occupancy_forecast`) |
//! | `GET /api/alerts?status=firing` | yes | each alert's latest change, newest first |
//! | `GET /api/openapi.json` | no | the OpenAPI description of this API |
//! | `GET /metrics`, `/healthz`, `/readyz` | no | Prometheus metrics, liveness, readiness |
//!
//! Authentication: `Authorization: Bearer <token>` or `Basic <fjord:token>`. Results are streamed:
//! the first 256 KiB are prepared before the status line, so an error or a limit hit early (most of
//! them) is a proper error response; one hit later ends the body early.

pub mod encode;

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fjord_core::model::AlertStatus;
use fjord_core::telemetry::Metrics;
use futures::StreamExt;
use serde_json::json;

use crate::auth::Credentials;
use crate::catalog::Catalog;
use crate::metrics::{QueryMetrics, outcome};
use crate::speed::Speed;
use crate::{Error, Result};
use encode::{Encoder, Wire};

/// Bytes of a result prepared before the response starts.
const FIRST_CHUNK: usize = 256 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct Api {
    /// The SQL catalog.
    pub catalog: Catalog,
    /// The speed layer (live alerts, readiness).
    pub speed: Arc<Speed>,
    /// Who may query.
    pub credentials: Credentials,
    /// The process registry, for `/metrics`.
    pub registry: Metrics,
    /// Query metrics.
    pub metrics: QueryMetrics,
}

/// The router of every route above.
pub fn router(api: Api) -> Router {
    let ops = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(Arc::new(api.clone()));
    api_routes(api).merge(ops)
}

/// Every route above but `/metrics` and `/healthz`.
pub fn api_routes(api: Api) -> Router {
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::script))
        .route("/assets/app.css", get(dashboard::style))
        .route("/api/sql", post(sql))
        .route("/api/lots", get(lots))
        .route("/api/lots/{id}/forecast", get(forecast))
        .route("/api/alerts", get(alerts))
        .route("/api/openapi.json", get(openapi))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(api))
}

/// Serves `router` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<std::sync::Arc<fjord_core::tls::ServerConfig>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    match tls {
        None => axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
            .map_err(|e| Error::Serve(format!("HTTP server: {e}"))),
        Some(config) => {
            let listener = fjord_core::tls::TlsListener::new(listener, config)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
                .map_err(|e| Error::Serve(format!("HTTPS server: {e}")))
        }
    }
}

fn error_body(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut r = (status, Json(json!({"error": message, "kind": kind}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"fjord\", Bearer realm=\"fjord\""),
        );
    }
    r
}

/// The response for a failed query.
fn error_response(e: &Error) -> Response {
    let (status, kind) = match e {
        Error::Refused(_) => (StatusCode::FORBIDDEN, "refused"),
        Error::Limit(_) => (StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        Error::Query(_) | Error::Engine(_) | Error::Format(_) => (StatusCode::BAD_REQUEST, "query"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    error_body(status, kind, &e.to_string())
}

/// `None` when the request carries the credentials, else the 401 response.
fn unauthorized(api: &Api, headers: &HeaderMap, interface: &str) -> Option<Response> {
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| api.credentials.check_header(v));
    if ok {
        return None;
    }
    api.metrics
        .queries
        .with_label_values(&[interface, "unauthorized"])
        .inc();
    Some(error_body(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong credentials: send Authorization: Bearer <token> or Basic <fjord:token>",
    ))
}

/// The SQL of a request body: the text itself, or `{"sql": "…"}`.
fn sql_of(headers: &HeaderMap, body: &[u8]) -> std::result::Result<String, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
        || text.trim_start().starts_with('{');
    if !is_json {
        return Ok(text.to_owned());
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        sql: String,
    }
    serde_json::from_str::<Body>(text)
        .map(|b| b.sql)
        .map_err(|e| format!("the JSON body must be {{\"sql\": \"…\"}}: {e}"))
}

async fn sql(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = unauthorized(&api, &headers, "http") {
        return r;
    }
    let text = match sql_of(&headers, &body) {
        Ok(t) => t,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, "query", &e),
    };
    let accept = headers
        .get(header::ACCEPT)
        .map(|v| v.to_str().unwrap_or("?"));
    let Some(wire) = Wire::from_accept(accept) else {
        return error_body(
            StatusCode::NOT_ACCEPTABLE,
            "query",
            &format!(
                "cannot answer in {:?}: Accept one of application/json, text/csv, \
                 application/x-ndjson, application/vnd.apache.arrow.stream",
                accept.unwrap_or_default()
            ),
        );
    };
    run(&api, &text, wire).await
}

/// Runs `text` and answers with its result in `wire`.
async fn run(api: &Api, text: &str, wire: Wire) -> Response {
    let started = Instant::now();
    let result = prepare(&api.catalog, text, wire).await;
    match result {
        Err(e) => {
            api.metrics
                .observe("http", outcome(Some(&e)), started.elapsed().as_secs_f64());
            error_response(&e)
        }
        Ok(Prepared::Whole(columns, bytes)) => {
            api.metrics
                .observe("http", "ok", started.elapsed().as_secs_f64());
            respond(wire, &columns, Body::from(bytes))
        }
        Ok(Prepared::Streaming(columns, first, rest)) => {
            // the rest of the result as it comes; the query's outcome is counted when it ends
            let metrics = api.metrics.clone();
            let tail = futures::stream::unfold(Some(rest), move |state| {
                let metrics = metrics.clone();
                async move {
                    let mut rest = state?;
                    let elapsed = || started.elapsed().as_secs_f64();
                    match rest.next().await {
                        Some(Ok(b)) => Some((Ok(b), Some(rest))),
                        Some(Err(e)) => {
                            metrics.observe("http", outcome(Some(&e)), elapsed());
                            tracing::warn!(error = %e, "query failed after its result started; body cut short");
                            Some((Err(std::io::Error::other(e.to_string())), None))
                        }
                        None => {
                            metrics.observe("http", "ok", elapsed());
                            None
                        }
                    }
                }
            });
            let body =
                futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(first)) })
                    .chain(tail);
            respond(wire, &columns, Body::from_stream(body))
        }
    }
}

fn respond(wire: Wire, columns: &str, body: Body) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(wire.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(columns) {
        h.insert("x-fjord-columns", v);
    }
    r
}

/// A result ready to answer: whole, or its first chunk and the rest to stream.
enum Prepared {
    Whole(String, Vec<u8>),
    Streaming(
        String,
        Vec<u8>,
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes>> + Send>>,
    ),
}

async fn prepare(catalog: &Catalog, text: &str, wire: Wire) -> Result<Prepared> {
    let (schema, mut batches) = crate::exec::start(catalog, text).await?;
    let columns = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(",");
    let (mut enc, mut buf) = Encoder::begin(wire, &schema)?;
    while buf.len() < FIRST_CHUNK {
        match batches.next().await {
            None => {
                buf.extend(enc.finish()?);
                return Ok(Prepared::Whole(columns, buf));
            }
            Some(b) => enc.batch(&b?, &mut buf)?,
        }
    }
    let rest = futures::stream::unfold(
        (batches, enc, false),
        |(mut batches, mut enc, done)| async move {
            if done {
                return None;
            }
            match batches.next().await {
                None => Some((enc.finish().map(Bytes::from), (batches, enc, true))),
                Some(Err(e)) => Some((Err(e), (batches, enc, true))),
                Some(Ok(b)) => {
                    let mut out = Vec::new();
                    let r = enc.batch(&b, &mut out).map(|()| Bytes::from(out));
                    let failed = r.is_err();
                    Some((r, (batches, enc, failed)))
                }
            }
        },
    );
    Ok(Prepared::Streaming(columns, buf, Box::pin(rest)))
}

async fn lots(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&api, &headers, "http") {
        return r;
    }
    const LOTS: &str = "SELECT coalesce(l.lot_id, o.lot_id) AS lot_id, l.name, l.zone, \
        coalesce(o.capacity, l.capacity) AS capacity, coalesce(o.occupied, 0) AS occupied, \
        coalesce(o.occupancy_ratio, 0.0) AS occupancy_ratio, o.updated_at, l.lat, l.lon \
        FROM lots l FULL OUTER JOIN occupancy_live o ON l.lot_id = o.lot_id ORDER BY 1";
    run(&api, LOTS, Wire::Json).await
}

async fn forecast(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if let Some(r) = unauthorized(&api, &headers, "http") {
        return r;
    }
    let Some(source) = api.catalog.forecast() else {
        return error_body(
            StatusCode::NOT_FOUND,
            "forecast",
            "the forecast is off: [forecast] enabled = false, or stream.windows has no 10m",
        );
    };
    let profiles = source.profiles().await;
    if !profiles.lots.contains_key(&id) {
        let why = if profiles.lots.is_empty() {
            "no profile has been learned yet: the batch job learns them from a day or more of occupancy_10m (`fjord batch forecast`)".to_owned()
        } else {
            format!(
                "lot {id:?} has no profile: it is not a lot, or it has less than a day of occupancy_10m (lots with a forecast: {})",
                profiles.lots.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        return error_body(StatusCode::NOT_FOUND, "forecast", &why);
    }
    let sql = format!(
        "SELECT lot_id, target_time, horizon, occupancy_ratio, occupied, lower, upper, model_version, issued_at \
         FROM occupancy_forecast WHERE lot_id = '{}' ORDER BY target_time",
        id.replace('\'', "''")
    );
    run(&api, &sql, Wire::Json).await
}

#[derive(serde::Deserialize)]
struct AlertsQuery {
    status: Option<String>,
}

async fn alerts(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> Response {
    if let Some(r) = unauthorized(&api, &headers, "http") {
        return r;
    }
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                "query",
                &format!(
                    "{}: the only parameter is status=firing|resolved|all",
                    e.body_text()
                ),
            );
        }
    };
    let status = match q.status.as_deref() {
        None | Some("all") => None,
        Some(s) => match serde_json::from_value::<AlertStatus>(json!(s)) {
            Ok(st) => Some(st),
            Err(_) => {
                return error_body(
                    StatusCode::BAD_REQUEST,
                    "query",
                    &format!("unknown status {s:?}: use firing, resolved or all"),
                );
            }
        },
    };
    Json(api.speed.read(|s| s.alerts(status))).into_response()
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    api.metrics
        .speed_windows
        .set(i64::try_from(api.speed.read(|s| s.window_count())).unwrap_or(i64::MAX));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        api.registry.encode(),
    )
        .into_response()
}

async fn readyz(State(api): State<Arc<Api>>) -> Response {
    if api.speed.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the speed layer is still reading the Kafka topics\n",
        )
            .into_response()
    }
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../assets/openapi.json"),
    )
        .into_response()
}

/// The dashboard's files, compiled into the binary.
mod dashboard {
    use axum::http::header;
    use axum::response::IntoResponse;

    pub async fn index() -> impl IntoResponse {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            include_str!("../../assets/index.html"),
        )
    }

    pub async fn script() -> impl IntoResponse {
        (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            include_str!("../../assets/app.js"),
        )
    }

    pub async fn style() -> impl IntoResponse {
        (
            [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
            include_str!("../../assets/app.css"),
        )
    }
}
