//! The embedded MQTT broker of `fjord demo`: `rumqttd` on one listener, with username/password
//! authentication.
//!
//! rumqttd runs its router and servers on threads of its own and has no shutdown call, so the broker
//! lives until the process exits. [`EmbeddedBroker::start`] checks that the address is free first
//! (rumqttd only logs a bind failure) and returns once the listener accepts connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::{Error, Result};

/// Settings of the embedded broker.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Address of the MQTT 3.1.1 listener.
    pub listen: SocketAddr,
    /// user → password; empty means anonymous access.
    pub users: HashMap<String, String>,
    /// Largest accepted payload, bytes.
    pub max_payload_bytes: usize,
    /// Unacknowledged QoS 1/2 messages in flight per connection.
    pub max_inflight: usize,
}

impl BrokerSettings {
    /// Defaults for `listen` with one user.
    pub fn new(listen: SocketAddr, user: &str, password: &str) -> Self {
        Self {
            listen,
            users: HashMap::from([(user.to_owned(), password.to_owned())]),
            max_payload_bytes: 256 * 1024,
            max_inflight: 1000,
        }
    }
}

/// A running embedded broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    thread: std::thread::JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Starts the broker and waits until it accepts connections.
    pub fn start(settings: &BrokerSettings) -> Result<Self> {
        let addr = settings.listen;
        // rumqttd only logs a failed bind; find out first, with the OS's reason.
        std::net::TcpListener::bind(addr).map_err(|e| Error::BrokerListen {
            addr,
            reason: e.to_string(),
        })?;
        let config = rumqttd_config(settings);
        let thread = std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(config);
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(|e| Error::BrokerListen {
                addr,
                reason: format!("cannot start its thread: {e}"),
            })?;
        let probe_user = settings.users.iter().next();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if mqtt_connect_probe(addr, probe_user) {
                return Ok(Self { addr, thread });
            }
            if thread.is_finished() || Instant::now() > deadline {
                return Err(Error::BrokerListen {
                    addr,
                    reason: "the broker did not start listening (see its log lines above)".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// True while the broker's threads run.
    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }
}

/// Connects with a real MQTT 3.1.1 CONNECT (with the credentials, if any), checks the CONNACK and
/// disconnects cleanly: the broker is ready and accepts its users.
fn mqtt_connect_probe(addr: SocketAddr, user: Option<(&String, &String)>) -> bool {
    use std::io::{Read, Write};
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut body = Vec::new();
    field(&mut body, b"MQTT");
    body.push(4); // protocol level 3.1.1
    body.push(if user.is_some() { 0xC2 } else { 0x02 }); // user+password, clean session
    body.extend_from_slice(&10u16.to_be_bytes()); // keep-alive seconds
    field(&mut body, b"fjord-ready-probe");
    if let Some((u, p)) = user {
        field(&mut body, u.as_bytes());
        field(&mut body, p.as_bytes());
    }
    let mut packet = vec![0x10];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend(body);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut connack = [0u8; 4];
    let ok = stream.write_all(&packet).is_ok()
        && stream.read_exact(&mut connack).is_ok()
        && connack == [0x20, 0x02, 0x00, 0x00];
    let _ = stream.write_all(&[0xE0, 0x00]); // DISCONNECT
    ok
}

fn rumqttd_config(s: &BrokerSettings) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: s.max_payload_bytes,
        max_inflight_count: s.max_inflight,
        auth: (!s.users.is_empty()).then(|| s.users.clone()),
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "mqtt-v4".into(),
        listen: s.listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Config::default()
    }
}
