//! Where the stream processor's records go: a transactional producer (exactly once) or an
//! idempotent one whose deliveries are awaited before the offsets are committed (at least once).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjord_core::config::ProcessingGuarantee;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};
use tracing::warn;

use crate::Error;
use crate::output::OutRecord;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a commit did not happen.
pub enum CommitError {
    /// The transaction was aborted; the processor rewinds to its last checkpoint.
    Aborted(String),
    /// Nothing more can be done with this producer: stop.
    Fatal(Error),
}

#[derive(Default)]
struct Failures {
    count: AtomicU64,
    last: Mutex<Option<String>>,
}

struct SinkCtx {
    failures: Arc<Failures>,
}

impl ClientContext for SinkCtx {}

impl ProducerContext for SinkCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failures.count.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut last) = self.failures.last.lock() {
                *last = Some(e.to_string());
            }
        }
    }
}

/// The producer side of the processor.
pub struct Sink {
    producer: BaseProducer<SinkCtx>,
    guarantee: ProcessingGuarantee,
    txn_open: bool,
    /// With exactly-once: a record of the open transaction was refused, so the transaction can
    /// only be aborted (the commit does that, and the processor rewinds).
    doomed: Option<String>,
    failures: Arc<Failures>,
}

fn fatal(context: &str, e: KafkaError) -> Error {
    let text = e.to_string();
    let fenced = matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
        )
    ) || text.contains("fenced");
    if fenced {
        Error::Fenced(text)
    } else {
        Error::Kafka(format!("{context}: {text}"))
    }
}

impl Sink {
    /// Creates the producer; with exactly-once, initialises transactions under `transactional_id`
    /// (fencing any earlier producer with that id).
    pub fn new(
        base: &ClientConfig,
        guarantee: ProcessingGuarantee,
        transactional_id: &str,
    ) -> Result<Self, Error> {
        let failures = Arc::new(Failures::default());
        let mut cfg = base.clone();
        cfg.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000");
        if guarantee == ProcessingGuarantee::ExactlyOnce {
            cfg.set("transactional.id", transactional_id)
                .set("transaction.timeout.ms", "60000");
        }
        let producer: BaseProducer<SinkCtx> = cfg
            .create_with_context(SinkCtx {
                failures: failures.clone(),
            })
            .map_err(|e| Error::Kafka(format!("cannot create the producer: {e}")))?;
        if guarantee == ProcessingGuarantee::ExactlyOnce {
            producer.init_transactions(TIMEOUT).map_err(|e| {
                Error::Kafka(format!(
                    "cannot initialise Kafka transactions ({e}); if the broker does not support \
                     transactions, set stream.processing_guarantee = \"at_least_once\""
                ))
            })?;
        }
        Ok(Self {
            producer,
            guarantee,
            txn_open: false,
            doomed: None,
            failures,
        })
    }

    fn begin(&mut self) -> Result<(), Error> {
        if self.guarantee == ProcessingGuarantee::ExactlyOnce && !self.txn_open {
            self.producer
                .begin_transaction()
                .map_err(|e| fatal("begin transaction", e))?;
            self.txn_open = true;
        }
        Ok(())
    }

    /// Serves delivery reports; call it often (the main loop does, every turn).
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Produces `r` (inside the open transaction, with exactly-once).
    pub fn send(&mut self, r: &OutRecord) -> Result<(), Error> {
        if self.doomed.is_some() {
            return Ok(());
        }
        self.begin()?;
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_slice()),
            });
        }
        let mut record = BaseRecord::<[u8], [u8]>::to(&r.topic)
            .key(&r.key[..])
            .headers(headers);
        if let Some(payload) = &r.payload {
            record = record.payload(&payload[..]);
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) if self.guarantee == ProcessingGuarantee::ExactlyOnce => {
                    let error = fatal("produce", e);
                    if matches!(error, Error::Fenced(_)) {
                        return Err(error);
                    }
                    // the transaction is lost; the next commit aborts it and the processor rewinds
                    self.doomed = Some(error.to_string());
                    return Ok(());
                }
                Err((e, _)) => return Err(fatal("produce", e)),
            }
        }
    }

    /// Aborts the open transaction. librdkafka's abort first waits for every message of the
    /// transaction to settle, which needs their delivery reports served — a `BaseProducer` has no
    /// thread doing that — and messages for a partition the failure made unknown would only settle
    /// at `message.timeout.ms`. Their transaction is being aborted and the processor rewinds and
    /// produces them again, so they are purged, their reports served, and then the abort runs.
    fn abort(&self) -> Result<(), KafkaError> {
        self.producer
            .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
        let deadline = std::time::Instant::now() + TIMEOUT;
        while self.producer.in_flight_count() > 0 && std::time::Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(10));
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        self.producer
            .abort_transaction(left.max(Duration::from_secs(1)))
    }

    /// Commits what was sent together with `offsets`.
    pub fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        offsets: &TopicPartitionList,
    ) -> Result<(), CommitError> {
        match self.guarantee {
            ProcessingGuarantee::ExactlyOnce => {
                if let Some(reason) = self.doomed.take() {
                    self.txn_open = false;
                    if let Err(abort) = self.abort() {
                        return Err(CommitError::Fatal(fatal("abort transaction", abort)));
                    }
                    return Err(CommitError::Aborted(reason));
                }
                self.begin().map_err(CommitError::Fatal)?;
                let result = consumer
                    .group_metadata()
                    .ok_or_else(|| KafkaError::Subscription("no group metadata".into()))
                    .and_then(|meta| {
                        self.producer
                            .send_offsets_to_transaction(offsets, &meta, TIMEOUT)
                    })
                    .and_then(|()| self.producer.commit_transaction(TIMEOUT));
                self.txn_open = false;
                match result {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        let abortable = matches!(&e, KafkaError::Transaction(t) if t.txn_requires_abort() || t.is_retriable());
                        if abortable {
                            if let Err(abort) = self.abort() {
                                return Err(CommitError::Fatal(fatal("abort transaction", abort)));
                            }
                            Err(CommitError::Aborted(e.to_string()))
                        } else {
                            Err(CommitError::Fatal(fatal("commit transaction", e)))
                        }
                    }
                }
            }
            ProcessingGuarantee::AtLeastOnce => {
                self.producer
                    .flush(TIMEOUT)
                    .map_err(|e| CommitError::Fatal(fatal("flush", e)))?;
                let failed = self.failures.count.swap(0, Ordering::Relaxed);
                if failed > 0 {
                    let last = self
                        .failures
                        .last
                        .lock()
                        .ok()
                        .and_then(|l| l.clone())
                        .unwrap_or_default();
                    // the outputs are incomplete: stop; a restart replays from the last checkpoint
                    return Err(CommitError::Fatal(Error::Kafka(format!(
                        "{failed} record(s) could not be stored (last error: {last})"
                    ))));
                }
                if offsets.count() > 0
                    && let Err(e) = consumer.commit(offsets, CommitMode::Sync)
                {
                    // not fatal: the checkpoints say where each lot is; a replay skips what they hold
                    warn!(error = %e, "committing the input offsets failed");
                }
                Ok(())
            }
        }
    }
}
