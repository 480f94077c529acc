//! Fills the [`Speed`] layer from Kafka, with `read_committed` and without a consumer group
//! (nothing is committed: the state is rebuilt at every start):
//!
//! * `fjord.occupancy` (closed windows) from the records written at the batch high-water mark
//!   minus [`REPLAY_MARGIN`] on (`offsetsForTimes`; from the beginning while there is no batch
//!   high-water mark, or where the broker gives no offset for that time): windows the batch views
//!   cover are not needed;
//! * the compacted `fjord.occupancy-live` (current occupancy per lot) and `fjord.spaces-live` (each
//!   space's twin, published by the stream processor) from the beginning: one record per lot or
//!   space once compacted;
//! * `fjord.alerts` (each alert's latest change) from the beginning: alert changes are rare.
//!
//! `fjord.readings` is not read: the start time and memory of the serving layer do not grow with the
//! raw topic's retention.
//!
//! Runs on its own thread. The speed layer is ready once every partition has been read to the
//! high watermark it had when assigned (fetched once at start; afterwards only local positions are
//! compared, so the feed never stops to ask the broker while it reads).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fjord_core::config::Config;
use fjord_core::kafka::{QuietEof, Topics, consumer_config};
use fjord_core::model::{Alert, LiveRow, OccupancyWindow, SpaceRow};
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use tracing::{info, warn};

use super::Speed;
use crate::{Error, Result};

