//! `fjord simulate`: a device simulator and load generator over MQTT.
//!
//! One MQTT connection per lot acts as the lot's gateway: its last will is `offline` on
//! `presence/gw-<lot>` and it publishes `online` (retained) when connected. Readings of the
//! [`model::Fleet`] go out at a target rate (or as fast as the broker acknowledges them) with QoS 1.
//! At the end a summary says what was sent and acknowledged; `--record` also writes each
//! acknowledged message ([`ledger`]).

pub mod history;
pub mod ledger;
pub mod model;
pub mod pattern;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fjord_core::config::MqttConfig;
use fjord_core::time::now_ms;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use self::ledger::{AckTracker, Ledger, Published};
use self::model::{Faults, Fleet, Kind, SimLot};
use crate::{Error, Result};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Broker URL and credentials.
    pub mqtt: MqttConfig,
    /// The lots.
    pub lots: Vec<SimLot>,
    /// Messages per second; `None`: as fast as the broker acknowledges.
    pub rate: Option<f64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many readings.
    pub count: Option<u64>,
    /// Random seed.
    pub seed: u64,
    /// Fault rates.
    pub faults: Faults,
    /// Unacknowledged messages per connection.
    pub inflight: u16,
    /// Write every acknowledged message to this file (JSON lines).
    pub record: Option<PathBuf>,
}

/// What was sent.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct SimSummary {
    /// Messages published (readings and faults, not presence).
    pub sent: u64,
    /// Of those, acknowledged by the broker (PUBACK).
    pub acked: u64,
    /// State changes.
    pub transitions: u64,
    /// Repeated states.
    pub heartbeats: u64,
    /// Duplicate readings.
    pub duplicates: u64,
    /// Out-of-order readings.
    pub out_of_order: u64,
    /// Late readings.
    pub late: u64,
    /// Garbage payloads.
    pub garbage: u64,
    /// Presence messages (`online`).
    pub presence: u64,
    /// Seconds from the first to the last acknowledgement.
    pub seconds: f64,
    /// Acknowledged messages per second.
    pub acked_per_second: f64,
    /// With `--record`: whether every acknowledgement was recorded (false when a broker lost a
    /// connection's session, after which that connection's record stops).
    pub record_complete: Option<bool>,
}

impl std::fmt::Display for SimSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} messages ({} acknowledged) in {:.1} s = {:.0} msg/s: {} transitions, {} heartbeats, \
             {} duplicates, {} out of order, {} late, {} garbage; {} presence",
            self.sent,
            self.acked,
            self.seconds,
            self.acked_per_second,
            self.transitions,
            self.heartbeats,
            self.duplicates,
            self.out_of_order,
            self.late,
            self.garbage,
            self.presence
        )
    }
}

struct Gateway {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
    /// With `--record`: pairs PUBACKs with messages.
    tracker: Option<Arc<Mutex<AckTracker>>>,
}

impl Gateway {
    /// Publishes with QoS 1, telling the tracker first (it pairs packet ids in request order).
    async fn publish(&self, topic: &str, retain: bool, payload: Vec<u8>) -> Result<()> {
        if let Some(t) = &self.tracker {
            t.lock()
                .unwrap_or_else(|p| p.into_inner())
                .requested(Published {
                    topic: topic.to_owned(),
                    payload: payload.clone(),
                });
        }
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .map_err(|e| Error::Mqtt(e.to_string()))
    }
}

