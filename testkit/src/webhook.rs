//! A real HTTP webhook receiver on a free loopback port (axum): records every request as it
//! arrives (before answering), answers with a status the test sets, optionally after a delay, and
//! can write what it received as JSON lines for an independent signature check.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// Headers, names lower-case.
    pub headers: BTreeMap<String, String>,
    /// Body.
    pub body: Vec<u8>,
    /// The status answered.
    pub status: u16,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug)]
struct Inner {
    received: Vec<Received>,
    status: u16,
    delay: Duration,
}

/// The receiver; stops when dropped.
pub struct WebhookReceiver {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (status, delay) = {
        let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
        let status = g.status;
        g.received.push(Received {
            at: Instant::now(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
            status,
        });
        (status, g.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl WebhookReceiver {
    /// Starts answering 200 to `POST /hook` on a free loopback port (call inside a Tokio runtime).
    pub async fn start() -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner {
            received: Vec::new(),
            status: 200,
            delay: Duration::ZERO,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(inner.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            inner,
            stop: Some(tx),
        })
    }

    /// The URL to configure as the webhook.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answer `status` from now on.
    pub fn set_status(&self, status: u16) {
        self.lock().status = status;
    }

    /// Answer only after `delay` from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Waits until `done(received)` holds, or `timeout`; returns what was received.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if done(&got) || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes one JSON object per request: `timestamp`, `signature`, `delivery`, `body` (text).
    pub fn write_jsonl(&self, path: &Path) -> std::io::Result<()> {
        let mut text = String::new();
        for r in self.received() {
            let line = serde_json::json!({
                "timestamp": r.header("x-fjord-timestamp"),
                "signature": r.header("x-fjord-signature"),
                "delivery": r.header("x-fjord-delivery"),
                "body": String::from_utf8_lossy(&r.body),
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        std::fs::write(path, text)
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Per alert key (from each body's `key`), the alert ids (`id`) in order of first arrival: what
/// "in order per key" is checked against when deliveries may repeat.
pub fn ids_per_key(received: &[Received]) -> std::collections::HashMap<String, Vec<String>> {
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    for r in received {
        let body = r.json();
        let (Some(key), Some(id)) = (body["key"].as_str(), body["id"].as_str()) else {
            continue;
        };
        let ids = out.entry(key.to_owned()).or_default();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_owned());
        }
    }
    out
}

/// `n` state changes of `lot_full` over `keys` lots (`lot_full/L0` …), each key alternating
/// firing and resolved, with ids `<prefix>-0000` …, and per key the ids in order.
pub fn alert_changes(
    prefix: &str,
    keys: usize,
    n: usize,
) -> (
    Vec<fjord_core::model::Alert>,
    std::collections::HashMap<String, Vec<String>>,
) {
    use fjord_core::model::{Alert, AlertStatus, Severity};
    let t0 = fjord_core::time::now_ms();
    let alerts: Vec<Alert> = (0..n)
        .map(|i| {
            let lot = format!("L{}", i % keys.max(1));
            let round = (i / keys.max(1)) as i64;
            let status = if round % 2 == 0 {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            };
            Alert {
                id: format!("{prefix}-{i:04}"),
                key: format!("lot_full/{lot}"),
                rule: "lot_full".into(),
                status,
                severity: Severity::Warning,
                lot_id: Some(lot),
                space_id: None,
                gateway_id: None,
                value: Some(0.95),
                threshold: Some(0.9),
                started_at: t0 + round,
                resolved_at: (status == AlertStatus::Resolved).then_some(t0 + round),
                event_time: t0 + i as i64,
                labels: Default::default(),
            }
        })
        .collect();
    let mut order: std::collections::HashMap<String, Vec<String>> = Default::default();
    for a in &alerts {
        order.entry(a.key.clone()).or_default().push(a.id.clone());
    }
    (alerts, order)
}