/// Starts the feed thread; it stops when `stop` is set.
pub fn spawn(
    cfg: &Config,
    speed: Arc<Speed>,
    stop: Arc<AtomicBool>,
    batch_hwm: Option<i64>,
) -> Result<std::thread::JoinHandle<()>> {
    let topics = Topics::new(&cfg.kafka);
    let sizes: Vec<i64> = cfg
        .stream
        .windows
        .iter()
        .map(|w| w.as_millis_i64())
        .collect();
    let consumer: BaseConsumer<QuietEof> = consumer_config(&cfg.kafka)
        .set("group.id", format!("fjord-serve-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .create_with_context(QuietEof)
        .map_err(|e| Error::Kafka(format!("cannot create the speed-layer consumer: {e}")))?;
    std::thread::Builder::new()
        .name("speed-feed".into())
        .spawn(move || {
            // (a time before 1970 would be an offset code to librdkafka: read everything then)
            let windows_from = batch_hwm
                .map(|h| {
                    let margin = i64::try_from(REPLAY_MARGIN.as_millis()).unwrap_or(i64::MAX);
                    let largest = sizes.iter().copied().max().unwrap_or(0);
                    h.saturating_sub(margin.saturating_add(largest))
                })
                .filter(|t| *t > 0);
            run(&consumer, &topics, &sizes, windows_from, &speed, &stop);
        })
        .map_err(|e| Error::Query(format!("cannot start the speed-layer thread: {e}")))
}

/// How far before the batch high-water mark `fjord.occupancy` is read (by record time): windows are
/// written after their end plus the allowed lateness on the wall clock, earlier only when device
/// clocks run ahead (at most `readings.max_ts_ahead`, 10 minutes by default); an hour covers that
/// and the largest usual window.
pub const REPLAY_MARGIN: Duration = Duration::from_secs(3600);

/// How often topics that did not exist at start are looked for.
const MISSING_CHECK: Duration = Duration::from_secs(5);

/// How often the positions are compared with the start ends while some are pending.
const READY_CHECK: Duration = Duration::from_millis(100);

fn run(
    consumer: &BaseConsumer<QuietEof>,
    topics: &Topics,
    sizes: &[i64],
    windows_from: Option<i64>,
    speed: &Speed,
    stop: &AtomicBool,
) {
    let names = [
        topics.occupancy.clone(),
        topics.live.clone(),
        topics.spaces_live.clone(),
        topics.alerts.clone(),
    ];
    // wait for the broker
    let (mut pending, mut missing) = loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match assign(consumer, &names, true, &topics.occupancy, windows_from) {
            Ok(p) => break p,
            Err(e) => {
                warn!(error = %e, "speed layer: waiting for Kafka");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    info!(
        partitions_to_read = pending.len(),
        missing_topics = ?missing,
        "speed layer: reading the topics"
    );
    let mut last_missing_check = std::time::Instant::now();
    let mut last_check = std::time::Instant::now();
    let mut check = |pending: &mut Ends, force: bool| {
        if speed.is_ready() {
            return;
        }
        if !pending.is_empty() {
            if !(force || last_check.elapsed() >= READY_CHECK) {
                return;
            }
            last_check = std::time::Instant::now();
            if let Ok(pos) = consumer.position() {
                caught_up(pending, &pos);
            }
        }
        if pending.is_empty() {
            info!(
                windows = speed.read(|s| s.window_count()),
                "speed layer caught up"
            );
            speed.set_ready();
        }
    };
    check(&mut pending, true);
    while !stop.load(Ordering::Relaxed) {
        if !missing.is_empty() && last_missing_check.elapsed() >= MISSING_CHECK {
            last_missing_check = std::time::Instant::now();
            match assign(consumer, &missing, false, &topics.occupancy, windows_from) {
                Ok((_, still)) => {
                    if still.len() < missing.len() {
                        info!(missing_topics = ?still, "speed layer: new topics assigned");
                    }
                    missing = still;
                }
                Err(e) => warn!(error = %e, "speed layer: cannot look for the missing topics"),
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => check(&mut pending, false),
            Some(Ok(m)) => {
                apply(topics, sizes, speed, &m);
                if !pending.is_empty() {
                    let key = (m.topic().to_owned(), m.partition());
                    let reached = pending.get(&key).is_some_and(|end| m.offset() + 1 >= *end);
                    if reached {
                        pending.remove(&key);
                    }
                    check(&mut pending, reached);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => check(&mut pending, true),
            Some(Err(e)) => warn!(error = %e, "speed layer: kafka error"),
        }
    }
}

/// The partitions still to read up to where they ended at start: (topic, partition) → high
/// watermark then.
type Ends = BTreeMap<(String, i32), i64>;

/// Drops from `pending` every partition whose position reached its start end (the position is
/// past control records too, which a transactional topic ends with).
fn caught_up(pending: &mut Ends, positions: &TopicPartitionList) {
    for e in positions.elements() {
        if let Offset::Offset(o) = e.offset() {
            let key = (e.topic().to_owned(), e.partition());
            if pending.get(&key).is_some_and(|end| o >= *end) {
                pending.remove(&key);
            }
        }
    }
}

/// Adds every partition of the existing topics among `names` to the assignment (`first`: the
/// consumer has none yet), from the beginning, except those of `windows` when `windows_from` is
/// given: from the first record written at or after it. Returns the partitions with something to
/// read, with their high watermarks, and the topics that do not exist (yet): an older stream
/// processor may not create `spaces-live`; such a topic is empty for readiness and assigned once it
/// appears.
fn assign(
    consumer: &BaseConsumer<QuietEof>,
    names: &[String],
    first: bool,
    windows: &str,
    windows_from: Option<i64>,
) -> Result<(Ends, Vec<String>)> {
    let mut tpl = TopicPartitionList::new();
    let mut ends = Ends::new();
    let mut missing = Vec::new();
    for name in names {
        let name = name.as_str();
        let md = consumer
            .fetch_metadata(Some(name), Duration::from_secs(5))
            .map_err(|e| Error::Kafka(format!("metadata of {name}: {e}")))?;
        let parts: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == name && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if parts.is_empty() {
            missing.push(name.to_owned());
            continue;
        }
        let starts = match windows_from {
            Some(t) if name == windows => starts_at(consumer, name, &parts, t),
            _ => BTreeMap::new(),
        };
        for p in parts {
            let (low, high) = consumer
                .fetch_watermarks(name, p, Duration::from_secs(5))
                .map_err(|e| Error::Kafka(format!("watermarks of {name} [{p}]: {e}")))?;
            let (offset, from) = match starts.get(&p) {
                Some(&o) if o >= low => (Offset::Offset(o), o),
                _ => (Offset::Beginning, low),
            };
            tpl.add_partition_offset(name, p, offset)
                .map_err(|e| Error::Kafka(e.to_string()))?;
            if high > from {
                ends.insert((name.to_owned(), p), high);
            }
        }
    }
    if first {
        consumer.assign(&tpl)
    } else {
        consumer.incremental_assign(&tpl)
    }
    .map_err(|e| Error::Kafka(format!("assign: {e}")))?;
    Ok((ends, missing))
}

/// The first offset of each partition of `topic` written at or after `ts_ms`, where the broker
/// says. Partitions it has no answer for are read from the beginning by the caller: librdkafka's
/// mock cluster answers every lookup by time with "none" (−1), which a real broker says only when
/// every record is older, so "none" cannot be trusted to skip a partition.
fn starts_at(
    consumer: &BaseConsumer<QuietEof>,
    topic: &str,
    parts: &[i32],
    ts_ms: i64,
) -> BTreeMap<i32, i64> {
    let mut q = TopicPartitionList::new();
    for &p in parts {
        if q.add_partition_offset(topic, p, Offset::Offset(ts_ms))
            .is_err()
        {
            return BTreeMap::new();
        }
    }
    match consumer.offsets_for_times(q, Duration::from_secs(5)) {
        Ok(got) => got
            .elements()
            .iter()
            .filter(|e| e.error().is_ok())
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect(),
        Err(e) => {
            warn!(error = %e, topic, "cannot look up offsets by time: reading windows from the beginning");
            BTreeMap::new()
        }
    }
}

/// Applies one record; records that do not decode are skipped (they are the stream processor's
/// own output, so none is expected), and so are windows of a size that is not configured (no table
/// would show them).
fn apply(topics: &Topics, sizes: &[i64], speed: &Speed, m: &BorrowedMessage<'_>) {
    let payload = m.payload().unwrap_or_default();
    let topic = m.topic();
    if topic == topics.occupancy {
        if let Ok(w) = serde_json::from_slice::<OccupancyWindow>(payload)
            && sizes.contains(&(w.window_end - w.window_start))
        {
            speed.write(|s| s.add_window(w));
        }
    } else if topic == topics.live {
        if let Ok(row) = serde_json::from_slice::<LiveRow>(payload) {
            speed.write(|s| s.set_live(row));
        }
    } else if topic == topics.spaces_live {
        if let Ok(row) = serde_json::from_slice::<SpaceRow>(payload) {
            speed.write(|s| s.set_space(row));
        }
    } else if topic == topics.alerts
        && let Ok(a) = serde_json::from_slice::<Alert>(payload)
    {
        speed.write(|s| s.set_alert(a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_caught_up_once_its_position_reaches_its_start_end() {
        let mut pending: Ends = [(("a".to_owned(), 0), 10), (("a".to_owned(), 1), 5)].into();
        let mut pos = TopicPartitionList::new();
        pos.add_partition_offset("a", 0, Offset::Offset(9)).unwrap();
        pos.add_partition_offset("a", 1, Offset::Offset(7)).unwrap();
        caught_up(&mut pending, &pos);
        assert_eq!(pending.len(), 1, "partition 1 is past its end, 0 is not");
        let mut pos = TopicPartitionList::new();
        pos.add_partition_offset("a", 0, Offset::Offset(10))
            .unwrap();
        pos.add_partition_offset("b", 0, Offset::Invalid).unwrap();
        caught_up(&mut pending, &pos);
        assert!(pending.is_empty());
    }
}
