//! The bridge's MQTT connection: a small MQTT 3.1.1/5 subscriber of fjord's own.
//!
//! Why not rumqttc here (the simulator and the tests use it): with manual acknowledgements rumqttc
//! writes one PUBACK per turn of its event loop while it reads up to ten PUBLISHes per turn, so
//! under load the acknowledgements fall behind; mosquitto 2.0.11 does not hold back live messages at
//! the client's receive-maximum, so unacknowledged messages pile up to the 65,535 packet ids MQTT
//! has (measured: more than half of 100,000 PUBACKs could not even be queued). This client reads
//! and writes on separate tasks: the writer sends every PUBACK that is ready in one write, and keeps
//! the connection alive with PINGREQs even while the reader is held back by Kafka.
//!
//! With `mqtts://` the connection is TLS (rustls), trusting `mqtt.ca_file` or the system's roots
//! and checking the certificate against the URL's host name.
//!
//! A connection is used once: when it breaks, the bridge opens a new one (the session persists at
//! the broker, which redelivers what was not acknowledged). Acknowledgements queued for a broken
//! connection die with it, so one can never acknowledge a message of a later connection.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fjord_core::config::{BridgeConfig, MqttConfig, MqttProtocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::wire::{self, Connect, kind};

/// The MQTT maximum packet size, so that an oversized payload arrives (and is dead-lettered)
/// instead of breaking the connection in a redelivery loop.
const MAX_PACKET: usize = 268_435_455;

/// A message received from the broker.
#[derive(Debug)]
pub struct Received {
    /// Topic it was published on.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// MQTT 5 content type, if the publisher set one.
    pub content_type: Option<String>,
    /// The broker marked it as a redelivery.
    pub dup: bool,
    /// Packet id to acknowledge (`None` for QoS 0).
    pub pkid: Option<u16>,
}

/// The reading half of a connection, plain or TLS.
type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a connection, plain or TLS.
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A TCP connection to `host:port`, with TLS when `mqtt.url` is `mqtts://`.
async fn connect(mqtt: &MqttConfig, host: &str, port: u16) -> Result<(Reader, Writer), String> {
    let timeout = Duration::from_secs(10);
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| format!("no TCP connection to {host}:{port} within 10 s"))?
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    if !mqtt.url.starts_with("mqtts://") {
        let (rx, tx) = stream.into_split();
        return Ok((Box::new(rx), Box::new(tx)));
    }
    let config = fjord_core::tls::client_config(mqtt.ca_file.as_deref(), "mqtt.ca_file")
        .map_err(|e| e.to_string())?;
    let name = fjord_core::tls::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("mqtt.url: {host:?} is not a host name for TLS: {e}"))?;
    let tls = tokio::time::timeout(
        timeout,
        fjord_core::tls::TlsConnector::from(config).connect(name, stream),
    )
    .await
    .map_err(|_| format!("no TLS handshake with {host}:{port} within 10 s"))?
    .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
    let (rx, tx) = tokio::io::split(tls);
    Ok((Box::new(rx), Box::new(tx)))
}

enum Out {
    Ack(u16),
    Disconnect,
}

/// One MQTT connection with its subscriptions in place.
pub struct Connection {
    /// The broker still had the bridge's session.
    pub session_present: bool,
    incoming: mpsc::Receiver<Received>,
    out: mpsc::UnboundedSender<Out>,
    closed: watch::Sender<bool>,
    reason: Arc<Mutex<Option<String>>>,
    writer: Option<tokio::task::JoinHandle<()>>,
}

