//! The embedded broker's intake: a PUBLISH on a bridged topic goes from the front straight to
//! Kafka.
//!
//! With the embedded broker (`fjord demo`), a device's PUBLISH on a topic of the mapping rules
//! (`parking/#` by default) does not wait in rumqttd for a bridge to fetch it. The front classifies
//! it ([`crate::message`]), hands it to an idempotent producer (the bridge's settings,
//! [`crate::bridge::producer::settings`]) and acknowledges it to the device — PUBACK, or PUBREC for
//! QoS 2 — only once Kafka has stored it, in the order the PUBLISHes came. That is the bridge's
//! guarantee without its two limits here:
//! * rumqttd acknowledged a device's PUBLISH as soon as it held it in memory, so a crash of the
//!   process lost what the bridge had not fetched yet although the devices had their PUBACKs;
//! * rumqttd hands one subscriber at most 100 unacknowledged messages (a constant of rumqttd
//!   0.20), so the bridge's throughput was 100 messages per Kafka round trip.
//!
//! A copy of each message at QoS 0 still goes to rumqttd, for MQTT subscribers of the topic.
//! Memory is bounded: at most `bridge.max_in_flight` messages are in flight over all connections;
//! past that the front stops reading from a connection that sends more, until Kafka catches up.
//! A record Kafka refuses for good is dead-lettered (`kafka_rejected`), as the bridge does; a
//! producer that failed for good (its fatal error) is replaced and the record sent again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fjord_core::config::Config;
use fjord_core::kafka::{self, Topics};
use fjord_core::time::now_ms;
use fjord_core::topic::filter_matches;
use rdkafka::ClientConfig;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio::sync::Semaphore;
use tracing::{debug, error, info, warn};

use crate::message::{Classifier, Disposition, Inbound, OutRecord, Source};
use crate::metrics::IngestMetrics;
use crate::{Error, Result};

/// A message handed to Kafka: resolves once Kafka stored it (in its topic or as a dead letter).
pub type Stored = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The intake shared by every connection of the front.
pub struct Intake {
    classifier: Classifier,
    filters: Vec<String>,
    base: ClientConfig,
    max_in_flight: usize,
    producer: RwLock<FutureProducer>,
    permits: Arc<Semaphore>,
    metrics: IngestMetrics,
    dlq_topic: String,
    totals: Totals,
}

