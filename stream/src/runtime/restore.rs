//! Reading a partition's checkpoint back from the compacted `stream-state` topic: every record of
//! the changelog partition up to its end, the latest value per key.
//!
//! One consumer serves every restore of a processor (creating a client per partition cost a
//! connection and a metadata round trip each). An empty partition (low watermark = high
//! watermark) is answered from the watermarks alone, without a fetch: on brokers that hold a fetch
//! that finds nothing for `fetch.wait.max.ms`, that fetch was most of a restore's time.
//!
//! The end of a non-empty partition is the partition-EOF event, not the high watermark from a
//! ListOffsets request: tansu 0.6 answers ListOffsets with the base offset of the last batch plus
//! one, which would miss the last checkpoint written. (That quirk cannot make an empty partition
//! look non-empty or the reverse: a partition with one batch reports a high watermark above 0.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fjord_core::kafka::QuietEof;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::{Error, Result};

/// The consumer the restores of one processor share.
pub struct Restorer {
    consumer: BaseConsumer<QuietEof>,
}

impl Restorer {
    /// A restore consumer from the processor's read_committed consumer config.
    pub fn new(base: &ClientConfig) -> Result<Self> {
        let consumer: BaseConsumer<QuietEof> = base
            .clone()
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("group.id", "fjord-stream-restore")
            .create_with_context(QuietEof)
            .map_err(|e| Error::Checkpoint {
                partition: -1,
                reason: format!("cannot create the restore consumer: {e}"),
            })?;
        Ok(Self { consumer })
    }

    /// The latest value of every key in partition `partition` of `topic`.
    pub fn read_changelog(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
    ) -> Result<BTreeMap<String, Vec<u8>>> {
        let err = |reason: String| Error::Checkpoint { partition, reason };
        let (low, high) = self
            .consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| err(format!("watermarks of {topic}: {e}")))?;
        let mut latest = BTreeMap::new();
        if high <= low {
            return Ok(latest);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(low))
            .map_err(|e| err(e.to_string()))?;
        self.consumer.assign(&tpl).map_err(|e| err(e.to_string()))?;
        let result = self.read_to_end(topic, partition, timeout, &mut latest);
        let _ = self.consumer.unassign();
        result.map(|()| latest)
    }

    fn read_to_end(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
        latest: &mut BTreeMap<String, Vec<u8>>,
    ) -> Result<()> {
        let err = |reason: String| Error::Checkpoint { partition, reason };
        let deadline = Instant::now() + timeout;
        loop {
            if Instant::now() > deadline {
                return Err(err(format!(
                    "did not reach the end of {topic} within {timeout:?} ({} keys read)",
                    latest.len()
                )));
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) if m.partition() == partition && m.topic() == topic => {
                    if let Some(key) = m.key() {
                        let key = String::from_utf8_lossy(key).into_owned();
                        match m.payload() {
                            Some(v) => {
                                latest.insert(key, v.to_vec());
                            }
                            None => {
                                latest.remove(&key);
                            }
                        }
                    }
                }
                Some(Ok(_)) => {} // left over from an earlier assignment
                Some(Err(KafkaError::PartitionEOF(p))) if p == partition => return Ok(()),
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => return Err(err(format!("reading {topic}: {e}"))),
                None => {}
            }
        }
    }
}
