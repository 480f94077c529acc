//! Reading a partition's checkpoint back from the compacted `stream-state` topic: every record of
//! the changelog partition up to its end, the latest value per key.
//!
//! The end is the partition-EOF event, not the high watermark from a ListOffsets request: tansu 0.6
//! answers ListOffsets with the base offset of the last batch plus one, which would miss the last
//! checkpoint written.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fjord_core::kafka::QuietEof;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::{Error, Result};

/// The latest value of every key in partition `partition` of `topic`.
pub fn read_changelog(
    base: &ClientConfig,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let err = |reason: String| Error::Checkpoint { partition, reason };
    let consumer: BaseConsumer<QuietEof> = base
        .clone()
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("group.id", "fjord-stream-restore")
        .create_with_context(QuietEof)
        .map_err(|e| err(format!("cannot create a consumer: {e}")))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .map_err(|e| err(e.to_string()))?;
    consumer.assign(&tpl).map_err(|e| err(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let mut latest = BTreeMap::new();
    loop {
        if Instant::now() > deadline {
            return Err(err(format!(
                "did not reach the end of {topic} within {timeout:?} ({} keys read)",
                latest.len()
            )));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
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
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => return Ok(latest),
            Some(Err(e)) => return Err(err(format!("reading {topic}: {e}"))),
            None => {}
        }
    }
}
