//! Serde adapters that write epoch-millisecond timestamps as RFC 3339 text
//! (`2026-11-21T10:00:00.000Z`) and read them back, for the JSON values of fjord's topics.
//! Use as `#[serde(with = "crate::serde_ts")]`, or `crate::serde_ts::option` for `Option`.

use serde::{Deserialize, Deserializer, Serializer};

use crate::time::{TimestampMs, format_rfc3339_ms, parse_rfc3339};

/// Writes `ts` as RFC 3339 with milliseconds.
pub fn serialize<S: Serializer>(ts: &TimestampMs, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339_ms(*ts))
}

/// Reads an RFC 3339 timestamp.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimestampMs, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    parse_rfc3339(&s).map_err(|e| serde::de::Error::custom(format!("timestamp {s:?}: {e}")))
}

/// The same for optional timestamps (`null` when absent).
pub mod option {
    use super::*;

    /// Writes `Some(ts)` as RFC 3339, `None` as null.
    pub fn serialize<S: Serializer>(ts: &Option<TimestampMs>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(ts) => super::serialize(ts, s),
            None => s.serialize_none(),
        }
    }

    /// Reads an RFC 3339 timestamp or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimestampMs>, D::Error> {
        match Option::<std::borrow::Cow<'de, str>>::deserialize(d)? {
            Some(s) => parse_rfc3339(&s)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("timestamp {s:?}: {e}"))),
            None => Ok(None),
        }
    }
}
