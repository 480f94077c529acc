//! The embedded MQTT broker of `fjord demo`: rumqttd behind an authenticating, ACL-enforcing front.
//!
//! rumqttd serves MQTT 3.1.1 and 5 on two loopback listeners that accept only an internal
//! credential; the front ([`proxy`]) listens on the public address, authenticates clients against
//! `[[credentials]]`, enforces their publish/subscribe rights, and relays each connection to the
//! listener of its protocol version, so both versions share one port.
//!
//! Queues: rumqttd keeps each subscription filter's messages in memory, `broker.queue_max_bytes` per
//! filter. A session that falls further behind (a bridge that is down too long) loses the oldest
//! messages; rumqttd logs each such jump and [`DropCounter`] counts it in
//! `fjord_mqtt_broker_dropped_total`. rumqttd sends at most 100 unacknowledged QoS 1 messages to
//! one connection at a time (a constant of rumqttd 0.20), which bounds one bridge's throughput from
//! the embedded broker. `fjord demo` therefore does not run a bridge against it: the front itself
//! hands the mapping rules' topics to Kafka ([`intake`]).

pub mod client_ids;
pub mod intake;
pub mod proxy;

use crate::wire as packet;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fjord_core::config::BrokerConfig;
use fjord_core::telemetry::Metrics;
use prometheus::{IntCounter, IntCounterVec, Opts};
use rand::Rng;
use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};
use tracing::{info, warn};

use crate::acl::Acl;
use crate::{Error, Result};

/// A running embedded broker. rumqttd has no shutdown call: it lives until the process exits; the
/// front stops accepting when this value is dropped.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
    /// With TLS: the plain loopback listener for fjord's own clients, and its accept task.
    internal: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.accept.abort();
        if let Some((_, task)) = &self.internal {
            task.abort();
        }
    }
}

