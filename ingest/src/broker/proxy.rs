//! The embedded broker's front: every client connection passes through here on its way to rumqttd.
//!
//! rumqttd authenticates but has no access control, and serves MQTT 3.1.1 and 5 on separate
//! listeners. The front reads each client's CONNECT, authenticates it against `[[credentials]]`,
//! checks its will topic, and connects it to the matching rumqttd listener with an internal
//! credential nobody else knows. From then on it relays packets both ways and checks every PUBLISH
//! and SUBSCRIBE of the client against its rights: a refused PUBLISH is answered by the front
//! (MQTT 5: reason "not authorized"; 3.1.1: acknowledged and dropped, as mosquitto does), a refused
//! SUBSCRIBE gets a failure SUBACK. Every refusal is logged (a topic shortened to
//! [`LOGGED_TOPIC_BYTES`]) and counted.
//!
//! On the topics of the mapping rules the front is also the bridge ([`crate::broker::intake`]): it
//! hands each allowed PUBLISH to Kafka, acknowledges it once Kafka has it, and passes a copy at
//! QoS 0 to rumqttd for subscribers. Packets towards the client are relayed whole, so that the
//! front's own answers never land inside one of the broker's packets.
//!
//! Client ids are bound to users ([`crate::broker::client_ids`]): nobody takes over another
//! user's session, and fjord's own ids (`fjord-…`) are reserved for administrators. What one
//! connection can make the front hold is bounded: its topic aliases take at most
//! [`MAX_ALIAS_BYTES`], and a device's (non-administrator's) PUBLISH is passed on without its
//! RETAIN flag, so devices cannot fill the broker's retained store; the message itself is
//! delivered.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prometheus::IntCounterVec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::acl::Acl;
use crate::broker::intake::{Intake, Stored};
use crate::wire::{self as packet, Frame, kind};

/// What the front needs for every connection.
pub struct Front {
    /// Credentials and rights.
    pub acl: Acl,
    /// rumqttd's MQTT 3.1.1 listener.
    pub v4_backend: SocketAddr,
    /// rumqttd's MQTT 5 listener.
    pub v5_backend: SocketAddr,
    /// The credential the front uses towards rumqttd.
    pub internal_user: String,
    /// Its password.
    pub internal_password: String,
    /// Largest packet body accepted from a client.
    pub max_packet_bytes: usize,
    /// Time allowed for the CONNECT.
    pub connect_timeout: Duration,
    /// Refusals, by `what` (auth, publish, subscribe, will, client_id, alias, pending).
    pub refused: IntCounterVec,
    /// Which user owns which client id.
    pub client_ids: std::sync::Mutex<crate::broker::client_ids::ClientIds>,
    /// Connections waiting for their CONNECT to arrive and be checked, at most
    /// [`MAX_PENDING_CONNECTS`].
    pub pending: Arc<tokio::sync::Semaphore>,
    /// Hands the mapping rules' topics to Kafka, when the front is also the bridge.
    pub intake: Option<Arc<Intake>>,
}

/// Most QoS 1 and 2 messages of one connection waiting for Kafka before the front stops reading
/// from it (the intake's `bridge.max_in_flight` bounds all connections together).
pub const MAX_CONNECTION_IN_FLIGHT: usize = 4096;

/// Most connections that may wait for their CONNECT at once (each for at most
/// `broker.connect_timeout`); a connection beyond them is closed at once, so clients that connect
/// and say nothing cannot hold unbounded memory and file descriptors.
pub const MAX_PENDING_CONNECTS: usize = 1024;

/// Most bytes of topic names one connection's topic aliases may hold; a client past it is
/// disconnected.
pub const MAX_ALIAS_BYTES: usize = 1024 * 1024;

/// Longest part of a topic written to the log.
pub const LOGGED_TOPIC_BYTES: usize = 200;

/// `topic` for the log: at most [`LOGGED_TOPIC_BYTES`] (cut at a character boundary, with `…`).
fn logged(topic: &str) -> std::borrow::Cow<'_, str> {
    if topic.len() <= LOGGED_TOPIC_BYTES {
        return topic.into();
    }
    let mut end = LOGGED_TOPIC_BYTES;
    while !topic.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &topic[..end], topic.len()).into()
}

