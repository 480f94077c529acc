//! `[alerts]`: the built-in rules of docs/contract.md §5 with their thresholds, user rules
//! (`[[alerts.rules]]`), webhooks (`[[alerts.webhooks]]`) and how they are delivered
//! (`[alerts.delivery]`).
//!
//! User rule expressions are compiled here, at load time, so `fjord config check` and every
//! command refuse a bad expression at start with its position.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::expr::{Expr, Type};
use crate::model::Severity;

type Problems = Vec<(String, String)>;

/// Names of the built-in rules; user rules may not take them.
pub const BUILTIN_RULES: [&str; 5] = [
    "lot_full",
    "lot_full_predicted",
    "sensor_silent",
    "battery_low",
    "gateway_offline",
];

/// Columns a `on = "reading"` rule can use: the reading, its lot from the registry and the lot's
/// instantaneous occupancy after the reading.
pub const READING_COLUMNS: &[(&str, Type)] = &[
    ("lot_id", Type::Text),
    ("space_id", Type::Text),
    ("occupied", Type::Bool),
    ("battery", Type::Int),
    ("ts_source", Type::Text),
    ("zone", Type::Text),
    ("lot_name", Type::Text),
    ("capacity", Type::Int),
    ("occupied_spaces", Type::Int),
    ("occupancy_ratio", Type::Float),
    ("hour_utc", Type::Int),
];

/// Columns of [`READING_COLUMNS`] that describe one space: a rule using any of them is evaluated
/// per space (unless `per` says otherwise), other reading rules per lot.
pub const SPACE_COLUMNS: &[&str] = &["space_id", "occupied", "battery", "ts_source"];

/// Columns a `on = "window"` rule can use: the closed window (docs/contract.md §4.1) and its lot.
pub const WINDOW_COLUMNS: &[(&str, Type)] = &[
    ("lot_id", Type::Text),
    ("zone", Type::Text),
    ("lot_name", Type::Text),
    ("capacity", Type::Int),
    ("occupied_avg", Type::Float),
    ("occupancy_ratio", Type::Float),
    ("occupied_end", Type::Int),
    ("arrivals", Type::Int),
    ("departures", Type::Int),
    ("readings", Type::Int),
    ("window_minutes", Type::Int),
    ("hour_utc", Type::Int),
];

/// `[alerts]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// `lot_full`: a lot's instantaneous occupancy ratio.
    pub lot_full: LotFullRule,
    /// `sensor_silent`: a space that stopped reporting.
    pub sensor_silent: SensorSilentRule,
    /// `battery_low`: a sensor's battery.
    pub battery_low: BatteryLowRule,
    /// `gateway_offline`: a gateway's last will.
    pub gateway_offline: GatewayOfflineRule,
    /// `lot_full_predicted`: the lot's forecast reaches `lot_full.fire_at` within a horizon.
    pub lot_full_predicted: LotFullPredictedRule,
    /// User rules.
    pub rules: Vec<UserRule>,
    /// Where alert state changes are delivered.
    pub webhooks: Vec<Webhook>,
    /// How they are delivered.
    pub delivery: DeliveryConfig,
}

/// `[alerts.lot_full]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LotFullRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Fires when occupied / capacity reaches this.
    pub fire_at: f64,
    /// Resolves when it falls to this or below (hysteresis).
    pub resolve_at: f64,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Re-send a firing alert this often (event time); unset: once.
    pub repeat_every: Option<Duration>,
    /// Labels added to its alerts.
    pub labels: BTreeMap<String, String>,
}

impl Default for LotFullRule {
    fn default() -> Self {
        Self {
            enabled: true,
            fire_at: 0.90,
            resolve_at: 0.80,
            severity: Severity::Warning,
            repeat_every: None,
            labels: BTreeMap::new(),
        }
    }
}

/// `[alerts.sensor_silent]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorSilentRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Fires when the watermark is this far past a space's latest reading.
    pub after: Duration,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Re-send a firing alert this often (event time); unset: once.
    pub repeat_every: Option<Duration>,
    /// Labels added to its alerts.
    pub labels: BTreeMap<String, String>,
}