/// Runs the simulator until its duration or count is reached or `shutdown` turns true.
pub async fn run(opts: SimulateOptions, mut shutdown: watch::Receiver<bool>) -> Result<SimSummary> {
    let (host, port) = opts.mqtt.host_port().ok_or_else(|| {
        Error::Config(format!(
            "mqtt.url {:?} is not mqtt://host:port",
            opts.mqtt.url
        ))
    })?;
    if opts.lots.is_empty() {
        return Err(Error::Config("the simulator needs at least one lot".into()));
    }
    // mqtts://: TLS, trusting `mqtt.ca_file` (`--ca-file`) or the system's roots, as the bridge does
    let tls = if opts.mqtt.url.starts_with("mqtts://") {
        Some(fjord_core::tls::client_config(
            opts.mqtt.ca_file.as_deref(),
            "mqtt.ca_file",
        )?)
    } else {
        None
    };
    let ledger = opts.record.as_deref().map(Ledger::create).transpose()?;
    let (acks_tx, mut acks) = mpsc::unbounded_channel::<()>();
    let mut gateways = Vec::new();
    let mut summary = SimSummary::default();
    for lot in &opts.lots {
        let gateway_id = format!("gw-{}", lot.lot_id);
        let presence = format!("presence/{gateway_id}");
        let mut o = MqttOptions::new(
            format!("fjord-sim-{gateway_id}-{:x}", opts.seed),
            host.clone(),
            port,
        );
        // a persistent session, as a real gateway keeps: what was in flight when the connection
        // dropped is sent again on the next one (a new session would drop it unacknowledged)
        o.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(false)
            .set_inflight(opts.inflight)
            .set_request_channel_capacity(usize::from(opts.inflight) * 2)
            .set_last_will(LastWill::new(&presence, "offline", QoS::AtLeastOnce, true));
        if let Some(user) = &opts.mqtt.username {
            o.set_credentials(user, opts.mqtt.password.clone().unwrap_or_default());
        }
        if let Some(tls) = &tls {
            o.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.clone()),
            ));
        }
        let (client, mut events) = AsyncClient::new(o, usize::from(opts.inflight) * 2);
        let acks_tx = acks_tx.clone();
        let id = gateway_id.clone();
        let tracker = ledger
            .as_ref()
            .map(|_| Arc::new(Mutex::new(AckTracker::default())));
        let (task_tracker, task_ledger) = (tracker.clone(), ledger.clone());
        let task = tokio::spawn(async move {
            let mut failures = 0u32;
            let mut connections = 0u32;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let (Some(t), Some(l)) = (&task_tracker, &task_ledger) {
                            let m = t.lock().unwrap_or_else(|p| p.into_inner()).acked(ack.pkid);
                            if let Some(m) = m
                                && let Err(e) = l.write(&m)
                            {
                                warn!(error = %e, "cannot record an acknowledged message");
                            }
                        }
                        let _ = acks_tx.send(());
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(t) = &task_tracker {
                            t.lock().unwrap_or_else(|p| p.into_inner()).written(pkid);
                        }
                    }
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        failures = 0;
                        connections += 1;
                        // a broker that lost the session: rumqttc drops what was in flight and
                        // the pairing of acknowledgements can no longer be trusted
                        if connections > 1
                            && !ack.session_present
                            && let Some(t) = &task_tracker
                        {
                            warn!(gateway = %id, "the broker lost the simulator's session: messages in flight are lost unacknowledged; --record stops for this gateway");
                            t.lock().unwrap_or_else(|p| p.into_inner()).abandon();
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(10) {
                            warn!(gateway = %id, error = %e, "simulator connection lost; reconnecting");
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        let gateway = Gateway {
            client,
            task,
            tracker,
        };
        gateway.publish(&presence, true, b"online".to_vec()).await?;
        summary.presence += 1;
        gateways.push(gateway);
    }
    drop(acks_tx);

    let mut fleet = Fleet::new(opts.lots.clone(), opts.faults, opts.seed, now_ms());
    let start = Instant::now();
    let deadline = opts.duration.map(|d| start + d);
    let mut last_ack = start;
    let mut acked_total = 0u64;
    let tick = Duration::from_millis(10);
    let mut next_tick = tokio::time::Instant::now();
    let mut budget = 0.0f64;
    info!(lots = opts.lots.len(), rate = ?opts.rate, "simulator running");
    'outer: loop {
        if *shutdown.borrow() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if opts.count.is_some_and(|c| summary.sent >= c) {
            break;
        }
        let batch = match opts.rate {
            Some(rate) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(next_tick) => {}
                    _ = shutdown.changed() => break 'outer,
                }
                next_tick += tick;
                budget += rate * tick.as_secs_f64();
                let n = budget.floor();
                budget -= n;
                n as u64
            }
            None => 256,
        };
        for _ in 0..batch {
            if opts.count.is_some_and(|c| summary.sent >= c) {
                break;
            }
            let Some(m) = fleet.next(now_ms()) else {
                break 'outer;
            };
            // `publish` waits while the connection's request queue is full: that is the
            // backpressure of `--rate max`.
            gateways[m.lot].publish(&m.topic, false, m.payload).await?;
            summary.sent += 1;
            match m.kind {
                Kind::Transition => summary.transitions += 1,
                Kind::Heartbeat => summary.heartbeats += 1,
                Kind::Duplicate => summary.duplicates += 1,
                Kind::OutOfOrder => summary.out_of_order += 1,
                Kind::Late => summary.late += 1,
                Kind::Garbage => summary.garbage += 1,
            }
        }
        while acks.try_recv().is_ok() {
            acked_total += 1;
            last_ack = Instant::now();
        }
    }
    // wait (bounded) for the remaining acknowledgements
    let expected = summary.sent + summary.presence;
    let wait_until = tokio::time::Instant::now() + Duration::from_secs(30);
    while acked_total < expected {
        match tokio::time::timeout_at(wait_until, acks.recv()).await {
            Ok(Some(())) => {
                acked_total += 1;
                last_ack = Instant::now();
            }
            _ => break,
        }
    }
    for g in &gateways {
        let _ = g.client.disconnect().await;
    }
    let complete = gateways.iter().all(|g| {
        g.tracker
            .as_ref()
            .is_none_or(|t| !t.lock().unwrap_or_else(|p| p.into_inner()).is_abandoned())
    });
    for g in gateways {
        let _ = tokio::time::timeout(Duration::from_secs(5), g.task).await;
    }
    if let Some(l) = &ledger {
        l.flush()?;
        summary.record_complete = Some(complete);
    }
    summary.acked = acked_total.saturating_sub(summary.presence);
    summary.seconds = last_ack.duration_since(start).as_secs_f64();
    if summary.seconds > 0.0 {
        summary.acked_per_second = summary.acked as f64 / summary.seconds;
    }
    Ok(summary)
}
