//! The bridge's Kafka side: an idempotent producer (`acks=all`) whose delivery reports come back
//! on a channel, tagged with the sequence number of the message they belong to.
//!
//! Records never time out in the producer (`message.timeout.ms=0`): while Kafka is unreachable
//! librdkafka keeps retrying, messages stay in flight, and the bridge stops taking new ones once
//! `bridge.max_in_flight` is reached. A delivery error therefore means Kafka refused the record for
//! good (too large, not authorised, unknown topic); the bridge dead-letters it.

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::sync::mpsc;

use crate::message::OutRecord;
use crate::{Error, Result};

/// A delivery report.
#[derive(Debug)]
pub struct Delivery {
    /// Sequence number of the message.
    pub seq: u64,
    /// Partition and offset, or why Kafka refused the record.
    pub result: std::result::Result<(i32, i64), KafkaError>,
}

struct Context {
    tx: mpsc::UnboundedSender<Delivery>,
}

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        use rdkafka::Message;
        let result = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        // The receiver only goes away when the bridge stops; nothing is left to acknowledge then.
        let _ = self.tx.send(Delivery {
            seq: seq as u64,
            result,
        });
    }
}

/// The bridge's producer settings on top of `base`: idempotent, `acks=all`, records that never
/// time out, a local queue that `max_in_flight` never fills. Shared with the embedded broker's
/// intake ([`crate::broker::intake`]).
pub fn settings(base: &mut ClientConfig, max_in_flight: usize) -> &mut ClientConfig {
    base.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set("linger.ms", "5")
        .set(
            "queue.buffering.max.messages",
            (max_in_flight * 2).max(100_000).to_string(),
        )
}

/// An idempotent producer with delivery reports on a channel.
pub struct KafkaSink {
    producer: ThreadedProducer<Context>,
}

impl KafkaSink {
    /// Creates the producer from `base` (bootstrap servers, client id, user options) and returns it
    /// with the receiving end of its delivery reports.
    pub fn new(
        mut base: ClientConfig,
        max_in_flight: usize,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Delivery>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let producer: ThreadedProducer<Context> = settings(&mut base, max_in_flight)
            .create_with_context(Context { tx })
            .map_err(|e| Error::Kafka(format!("cannot create the producer: {e}")))?;
        Ok((Self { producer }, rx))
    }

    /// Hands `record` to the producer; its report arrives with `seq`. Fails only when the local
    /// queue is full, which `max_in_flight` prevents.
    pub fn send(&self, record: &OutRecord, seq: u64) -> Result<()> {
        let r = BaseRecord::with_opaque_to(&record.topic, seq as usize)
            .key(record.key.as_bytes())
            .payload(&record.payload[..])
            .headers(record.kafka_headers());
        self.producer
            .send(r)
            .map_err(|(e, _)| Error::Kafka(format!("cannot queue a record: {e}")))
    }

    /// The producer's fatal error, if it has one (it then refuses every record).
    pub fn fatal_error(&self) -> Option<String> {
        use rdkafka::producer::Producer as _;
        self.producer
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{code:?}: {reason}"))
    }

    /// Waits up to `timeout` for every queued record to be delivered.
    pub fn flush(&self, timeout: std::time::Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .map_err(|e| Error::Kafka(format!("flush: {e}")))
    }
}
