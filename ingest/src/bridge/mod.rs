//! The MQTT → Kafka bridge (`fjord bridge`): subscribe with a persistent session, classify each
//! message ([`crate::message`]), produce it, and send its PUBACK only once Kafka has it.
//!
//! Guarantees:
//! * **No loss of acknowledged messages.** A PUBACK leaves only after Kafka acknowledged the record
//!   (`acks=all`, idempotent producer) and every earlier message too. A bridge killed at any moment
//!   loses nothing: the broker redelivers what was not acknowledged.
//! * **At least once.** What was stored in Kafka but not yet acknowledged when the bridge died or
//!   the connection dropped arrives again: those are the duplicates (counted by
//!   `fjord_bridge_mqtt_redelivered_total`). Downstream deduplicates readings on (`space_id`, `ts`).
//! * **Bounded memory.** At most `bridge.max_in_flight` messages are in flight; at that bound the
//!   bridge stops reading from MQTT until Kafka catches up, and resumes by itself.
//! * **Clean shutdown.** On shutdown the bridge stops taking messages, waits for what is in flight,
//!   writes the last PUBACKs and disconnects.

pub mod acks;
pub mod mqtt;
pub mod producer;

use std::time::{Duration, Instant};

use fjord_core::config::Config;
use fjord_core::kafka::{self, Topics};
use fjord_core::time::now_ms;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use self::acks::AckQueue;
use self::mqtt::{Connection, Received, reconnect_delay};
use self::producer::{Delivery, KafkaSink};
use crate::mapping::Router;
use crate::message::{Classifier, Disposition, Inbound, OutRecord, Source};
use crate::metrics::IngestMetrics;
use crate::{Error, Result};

/// How long a shutdown may take to finish in-flight messages before giving up on them (they are
/// then redelivered by the broker to the next bridge).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Totals of one bridge run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Messages received over MQTT.
    pub received: u64,
    /// Records stored in their mapped topic.
    pub forwarded: u64,
    /// Records stored in the dead-letter topic.
    pub dead_lettered: u64,
    /// PUBACKs sent.
    pub acked: u64,
    /// Messages marked as redeliveries by the broker.
    pub redelivered: u64,
}

/// Builds the classifier of `config` (shared with HTTP ingest).
pub fn classifier(config: &Config) -> Result<Classifier> {
    let router = Router::new(&config.mapping, &config.kafka)?;
    Ok(Classifier::new(
        router,
        Topics::new(&config.kafka).dlq,
        config.bridge.validate,
        config.bridge.max_payload_bytes,
        config.readings.decode_options(),
    ))
}

/// Creates the bridge's Kafka topics when they are missing. Brokers that refuse topic creation
/// (librdkafka's mock cluster) are told about in the log; the topics must then exist already.
pub async fn ensure_topics(config: &Config) {
    let topics = Topics::new(&config.kafka);
    let mut names: Vec<String> = config
        .mapping
        .iter()
        .map(|r| config.kafka.topic(&r.topic))
        .collect();
    names.push(topics.dlq);
    names.sort();
    names.dedup();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Err(e) = kafka::ensure_topics(&config.kafka, &refs, config.kafka.partitions).await {
        warn!(error = %e, "could not create the bridge's topics; they must exist");
    }
}

struct Pending {
    pkid: Option<u16>,
    record: OutRecord,
    /// Dead-letter reason, when the record is a dead letter.
    dead: Option<&'static str>,
    sent_at: Instant,
}

