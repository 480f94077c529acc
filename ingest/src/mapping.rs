//! Topic mapping (docs/contract.md §3.3): the `[[mapping]]` rules compiled once, routing an MQTT topic to its
//! Kafka topic and key. First match wins. Pure logic.

use fjord_core::config::{KafkaConfig, MappingRule};
use fjord_core::topic::{KeyTemplate, TopicMatch, TopicPattern};

use crate::{Error, Result};

/// What the bridge does with messages of a rule, by its Kafka topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `readings`: payload forwarded byte for byte; decoded first when validation is on.
    Readings,
    /// `presence`: `online`/`offline` turned into `{"gateway_id","status","ts"}`.
    Presence,
    /// Any other topic: forwarded byte for byte.
    Other,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    pattern: TopicPattern,
    key: KeyTemplate,
    kafka_topic: String,
    kind: RouteKind,
}

/// A topic that matched a rule.
#[derive(Debug)]
pub struct Route<'r, 't> {
    /// Full Kafka topic name.
    pub kafka_topic: &'r str,
    /// What to do with the payload.
    pub kind: RouteKind,
    /// Rendered Kafka key.
    pub key: String,
    /// The named segments of the topic.
    pub captures: TopicMatch<'r, 't>,
}

/// The compiled mapping rules.
#[derive(Debug, Clone)]
pub struct Router {
    rules: Vec<CompiledRule>,
}

impl Router {
    /// Compiles `rules`, naming topics under `kafka.topic_prefix`.
    pub fn new(rules: &[MappingRule], kafka: &KafkaConfig) -> Result<Self> {
        let rules = rules
            .iter()
            .map(|r| {
                let (pattern, key) = r
                    .compile()
                    .map_err(|e| Error::Config(format!("mapping rule {:?}: {e}", r.filter)))?;
                let kind = match r.topic.as_str() {
                    "readings" => RouteKind::Readings,
                    "presence" => RouteKind::Presence,
                    _ => RouteKind::Other,
                };
                Ok(CompiledRule {
                    pattern,
                    key,
                    kafka_topic: kafka.topic(&r.topic),
                    kind,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { rules })
    }

    /// The first rule matching `topic`.
    pub fn route<'r, 't>(&'r self, topic: &'t str) -> Option<Route<'r, 't>> {
        self.rules.iter().find_map(|r| {
            r.pattern.matches(topic).map(|captures| Route {
                kafka_topic: &r.kafka_topic,
                kind: r.kind,
                key: r.key.render(&captures),
                captures,
            })
        })
    }

    /// What the bridge subscribes to: for each rule, its literal prefix followed by `#`
    /// (`parking/+lot_id/+space_id` → `parking/#`), so that topics of the wrong shape under the
    /// same root arrive too and go to the dead-letter topic instead of vanishing unseen.
    pub fn subscriptions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rules {
            let filter = r.pattern.mqtt_filter();
            let literal: Vec<&str> = filter
                .split('/')
                .take_while(|l| *l != "+" && *l != "#")
                .collect();
            let sub = if literal.is_empty() {
                "#".to_owned()
            } else {
                format!("{}/#", literal.join("/"))
            };
            if !out
                .iter()
                .any(|o| fjord_core::topic::filter_covers(o, &sub))
            {
                out.retain(|o| !fjord_core::topic::filter_covers(&sub, o));
                out.push(sub);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(&MappingRule::defaults(), &KafkaConfig::default()).unwrap()
    }

    #[test]
    fn routes_readings_and_presence() {
        let r = router();
        let route = r.route("parking/L1/S7").unwrap();
        assert_eq!(route.kafka_topic, "fjord.readings");
        assert_eq!(route.kind, RouteKind::Readings);
        assert_eq!(route.key, "L1");
        assert_eq!(route.captures.get("space_id"), Some("S7"));
        let route = r.route("presence/gw-1").unwrap();
        assert_eq!(
            (route.kafka_topic, route.kind),
            ("fjord.presence", RouteKind::Presence)
        );
        assert_eq!(route.key, "gw-1");
        assert!(r.route("parking/L1").is_none());
        assert!(r.route("parking/L1/S7/x").is_none());
        assert!(r.route("weather/x").is_none());
    }

    #[test]
    fn first_match_wins_and_subscriptions_cover_the_roots() {
        let rules = vec![
            MappingRule {
                filter: "parking/vip/+space_id".into(),
                topic: "vip".into(),
                key: "{space_id}".into(),
            },
            MappingRule {
                filter: "parking/+lot_id/+space_id".into(),
                topic: "readings".into(),
                key: "{lot_id}".into(),
            },
            MappingRule {
                filter: "+site/status".into(),
                topic: "status".into(),
                key: "{site}".into(),
            },
        ];
        let r = Router::new(&rules, &KafkaConfig::default()).unwrap();
        assert_eq!(r.route("parking/vip/S1").unwrap().kafka_topic, "fjord.vip");
        assert_eq!(
            r.route("parking/L2/S1").unwrap().kafka_topic,
            "fjord.readings"
        );
        assert_eq!(r.subscriptions(), vec!["#".to_owned()]);
        assert_eq!(
            router().subscriptions(),
            vec!["parking/#".to_owned(), "presence/#".to_owned()]
        );
    }
}