impl Default for SensorSilentRule {
    fn default() -> Self {
        Self {
            enabled: true,
            after: Duration::from_mins(30),
            severity: Severity::Warning,
            repeat_every: None,
            labels: BTreeMap::new(),
        }
    }
}

/// `[alerts.battery_low]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatteryLowRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Fires when a reading's battery is below this percentage.
    pub fire_below: u8,
    /// Resolves when a reading's battery is at least this (hysteresis).
    pub resolve_at: u8,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Re-send a firing alert this often (event time); unset: once.
    pub repeat_every: Option<Duration>,
    /// Labels added to its alerts.
    pub labels: BTreeMap<String, String>,
}

impl Default for BatteryLowRule {
    fn default() -> Self {
        Self {
            enabled: true,
            fire_below: 15,
            resolve_at: 20,
            severity: Severity::Info,
            repeat_every: None,
            labels: BTreeMap::new(),
        }
    }
}

/// `[alerts.gateway_offline]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayOfflineRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Re-send a firing alert this often (event time); unset: once.
    pub repeat_every: Option<Duration>,
    /// Labels added to its alerts.
    pub labels: BTreeMap<String, String>,
}

impl Default for GatewayOfflineRule {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::Critical,
            repeat_every: None,
            labels: BTreeMap::new(),
        }
    }
}

/// `[alerts.lot_full_predicted]`: fires when the lot's forecast (docs/contract.md §4.4) reaches
/// `lot_full.fire_at` within `horizon`, resolves when it stays below `lot_full.resolve_at` over it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LotFullPredictedRule {
    /// Whether the rule runs (it needs the forecast: `[forecast] enabled`).
    pub enabled: bool,
    /// How far ahead the forecast is looked at (at most 24h).
    pub horizon: Duration,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Re-send a firing alert this often (event time); unset: once.
    pub repeat_every: Option<Duration>,
    /// Labels added to its alerts.
    pub labels: BTreeMap<String, String>,
}

impl Default for LotFullPredictedRule {
    fn default() -> Self {
        Self {
            enabled: true,
            horizon: Duration::from_secs(30 * 60),
            severity: Severity::Info,
            repeat_every: None,
            labels: BTreeMap::new(),
        }
    }
}

/// What a user rule is evaluated on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleInput {
    /// Every reading (columns: [`READING_COLUMNS`]).
    #[default]
    Reading,
    /// Every closed occupancy window of one size (columns: [`WINDOW_COLUMNS`]).
    Window,
}

/// What one alert of a user rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleScope {
    /// One alert per lot.
    Lot,
    /// One alert per space (reading rules only).
    Space,
}

/// `[[alerts.rules]]`: a user rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRule {
    /// Rule name (`[a-z0-9_]`), the first part of its alert keys.
    pub name: String,
    /// A SQL boolean expression, e.g. `occupancy_ratio > 0.95 AND zone = 'centre'`.
    pub expr: String,
    /// `reading` (default) or `window`.
    #[serde(default)]
    pub on: RuleInput,
    /// For `on = "window"`: the window size (default: the smallest of `stream.windows`).
    #[serde(default)]
    pub window: Option<Duration>,
    /// `lot` or `space`; default: `space` when the expression uses a column of one space
    /// (`space_id`, `occupied`, `battery`, `ts_source`), else `lot`.
    #[serde(default)]
    pub per: Option<RuleScope>,
    /// The expression must hold this long (event time) before the alert fires.
    #[serde(default, rename = "for")]
    pub for_: Option<Duration>,
    /// Severity of its alerts.
    #[serde(default)]
    pub severity: Severity,
    /// Re-send a firing alert this often (event time); unset: once.
    #[serde(default)]
    pub repeat_every: Option<Duration>,
    /// Labels added to its alerts.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl UserRule {
    /// The columns its expression can use.
    pub fn columns(&self) -> &'static [(&'static str, Type)] {
        match self.on {
            RuleInput::Reading => READING_COLUMNS,
            RuleInput::Window => WINDOW_COLUMNS,
        }
    }

    /// The compiled expression.
    pub fn compile(&self) -> Result<Expr, crate::expr::ExprError> {
        Expr::compile(&self.expr, self.columns())
    }

    /// Whether one alert is kept per space (else per lot).
    pub fn per_space(&self, expr: &Expr) -> bool {
        match (self.on, self.per) {
            (RuleInput::Window, _) => false,
            (RuleInput::Reading, Some(scope)) => scope == RuleScope::Space,
            (RuleInput::Reading, None) => expr
                .columns_used()
                .iter()
                .any(|&i| SPACE_COLUMNS.contains(&READING_COLUMNS[i].0)),
        }
    }
}

