//! `fjord serve`: starts the speed-layer feed, the catalog and the interfaces (HTTP with the
//! dashboard, Postgres wire, Arrow Flight SQL), each on its `[serve]` address, until shutdown.
//! With `[tls]`, HTTP is HTTPS, Flight SQL is gRPC over TLS and the Postgres wire requires TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fjord_core::config::Config;
use fjord_core::telemetry::Metrics;
use tokio::task::JoinHandle;

use crate::auth::Credentials;
use crate::catalog::Catalog;
use crate::flight::FlightSql;
use crate::http::Api;
use crate::metrics::QueryMetrics;
use crate::speed::{Speed, feed};
use crate::{Error, Result};

/// A running query server.
#[derive(Debug)]
pub struct Server {
    /// Where HTTP (API and dashboard) listens.
    pub http: SocketAddr,
    /// Where the Postgres wire protocol listens.
    pub pg: SocketAddr,
    /// Where Arrow Flight SQL listens.
    pub flight: SocketAddr,
    /// The speed layer.
    pub speed: Arc<Speed>,
    /// The interface tasks; each ends at shutdown.
    pub tasks: Vec<JoinHandle<Result<()>>>,
}

/// What to serve beside the query API.
#[derive(Default)]
pub struct Options {
    /// Routes merged into the HTTP router; when given, they provide `/metrics` and `/healthz`
    /// (`fjord demo` serves HTTP ingest and the query API on one port).
    pub extra_routes: Option<axum::Router>,
}

async fn bind(addr: SocketAddr, key: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Serve(format!("cannot listen on {addr} ({key}): {e}")))
}

/// Starts everything; returns once every interface listens.
pub async fn start(
    cfg: &Config,
    credentials: Credentials,
    registry: &Metrics,
    options: Options,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Server> {
    let speed = Speed::new();
    let stop = Arc::new(AtomicBool::new(false));
    let lake = fjord_lake::Lake::new(&cfg.lake_url(), &cfg.lake.storage_options)?;
    let views = fjord_lake::tables::views_tables(cfg);
    // a slow or unreachable object store must not hold up the start: then read every window
    let batch_hwm = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        crate::speed::trim::batch_hwm(&lake, &views),
    )
    .await
    .unwrap_or(None);
    let feed_thread = feed::spawn(cfg, speed.clone(), stop.clone(), batch_hwm)?;
    {
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _ = shutdown.wait_for(|s| *s).await;
            stop.store(true, Ordering::Relaxed);
            let _ = tokio::task::spawn_blocking(move || feed_thread.join()).await;
        });
    }
    let catalog = Catalog::open(cfg, speed.clone())?;
    tokio::spawn(crate::speed::trim::follow_hwm(
        lake,
        views,
        speed.clone(),
        shutdown.clone(),
    ));
    let metrics = QueryMetrics::new(registry)?;
    registry.register(catalog.runtime().running())?;
    let api = Api {
        catalog: catalog.clone(),
        speed: speed.clone(),
        credentials: credentials.clone(),
        registry: registry.clone(),
        metrics: metrics.clone(),
    };
    let router = match options.extra_routes {
        Some(extra) => crate::http::api_routes(api).merge(extra),
        None => crate::http::router(api),
    };
    let http_listener = bind(cfg.serve.http_listen, "serve.http_listen").await?;
    let pg_listener = bind(cfg.serve.pg_listen, "serve.pg_listen").await?;
    let flight_listener = bind(cfg.serve.flight_listen, "serve.flight_listen").await?;
    let http = http_listener
        .local_addr()
        .map_err(|e| Error::Serve(e.to_string()))?;
    let pg = pg_listener
        .local_addr()
        .map_err(|e| Error::Serve(e.to_string()))?;
    let flight = flight_listener
        .local_addr()
        .map_err(|e| Error::Serve(e.to_string()))?;
    let flight_service = FlightSql::new(catalog.clone(), credentials.clone(), metrics.clone());
    let http_tls = fjord_core::tls::server_config(&cfg.tls, fjord_core::tls::ALPN_HTTP)?;
    let pg_tls = fjord_core::tls::server_config(&cfg.tls, &[])?;
    let tasks = vec![
        tokio::spawn(crate::http::serve(
            http_listener,
            router,
            http_tls,
            shutdown.clone(),
        )),
        tokio::spawn(crate::pg::serve(
            pg_listener,
            catalog,
            credentials,
            metrics,
            pg_tls,
            shutdown.clone(),
        )),
        tokio::spawn(crate::flight::serve(
            flight_listener,
            flight_service,
            fjord_core::tls::server_config(&cfg.tls, fjord_core::tls::ALPN_GRPC)?,
            shutdown,
        )),
    ];
    tracing::info!(%http, %pg, %flight, "query server listening");
    Ok(Server {
        http,
        pg,
        flight,
        speed,
        tasks,
    })
}