impl Connection {
    /// Connects (persistent session) and subscribes to `filters` with QoS `bridge.qos`. A refused
    /// subscription ends the connection with the reason (the SUBACK can come after messages the
    /// broker had queued, so it is not awaited here).
    pub async fn open(
        mqtt: &MqttConfig,
        bridge: &BridgeConfig,
        filters: &[String],
    ) -> Result<Connection, String> {
        let (host, port) = mqtt
            .host_port()
            .ok_or_else(|| format!("mqtt.url {:?} is not mqtt://host:port", mqtt.url))?;
        let v5 = bridge.protocol == MqttProtocol::V5;
        let timeout = Duration::from_secs(10);
        let (mut rx, mut tx) = connect(mqtt, &host, port).await?;
        let keep_alive = u16::try_from(bridge.keep_alive.std().as_secs()).unwrap_or(u16::MAX);
        let connect = Connect {
            protocol_name: "MQTT".into(),
            level: if v5 { 5 } else { 4 },
            clean: false,
            will_bits: 0,
            keep_alive,
            properties: if v5 {
                wire::connect_properties(
                    u32::try_from(bridge.session_expiry.std().as_secs()).unwrap_or(u32::MAX),
                    u16::try_from(bridge.max_in_flight)
                        .unwrap_or(u16::MAX)
                        .max(1),
                    MAX_PACKET as u32,
                )
            } else {
                Bytes::new()
            },
            client_id: mqtt.client_id.clone(),
            will: None,
            username: mqtt.username.clone(),
            password: mqtt.password.clone().map(Bytes::from),
        };
        tx.write_all(&wire::encode_connect(&connect))
            .await
            .map_err(|e| format!("cannot send CONNECT: {e}"))?;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let connack = tokio::time::timeout(timeout, read_frame(&mut rx, &mut buf))
            .await
            .map_err(|_| "no CONNACK within 10 s".to_owned())?
            .map_err(|e| format!("connection closed before CONNACK: {e}"))?;
        if connack.kind() != kind::CONNACK {
            return Err(format!(
                "expected CONNACK, got packet type {}",
                connack.kind()
            ));
        }
        let (session_present, code) =
            wire::parse_connack(&connack.body).map_err(|e| e.to_string())?;
        if code != 0 {
            return Err(format!(
                "the broker refused the connection: {}",
                connack_reason(code, v5)
            ));
        }

        let (closed, closed_rx) = watch::channel(false);
        let reason = Arc::new(Mutex::new(None));
        let (incoming_tx, incoming) = mpsc::channel(1024);
        let (out, out_rx) = mpsc::unbounded_channel();
        let last_pong = Arc::new(Mutex::new(Instant::now()));
        tokio::spawn(read_loop(
            rx,
            buf,
            v5,
            incoming_tx,
            filters.to_vec(),
            closed_rx.clone(),
            closed.clone(),
            reason.clone(),
            last_pong.clone(),
        ));
        tx.write_all(&wire::encode_subscribe(1, filters, bridge.qos, v5))
            .await
            .map_err(|e| format!("cannot send SUBSCRIBE: {e}"))?;
        let writer = tokio::spawn(write_loop(
            tx,
            out_rx,
            bridge.keep_alive.std(),
            closed_rx,
            closed.clone(),
            reason.clone(),
            last_pong,
        ));
        Ok(Connection {
            session_present,
            incoming,
            out,
            closed,
            reason,
            writer: Some(writer),
        })
    }

    /// The next message; `None` once the connection is lost (see [`Connection::lost_reason`]).
    pub async fn recv(&mut self) -> Option<Received> {
        self.incoming.recv().await
    }

    /// Queues the PUBACK of `pkid`. Acknowledgements are written in the order they are queued.
    pub fn ack(&self, pkid: u16) {
        let _ = self.out.send(Out::Ack(pkid));
    }

    /// Why the connection ended.
    pub fn lost_reason(&self) -> String {
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "connection closed".into())
    }

    /// Writes the queued PUBACKs and a DISCONNECT, then closes.
    pub async fn disconnect(mut self) {
        let _ = self.out.send(Out::Disconnect);
        if let Some(writer) = self.writer.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        }
        let _ = self.closed.send(true);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.closed.send(true);
    }
}

/// Resolves once the connection is marked closed.
async fn until_closed(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await;
}

fn lose(reason: &Mutex<Option<String>>, closed: &watch::Sender<bool>, why: String) {
    if let Ok(mut r) = reason.lock() {
        r.get_or_insert(why);
    }
    let _ = closed.send(true);
}

