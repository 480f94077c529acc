//! An alert state change (docs/contract.md §5): the value of a `fjord.alerts` record, the body of a webhook
//! delivery and a row of the `alerts` table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::TimestampMs;

/// The state an alert moved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The condition holds (after its `for` duration, if any).
    Firing,
    /// The condition no longer holds.
    Resolved,
}

/// How urgent an alert is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Info,
    /// Needs attention soon.
    #[default]
    Warning,
    /// Needs attention now.
    Critical,
}

/// One alert state change, exactly the webhook body of docs/contract.md §5.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique id of this state change; also the `X-Fjord-Delivery` idempotency key.
    pub id: String,
    /// The alert's identity: rule plus lot/space/gateway, e.g. `lot_full/L1`.
    pub key: String,
    /// Rule name (`lot_full`, `sensor_silent`, `battery_low`, `gateway_offline` or a user rule).
    pub rule: String,
    /// The state the alert moved to.
    pub status: AlertStatus,
    /// Severity configured for the rule.
    pub severity: Severity,
    /// Lot concerned, if any.
    pub lot_id: Option<String>,
    /// Space concerned, if any.
    pub space_id: Option<String>,
    /// Gateway concerned, if any.
    pub gateway_id: Option<String>,
    /// The measured value that caused the change (e.g. the occupancy ratio).
    pub value: Option<f64>,
    /// The threshold it was compared with.
    pub threshold: Option<f64>,
    /// When the alert started firing, UTC epoch ms.
    #[serde(with = "crate::serde_ts")]
    pub started_at: TimestampMs,
    /// When it resolved, for `resolved` changes.
    #[serde(with = "crate::serde_ts::option")]
    pub resolved_at: Option<TimestampMs>,
    /// Event time of the input that caused the change.
    #[serde(with = "crate::serde_ts")]
    pub event_time: TimestampMs,
    /// Labels configured on the rule.
    pub labels: BTreeMap<String, String>,
}
