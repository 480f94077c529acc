//! One alert's state machine: (absent) → pending → firing → resolved (absent again), with an
//! optional `for` duration before firing and an optional repeat while firing. Only `firing` and
//! `resolved` are state changes that leave the processor; `pending` is internal.
//!
//! Ids are a hash of (key, started_at, status, repeat number): a replay of the same input makes the
//! same ids, so a delivery repeated after a crash carries the same `X-Fjord-Delivery`.

use std::collections::BTreeMap;

use fjord_core::model::{Alert, AlertStatus};
use fjord_core::time::TimestampMs;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::rules::Common;

/// What an alert is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// The lot.
    pub lot_id: Option<String>,
    /// The space.
    pub space_id: Option<String>,
    /// The gateway.
    pub gateway_id: Option<String>,
}

impl Subject {
    /// A lot.
    pub fn lot(lot_id: &str) -> Self {
        Self {
            lot_id: Some(lot_id.to_owned()),
            ..Self::default()
        }
    }

    /// A space of a lot.
    pub fn space(lot_id: &str, space_id: &str) -> Self {
        Self {
            lot_id: Some(lot_id.to_owned()),
            space_id: Some(space_id.to_owned()),
            gateway_id: None,
        }
    }

    /// A gateway.
    pub fn gateway(gateway_id: &str) -> Self {
        Self {
            gateway_id: Some(gateway_id.to_owned()),
            ..Self::default()
        }
    }

    /// The alert key of `rule` about this subject: `rule/lot`, `rule/lot/space`, `rule/gateway`.
    pub fn key(&self, rule: &str) -> String {
        let mut key = rule.to_owned();
        for part in [&self.lot_id, &self.space_id, &self.gateway_id]
            .into_iter()
            .flatten()
        {
            key.push('/');
            key.push_str(part);
        }
        key
    }
}

/// An alert that is pending or firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Active {
    /// The rule.
    pub rule: String,
    /// What it is about.
    pub subject: Subject,
    /// Firing (else pending).
    pub firing: bool,
    /// Pending: since when the condition holds. Firing: when it started firing.
    pub since: TimestampMs,
    /// Event time of the latest `firing` record (for `repeat_every`).
    pub last_sent: TimestampMs,
    /// `firing` records sent for this alert so far.
    pub sent: u32,
    /// The value and threshold of the latest evaluation.
    pub value: Option<f64>,
    /// The threshold it was compared with.
    pub threshold: Option<f64>,
}

/// The active alerts of one lot or one gateway partition, by key.
pub type ActiveMap = BTreeMap<String, Active>;

/// The outcome of one evaluation of a condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Whether the fire condition holds.
    pub fire: bool,
    /// Whether the resolve condition holds (for hysteresis; `!fire` without it).
    pub resolve: bool,
    /// The measured value.
    pub value: Option<f64>,
    /// The fire threshold.
    pub fire_threshold: Option<f64>,
    /// The resolve threshold.
    pub resolve_threshold: Option<f64>,
}

impl Observation {
    /// A condition without hysteresis and without a number.
    pub fn holds(fire: bool) -> Self {
        Self {
            fire,
            resolve: !fire,
            value: None,
            fire_threshold: None,
            resolve_threshold: None,
        }
    }
}

