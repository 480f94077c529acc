//! Fills the [`Speed`] layer from Kafka: `fjord.occupancy` (closed windows), the compacted
//! `fjord.occupancy-live` (current occupancy per lot), `fjord.alerts` (each alert's latest change)
//! and `fjord.readings` (the spaces' twins), all
//! read from the beginning with `read_committed`, without a consumer group (nothing is committed:
//! the state is rebuilt at every start). Runs on its own thread; the speed layer is ready once every
//! partition has been read to the end it had when assigned.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fjord_core::config::Config;
use fjord_core::decode::DecodeOptions;
use fjord_core::decode::record::{ReadingsTopics, decode_record};
use fjord_core::kafka::{QuietEof, Topics, client_config, record_headers};
use fjord_core::model::{Alert, LiveRow, OccupancyWindow};
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use tracing::{info, warn};

use super::Speed;
use crate::{Error, Result};

/// What the feed decodes records with.
struct Decoders {
    topics: Topics,
    readings: ReadingsTopics,
    opts: DecodeOptions,
}

/// Starts the feed thread; it stops when `stop` is set.
pub fn spawn(
    cfg: &Config,
    speed: Arc<Speed>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let topics = Topics::new(&cfg.kafka);
    let decoders = Decoders {
        readings: ReadingsTopics::new(&cfg.mapping)
            .map_err(|e| Error::Query(format!("mapping: {e}")))?,
        opts: cfg.readings.decode_options(),
        topics,
    };
    let consumer: BaseConsumer<QuietEof> = client_config(&cfg.kafka)
        .set("group.id", format!("fjord-serve-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .create_with_context(QuietEof)
        .map_err(|e| Error::Kafka(format!("cannot create the speed-layer consumer: {e}")))?;
    std::thread::Builder::new()
        .name("speed-feed".into())
        .spawn(move || run(&consumer, &decoders, &speed, &stop))
        .map_err(|e| Error::Query(format!("cannot start the speed-layer thread: {e}")))
}

fn run(consumer: &BaseConsumer<QuietEof>, d: &Decoders, speed: &Speed, stop: &AtomicBool) {
    let names = [
        d.topics.occupancy.as_str(),
        d.topics.live.as_str(),
        d.topics.alerts.as_str(),
        d.topics.readings.as_str(),
    ];
    // wait for the topics (the stream processor or the bridge may create them after us)
    let mut pending: BTreeSet<(String, i32)> = loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match assign(consumer, &names) {
            Ok(p) => break p,
            Err(e) => {
                warn!(error = %e, "speed layer: waiting for the Kafka topics");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    info!(
        partitions = pending.len(),
        "speed layer: reading the topics"
    );
    if pending.is_empty() {
        speed.set_ready();
    }
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => apply(d, speed, &m),
            Some(Err(KafkaError::PartitionEOF(p))) if !pending.is_empty() => {
                pending.retain(|(_, q)| *q != p || !eof_of(consumer, p));
                if pending.is_empty() {
                    info!(
                        windows = speed.read(|s| s.window_count()),
                        "speed layer caught up"
                    );
                    speed.set_ready();
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => warn!(error = %e, "speed layer: kafka error"),
        }
    }
}

/// Whether every assigned partition numbered `p` is at its end (the EOF notice carries only the
/// partition number, so it is checked against each topic's position and high watermark).
fn eof_of(consumer: &BaseConsumer<QuietEof>, p: i32) -> bool {
    let Ok(pos) = consumer.position() else {
        return false;
    };
    pos.elements()
        .iter()
        .filter(|e| e.partition() == p)
        .all(|e| {
            let Ok((_, high)) = consumer.fetch_watermarks(e.topic(), p, Duration::from_secs(5))
            else {
                return false;
            };
            match e.offset() {
                Offset::Offset(o) => o >= high,
                _ => high == 0,
            }
        })
}

/// Assigns every partition of `names` from the beginning.
fn assign(consumer: &BaseConsumer<QuietEof>, names: &[&str]) -> Result<BTreeSet<(String, i32)>> {
    let mut tpl = TopicPartitionList::new();
    let mut all = BTreeSet::new();
    for name in names {
        let md = consumer
            .fetch_metadata(Some(name), Duration::from_secs(5))
            .map_err(|e| Error::Kafka(format!("metadata of {name}: {e}")))?;
        let parts: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == *name && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if parts.is_empty() {
            return Err(Error::Kafka(format!("topic {name} does not exist yet")));
        }
        for p in parts {
            tpl.add_partition_offset(name, p, Offset::Beginning)
                .map_err(|e| Error::Kafka(e.to_string()))?;
            all.insert(((*name).to_owned(), p));
        }
    }
    consumer
        .assign(&tpl)
        .map_err(|e| Error::Kafka(format!("assign: {e}")))?;
    Ok(all)
}

/// Applies one record; records that do not decode are skipped (the stream and batch layers
/// dead-letter and quarantine them).
fn apply(d: &Decoders, speed: &Speed, m: &BorrowedMessage<'_>) {
    let payload = m.payload().unwrap_or_default();
    let topic = m.topic();
    if topic == d.topics.occupancy {
        if let Ok(w) = serde_json::from_slice::<OccupancyWindow>(payload) {
            speed.write(|s| s.add_window(w));
        }
    } else if topic == d.topics.live {
        if let Ok(row) = serde_json::from_slice::<LiveRow>(payload) {
            speed.write(|s| s.set_live(row));
        }
    } else if topic == d.topics.alerts {
        if let Ok(a) = serde_json::from_slice::<Alert>(payload) {
            speed.write(|s| s.set_alert(a));
        }
    } else if topic == d.topics.readings {
        let headers = record_headers(m.headers());
        if let Ok(r) = decode_record(&d.readings, &headers, payload, &d.opts) {
            speed.write(|s| {
                s.observe(
                    &r.lot_id,
                    &r.space_id,
                    r.ts,
                    r.occupied,
                    r.battery.map(i16::from),
                );
            });
        }
    }
}
