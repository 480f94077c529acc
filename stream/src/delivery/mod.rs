//! Webhook delivery of `fjord.alerts` (docs/contract.md §5): `fjord stream` runs it next to the processor,
//! `fjord stream --only-deliver` alone.
//!
//! Each webhook has its own consumer group (`<alerts.delivery.group_id>-<name>`) reading
//! `fjord.alerts` with read_committed, so one slow or dead endpoint holds back nobody else. Per
//! webhook, changes of one alert key are delivered one at a time in record order while other keys
//! go ahead ([`queue`]); a partition's offset is committed only up to its first record not yet
//! settled, so a restart resumes where delivery stopped and at worst repeats a delivery — with
//! the same `X-Fjord-Delivery` id.
//!
//! * 2xx: delivered.
//! * Connection error, timeout, 408, 429, 5xx: retried with exponential backoff and jitter
//!   ([`backoff`]), indefinitely (at-least-once), while other keys go on.
//! * Any other status, redirects included (they are not followed: that would re-post the signed
//!   body to another address): the alert goes to `fjord.dlq` with the status and the start of the answer
//!   (headers `fjord-error`, `fjord-webhook`, `fjord-http-status`); later changes still go out.

pub mod backoff;
pub mod queue;
pub mod sign;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fjord_core::config::{Config, Webhook};
use fjord_core::kafka::{self, HEADER_ERROR, Topics};
use fjord_core::time::now_ms;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use self::backoff::Backoff;
use self::queue::{Admit, Item, Queues};
use crate::metrics::DeliveryMetrics;
use crate::output::HEADER_ERROR_REASON;
use crate::{Error, Result};

/// Header of dead-lettered deliveries: the webhook's name.
pub const HEADER_WEBHOOK: &str = "fjord-webhook";
/// Header of dead-lettered deliveries: the HTTP status the webhook answered.
pub const HEADER_HTTP_STATUS: &str = "fjord-http-status";

/// How often settled offsets are committed.
const COMMIT_EVERY: Duration = Duration::from_millis(500);

/// Totals of one webhook's run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Webhook name.
    pub webhook: String,
    /// Answered 2xx.
    pub delivered: u64,
    /// Refused with a 4xx and dead-lettered.
    pub dead_lettered: u64,
    /// Attempts that failed and were retried.
    pub retries: u64,
}

/// The part of a `fjord.alerts` value the dispatcher reads.
#[derive(Deserialize)]
struct Head {
    id: String,
    key: String,
    rule: String,
}

/// One webhook's fixed context, shared by its deliveries.
struct Hook {
    webhook: Webhook,
    client: reqwest::Client,
    backoff: Backoff,
    producer: FutureProducer,
    dlq: String,
    metrics: DeliveryMetrics,
}

/// How one delivery ended.
enum Outcome {
    Delivered { attempts: u32 },
    DeadLettered { attempts: u32 },
}

/// Delivers to every configured webhook until `shutdown` turns true. Returns at once with no
/// webhooks.
pub async fn run(
    config: &Config,
    metrics: DeliveryMetrics,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<Summary>> {
    let topics = Topics::new(&config.kafka);
    let mut tasks = Vec::new();
    for webhook in &config.alerts.webhooks {
        let hook = hook(config, &topics, webhook, metrics.clone())?;
        let consumer = consumer(config, webhook, &topics.alerts)?;
        let max_in_flight = config.alerts.delivery.max_in_flight as usize;
        info!(webhook = %webhook.name, url = %webhook.url, rules = ?webhook.rules, "webhook delivery starting");
        tasks.push(tokio::spawn(deliver_webhook(
            Arc::new(hook),
            consumer,
            max_in_flight,
            shutdown.clone(),
        )));
    }
    let mut summaries = Vec::new();
    for t in tasks {
        summaries.push(
            t.await
                .map_err(|e| Error::Kafka(format!("delivery task: {e}")))??,
        );
    }
    Ok(summaries)
}

fn hook(
    config: &Config,
    topics: &Topics,
    webhook: &Webhook,
    metrics: DeliveryMetrics,
) -> Result<Hook> {
    let client = reqwest::Client::builder()
        .timeout(webhook.timeout.std())
        .user_agent(concat!("fjord/", env!("CARGO_PKG_VERSION")))
        // a redirect would re-post the signed body elsewhere: a 3xx is an answer like a 4xx
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Config(format!("webhook {}: {e}", webhook.name)))?;
    let producer: FutureProducer = kafka::client_config(&config.kafka)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .map_err(|e| Error::Kafka(format!("cannot create the dead-letter producer: {e}")))?;
    let d = &config.alerts.delivery;
    Ok(Hook {
        webhook: webhook.clone(),
        client,
        backoff: Backoff {
            initial: d.initial_backoff.std(),
            max: d.max_backoff.std(),
        },
        producer,
        dlq: topics.dlq.clone(),
        metrics,
    })
}

