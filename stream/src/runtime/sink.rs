//! Where the stream processor's records go: a transactional producer (exactly once) or an
//! idempotent one whose deliveries are awaited before the offsets are committed (at least once).
//!
//! At least once, a commit does not wait, and its steps follow each other as deliveries come in
//! while the processor goes on reading: every record carries a tag, the number of the commit its
//! outputs belong to; once every output up to that commit is delivered, the commit's checkpoints
//! are sent (under a tag of their own), and once they are delivered, its offsets are committed.
//! So a checkpoint is never stored before the outputs it covers (a replay from it repeats nothing
//! that is missing), and offsets never before their checkpoints. At most [`MAX_PENDING`] commits
//! wait so; past that, and before partitions are revoked or the processor stops, a commit waits
//! for every delivery.

use std::collections::{BTreeMap, VecDeque};
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

/// Commits (at least once) whose deliveries may still be outstanding before a commit waits.
pub const MAX_PENDING: usize = 8;

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
    /// Records sent and not yet reported, per tag (none listed: none outstanding).
    outstanding: Mutex<BTreeMap<usize, u64>>,
}

impl Failures {
    /// The oldest tag with a record not yet reported.
    fn oldest_outstanding(&self) -> Option<usize> {
        self.outstanding
            .lock()
            .ok()
            .and_then(|o| o.keys().next().copied())
    }
}

struct SinkCtx {
    failures: Arc<Failures>,
}

impl ClientContext for SinkCtx {}

impl ProducerContext for SinkCtx {
    /// The record's tag (see the module docs).
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: usize) {
        if let Ok(mut o) = self.failures.outstanding.lock()
            && let Some(n) = o.get_mut(&tag)
        {
            *n -= 1;
            if *n == 0 {
                o.remove(&tag);
            }
        }
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
    /// The tag of the records sent now; at least once, each commit starts a new one.
    next_tag: usize,
    /// Commits waiting for deliveries, oldest first (at least once).
    pending: VecDeque<Pending>,
}

/// A commit (at least once) whose outputs or checkpoints are not all delivered yet.
struct Pending {
    /// The tag of its outputs.
    outputs: usize,
    /// Its checkpoints, until they are sent.
    checkpoints: Vec<OutRecord>,
    /// The tag they were sent under.
    sent: Option<usize>,
    offsets: TopicPartitionList,
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
            next_tag: 0,
            pending: VecDeque::new(),
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
        self.send_tagged(r, self.next_tag)
    }

    fn send_tagged(&mut self, r: &OutRecord, tag: usize) -> Result<(), Error> {
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
        let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(&r.topic, tag)
            .key(&r.key[..])
            .headers(headers);
        if let Some(payload) = &r.payload {
            record = record.payload(&payload[..]);
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        if let Ok(mut o) = self.failures.outstanding.lock() {
            *o.entry(tag).or_default() += 1;
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

    /// Commits what was sent, `checkpoints` and `offsets`. At least once and without `wait`,
    /// this only queues the checkpoints and offsets (see the module docs).
    pub fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        checkpoints: Vec<OutRecord>,
        offsets: &TopicPartitionList,
        wait: bool,
    ) -> Result<(), CommitError> {
        match self.guarantee {
            ProcessingGuarantee::ExactlyOnce => {
                for r in &checkpoints {
                    self.send(r).map_err(CommitError::Fatal)?;
                }
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
                self.pending.push_back(Pending {
                    outputs: self.next_tag,
                    checkpoints,
                    sent: None,
                    offsets: offsets.clone(),
                });
                self.next_tag += 1;
                if wait || self.pending.len() > MAX_PENDING {
                    self.commit_waiting(consumer)
                } else {
                    self.settle(consumer)
                }
            }
        }
    }

    /// At least once: the failed deliveries since the last look, as the error that stops the
    /// processor (the outputs are incomplete; a restart replays from the last checkpoint).
    fn check_failures(&self) -> Result<(), CommitError> {
        let failed = self.failures.count.swap(0, Ordering::Relaxed);
        if failed == 0 {
            return Ok(());
        }
        let last = self
            .failures
            .last
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .unwrap_or_default();
        Err(CommitError::Fatal(Error::Kafka(format!(
            "{failed} record(s) could not be stored (last error: {last})"
        ))))
    }

    /// At least once: takes the waiting commits as far as their deliveries allow — sends the
    /// checkpoints of those whose outputs (and every earlier output) are delivered, commits the
    /// offsets of those whose checkpoints are delivered. Serve delivery reports first
    /// ([`Sink::poll`]).
    pub fn settle<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), CommitError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.check_failures()?;
        let mut ready = None;
        loop {
            let oldest = self.failures.oldest_outstanding();
            let Some(front) = self.pending.front() else {
                break;
            };
            match front.sent {
                None if oldest.is_none_or(|o| o > front.outputs) => {
                    let tag = self.next_tag;
                    self.next_tag += 1;
                    let checkpoints = self.pending.front_mut().map_or_else(Vec::new, |f| {
                        f.sent = Some(tag);
                        std::mem::take(&mut f.checkpoints)
                    });
                    for r in &checkpoints {
                        self.send_tagged(r, tag).map_err(CommitError::Fatal)?;
                    }
                }
                Some(tag) if !self.outstanding(tag) => {
                    ready = self.pending.pop_front();
                }
                _ => break,
            }
        }
        if let Some(done) = ready {
            commit_offsets(consumer, &done.offsets, CommitMode::Async);
        }
        Ok(())
    }

    /// Whether a record sent under `tag` is not reported yet.
    fn outstanding(&self, tag: usize) -> bool {
        match self.failures.outstanding.lock() {
            Ok(o) => o.contains_key(&tag),
            Err(_) => true,
        }
    }

    /// At least once: completes every commit that waits — waits for every output, sends the
    /// waiting checkpoints, waits for them, then commits the newest offsets (nothing waiting:
    /// nothing to do).
    pub fn commit_waiting<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), CommitError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.flush()?;
        let waiting: Vec<Pending> = self.pending.drain(..).collect();
        let tag = self.next_tag;
        self.next_tag += 1;
        for p in &waiting {
            for r in &p.checkpoints {
                self.send_tagged(r, tag).map_err(CommitError::Fatal)?;
            }
        }
        self.flush()?;
        if let Some(last) = waiting.last() {
            commit_offsets(consumer, &last.offsets, CommitMode::Sync);
        }
        Ok(())
    }

    /// Waits for every delivery; any that failed stops the processor.
    fn flush(&self) -> Result<(), CommitError> {
        self.producer
            .flush(TIMEOUT)
            .map_err(|e| CommitError::Fatal(fatal("flush", e)))?;
        self.check_failures()
    }
}

fn commit_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: &TopicPartitionList,
    mode: CommitMode,
) {
    if offsets.count() > 0
        && let Err(e) = consumer.commit(offsets, mode)
    {
        // not fatal: the checkpoints say where each lot is; a replay skips what they hold
        warn!(error = %e, "committing the input offsets failed");
    }
}