#[derive(Default)]
struct Totals {
    received: AtomicU64,
    forwarded: AtomicU64,
    dead_lettered: AtomicU64,
    acked: AtomicU64,
    redelivered: AtomicU64,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("filters", &self.filters)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl Intake {
    /// The intake of `config`'s mapping rules, producing to `config.kafka`.
    pub fn new(config: &Config, metrics: IngestMetrics) -> Result<Arc<Self>> {
        let classifier = crate::bridge::classifier(config)?;
        let filters = classifier.router().subscriptions();
        let base = kafka::client_config(&config.kafka);
        let max_in_flight = config.bridge.max_in_flight;
        let producer = create(&base, max_in_flight)?;
        info!(topics = ?filters, max_in_flight, "the embedded broker hands these topics to Kafka itself");
        Ok(Arc::new(Self {
            classifier,
            filters,
            base,
            max_in_flight,
            producer: RwLock::new(producer),
            permits: Arc::new(Semaphore::new(max_in_flight)),
            metrics,
            dlq_topic: Topics::new(&config.kafka).dlq,
            totals: Totals::default(),
        }))
    }

    /// Whether messages on `topic` go to Kafka through the intake.
    pub fn takes(&self, topic: &str) -> bool {
        self.filters.iter().any(|f| filter_matches(f, topic))
    }

    /// Classifies the message and hands it to the producer, waiting first while
    /// `bridge.max_in_flight` messages are in flight. The returned future resolves once Kafka has
    /// stored it; records are handed to the producer in the order of the calls.
    pub async fn submit(
        self: &Arc<Self>,
        topic: String,
        payload: Bytes,
        content_type: Option<String>,
        dup: bool,
    ) -> Stored {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            // the semaphore is never closed
            return Box::pin(async {});
        };
        self.metrics.received.with_label_values(&["mqtt"]).inc();
        self.totals.received.fetch_add(1, Ordering::Relaxed);
        if dup {
            self.metrics.redelivered.inc();
            self.totals.redelivered.fetch_add(1, Ordering::Relaxed);
        }
        let inbound = Inbound {
            topic,
            payload,
            content_type,
            received_at: now_ms(),
            source: Source::Mqtt,
        };
        let (record, dead) = match self.classifier.classify(&inbound) {
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
        let sent_at = Instant::now();
        let delivery = self.enqueue(&record).await;
        self.metrics.in_flight.inc();
        let this = self.clone();
        Box::pin(async move {
            this.finish(record, dead, delivery, sent_at).await;
            this.metrics.in_flight.dec();
            drop(permit);
        })
    }

    /// Counts a PUBACK (or PUBREC) sent after Kafka stored the message.
    pub fn acked(&self) {
        self.metrics.acked.inc();
        self.totals.acked.fetch_add(1, Ordering::Relaxed);
    }

    /// Totals so far, in the bridge's terms.
    pub fn summary(&self) -> crate::bridge::Summary {
        let t = &self.totals;
        crate::bridge::Summary {
            received: t.received.load(Ordering::Relaxed),
            forwarded: t.forwarded.load(Ordering::Relaxed),
            dead_lettered: t.dead_lettered.load(Ordering::Relaxed),
            acked: t.acked.load(Ordering::Relaxed),
            redelivered: t.redelivered.load(Ordering::Relaxed),
        }
    }

    /// Waits up to `timeout` for every record handed over to be delivered.
    pub fn flush(&self, timeout: Duration) {
        let producer = self
            .producer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Err(e) = producer.flush(timeout) {
            warn!(error = %e, "the embedded broker's intake could not deliver everything in time");
        }
    }

    /// Hands `record` to the producer; waits while its local queue is full.
    async fn enqueue(&self, record: &OutRecord) -> DeliveryFuture {
        loop {
            let sent = {
                let producer = self
                    .producer
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let r = FutureRecord::to(&record.topic)
                    .key(record.key.as_bytes())
                    .payload(&record.payload[..])
                    .headers(record.kafka_headers());
                producer.send_result(r).map_err(|(e, _)| e)
            };
            match sent {
                Ok(delivery) => return delivery,
                Err(e) => {
                    // only a full local queue, which max_in_flight keeps from happening
                    debug!(error = %e, "producer queue full; waiting");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// Waits for `record`'s delivery; dead-letters what Kafka refuses, retries what the
    /// dead-letter topic refuses, and renews a producer that failed for good.
    async fn finish(
        &self,
        mut record: OutRecord,
        mut dead: Option<&'static str>,
        mut delivery: DeliveryFuture,
        sent_at: Instant,
    ) {
        loop {
            let error = match delivery.await {
                Ok(Ok(_)) => break,
                Ok(Err((e, _))) => Some(e),
                // the producer went away (renewed): send again
                Err(_) => None,
            };
            if let Some(e) = error {
                if self.renew_if_fatal() {
                    warn!(error = %e, "sending a record again on a new producer");
                } else if dead.is_none() {
                    record.reject(&e, &self.dlq_topic);
                    dead = Some("kafka_rejected");
                } else {
                    record.shrink_for(&e);
                    error!(error = %e, topic = %record.topic, "cannot store a dead letter; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            delivery = self.enqueue(&record).await;
        }
        self.metrics
            .delivery_seconds
            .observe(sent_at.elapsed().as_secs_f64());
        match dead {
            Some(reason) => {
                self.metrics
                    .dead_lettered
                    .with_label_values(&[reason])
                    .inc();
                self.totals.dead_lettered.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.metrics
                    .forwarded
                    .with_label_values(&[&record.topic])
                    .inc();
                self.totals.forwarded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Replaces the producer when it has a fatal error (it then refuses every record); says
    /// whether it did.
    fn renew_if_fatal(&self) -> bool {
        let mut producer = self
            .producer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((code, reason)) = producer.client().fatal_error() else {
            return false;
        };
        match create(&self.base, self.max_in_flight) {
            Ok(fresh) => {
                error!(?code, %reason, "the embedded broker's producer failed for good; replaced it");
                *producer = fresh;
                true
            }
            Err(e) => {
                error!(error = %e, "cannot replace the embedded broker's failed producer");
                false
            }
        }
    }
}

fn create(base: &ClientConfig, max_in_flight: usize) -> Result<FutureProducer> {
    let mut config = base.clone();
    crate::bridge::producer::settings(&mut config, max_in_flight)
        .create()
        .map_err(|e| Error::Kafka(format!("cannot create the embedded broker's producer: {e}")))
}