/// `[[alerts.webhooks]]`: an HTTP endpoint that receives alert state changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Name (`[A-Za-z0-9_-]`), used in metrics, logs and the delivery consumer group.
    pub name: String,
    /// `http://` or `https://` URL that receives a POST per state change.
    pub url: String,
    /// Secret of the `X-Fjord-Signature` HMAC.
    pub secret: String,
    /// Only these rules (empty: every rule).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Per request.
    #[serde(default = "default_webhook_timeout")]
    pub timeout: Duration,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `[alerts.delivery]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Prefix of the consumer groups; each webhook reads `fjord.alerts` in group `<prefix>-<name>`.
    pub group_id: String,
    /// First retry delay; doubled on each failure, with jitter.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Alert records read ahead per webhook; reading pauses while this many are undelivered.
    pub max_in_flight: u32,
    /// Where `fjord stream --only-deliver` serves /metrics (`fjord stream` uses `stream.metrics_listen`).
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            group_id: "fjord-webhooks".into(),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_in_flight: 1000,
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9467))),
        }
    }
}

fn valid_name(name: &str, extra: &[char]) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || extra.contains(&c))
}

impl AlertsConfig {
    /// `windows_ms`: the configured stream windows, which window rules must use.
    pub(crate) fn validate(&self, windows: &[Duration], p: &mut Problems) {
        let lf = &self.lot_full;
        if !(lf.fire_at > 0.0 && lf.fire_at <= 10.0) {
            p.push((
                "alerts.lot_full.fire_at".into(),
                format!("must be a ratio above 0, got {}", lf.fire_at),
            ));
        }
        if !(lf.resolve_at >= 0.0 && lf.resolve_at < lf.fire_at) {
            p.push((
                "alerts.lot_full.resolve_at".into(),
                format!(
                    "must be at least 0 and below fire_at ({}), got {}",
                    lf.fire_at, lf.resolve_at
                ),
            ));
        }
        if self.sensor_silent.after.is_zero() {
            p.push((
                "alerts.sensor_silent.after".into(),
                "must be longer than 0s".into(),
            ));
        }
        let bl = &self.battery_low;
        if bl.fire_below > 100 {
            p.push((
                "alerts.battery_low.fire_below".into(),
                format!("a battery is 0–100 %, got {}", bl.fire_below),
            ));
        }
        if bl.resolve_at < bl.fire_below || bl.resolve_at > 100 {
            p.push((
                "alerts.battery_low.resolve_at".into(),
                format!(
                    "must be between fire_below ({}) and 100, got {}",
                    bl.fire_below, bl.resolve_at
                ),
            ));
        }
        let repeats = [
            ("alerts.lot_full.repeat_every", lf.repeat_every),
            (
                "alerts.sensor_silent.repeat_every",
                self.sensor_silent.repeat_every,
            ),
            ("alerts.battery_low.repeat_every", bl.repeat_every),
            (
                "alerts.gateway_offline.repeat_every",
                self.gateway_offline.repeat_every,
            ),
            (
                "alerts.lot_full_predicted.repeat_every",
                self.lot_full_predicted.repeat_every,
            ),
        ];
        let horizon = self.lot_full_predicted.horizon;
        if horizon.is_zero() || horizon.as_millis_i64() > 86_400_000 {
            p.push((
                "alerts.lot_full_predicted.horizon".into(),
                format!(
                    "must be longer than 0s and at most 24h (the forecast's reach), got {horizon}"
                ),
            ));
        }
        for (key, every) in repeats {
            if every.is_some_and(Duration::is_zero) {
                p.push((key.into(), "must be longer than 0s".into()));
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("alerts.rules[{i}]");
            if !valid_name(&rule.name, &[]) {
                p.push((
                    format!("{at}.name"),
                    format!("a rule name is 1–64 of [a-z0-9_], got {:?}", rule.name),
                ));
            } else if BUILTIN_RULES.contains(&rule.name.as_str()) {
                p.push((
                    format!("{at}.name"),
                    format!(
                        "{:?} is a built-in rule; configure it under [alerts.{}]",
                        rule.name, rule.name
                    ),
                ));
            } else if self.rules[..i].iter().any(|r| r.name == rule.name) {
                p.push((
                    format!("{at}.name"),
                    format!("rule {:?} is defined twice", rule.name),
                ));
            }
            if let Err(e) = rule.compile() {
                p.push((format!("{at}.expr"), format!("{e}: {}", rule.expr)));
            }
            if rule.on == RuleInput::Window && rule.per == Some(RuleScope::Space) {
                p.push((
                    format!("{at}.per"),
                    "a window rule is about a lot; per = \"space\" needs on = \"reading\"".into(),
                ));
            }
            match (rule.on, rule.window) {
                (RuleInput::Reading, Some(_)) => p.push((
                    format!("{at}.window"),
                    "only a rule with on = \"window\" has a window".into(),
                )),
                (RuleInput::Window, Some(w)) if !windows.contains(&w) => p.push((
                    format!("{at}.window"),
                    format!(
                        "{w} is not one of stream.windows ({})",
                        windows
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
                _ => {}
            }
            if rule.for_.is_some_and(Duration::is_zero) {
                p.push((
                    format!("{at}.for"),
                    "must be longer than 0s (or left out)".into(),
                ));
            }
            if rule.repeat_every.is_some_and(Duration::is_zero) {
                p.push((
                    format!("{at}.repeat_every"),
                    "must be longer than 0s".into(),
                ));
            }
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            let at = format!("alerts.webhooks[{i}]");
            if !valid_name(&w.name, &['-']) {
                p.push((
                    format!("{at}.name"),
                    format!("a webhook name is 1–64 of [a-z0-9_-], got {:?}", w.name),
                ));
            } else if self.webhooks[..i].iter().any(|o| o.name == w.name) {
                p.push((
                    format!("{at}.name"),
                    format!("webhook {:?} is defined twice", w.name),
                ));
            }
            let scheme_ok = w.url.starts_with("http://") || w.url.starts_with("https://");
            if !scheme_ok || w.url.len() < "http://x".len() {
                p.push((
                    format!("{at}.url"),
                    format!("must be an http:// or https:// URL, got {:?}", w.url),
                ));
            }
            if w.secret.len() < 8 {
                p.push((
                    format!("{at}.secret"),
                    "must be at least 8 characters (it signs every delivery)".into(),
                ));
            }
            for r in &w.rules {
                if !BUILTIN_RULES.contains(&r.as_str()) && !self.rules.iter().any(|u| &u.name == r)
                {
                    p.push((format!("{at}.rules"), format!("no rule is named {r:?}")));
                }
            }
            if w.timeout.is_zero() {
                p.push((format!("{at}.timeout"), "must be longer than 0s".into()));
            }
        }
        let d = &self.delivery;
        if d.group_id.is_empty() {
            p.push((
                "alerts.delivery.group_id".into(),
                "must not be empty".into(),
            ));
        }
        if d.initial_backoff.is_zero() || d.max_backoff < d.initial_backoff {
            p.push((
                "alerts.delivery.max_backoff".into(),
                format!(
                    "initial_backoff ({}) must be above 0s and at most max_backoff ({})",
                    d.initial_backoff, d.max_backoff
                ),
            ));
        }
        if d.max_in_flight == 0 {
            p.push((
                "alerts.delivery.max_in_flight".into(),
                "must be at least 1".into(),
            ));
        }
    }
}