fn consumer(config: &Config, webhook: &Webhook, topic: &str) -> Result<StreamConsumer> {
    let group = format!("{}-{}", config.alerts.delivery.group_id, webhook.name);
    let consumer: StreamConsumer = kafka::consumer_config(&config.kafka)
        .set("group.id", &group)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // a crashed dispatcher's partitions go to its successor after this
        .set(
            "session.timeout.ms",
            config.stream.session_timeout.std().as_millis().to_string(),
        )
        .create()
        .map_err(|e| Error::Kafka(format!("cannot create the consumer of {group}: {e}")))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| Error::Kafka(format!("cannot subscribe to {topic}: {e}")))?;
    Ok(consumer)
}

async fn deliver_webhook(
    hook: Arc<Hook>,
    consumer: StreamConsumer,
    max_in_flight: usize,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Summary> {
    let name = hook.webhook.name.clone();
    let mut summary = Summary {
        webhook: name.clone(),
        ..Summary::default()
    };
    let mut queues = Queues::default();
    let mut running = FuturesUnordered::new();
    let mut tick = tokio::time::interval(COMMIT_EVERY);
    let mut committed: Vec<(i32, i64)> = Vec::new();
    let topic = consumer
        .subscription()
        .ok()
        .and_then(|s| s.elements().first().map(|e| e.topic().to_owned()))
        .unwrap_or_default();
    let count = |outcome: &str| {
        hook.metrics
            .deliveries
            .with_label_values(&[&name, outcome])
            .inc();
    };
    loop {
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            Some((item, outcome)) = running.next(), if !running.is_empty() => {
                match outcome {
                    Outcome::Delivered { attempts } => {
                        summary.delivered += 1;
                        summary.retries += u64::from(attempts - 1);
                        count("delivered");
                    }
                    Outcome::DeadLettered { attempts, .. } => {
                        summary.dead_lettered += 1;
                        summary.retries += u64::from(attempts - 1);
                        count("dead_letter");
                    }
                }
                if let Some(next) = queues.settle(&item) {
                    running.push(deliver(hook.clone(), next));
                }
                hook.metrics.in_flight.with_label_values(&[&name]).set(queues.len() as i64);
            }
            received = consumer.recv(), if queues.len() < max_in_flight => {
                let m = match received {
                    Ok(m) => m,
                    Err(e) => {
                        warn!(webhook = %name, error = %e, "reading fjord.alerts failed; retrying");
                        continue;
                    }
                };
                let (partition, offset) = (m.partition(), m.offset());
                let body = m.payload().unwrap_or_default();
                let head: Head = match serde_json::from_slice(body) {
                    Ok(h) => h,
                    Err(e) => {
                        warn!(webhook = %name, partition, offset, error = %e, "not an alert record; skipped");
                        count("invalid");
                        queues.skip(partition, offset);
                        continue;
                    }
                };
                if !hook.webhook.rules.is_empty() && !hook.webhook.rules.contains(&head.rule) {
                    count("filtered");
                    queues.skip(partition, offset);
                    continue;
                }
                let item = Item {
                    partition,
                    offset,
                    key: head.key,
                    id: head.id,
                    body: body.to_vec(),
                    produced_at: m.timestamp().to_millis().unwrap_or_else(now_ms),
                };
                match queues.admit(item) {
                    Admit::Start(item) => running.push(deliver(hook.clone(), item)),
                    Admit::Queued => {}
                    Admit::Duplicate => count("duplicate"),
                }
                hook.metrics.in_flight.with_label_values(&[&name]).set(queues.len() as i64);
            }
            _ = tick.tick() => {
                commit(&consumer, &topic, &queues, &mut committed, CommitMode::Async);
            }
        }
    }
    // deliveries still running are dropped: their offsets were not committed, so the next run
    // sends them again (same X-Fjord-Delivery)
    commit(&consumer, &topic, &queues, &mut committed, CommitMode::Sync);
    info!(webhook = %name, delivered = summary.delivered, dead_lettered = summary.dead_lettered, retries = summary.retries, unsettled = queues.len(), "webhook delivery stopped");
    Ok(summary)
}

