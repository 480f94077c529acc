//! Logs and metrics for every component.
//!
//! [`init_tracing`] installs one global `tracing` subscriber (human or JSON lines, filter from the
//! config or `RUST_LOG`). [`Metrics`] wraps one Prometheus registry that all components of a process
//! register into, so `fjord demo` exposes a single `/metrics` page for everything it runs.

use std::sync::Arc;

use prometheus::{Encoder, Registry, TextEncoder};
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry as TracingRegistry, fmt};

use crate::config::{LogConfig, LogFormat};
use crate::{Error, Result};

/// Directives added to the configured level: the embedded MQTT broker logs every connection at
/// `info`, and every ordinary disconnect as an error of its router, which would drown fjord's own
/// lines. (Its warnings about dropped messages, target `rumqttd::segments`, stay visible.)
const QUIET_DEPENDENCIES: &str = "rumqttd=warn,rumqttd::router::routing=off,buoyant_kernel=warn,\
buoyant_kernel_engine=warn,deltalake_core=warn,deltalake_aws=warn,datafusion=warn,object_store=warn";

/// An extra `tracing` layer installed with the log output (e.g. one that turns a dependency's log
/// events into a metric). It sees the events the log filter lets through.
pub type ExtraLayer = Box<dyn Layer<Layered<EnvFilter, TracingRegistry>> + Send + Sync + 'static>;

/// Installs the global `tracing` subscriber. `RUST_LOG`, when set, overrides `cfg.level`.
/// Calling it twice is an error (the first subscriber stays).
pub fn init_tracing(cfg: &LogConfig) -> Result<()> {
    init_tracing_with(cfg, Vec::new())
}

/// [`init_tracing`] with extra layers.
pub fn init_tracing_with(cfg: &LogConfig, extra: Vec<ExtraLayer>) -> Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(format!("{QUIET_DEPENDENCIES},{}", cfg.level)),
    }
    .map_err(|e| Error::Telemetry(format!("invalid log filter: {e}")))?;
    // A `Vec` of layers reports the highest level hint of its members, and an empty one reports
    // OFF: the identity layer (no hint) keeps the vector from silencing everything below ERROR.
    let mut extra = extra;
    extra.push(Box::new(tracing_subscriber::layer::Identity::new()));
    let base = tracing_subscriber::registry().with(filter).with(extra);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = match cfg.format {
        LogFormat::Human => base
            .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => base
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.map_err(|e| Error::Telemetry(format!("cannot install the log subscriber: {e}")))
}

/// The process-wide Prometheus registry. Cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// An empty registry whose metric names all start with `fjord_`.
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("fjord".into()), None).unwrap_or_else(|_| Registry::new());
        Self {
            registry: Arc::new(registry),
        }
    }

    /// Registers a collector (a counter, gauge, histogram or a `*Vec` of them). Registering the same
    /// metric name twice is a programming error and reported as such.
    pub fn register<C: prometheus::core::Collector + Clone + 'static>(&self, c: &C) -> Result<()> {
        self.registry
            .register(Box::new(c.clone()))
            .map_err(|e| Error::Telemetry(format!("cannot register a metric: {e}")))
    }

    /// The underlying registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Whether a process is ready for work, for `GET /readyz` (a Kubernetes readiness probe, a compose
/// health check): ready, or not ready with the reason, which the probe's answer carries.
#[derive(Debug, Clone)]
pub struct Readiness(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl Readiness {
    /// Not ready yet, because of `reason`.
    pub fn not_ready(reason: impl Into<String>) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(Some(
            reason.into(),
        ))))
    }

    /// Marks the process ready.
    pub fn set_ready(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Marks the process not ready, because of `reason`.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.into());
    }

    /// `Ok` when ready, else the reason.
    pub fn check(&self) -> std::result::Result<(), String> {
        match &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }
}

/// The status line and body of a probe or metrics request `request` (its first line).
fn respond(request: &str, metrics: &Metrics, ready: &Readiness) -> (&'static str, String) {
    if request.starts_with("GET /metrics") {
        ("200 OK", metrics.encode())
    } else if request.starts_with("GET /healthz") {
        ("200 OK", "ok\n".to_owned())
    } else if request.starts_with("GET /readyz") {
        match ready.check() {
            Ok(()) => ("200 OK", "ready\n".to_owned()),
            Err(reason) => ("503 Service Unavailable", format!("not ready: {reason}\n")),
        }
    } else {
        ("404 Not Found", "not found\n".to_owned())
    }
}

/// Serves `GET /metrics` (Prometheus text format), `GET /healthz` (the process answers) and
/// `GET /readyz` (200 when `ready`, else 503 with the reason) on `listen` until `shutdown` turns
/// true: for the commands that have no HTTP server of their own (`fjord stream`, a scheduled
/// `fjord batch`). A minimal HTTP/1.1 responder.
pub async fn serve_metrics(
    listen: std::net::SocketAddr,
    metrics: Metrics,
    ready: Readiness,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<std::net::SocketAddr> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::io(format!("cannot serve metrics on {listen}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("metrics listener address", e))?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let Ok((mut stream, _)) = accepted else {
                continue;
            };
            let (metrics, ready) = (metrics.clone(), ready.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = respond(&request, &metrics, &ready);
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_are_encoded_with_the_prefix() {
        let m = Metrics::new();
        let c = prometheus::IntCounterVec::new(
            prometheus::Opts::new("readings_total", "Readings received"),
            &["source"],
        )
        .unwrap();
        m.register(&c).unwrap();
        c.with_label_values(&["mqtt"]).inc_by(3);
        let text = m.encode();
        assert!(
            text.contains("fjord_readings_total{source=\"mqtt\"} 3"),
            "{text}"
        );
        assert!(
            m.register(&c).is_err(),
            "double registration must be refused"
        );
    }

    #[test]
    fn readyz_answers_503_with_the_reason_until_ready() {
        let (m, r) = (
            Metrics::new(),
            Readiness::not_ready("joining the consumer group"),
        );
        let get = |path: &str| respond(&format!("GET {path} HTTP/1.1\r\n"), &m, &r);
        assert_eq!(
            get("/readyz"),
            (
                "503 Service Unavailable",
                "not ready: joining the consumer group\n".to_owned()
            )
        );
        assert_eq!(get("/healthz").0, "200 OK");
        r.set_ready();
        assert_eq!(get("/readyz"), ("200 OK", "ready\n".to_owned()));
        r.set_not_ready("the last run failed: S3 unreachable");
        assert!(get("/readyz").1.contains("S3 unreachable"));
        assert_eq!(get("/nope").0, "404 Not Found");
    }
}