/// Applies an observation at event time `at` to the alert `subject` of `rule`. `for_ms`: the time
/// the condition must hold before firing. Pushes the state changes to `out`.
///
/// `subject` is only built when there can be something to do: a condition that does not hold in a
/// scope with no active alert (the common case, on every reading) costs no allocation.
pub fn observe(
    active: &mut ActiveMap,
    rule: &Common,
    subject: impl FnOnce() -> Subject,
    obs: Observation,
    at: TimestampMs,
    for_ms: Option<i64>,
    out: &mut Vec<Alert>,
) {
    if !obs.fire && active.is_empty() {
        return;
    }
    let subject = subject();
    let key = subject.key(&rule.name);
    match active.get_mut(&key) {
        None if obs.fire => {
            let mut a = Active {
                rule: rule.name.clone(),
                subject,
                firing: false,
                since: at,
                last_sent: at,
                sent: 0,
                value: obs.value,
                threshold: obs.fire_threshold,
            };
            match for_ms {
                Some(f) if f > 0 => {}
                _ => fire(&key, &mut a, rule, at, out),
            }
            active.insert(key, a);
        }
        None => {}
        Some(a) if !a.firing => {
            if !obs.fire {
                // the condition did not hold long enough: nothing was ever sent
                active.remove(&key);
            } else {
                a.value = obs.value;
                let due = a.since.saturating_add(for_ms.unwrap_or(0));
                if at >= due {
                    fire(&key, a, rule, due, out);
                }
            }
        }
        Some(a) if obs.resolve => {
            a.value = obs.value;
            a.threshold = obs.resolve_threshold;
            out.push(build(&key, a, rule, AlertStatus::Resolved, at));
            active.remove(&key);
        }
        // firing and still not resolved: not re-sent (repeats are time-driven)
        Some(_) => {}
    }
}

/// Time-driven transitions at watermark `now`: pending alerts whose `for` has elapsed fire;
/// firing alerts with `repeat_every` are re-sent. `for_ms_of(rule)` gives a rule's `for`.
pub fn on_time(
    active: &mut ActiveMap,
    rules: &super::Rules,
    now: TimestampMs,
    for_ms_of: impl Fn(&str) -> Option<i64>,
    out: &mut Vec<Alert>,
) {
    for (key, a) in active.iter_mut() {
        let Some(rule) = rules.common(&a.rule) else {
            continue;
        };
        if !a.firing {
            let due = a.since.saturating_add(for_ms_of(&a.rule).unwrap_or(0));
            if now >= due {
                fire(key, a, rule, due, out);
            }
        } else if let Some(every) = rule.repeat_every_ms.filter(|e| *e > 0) {
            let due = a.last_sent.saturating_add(every);
            if now >= due {
                // one repeat however far the watermark jumped, at the latest period boundary
                let periods = (now - a.last_sent) / every;
                a.last_sent += periods * every;
                a.sent += 1;
                out.push(build(key, a, rule, AlertStatus::Firing, a.last_sent));
            }
        }
    }
}

/// The earliest watermark at which [`on_time`] has something to do.
pub fn next_due(
    active: &ActiveMap,
    rules: &super::Rules,
    for_ms_of: impl Fn(&str) -> Option<i64>,
) -> TimestampMs {
    active
        .values()
        .filter_map(|a| {
            if !a.firing {
                Some(a.since.saturating_add(for_ms_of(&a.rule).unwrap_or(0)))
            } else {
                let every = rules.common(&a.rule)?.repeat_every_ms?;
                Some(a.last_sent.saturating_add(every))
            }
        })
        .min()
        .unwrap_or(TimestampMs::MAX)
}

fn fire(key: &str, a: &mut Active, rule: &Common, at: TimestampMs, out: &mut Vec<Alert>) {
    a.firing = true;
    a.since = at;
    a.last_sent = at;
    a.sent = 1;
    out.push(build(key, a, rule, AlertStatus::Firing, at));
}

fn build(key: &str, a: &Active, rule: &Common, status: AlertStatus, at: TimestampMs) -> Alert {
    Alert {
        id: alert_id(key, a.since, status, a.sent),
        key: key.to_owned(),
        rule: rule.name.clone(),
        status,
        severity: rule.severity,
        lot_id: a.subject.lot_id.clone(),
        space_id: a.subject.space_id.clone(),
        gateway_id: a.subject.gateway_id.clone(),
        value: a.value,
        threshold: a.threshold,
        started_at: a.since,
        resolved_at: (status == AlertStatus::Resolved).then_some(at),
        event_time: at,
        labels: rule.labels.clone(),
    }
}

/// A deterministic id: 32 hex digits of SHA-256 over the alert's identity and this change.
pub fn alert_id(key: &str, started_at: TimestampMs, status: AlertStatus, n: u32) -> String {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update([0]);
    h.update(started_at.to_be_bytes());
    h.update([u8::from(status == AlertStatus::Resolved)]);
    h.update(n.to_be_bytes());
    hex::encode(&h.finalize()[..16])
}