/// Runs the bridge until `shutdown` turns true, then drains and returns the totals.
pub async fn run(
    config: &Config,
    metrics: IngestMetrics,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Summary> {
    let classifier = classifier(config)?;
    let filters = match &config.bridge.share_group {
        Some(group) => classifier
            .router()
            .subscriptions()
            .iter()
            .map(|f| format!("$share/{group}/{f}"))
            .collect(),
        None => classifier.router().subscriptions(),
    };
    let max_in_flight = config.bridge.max_in_flight;
    let (sink, mut deliveries) =
        KafkaSink::new(kafka::client_config(&config.kafka), max_in_flight)?;
    info!(
        mqtt = %config.mqtt.url,
        kafka = %config.kafka.brokers,
        subscriptions = ?filters,
        protocol = ?config.bridge.protocol,
        max_in_flight,
        "bridge starting"
    );
    let mut state = State {
        dlq_topic: Topics::new(&config.kafka).dlq,
        queue: AckQueue::default(),
        sink,
        metrics,
        summary: Summary::default(),
        retries: Vec::new(),
    };
    let mut conn: Option<Connection> = None;
    let mut connected_before = false;
    let mut failures = 0u32;
    let mut reconnect_at = Some(tokio::time::Instant::now());
    let mut draining: Option<tokio::time::Instant> = None;
    loop {
        if draining.is_some() && state.queue.is_empty() {
            if let Some(c) = conn.take() {
                c.disconnect().await;
            }
            break;
        }
        if conn.is_none()
            && draining.is_none()
            && reconnect_at.is_some_and(|t| t <= tokio::time::Instant::now())
        {
            match Connection::open(&config.mqtt, &config.bridge, &filters).await {
                Ok(c) => {
                    state.queue.new_connection();
                    state.metrics.mqtt_connects.inc();
                    if connected_before && !c.session_present {
                        state.metrics.session_lost.inc();
                        error!(
                            "the MQTT broker no longer had the bridge's session: messages it had queued \
                             for the bridge are lost (check the broker's session expiry and queue limits)"
                        );
                    } else {
                        info!(
                            session_present = c.session_present,
                            "connected to the MQTT broker"
                        );
                    }
                    connected_before = true;
                    failures = 0;
                    reconnect_at = None;
                    conn = Some(c);
                }
                Err(e) => {
                    failures += 1;
                    let delay = reconnect_delay(failures);
                    warn!(error = %e, retry_in = ?delay, "cannot connect to the MQTT broker");
                    reconnect_at = Some(tokio::time::Instant::now() + delay);
                }
            }
            continue;
        }
        let next_retry = state.retries.iter().map(|(t, _)| *t).min();
        let can_take = draining.is_some() || state.queue.len() < max_in_flight;
        tokio::select! {
            biased;
            _ = shutdown.changed(), if draining.is_none() => {
                info!(in_flight = state.queue.len(), "bridge stopping: finishing what is in flight");
                draining = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
            }
            Some(d) = deliveries.recv() => state.on_delivery(d, conn.as_ref())?,
            received = recv(&mut conn), if conn.is_some() && can_take => match received {
                Some(m) if draining.is_some() => {
                    // not acknowledged: the broker redelivers it to the next bridge
                    debug!(topic = %m.topic, "message received while stopping; left to the broker");
                }
                Some(m) => state.on_message(&classifier, m)?,
                None => {
                    let reason = conn.take().map(|c| c.lost_reason()).unwrap_or_default();
                    state.metrics.mqtt_disconnects.inc();
                    warn!(%reason, in_flight = state.queue.len(), "MQTT connection lost; reconnecting");
                    reconnect_at = Some(tokio::time::Instant::now() + reconnect_delay(0));
                }
            },
            _ = sleep_until(reconnect_at), if conn.is_none() && draining.is_none() => {}
            _ = sleep_until(next_retry), if next_retry.is_some() => state.retry_due(),
            _ = sleep_until(draining), if draining.is_some() => {
                warn!(
                    in_flight = state.queue.len(),
                    "stopping before everything in flight was acknowledged; the broker redelivers the rest"
                );
                break;
            }
        }
    }
    let _ = state.sink.flush(Duration::from_secs(5));
    info!(summary = ?state.summary, "bridge stopped");
    Ok(state.summary)
}

async fn recv(conn: &mut Option<Connection>) -> Option<Received> {
    match conn {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<impl Into<tokio::time::Instant>>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

struct State {
    dlq_topic: String,
    queue: AckQueue<Pending>,
    sink: KafkaSink,
    metrics: IngestMetrics,
    summary: Summary,
    retries: Vec<(Instant, u64)>,
}

impl State {
    fn on_message(&mut self, classifier: &Classifier, m: Received) -> Result<()> {
        self.metrics.received.with_label_values(&["mqtt"]).inc();
        self.summary.received += 1;
        if m.dup {
            self.metrics.redelivered.inc();
            self.summary.redelivered += 1;
        }
        let inbound = Inbound {
            topic: m.topic,
            payload: m.payload,
            content_type: m.content_type,
            received_at: now_ms(),
            source: Source::Mqtt,
        };
        let (record, dead) = match classifier.classify(&inbound) {
            Disposition::Forward(r) => (r, None),
            Disposition::DeadLetter {
                record,
                reason,
                error,
            } => {
                debug!(topic = %inbound.topic, reason, %error, "dead-lettering a message");
                (record, Some(reason))
            }
        };
        let pending = Pending {
            pkid: m.pkid,
            record,
            dead,
            sent_at: Instant::now(),
        };
        let seq = self.queue.push(pending);
        self.metrics.in_flight.set(self.queue.len() as i64);
        self.send(seq)
    }

    fn send(&mut self, seq: u64) -> Result<()> {
        let Some(p) = self.queue.get_mut(seq) else {
            return Ok(());
        };
        p.sent_at = Instant::now();
        self.sink.send(&p.record, seq).map_err(|e| {
            Error::Kafka(format!(
                "{e} (the producer queue should never fill up: report this)"
            ))
        })
    }

    fn on_delivery(&mut self, d: Delivery, conn: Option<&Connection>) -> Result<()> {
        let Some(p) = self.queue.get_mut(d.seq) else {
            return Ok(());
        };
        if d.result.is_err()
            && let Some(fatal) = self.sink.fatal_error()
        {
            // Nothing more can be stored: stop, so a supervisor restarts the bridge; the broker
            // redelivers everything that was not acknowledged.
            return Err(Error::Kafka(format!(
                "the producer failed for good: {fatal}"
            )));
        }
        match d.result {
            Ok(_) => {
                self.metrics
                    .delivery_seconds
                    .observe(p.sent_at.elapsed().as_secs_f64());
                match p.dead {
                    Some(reason) => {
                        self.metrics
                            .dead_lettered
                            .with_label_values(&[reason])
                            .inc();
                        self.summary.dead_lettered += 1;
                    }
                    None => {
                        self.metrics
                            .forwarded
                            .with_label_values(&[&p.record.topic])
                            .inc();
                        self.summary.forwarded += 1;
                    }
                }
                for (p, ackable) in self.queue.complete(d.seq) {
                    if let (Some(pkid), true, Some(c)) = (p.pkid, ackable, conn) {
                        c.ack(pkid);
                        self.metrics.acked.inc();
                        self.summary.acked += 1;
                    }
                }
                self.metrics.in_flight.set(self.queue.len() as i64);
            }
            Err(e) if p.dead.is_none() => {
                // Kafka refused the record for good: dead-letter it instead.
                p.record.reject(&e, &self.dlq_topic);
                p.dead = Some("kafka_rejected");
                self.retries.push((Instant::now(), d.seq));
            }
            Err(e) => {
                // Even the dead-letter topic refused it: keep it unacknowledged and retry, loudly.
                p.record.shrink_for(&e);
                error!(error = %e, topic = %p.record.topic, "cannot store a dead letter; retrying in 1 s");
                self.retries
                    .push((Instant::now() + Duration::from_secs(1), d.seq));
            }
        }
        Ok(())
    }

    fn retry_due(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.retries.drain(..).partition(|(t, _)| *t <= now);
        self.retries = later;
        for (_, seq) in due {
            if let Err(e) = self.send(seq) {
                error!(error = %e, "cannot hand a record to the producer; retrying");
                self.retries.push((now + Duration::from_secs(1), seq));
            }
        }
    }
}
