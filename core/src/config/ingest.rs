//! Config sections of the ingest layer: `[bridge]` (MQTT/HTTP → Kafka), `[broker]` (the embedded
//! MQTT broker of `fjord demo`) and `[[credentials]]` (who may connect and what they may publish).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::topic::valid_filter;

type Problems = Vec<(String, String)>;

/// MQTT protocol version the bridge speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MqttProtocol {
    /// MQTT 5: content-type property, receive-maximum flow control, session expiry.
    #[default]
    #[serde(rename = "v5")]
    V5,
    /// MQTT 3.1.1.
    #[serde(rename = "v3.1.1")]
    V311,
}

/// `[bridge]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// `v5` or `v3.1.1`.
    pub protocol: MqttProtocol,
    /// Subscription QoS: 1 (at least once, the default) or 0.
    pub qos: u8,
    /// When set, subscribe as `$share/<group>/<filter>` so several bridges split the load.
    pub share_group: Option<String>,
    /// Records in flight: received from MQTT, not yet acknowledged by Kafka. At this bound the
    /// bridge stops taking MQTT messages until Kafka catches up (and, with MQTT 5, announces it to
    /// the broker as receive-maximum, capped at 65535).
    pub max_in_flight: usize,
    /// Larger payloads go to the dead-letter topic.
    pub max_payload_bytes: usize,
    /// Decode readings with the core decoder and dead-letter those that fail.
    pub validate: bool,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// MQTT 5: how long the broker keeps the bridge's session (and queues its messages) while the
    /// bridge is away.
    pub session_expiry: Duration,
    /// HTTP ingest (`POST /ingest/<topic>`) and `/metrics`; unset: no HTTP listener.
    pub http_listen: Option<SocketAddr>,
    /// How long an HTTP ingest request waits for Kafka before answering 503.
    pub http_kafka_timeout: Duration,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            protocol: MqttProtocol::V5,
            qos: 1,
            share_group: None,
            max_in_flight: 10_000,
            max_payload_bytes: 64 * 1024,
            validate: true,
            keep_alive: Duration::from_secs(30),
            session_expiry: Duration::from_secs(86_400),
            http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8081))),
            http_kafka_timeout: Duration::from_secs(5),
        }
    }
}

impl BridgeConfig {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.qos > 1 {
            p.push((
                "bridge.qos".into(),
                format!("must be 0 or 1, got {}", self.qos),
            ));
        }
        if let Some(g) = &self.share_group
            && (g.is_empty() || g.contains(['/', '+', '#']))
        {
            p.push((
                "bridge.share_group".into(),
                "must be a non-empty name without '/', '+' or '#'".into(),
            ));
        }
        if self.max_in_flight == 0 {
            p.push(("bridge.max_in_flight".into(), "must be at least 1".into()));
        }
        if self.max_payload_bytes == 0 || self.max_payload_bytes > 1_000_000 {
            p.push((
                "bridge.max_payload_bytes".into(),
                "must be between 1 and 1000000 (Kafka's default record size limit is 1 MB)".into(),
            ));
        }
        if self.keep_alive.std().as_secs() < 5 {
            p.push(("bridge.keep_alive".into(), "must be at least 5s".into()));
        }
    }
}

/// `[broker]`: the embedded MQTT broker that `fjord demo` runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Largest payload a client may publish, bytes.
    pub max_payload_bytes: usize,
    /// Messages the broker keeps per subscription filter for sessions that are away or slow, in
    /// bytes. A session further behind loses the oldest messages; each such loss is logged and
    /// counted (`fjord_mqtt_broker_dropped_total`).
    pub queue_max_bytes: usize,
    /// Seconds a client has to send CONNECT after opening the connection.
    pub connect_timeout: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 256 * 1024,
            queue_max_bytes: 1 << 30,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl BrokerConfig {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.max_payload_bytes < 1024 {
            p.push((
                "broker.max_payload_bytes".into(),
                "must be at least 1024".into(),
            ));
        }
        if self.queue_max_bytes < 10 * self.max_payload_bytes {
            p.push((
                "broker.queue_max_bytes".into(),
                "must hold at least 10 payloads of broker.max_payload_bytes".into(),
            ));
        }
    }
}

/// `[[credentials]]`: a user of the embedded MQTT broker and of HTTP ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// User name (MQTT username, HTTP Basic user).
    pub user: String,
    /// Password (MQTT password, HTTP Basic password or Bearer token).
    pub password: String,
    /// MQTT topic filters this user may publish to, e.g. `["parking/central/#", "presence/gw-central"]`.
    #[serde(default)]
    pub publish: Vec<String>,
    /// MQTT topic filters this user may subscribe to (devices usually none).
    #[serde(default)]
    pub subscribe: Vec<String>,
}

impl Credential {
    /// A user who may publish and subscribe anywhere (the `fjord` user of the demo).
    pub fn admin(user: &str, password: &str) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
            publish: vec!["#".into()],
            subscribe: vec!["#".into()],
        }
    }

    pub(crate) fn validate(&self, at: &str, p: &mut Problems) {
        if self.user.is_empty() {
            p.push((format!("{at}.user"), "may not be empty".into()));
        }
        if self.password.len() < 8 {
            p.push((
                format!("{at}.password"),
                "must be at least 8 characters".into(),
            ));
        }
        for (key, filters) in [("publish", &self.publish), ("subscribe", &self.subscribe)] {
            for (i, f) in filters.iter().enumerate() {
                if let Err(e) = valid_filter(f) {
                    p.push((format!("{at}.{key}[{i}]"), e));
                }
            }
        }
    }
}