fn commit(
    consumer: &StreamConsumer,
    topic: &str,
    queues: &Queues,
    committed: &mut Vec<(i32, i64)>,
    mode: CommitMode,
) {
    let now = queues.committable();
    if now == *committed || now.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for &(p, o) in &now {
        if tpl
            .add_partition_offset(topic, p, Offset::Offset(o))
            .is_err()
        {
            return;
        }
    }
    match consumer.commit(&tpl, mode) {
        Ok(()) => *committed = now,
        Err(e) => warn!(error = %e, "committing delivery offsets failed; will retry"),
    }
}

/// Whether an HTTP status is worth retrying (docs/contract.md §5).
pub fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}

async fn deliver(hook: Arc<Hook>, item: Item) -> (Item, Outcome) {
    let name = &hook.webhook.name;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let ts = u64::try_from(now_ms() / 1000).unwrap_or(0);
        let sent = hook
            .client
            .post(&hook.webhook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(sign::HEADER_DELIVERY, &item.id)
            .header(sign::HEADER_TIMESTAMP, ts.to_string())
            .header(
                sign::HEADER_SIGNATURE,
                sign::signature(&hook.webhook.secret, ts, &item.body),
            )
            .body(item.body.clone())
            .send()
            .await;
        let failure = match sent {
            Ok(resp) if resp.status().is_success() => {
                let latency = (now_ms() - item.produced_at).max(0) as f64 / 1000.0;
                hook.metrics
                    .latency_seconds
                    .with_label_values(&[name])
                    .observe(latency);
                debug!(webhook = %name, key = %item.key, id = %item.id, attempt, "delivered");
                return (item, Outcome::Delivered { attempts: attempt });
            }
            Ok(resp) if !retryable(resp.status().as_u16()) => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                dead_letter(&hook, &item, status, &text).await;
                return (item, Outcome::DeadLettered { attempts: attempt });
            }
            Ok(resp) => format!("answered {}", resp.status()),
            Err(e) if e.is_timeout() => format!("timed out after {}", hook.webhook.timeout),
            Err(e) => format!("cannot connect ({e})"),
        };
        hook.metrics
            .deliveries
            .with_label_values(&[name, "retried"])
            .inc();
        let delay = hook.backoff.delay(attempt - 1, rand::random::<f64>());
        warn!(webhook = %name, key = %item.key, id = %item.id, attempt, %failure, retry_in = ?delay, "delivery failed; will retry");
        let gauge = hook.metrics.retry_queue.with_label_values(&[name]);
        gauge.inc();
        tokio::time::sleep(delay).await;
        gauge.dec();
    }
}

/// Writes a refused delivery to the dead-letter topic; keeps trying until Kafka takes it (the
/// offset is not committed before, so nothing is lost if this process dies meanwhile).
async fn dead_letter(hook: &Hook, item: &Item, status: u16, answer: &str) {
    let name = &hook.webhook.name;
    let answer: String = answer.chars().take(200).collect();
    let error = format!("webhook {name} answered HTTP {status}: {answer}");
    warn!(webhook = %name, key = %item.key, id = %item.id, status, "delivery refused; dead-lettered");
    let status_text = status.to_string();
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: HEADER_ERROR,
                value: Some(&error),
            })
            .insert(Header {
                key: HEADER_ERROR_REASON,
                value: Some("webhook_rejected"),
            })
            .insert(Header {
                key: HEADER_WEBHOOK,
                value: Some(name.as_str()),
            })
            .insert(Header {
                key: HEADER_HTTP_STATUS,
                value: Some(&status_text),
            });
        let record = FutureRecord::to(&hook.dlq)
            .key(item.key.as_bytes())
            .payload(&item.body)
            .headers(headers);
        match hook.producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => return,
            Err((e, _)) => {
                let delay = hook.backoff.delay(attempt, rand::random::<f64>());
                attempt += 1;
                warn!(webhook = %name, error = %e, waited = ?started.elapsed(), "cannot write the dead letter; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::retryable;

    #[test]
    fn retries_exactly_what_the_spec_lists() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(retryable(s), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 410, 422, 301] {
            assert!(!retryable(s), "{s}");
        }
    }
}
