//! MQTT topic patterns with named segments (docs/contract.md §3.3): `parking/+lot_id/+space_id`.
//!
//! A pattern is an MQTT topic filter in which a `+` may carry a name (`+lot_id`) and a trailing `#`
//! may too (`#rest`). [`TopicPattern::mqtt_filter`] gives the plain filter to subscribe with
//! (`parking/+/+`) and [`TopicPattern::matches`] captures the named segments of a concrete topic.
//! [`KeyTemplate`] renders a Kafka key such as `{lot_id}` from those captures. Pure logic, shared by
//! the bridge (routing) and the stream and batch layers (reading ids back from `fjord-mqtt-topic`).

use std::fmt;

/// Why a pattern or key template is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `+` or `+name`
    One(Option<String>),
    /// `#` or `#name` (last segment only)
    Rest(Option<String>),
}

/// A parsed topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    text: String,
    segments: Vec<Segment>,
}

/// The named segments captured from one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMatch<'p, 't> {
    captures: Vec<(&'p str, &'t str)>,
}

impl<'t> TopicMatch<'_, 't> {
    /// The value of segment `name`, if the pattern names it.
    pub fn get(&self, name: &str) -> Option<&'t str> {
        self.captures
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

impl TopicPattern {
    /// Parses `parking/+lot_id/+space_id`. Names are ASCII letters, digits and `_`; a `#` must be
    /// last; a name may not repeat; literals may not contain `+` or `#`.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError("a topic pattern may not be empty".into()));
        }
        let parts: Vec<&str> = text.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        let mut names: Vec<&str> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let name_of = |rest: &str| -> Result<Option<String>, PatternError> {
                if rest.is_empty() {
                    return Ok(None);
                }
                if !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(PatternError(format!(
                        "segment {part:?} of {text:?}: a segment name may only contain letters, digits and '_'"
                    )));
                }
                Ok(Some(rest.to_owned()))
            };
            let seg = if let Some(rest) = part.strip_prefix('+') {
                Segment::One(name_of(rest)?)
            } else if let Some(rest) = part.strip_prefix('#') {
                if i + 1 != parts.len() {
                    return Err(PatternError(format!(
                        "{text:?}: '#' may only be the last segment"
                    )));
                }
                Segment::Rest(name_of(rest)?)
            } else if part.contains(['+', '#']) {
                return Err(PatternError(format!(
                    "segment {part:?} of {text:?}: '+' and '#' must stand at the start of a segment"
                )));
            } else {
                Segment::Literal((*part).to_owned())
            };
            if let Segment::One(Some(n)) | Segment::Rest(Some(n)) = &seg {
                if names.contains(&n.as_str()) {
                    return Err(PatternError(format!(
                        "{text:?}: segment name {n:?} is used twice"
                    )));
                }
                names.push(&part[1..]);
            }
            segments.push(seg);
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The plain MQTT filter to subscribe with: names removed (`parking/+/+`).
    pub fn mqtt_filter(&self) -> String {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.as_str(),
                Segment::One(_) => "+",
                Segment::Rest(_) => "#",
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The names of the captured segments, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::One(Some(n)) | Segment::Rest(Some(n)) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Matches a concrete topic, following MQTT rules (a wildcard in the first position does not
    /// match topics starting with `$`; `#` also matches the parent level).
    pub fn matches<'t>(&self, topic: &'t str) -> Option<TopicMatch<'_, 't>> {
        if topic.starts_with('$') && !matches!(self.segments.first(), Some(Segment::Literal(_))) {
            return None;
        }
        let mut captures = Vec::new();
        let mut levels = topic.split('/');
        let mut consumed = 0usize;
        for seg in &self.segments {
            match seg {
                Segment::Rest(name) => {
                    if let Some(n) = name {
                        let rest = topic.get(consumed..).unwrap_or("");
                        captures.push((n.as_str(), rest));
                    }
                    return Some(TopicMatch { captures });
                }
                Segment::Literal(l) => {
                    let level = levels.next()?;
                    if level != l {
                        return None;
                    }
                    consumed += level.len() + 1;
                }
                Segment::One(name) => {
                    let level = levels.next()?;
                    if let Some(n) = name {
                        captures.push((n.as_str(), level));
                    }
                    consumed += level.len() + 1;
                }
            }
        }
        levels.next().is_none().then_some(TopicMatch { captures })
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks an MQTT topic filter (`a/+/b`, `a/#`): non-empty, `+` and `#` alone in their level, `#`
/// last.
pub fn valid_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("a topic filter may not be empty".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains(['+', '#']) && level.len() > 1 {
            return Err(format!("{filter:?}: '+' and '#' must fill a whole level"));
        }
        if *level == "#" && i + 1 != levels.len() {
            return Err(format!("{filter:?}: '#' may only be the last level"));
        }
    }
    Ok(())
}

/// True when the MQTT `topic` matches `filter` (MQTT rules; wildcards in the first level do not
/// match `$` topics).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// True when every topic that `requested` matches is also matched by `allowed`: a user allowed
/// `parking/A/#` may subscribe to `parking/A/+` but not to `parking/+/S1`.
pub fn filter_covers(allowed: &str, requested: &str) -> bool {
    let mut a = allowed.split('/');
    let mut r = requested.split('/');
    loop {
        match (a.next(), r.next()) {
            (Some("#"), _) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(x), Some(y)) if x == y && y != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A Kafka key template such as `{lot_id}` or `{lot_id}/{space_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    parts: Vec<KeyPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyPart {
    Text(String),
    Var(String),
}

impl KeyTemplate {
    /// Parses a template whose `{name}`s must all be named segments of `pattern`.
    pub fn parse(text: &str, pattern: &TopicPattern) -> Result<Self, PatternError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(KeyPart::Text(rest[..open].to_owned()));
            }
            let close = rest[open..].find('}').ok_or_else(|| {
                PatternError(format!(
                    "key template {text:?}: '{{' without a closing '}}'"
                ))
            })? + open;
            let name = &rest[open + 1..close];
            if !pattern.names().any(|n| n == name) {
                return Err(PatternError(format!(
                    "key template {text:?} uses {{{name}}}, but the filter {:?} has no segment named {name:?}",
                    pattern.as_str()
                )));
            }
            parts.push(KeyPart::Var(name.to_owned()));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(KeyPart::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// Renders the key from a match of the pattern it was parsed against.
    pub fn render(&self, m: &TopicMatch<'_, '_>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                KeyPart::Text(t) => out.push_str(t),
                KeyPart::Var(v) => out.push_str(m.get(v).unwrap_or("")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_named_segments() {
        let p = TopicPattern::parse("parking/+lot_id/+space_id").unwrap();
        assert_eq!(p.mqtt_filter(), "parking/+/+");
        let m = p.matches("parking/L1/S7").unwrap();
        assert_eq!(
            (m.get("lot_id"), m.get("space_id")),
            (Some("L1"), Some("S7"))
        );
        assert_eq!(m.get("gateway_id"), None);
        assert!(p.matches("parking/L1").is_none());
        assert!(p.matches("parking/L1/S7/x").is_none());
        assert!(p.matches("other/L1/S7").is_none());
        let m = p.matches("parking//S7").unwrap();
        assert_eq!(m.get("lot_id"), Some(""));
    }

    #[test]
    fn hash_captures_the_rest_and_dollar_topics_are_private() {
        let p = TopicPattern::parse("site/+site/#path").unwrap();
        assert_eq!(p.mqtt_filter(), "site/+/#");
        assert_eq!(p.matches("site/a/b/c").unwrap().get("path"), Some("b/c"));
        assert_eq!(p.matches("site/a").unwrap().get("path"), Some(""));
        let any = TopicPattern::parse("#").unwrap();
        assert!(any.matches("$SYS/broker").is_none());
        assert!(any.matches("x/y").is_some());
    }

    #[test]
    fn refuses_bad_patterns() {
        for bad in ["", "a/#/b", "a/b+c", "a/+x-y", "a/+id/+id"] {
            assert!(TopicPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_match_topics_like_mqtt() {
        assert!(filter_matches("parking/A/#", "parking/A/S1"));
        assert!(filter_matches("parking/A/#", "parking/A"));
        assert!(filter_matches("parking/+/S1", "parking/B/S1"));
        assert!(!filter_matches("parking/+/S1", "parking/B/S2"));
        assert!(!filter_matches("parking/A/#", "parking/B/S1"));
        assert!(!filter_matches("parking/+", "parking/A/S1"));
        assert!(filter_matches("#", "anything/at/all"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(filter_matches("presence/gw1", "presence/gw1"));
        assert!(valid_filter("a/+/#").is_ok());
        for bad in ["", "a/#/b", "a+/b", "a/b#"] {
            assert!(valid_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn covering_filters_for_subscribe_acls() {
        assert!(filter_covers("#", "parking/+/S1"));
        assert!(filter_covers("parking/A/#", "parking/A/+"));
        assert!(filter_covers("parking/A/#", "parking/A/#"));
        assert!(filter_covers("parking/A/#", "parking/A"));
        assert!(filter_covers("parking/+/S1", "parking/A/S1"));
        assert!(!filter_covers("parking/A/#", "parking/+/S1"));
        assert!(!filter_covers("parking/A/#", "parking/#"));
        assert!(!filter_covers("parking/A/+", "parking/A/#"));
        assert!(!filter_covers("parking/A/S1", "parking/A/+"));
        assert!(!filter_covers("parking/A", "parking/A/S1"));
    }

    #[test]
    fn key_templates_render_and_check_names() {
        let p = TopicPattern::parse("parking/+lot_id/+space_id").unwrap();
        let k = KeyTemplate::parse("{lot_id}", &p).unwrap();
        assert_eq!(k.render(&p.matches("parking/L1/S2").unwrap()), "L1");
        let k = KeyTemplate::parse("lot-{lot_id}/{space_id}", &p).unwrap();
        assert_eq!(k.render(&p.matches("parking/L1/S2").unwrap()), "lot-L1/S2");
        let e = KeyTemplate::parse("{gateway}", &p).unwrap_err().to_string();
        assert!(e.contains("has no segment named \"gateway\""), "{e}");
        assert!(KeyTemplate::parse("{lot_id", &p).is_err());
    }
}