async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> std::io::Result<Option<Frame>> {
    loop {
        match packet::split_frame(buf, max) {
            Ok(Some(f)) => return Ok(Some(f)),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
        if r.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Serves one client connection until either side closes.
pub async fn serve_client<S>(front: Arc<Front>, client: S, peer: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    if let Err(e) = relay(&front, client, peer).await {
        debug!(%peer, error = %e, "MQTT client connection ended");
    }
}

async fn relay<S>(front: &Front, client: S, peer: SocketAddr) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let Ok(waiting) = front.pending.clone().try_acquire_owned() else {
        front.refused.with_label_values(&["pending"]).inc();
        debug!(%peer, limit = MAX_PENDING_CONNECTS, "MQTT connection closed: too many connections waiting for their CONNECT");
        return Ok(());
    };
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let mut cbuf = BytesMut::with_capacity(8 * 1024);
    let first = tokio::time::timeout(
        front.connect_timeout,
        read_frame(&mut client_rx, &mut cbuf, front.max_packet_bytes),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no CONNECT in time"))??;
    let Some(first) = first.filter(|f| f.kind() == kind::CONNECT) else {
        return Ok(());
    };
    let mut connect = packet::parse_connect(&first.body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    if !matches!(connect.level, 3..=5) {
        client_tx.write_all(&packet::connack_bad_protocol()).await?;
        return Ok(());
    }
    let v5 = connect.is_v5();
    let user_name = connect.username.clone().unwrap_or_default();
    let password = connect.password.clone().unwrap_or_default();
    let Some(user) = front.acl.authenticate(&user_name, &password) else {
        front.refused.with_label_values(&["auth"]).inc();
        info!(%peer, user = %user_name, client_id = %connect.client_id, "MQTT connection refused: wrong user name or password");
        client_tx
            .write_all(&packet::connack_refused(v5, true))
            .await?;
        return Ok(());
    };
    if let Some(will) = &connect.will
        && !user.may_publish(&will.topic)
    {
        front.refused.with_label_values(&["will"]).inc();
        warn!(%peer, user = %user_name, topic = %logged(&will.topic), "MQTT connection refused: the will topic is not allowed");
        client_tx
            .write_all(&packet::connack_refused(v5, false))
            .await?;
        return Ok(());
    }
    let admin = user.may_subscribe("#");
    let claimed = front
        .client_ids
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .claim(&connect.client_id, &user_name, admin);
    if let Err(why) = claimed {
        front.refused.with_label_values(&["client_id"]).inc();
        warn!(%peer, user = %user_name, client_id = %logged(&connect.client_id), reason = %why, "MQTT connection refused: client id not allowed");
        client_tx
            .write_all(&packet::connack_id_rejected(v5))
            .await?;
        return Ok(());
    }
    if !admin {
        // nor do their wills (bit 5 of the CONNECT flags: will retain)
        connect.will_bits &= !0x20;
    }
    connect.username = Some(front.internal_user.clone());
    connect.password = Some(Bytes::from(front.internal_password.clone()));
    let backend_addr = if v5 {
        front.v5_backend
    } else {
        front.v4_backend
    };
    // the CONNECT is in and checked: this connection no longer counts as waiting
    drop(waiting);
    let backend = TcpStream::connect(backend_addr).await?;
    let _ = backend.set_nodelay(true);
    let (mut broker_rx, mut broker_tx) = backend.into_split();
    broker_tx
        .write_all(&packet::encode_connect(&connect))
        .await?;

    // One writer towards the client, fed by the broker side and by the front's own answers; what
    // is queued goes out in one write.
    let (to_client, mut client_queue) = mpsc::channel::<Bytes>(1024);
    let writer = tokio::spawn(async move {
        let mut out = BytesMut::new();
        while let Some(bytes) = client_queue.recv().await {
            out.extend_from_slice(&bytes);
            while out.len() < 64 * 1024
                && let Ok(more) = client_queue.try_recv()
            {
                out.extend_from_slice(&more);
            }
            if client_tx.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        let _ = client_tx.shutdown().await;
    });
    let mut from_broker = {
        let to_client = to_client.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                match broker_rx.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        // relay whole packets as they are: the broker's packets need no checks
                        let Ok(whole) = packet::whole_packets_len(&buf) else {
                            break;
                        };
                        if whole > 0 && to_client.send(buf.split_to(whole).freeze()).await.is_err()
                        {
                            break;
                        }
                    }
                }
            }
        })
    };
    // PUBACKs (PUBRECs) of the messages the intake handed to Kafka, in the order of the PUBLISHes,
    // each once Kafka has stored its message.
    let (to_acker, mut acks) = mpsc::channel::<(u16, u8, Stored)>(MAX_CONNECTION_IN_FLIGHT);
    let acker = {
        let (to_client, intake) = (to_client.clone(), front.intake.clone());
        tokio::spawn(async move {
            while let Some((pkid, qos, stored)) = acks.recv().await {
                stored.await;
                let ack = if qos == 1 {
                    packet::puback(pkid)
                } else {
                    packet::pubrec(pkid)
                };
                if to_client.send(ack).await.is_err() {
                    break;
                }
                if let Some(i) = &intake {
                    i.acked();
                }
            }
        })
    };

    let user_rights = user;
    let mut aliases: HashMap<u16, String> = HashMap::new();
    let mut alias_bytes = 0usize;
    let mut refused_qos2: HashSet<u16> = HashSet::new();
    // QoS 2 exchanges the intake holds (PUBLISH taken, PUBREL not yet seen)
    let mut taken_qos2: HashSet<u16> = HashSet::new();
    let client_side = async {
        let r = async {
        while let Some(frame) = read_frame(&mut client_rx, &mut cbuf, front.max_packet_bytes).await? {
            match frame.kind() {
                kind::PUBLISH => {
                    let info = packet::parse_publish(frame.first, &frame.body, v5)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                    let topic = match (info.topic.is_empty(), info.alias) {
                        (false, Some(a)) => {
                            alias_bytes += info.topic.len();
                            if let Some(old) = aliases.insert(a, info.topic.clone()) {
                                alias_bytes -= old.len();
                            }
                            if alias_bytes > MAX_ALIAS_BYTES {
                                front.refused.with_label_values(&["alias"]).inc();
                                warn!(%peer, user = %user_rights.name(), "MQTT client disconnected: its topic aliases hold more than {MAX_ALIAS_BYTES} bytes");
                                break;
                            }
                            info.topic.clone()
                        }
                        (true, Some(a)) => aliases.get(&a).cloned().unwrap_or_default(),
                        _ => info.topic.clone(),
                    };
                    let intake = front.intake.as_ref().filter(|i| i.takes(&topic));
                    if user_rights.may_publish(&topic) {
                        // devices do not set retained messages (bit 0 of the first byte)
                        let first = if admin { frame.first } else { frame.first & !0x01 };
                        let Some(intake) = intake else {
                            broker_tx.write_all(&packet::encode(first, &frame.body)).await?;
                            continue;
                        };
                        let copy = packet::publish_at_qos0(first, &frame.body)
                            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                        broker_tx.write_all(&copy).await?;
                        let repeat = info.qos == 2 && !taken_qos2.insert(info.pkid);
                        let stored = if repeat {
                            // the same QoS 2 message again: stored once, acknowledged again
                            Box::pin(async {}) as Stored
                        } else {
                            intake
                                .submit(topic, info.payload, info.content_type, info.dup)
                                .await
                        };
                        if info.qos == 0 {
                            tokio::spawn(stored);
                        } else if to_acker.send((info.pkid, info.qos, stored)).await.is_err() {
                            break;
                        }
                    } else {
                        front.refused.with_label_values(&["publish"]).inc();
                        warn!(%peer, user = %user_rights.name(), topic = %logged(&topic), "MQTT publish refused: not allowed for this user");
                        if info.qos > 0 {
                            if info.qos == 2 && !v5 {
                                refused_qos2.insert(info.pkid);
                            }
                            let _ = to_client.send(packet::publish_refused(info.qos, info.pkid, v5)).await;
                        }
                    }
                }
                kind::PUBREL => {
                    let pkid = packet::parse_pkid(&frame.body).unwrap_or(0);
                    if refused_qos2.remove(&pkid) || taken_qos2.remove(&pkid) {
                        let _ = to_client.send(packet::pubcomp(pkid)).await;
                    } else {
                        broker_tx.write_all(&frame.encode()).await?;
                    }
                }
                kind::SUBSCRIBE => {
                    let (pkid, filters) = packet::parse_subscribe(&frame.body, v5)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                    if filters.iter().all(|f| user_rights.may_subscribe(f)) {
                        broker_tx.write_all(&frame.encode()).await?;
                    } else {
                        front.refused.with_label_values(&["subscribe"]).inc();
                        let shown: Vec<_> = filters.iter().take(5).map(|f| logged(f)).collect();
                        warn!(%peer, user = %user_rights.name(), filters = ?shown, count = filters.len(), "MQTT subscribe refused: not allowed for this user");
                        let _ = to_client.send(packet::suback_refused(pkid, filters.len(), v5)).await;
                    }
                }
                kind::DISCONNECT => {
                    broker_tx.write_all(&frame.encode()).await?;
                    break;
                }
                _ => broker_tx.write_all(&frame.encode()).await?,
            }
        }
        Ok::<(), std::io::Error>(())
        }
        .await;
        // the client is done: close towards the broker (which publishes the will if the client
        // did not say DISCONNECT)
        let _ = broker_tx.shutdown().await;
        r
    };
    let result = tokio::select! {
        r = client_side => {
            // let the broker's last packets through
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut from_broker).await;
            r
        }
        _ = &mut from_broker => Ok(()), // the broker closed the connection
    };
    from_broker.abort();
    acker.abort();
    drop(to_client);
    let _ = writer.await;
    result
}
