//! The rules as the processor uses them: `[alerts]` of the config with durations in
//! milliseconds and user expressions compiled.

use std::collections::BTreeMap;

use fjord_core::config::{AlertsConfig, RuleInput};
use fjord_core::expr::Expr;
use fjord_core::model::Severity;

/// What every rule has.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// Rule name, the first part of its alert keys.
    pub name: String,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Re-send a firing alert this often (event time), ms.
    pub repeat_every_ms: Option<i64>,
    /// Labels of its alerts.
    pub labels: BTreeMap<String, String>,
}

/// `lot_full`.
#[derive(Debug, Clone, PartialEq)]
pub struct LotFull {
    /// Name, severity, labels.
    pub common: Common,
    /// Fires at this ratio or above.
    pub fire_at: f64,
    /// Resolves at this ratio or below.
    pub resolve_at: f64,
}

/// `lot_full_predicted`: the forecast (docs/contract.md §4.4) against `lot_full`'s thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct LotFullPredicted {
    /// Name, severity, labels.
    pub common: Common,
    /// Fires when the forecast reaches this ratio within the horizon.
    pub fire_at: f64,
    /// Resolves when the forecast stays below this ratio over the horizon.
    pub resolve_at: f64,
    /// The horizon, ms.
    pub horizon_ms: i64,
    /// The profiles, kept up to date by whoever runs the processor (empty: the rule is quiet).
    pub profiles: fjord_core::forecast::SharedProfiles,
}

/// `sensor_silent`.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorSilent {
    /// Name, severity, labels.
    pub common: Common,
    /// Silence that fires, ms of event time.
    pub after_ms: i64,
}

/// `battery_low`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatteryLow {
    /// Name, severity, labels.
    pub common: Common,
    /// Fires below this percentage.
    pub fire_below: u8,
    /// Resolves at this percentage or above.
    pub resolve_at: u8,
}

/// A user rule.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRule {
    /// Name, severity, labels.
    pub common: Common,
    /// The condition.
    pub expr: Expr,
    /// Evaluated on readings or on windows.
    pub on: RuleInput,
    /// For window rules: the window size, ms.
    pub window_ms: i64,
    /// One alert per space (else per lot).
    pub per_space: bool,
    /// The condition must hold this long before the alert fires, ms.
    pub for_ms: Option<i64>,
}

/// Every enabled rule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rules {
    /// `lot_full`, when enabled.
    pub lot_full: Option<LotFull>,
    /// `lot_full_predicted`, when enabled.
    pub lot_full_predicted: Option<LotFullPredicted>,
    /// `sensor_silent`, when enabled.
    pub sensor_silent: Option<SensorSilent>,
    /// `battery_low`, when enabled.
    pub battery_low: Option<BatteryLow>,
    /// `gateway_offline`, when enabled.
    pub gateway_offline: Option<Common>,
    /// User rules, in config order.
    pub user: Vec<UserRule>,
}

fn ms(d: fjord_core::duration::Duration) -> i64 {
    d.as_millis_i64()
}

impl Rules {
    /// No rule at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// The rules of `cfg` (already validated by the config loader); `windows_ms` are the stream's
    /// window sizes (a window rule without `window` uses the smallest).
    pub fn from_config(cfg: &AlertsConfig, windows_ms: &[i64]) -> Result<Self, String> {
        let common = |name: &str, severity, repeat: Option<_>, labels: &BTreeMap<_, _>| Common {
            name: name.to_owned(),
            severity,
            repeat_every_ms: repeat.map(ms),
            labels: labels.clone(),
        };
        let lf = &cfg.lot_full;
        let ss = &cfg.sensor_silent;
        let bl = &cfg.battery_low;
        let go = &cfg.gateway_offline;
        let lp = &cfg.lot_full_predicted;
        let mut user = Vec::new();
        for rule in &cfg.rules {
            let expr = rule
                .compile()
                .map_err(|e| format!("alerts.rules {:?}: {e}", rule.name))?;
            let smallest = windows_ms.iter().copied().min().unwrap_or(60_000);
            user.push(UserRule {
                common: common(&rule.name, rule.severity, rule.repeat_every, &rule.labels),
                per_space: rule.per_space(&expr),
                expr,
                on: rule.on,
                window_ms: rule.window.map_or(smallest, ms),
                for_ms: rule.for_.map(ms),
            });
        }
        Ok(Self {
            lot_full: lf.enabled.then(|| LotFull {
                common: common("lot_full", lf.severity, lf.repeat_every, &lf.labels),
                fire_at: lf.fire_at,
                resolve_at: lf.resolve_at,
            }),
            lot_full_predicted: lp.enabled.then(|| LotFullPredicted {
                common: common(
                    "lot_full_predicted",
                    lp.severity,
                    lp.repeat_every,
                    &lp.labels,
                ),
                fire_at: lf.fire_at,
                resolve_at: lf.resolve_at,
                horizon_ms: ms(lp.horizon),
                profiles: fjord_core::forecast::SharedProfiles::default(),
            }),
            sensor_silent: ss.enabled.then(|| SensorSilent {
                common: common("sensor_silent", ss.severity, ss.repeat_every, &ss.labels),
                after_ms: ms(ss.after),
            }),
            battery_low: bl.enabled.then(|| BatteryLow {
                common: common("battery_low", bl.severity, bl.repeat_every, &bl.labels),
                fire_below: bl.fire_below,
                resolve_at: bl.resolve_at,
            }),
            gateway_offline: go
                .enabled
                .then(|| common("gateway_offline", go.severity, go.repeat_every, &go.labels)),
            user,
        })
    }

    /// `lot_full_predicted` reads its profiles from `profiles` (replaced by their owner when the
    /// batch job trains a new version).
    pub fn set_profiles(&mut self, profiles: fjord_core::forecast::SharedProfiles) {
        if let Some(r) = &mut self.lot_full_predicted {
            r.profiles = profiles;
        }
    }

    /// The rule named `name`.
    pub fn common(&self, name: &str) -> Option<&Common> {
        match name {
            "lot_full" => self.lot_full.as_ref().map(|r| &r.common),
            "lot_full_predicted" => self.lot_full_predicted.as_ref().map(|r| &r.common),
            "sensor_silent" => self.sensor_silent.as_ref().map(|r| &r.common),
            "battery_low" => self.battery_low.as_ref().map(|r| &r.common),
            "gateway_offline" => self.gateway_offline.as_ref(),
            _ => self
                .user
                .iter()
                .find(|r| r.common.name == name)
                .map(|r| &r.common),
        }
    }
}
