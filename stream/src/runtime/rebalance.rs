//! The consumer's rebalance callbacks: commit before partitions are taken away, restore each
//! assigned partition's state before its first record.

use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use tracing::{error, info, warn};

use super::processor::Processor;

/// The processor, locked (a panic elsewhere does not poison it for the rest of the run).
pub(super) fn lock(shared: &Mutex<Processor>) -> MutexGuard<'_, Processor> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The consumer's context: the rebalance callbacks over the shared processor.
pub(super) struct Ctx {
    pub(super) shared: Arc<Mutex<Processor>>,
    /// Ready after the first assignment (`/readyz`).
    pub(super) ready: Option<fjord_core::telemetry::Readiness>,
    /// `fjord_stream_consumer_lag`, from librdkafka's statistics of the readings topic.
    pub(super) lag: prometheus::IntGaugeVec,
    pub(super) readings_topic: String,
}

impl ClientContext for Ctx {
    /// librdkafka's statistics (every `statistics.interval.ms`): the consumer lag of each partition
    /// this instance consumes; partitions it does not (lag -1) leave the metric, so the sum over
    /// instances is the group's lag.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.readings_topic) else {
            return;
        };
        for (partition, p) in &topic.partitions {
            if *partition < 0 {
                continue;
            }
            let label = partition.to_string();
            if p.consumer_lag >= 0 {
                self.lag.with_label_values(&[&label]).set(p.consumer_lag);
            } else {
                let _ = self.lag.remove_label_values(&[&label]);
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut p = lock(&self.shared);
            // commit what was processed before the partitions go to another instance
            if let Err(e) = p.commit(consumer, true) {
                error!(error = %e, "commit before revocation failed");
                p.fatal.get_or_insert(e);
            }
            for e in tpl.elements() {
                if e.topic() == p.topics.presence {
                    p.presence.remove(&e.partition());
                } else {
                    p.states.remove(&e.partition());
                }
            }
            info!(partitions = ?tpl.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut p = lock(&self.shared);
                let partitions: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                for (topic, partition) in &partitions {
                    let restored = if *topic == p.topics.presence {
                        p.restore_presence(*partition)
                    } else {
                        p.restore(*partition)
                    };
                    if let Err(e) = restored {
                        error!(%topic, partition, error = %e, "cannot restore a partition's state");
                        p.fatal.get_or_insert(e);
                    }
                }
                let (presence, readings): (Vec<_>, Vec<_>) = partitions
                    .iter()
                    .partition(|(t, _)| *t == p.topics.presence);
                let numbers =
                    |v: Vec<&(String, i32)>| v.iter().map(|(_, n)| *n).collect::<Vec<_>>();
                if !presence.is_empty() {
                    info!(partitions = ?numbers(presence), "presence partitions assigned and restored");
                }
                info!(partitions = ?numbers(readings), "partitions assigned and restored");
                if p.fatal.is_none()
                    && let Some(ready) = &self.ready
                {
                    ready.set_ready();
                }
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}