/// Accepts clients on `listener` (after a TLS handshake when `tls` is given) and relays each.
fn accept_loop(
    listener: tokio::net::TcpListener,
    front: Arc<proxy::Front>,
    tls: Option<Arc<fjord_core::tls::ServerConfig>>,
) -> Result<tokio::task::JoinHandle<()>> {
    let Some(config) = tls else {
        return Ok(tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(proxy::serve_client(front.clone(), stream, peer));
                    }
                    Err(e) => {
                        warn!(error = %e, "embedded MQTT broker: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    };
    // handshakes run apart from accepting, each bounded in time
    let mut tls = fjord_core::tls::TlsListener::new(listener, config)?;
    Ok(tokio::spawn(async move {
        while let Some((stream, peer)) = tls.next().await {
            tokio::spawn(proxy::serve_client(front.clone(), stream, peer));
        }
    }))
}

impl EmbeddedBroker {
    /// Starts rumqttd and the front on `listen`; returns once clients can connect. With `tls`, the
    /// front speaks MQTT over TLS on `listen` and plain MQTT on a loopback port for fjord's own
    /// clients ([`Self::internal_addr`]), with the same authentication and rights.
    pub async fn start(
        listen: SocketAddr,
        config: &BrokerConfig,
        acl: Acl,
        metrics: &Metrics,
        tls: Option<Arc<fjord_core::tls::ServerConfig>>,
    ) -> Result<Self> {
        Self::start_with_intake(listen, config, acl, metrics, tls, None).await
    }

    /// [`Self::start`], with the front handing the topics `intake` takes to Kafka itself.
    pub async fn start_with_intake(
        listen: SocketAddr,
        config: &BrokerConfig,
        acl: Acl,
        metrics: &Metrics,
        tls: Option<Arc<fjord_core::tls::ServerConfig>>,
        intake: Option<Arc<intake::Intake>>,
    ) -> Result<Self> {
        if acl.is_empty() {
            return Err(Error::Config(
                "the embedded MQTT broker needs at least one credential".into(),
            ));
        }
        let listener =
            tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| Error::BrokerListen {
                    addr: listen,
                    reason: e.to_string(),
                })?;
        let addr = listener.local_addr().map_err(|e| Error::BrokerListen {
            addr: listen,
            reason: e.to_string(),
        })?;
        let internal_user = format!("fjord-front-{:08x}", rand::rng().random::<u32>());
        let internal_password: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        let (v4_backend, v5_backend) = (loopback_port()?, loopback_port()?);
        let rumqttd = rumqttd_config(
            config,
            v4_backend,
            v5_backend,
            &internal_user,
            &internal_password,
        );
        let thread = std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(rumqttd);
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(|e| Error::BrokerListen {
                addr,
                reason: format!("cannot start its thread: {e}"),
            })?;
        for (backend, level) in [(v4_backend, 4), (v5_backend, 5)] {
            let (user, password) = (internal_user.clone(), internal_password.clone());
            let ready = tokio::task::spawn_blocking(move || {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while std::time::Instant::now() < deadline {
                    if mqtt_connect_probe(backend, level, &user, &password) {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                false
            })
            .await
            .unwrap_or(false);
            if !ready || thread.is_finished() {
                return Err(Error::BrokerListen {
                    addr,
                    reason: format!("rumqttd did not start on {backend} (see its log lines above)"),
                });
            }
        }
        let refused = IntCounterVec::new(
            Opts::new(
                "mqtt_broker_refused_total",
                "Connections, publishes, subscriptions and wills the embedded broker refused, by what",
            ),
            &["what"],
        )
        .map_err(|e| Error::Core(fjord_core::Error::Telemetry(e.to_string())))?;
        metrics.register(&refused)?;
        let front = Arc::new(proxy::Front {
            acl,
            v4_backend,
            v5_backend,
            internal_user,
            internal_password,
            max_packet_bytes: config.max_payload_bytes + 64 * 1024,
            connect_timeout: config.connect_timeout.std(),
            refused,
            client_ids: std::sync::Mutex::default(),
            pending: Arc::new(tokio::sync::Semaphore::new(proxy::MAX_PENDING_CONNECTS)),
            intake,
        });
        let internal = match &tls {
            None => None,
            Some(_) => {
                let plain = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .map_err(|e| Error::BrokerListen {
                        addr,
                        reason: format!("cannot open its loopback listener: {e}"),
                    })?;
                let at = plain.local_addr().map_err(|e| Error::BrokerListen {
                    addr,
                    reason: e.to_string(),
                })?;
                Some((at, accept_loop(plain, front.clone(), None)?))
            }
        };
        let over_tls = tls.is_some();
        let accept = accept_loop(listener, front, tls)?;
        info!(%addr, tls = over_tls, "embedded MQTT broker listening (MQTT 3.1.1 and 5)");
        Ok(Self {
            addr,
            accept,
            internal,
        })
    }

    /// The public address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where fjord's own clients (bridge, simulator) connect: the public address, or with TLS the
    /// plain loopback listener.
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal.as_ref().map_or(self.addr, |(a, _)| *a)
    }
}

/// A loopback address with a port that was free a moment ago (for rumqttd's internal listeners).
fn loopback_port() -> Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|source| Error::Io {
            context: "finding a free loopback port for the embedded broker".into(),
            source,
        })
}

/// Counts the messages rumqttd drops for sessions that fell too far behind: rumqttd logs each drop
/// (`given index … less than head, jumping to head`) and this `tracing` layer counts those events
/// into `fjord_mqtt_broker_dropped_total`. Install it with
/// [`fjord_core::telemetry::init_tracing_with`].
pub struct DropCounter {
    dropped: IntCounter,
}

impl DropCounter {
    /// Creates the counter, registered in `metrics`.
    pub fn new(metrics: &Metrics) -> Result<Self> {
        let dropped = IntCounter::new(
            "mqtt_broker_dropped_total",
            "Times the embedded broker dropped queued messages of a session that fell too far behind",
        )
        .map_err(|e| Error::Core(fjord_core::Error::Telemetry(e.to_string())))?;
        metrics.register(&dropped)?;
        Ok(Self { dropped })
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for DropCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() == tracing::Level::WARN && meta.target().starts_with("rumqttd::segments") {
            self.dropped.inc();
        }
    }
}

/// Connects with a real MQTT CONNECT (level 4 or 5), checks the CONNACK and disconnects cleanly.
fn mqtt_connect_probe(addr: SocketAddr, level: u8, user: &str, password: &str) -> bool {
    use std::io::{Read, Write};
    let c = packet::Connect {
        protocol_name: "MQTT".into(),
        level,
        clean: true,
        will_bits: 0,
        keep_alive: 10,
        properties: bytes::Bytes::new(),
        client_id: format!("fjord-ready-probe-{level}"),
        will: None,
        username: Some(user.into()),
        password: Some(bytes::Bytes::copy_from_slice(password.as_bytes())),
    };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut connack = [0u8; 4];
    let ok = stream.write_all(&packet::encode_connect(&c)).is_ok()
        && stream.read_exact(&mut connack).is_ok()
        && connack[0] == 0x20
        && connack[3] == 0x00;
    let disconnect: &[u8] = if level == 5 {
        &[0xE0, 0x01, 0x00]
    } else {
        &[0xE0, 0x00]
    };
    let _ = stream.write_all(disconnect);
    // wait for the broker to close, so that neither side sees a reset
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.read(&mut [0u8; 16]);
    ok
}

fn rumqttd_config(
    s: &BrokerConfig,
    v4: SocketAddr,
    v5: SocketAddr,
    user: &str,
    password: &str,
) -> Config {
    let server = |name: &str, listen: SocketAddr| ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: u16::try_from(s.connect_timeout.std().as_millis())
                .unwrap_or(u16::MAX),
            max_payload_size: s.max_payload_bytes,
            max_inflight_count: 100,
            auth: Some(HashMap::from([(user.to_owned(), password.to_owned())])),
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let segments = 10;
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: (s.queue_max_bytes / segments).max(s.max_payload_bytes * 2),
            max_segment_count: segments,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("v4".to_owned(), server("mqtt-v4", v4))])),
        v5: Some(HashMap::from([("v5".to_owned(), server("mqtt-v5", v5))])),
        ..Config::default()
    }
}