#[allow(clippy::too_many_arguments)]
async fn read_loop(
    mut rx: Reader,
    mut buf: BytesMut,
    v5: bool,
    incoming: mpsc::Sender<Received>,
    filters: Vec<String>,
    mut closed_rx: watch::Receiver<bool>,
    closed: watch::Sender<bool>,
    reason: Arc<Mutex<Option<String>>>,
    last_pong: Arc<Mutex<Instant>>,
) {
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rx, &mut buf) => f,
            _ = until_closed(&mut closed_rx) => return,
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return lose(&reason, &closed, e),
        };
        match frame.kind() {
            kind::PUBLISH => {
                let p = match wire::parse_publish(frame.first, &frame.body, v5) {
                    Ok(p) => p,
                    Err(e) => {
                        return lose(
                            &reason,
                            &closed,
                            format!("bad PUBLISH from the broker: {e}"),
                        );
                    }
                };
                let msg = Received {
                    topic: p.topic,
                    payload: p.payload,
                    content_type: p.content_type,
                    dup: p.dup,
                    pkid: (p.qos > 0).then_some(p.pkid),
                };
                tokio::select! {
                    r = incoming.send(msg) => if r.is_err() { return },
                    _ = until_closed(&mut closed_rx) => return,
                }
            }
            kind::SUBACK => {
                let codes = wire::parse_suback(&frame.body, v5)
                    .map(|(_, c)| c)
                    .unwrap_or_default();
                if let Some((filter, code)) = filters.iter().zip(&codes).find(|(_, c)| **c >= 0x80)
                {
                    return lose(
                        &reason,
                        &closed,
                        format!(
                            "the broker refused the subscription to {filter} (code 0x{code:02x})"
                        ),
                    );
                }
            }
            kind::PINGRESP => {
                if let Ok(mut t) = last_pong.lock() {
                    *t = Instant::now();
                }
            }
            14 => {
                let code = frame.body.first().copied().unwrap_or(0);
                return lose(
                    &reason,
                    &closed,
                    format!("the broker disconnected the bridge (reason 0x{code:02x})"),
                );
            }
            _ => {}
        }
    }
}

async fn write_loop(
    mut tx: Writer,
    mut out: mpsc::UnboundedReceiver<Out>,
    keep_alive: Duration,
    mut closed_rx: watch::Receiver<bool>,
    closed: watch::Sender<bool>,
    reason: Arc<Mutex<Option<String>>>,
    last_pong: Arc<Mutex<Instant>>,
) {
    let ping_every = (keep_alive / 2).max(Duration::from_secs(1));
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    let mut ping_sent: Option<Instant> = None;
    let mut batch = BytesMut::with_capacity(16 * 1024);
    loop {
        tokio::select! {
            item = out.recv() => {
                let mut disconnect = false;
                let mut next = item;
                while let Some(o) = next {
                    match o {
                        Out::Ack(pkid) => wire::put_puback(&mut batch, pkid),
                        Out::Disconnect => {
                            disconnect = true;
                            break;
                        }
                    }
                    next = out.try_recv().ok();
                }
                if disconnect {
                    batch.extend_from_slice(&wire::DISCONNECT);
                }
                let written = if batch.is_empty() { Ok(()) } else { tx.write_all(&batch).await };
                if let Err(e) = written {
                    return lose(&reason, &closed, format!("cannot write to the broker: {e}"));
                }
                batch.clear();
                if disconnect {
                    let _ = tx.shutdown().await;
                    return;
                }
            }
            _ = ping.tick() => {
                let pong = last_pong.lock().map(|t| *t).unwrap_or_else(|_| Instant::now());
                if let Some(sent) = ping_sent && pong < sent && sent.elapsed() > keep_alive {
                    return lose(&reason, &closed, format!("no PINGRESP within {keep_alive:?}"));
                }
                if let Err(e) = tx.write_all(&wire::PINGREQ).await {
                    return lose(&reason, &closed, format!("cannot write to the broker: {e}"));
                }
                if ping_sent.is_none_or(|s| pong >= s) {
                    ping_sent = Some(Instant::now());
                }
            }
            _ = until_closed(&mut closed_rx) => return,
        }
    }
}

async fn read_frame(rx: &mut Reader, buf: &mut BytesMut) -> Result<wire::Frame, String> {
    loop {
        match wire::split_frame(buf, MAX_PACKET) {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        match rx.read_buf(buf).await {
            Ok(0) => return Err("the broker closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read error: {e}")),
        }
    }
}

fn connack_reason(code: u8, v5: bool) -> String {
    let text = match (v5, code) {
        (false, 1) | (true, 0x84) => "unsupported protocol version",
        (false, 2) | (true, 0x85) => "client id rejected",
        (false, 3) | (true, 0x88) => "server unavailable",
        (false, 4) | (true, 0x86) => "bad user name or password",
        (false, 5) | (true, 0x87) => "not authorized",
        _ => "refused",
    };
    format!("{text} (code 0x{code:02x})")
}

/// How long to wait before reconnecting after the `attempt`-th failure in a row (1 s doubling up
/// to 10 s).
pub fn reconnect_delay(attempt: u32) -> Duration {
    Duration::from_millis((1000u64 << attempt.min(4)).min(10_000))
}
