//! The first, format-agnostic pass of decoding: one serde visitor that reads a JSON object or a CBOR
//! map into a [`RawPayload`] without judging the values. Known fields are kept as loosely typed
//! [`Scalar`]s so that the second pass (in `decode/mod.rs`) can say precisely what is wrong with
//! them; every other field is kept as JSON for the `extra` column. Because the same visitor serves
//! `serde_json` and `ciborium`, a JSON payload and its CBOR twin give the same `RawPayload`.
//!
//! `ts` is parsed while it is read ([`TsRaw`]), so the common payload allocates nothing here.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::time::{Rfc3339Error, TimestampMs, parse_rfc3339};

/// A value of a known field, before validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    /// An object, array or byte string: never valid for a known field.
    Composite(&'static str),
}

impl Scalar {
    /// How the value reads in an error message: `true`, `140`, `"yes"`, `an object`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => format!("{f:?}"),
            Scalar::Str(s) => format!("{:?}", truncate(s, 60)),
            Scalar::Composite(kind) => (*kind).into(),
        }
    }

    /// The value as an integer, accepting floats without a fraction (JSON does not tell them apart).
    pub(crate) fn as_integer(&self) -> Option<i128> {
        match *self {
            Scalar::Int(i) => Some(i),
            Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Some(f as i128),
            _ => None,
        }
    }
}

fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

/// The `ts` field: a string is parsed as RFC 3339 on the spot; anything else is kept as a scalar.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TsRaw {
    Rfc3339(TimestampMs),
    BadText(String, Rfc3339Error),
    Other(Scalar),
}

/// A payload's fields after the first pass.
#[derive(Debug, Default)]
pub(crate) struct RawPayload {
    pub ts: Option<TsRaw>,
    pub occupied: Option<Scalar>,
    pub battery: Option<Scalar>,
    pub lot_id: Option<Scalar>,
    pub space_id: Option<Scalar>,
    /// Every other field, keys sorted.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The first field name that appeared twice, if any.
    pub duplicate: Option<String>,
}

enum Field {
    Ts,
    Occupied,
    Battery,
    LotId,
    SpaceId,
    Other(String),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name (map keys must be text)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "ts" => Field::Ts,
                    "occupied" => Field::Occupied,
                    "battery" => Field::Battery,
                    "lot_id" => Field::LotId,
                    "space_id" => Field::SpaceId,
                    other => Field::Other(other.to_owned()),
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for RawPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPayload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of reading fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPayload, A::Error> {
                let mut raw = RawPayload::default();
                while let Some(field) = map.next_key::<Field>()? {
                    let (slot, name) = match field {
                        Field::Ts => {
                            let ts = map.next_value_seed(TsSeed)?;
                            if raw.ts.replace(ts).is_some() {
                                raw.duplicate.get_or_insert_with(|| "ts".to_owned());
                            }
                            continue;
                        }
                        Field::Occupied => (&mut raw.occupied, "occupied"),
                        Field::Battery => (&mut raw.battery, "battery"),
                        Field::LotId => (&mut raw.lot_id, "lot_id"),
                        Field::SpaceId => (&mut raw.space_id, "space_id"),
                        Field::Other(name) => {
                            let value: serde_json::Value = map.next_value()?;
                            if raw.extra.insert(name.clone(), value).is_some() {
                                raw.duplicate.get_or_insert(name);
                            }
                            continue;
                        }
                    };
                    let value = map.next_value::<Scalar>()?;
                    if slot.replace(value).is_some() {
                        raw.duplicate.get_or_insert_with(|| name.to_owned());
                    }
                }
                Ok(raw)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// Reads `ts`, parsing text as RFC 3339 without copying it.
struct TsSeed;

impl<'de> DeserializeSeed<'de> for TsSeed {
    type Value = TsRaw;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TsRaw, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TsSeed {
    type Value = TsRaw;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a timestamp")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<TsRaw, E> {
        Ok(match parse_rfc3339(v) {
            Ok(ts) => TsRaw::Rfc3339(ts),
            Err(e) => TsRaw::BadText(v.to_owned(), e),
        })
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<TsRaw, E> {
        ScalarVisitor.visit_bool(v).map(TsRaw::Other)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<TsRaw, E> {
        ScalarVisitor.visit_i64(v).map(TsRaw::Other)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<TsRaw, E> {
        ScalarVisitor.visit_u64(v).map(TsRaw::Other)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<TsRaw, E> {
        ScalarVisitor.visit_i128(v).map(TsRaw::Other)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<TsRaw, E> {
        ScalarVisitor.visit_u128(v).map(TsRaw::Other)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<TsRaw, E> {
        ScalarVisitor.visit_f64(v).map(TsRaw::Other)
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<TsRaw, E> {
        ScalarVisitor.visit_bytes(v).map(TsRaw::Other)
    }
    fn visit_none<E: de::Error>(self) -> Result<TsRaw, E> {
        Ok(TsRaw::Other(Scalar::Null))
    }
    fn visit_unit<E: de::Error>(self) -> Result<TsRaw, E> {
        Ok(TsRaw::Other(Scalar::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<TsRaw, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TsRaw, A::Error> {
        ScalarVisitor.visit_seq(seq).map(TsRaw::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TsRaw, A::Error> {
        ScalarVisitor.visit_map(map).map(TsRaw::Other)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
        Ok(Scalar::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Scalar, E> {
        Ok(Scalar::Composite("a byte string"))
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Composite("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Composite("an object"))
    }
}
