//! Decoding a raw device message into a [`Reading`], exactly as docs/contract.md §3.1 says.
//!
//! Input: the lot and space ids taken from the MQTT topic, the payload bytes, the content type (the
//! MQTT 5 property or the `fjord-content-type` header, if any) and the receive time. The payload is
//! a JSON object or the same object in CBOR; without a content type the format is sniffed from the
//! first byte. Every rejection is a [`DecodeError`] whose message a device owner can act on, and
//! whose [`DecodeError::reason`] is a stable label for metrics and the dead-letter topic.
//!
//! Decoding is a pure function of its input: the same message always gives the same reading or the
//! same error. The stream and batch layers rely on that to replay Kafka records deterministically.

mod raw;
pub mod record;

use std::fmt;

use raw::{RawPayload, Scalar, TsRaw};

use crate::model::{Reading, TsSource};
use crate::time::{TimestampMs, format_rfc3339_ms};

/// Event times before this instant (2000-01-01T00:00:00Z) are refused: they come from devices whose
/// clock is unset or that send seconds instead of milliseconds.
pub const MIN_TS: TimestampMs = 946_684_800_000;

/// The two payload encodings of docs/contract.md §3.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    /// A JSON object.
    Json,
    /// The same object as a CBOR map (RFC 8949).
    Cbor,
}

impl fmt::Display for PayloadFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PayloadFormat::Json => "JSON",
            PayloadFormat::Cbor => "CBOR",
        })
    }
}

impl PayloadFormat {
    /// The media type of the format (`application/json`, `application/cbor`).
    pub fn media_type(self) -> &'static str {
        match self {
            PayloadFormat::Json => "application/json",
            PayloadFormat::Cbor => "application/cbor",
        }
    }
}

/// A message to decode.
#[derive(Clone, Copy, Debug)]
pub struct RawMessage<'a> {
    /// `lot_id` taken from the topic.
    pub lot_id: &'a str,
    /// `space_id` taken from the topic.
    pub space_id: &'a str,
    /// Payload bytes exactly as received.
    pub payload: &'a [u8],
    /// Content type (MQTT 5 property or Kafka header), if the sender gave one.
    pub content_type: Option<&'a str>,
    /// When the bridge received the message, UTC epoch ms; used when the payload has no `ts`.
    pub received_at: TimestampMs,
}

/// Decoder settings (config section `[readings]`).
#[derive(Clone, Copy, Debug)]
pub struct DecodeOptions {
    /// How far a device's `ts` may be ahead of the receive time, in ms. A clock far in the future
    /// would drag the speed layer's watermark with it and make every other reading late.
    pub max_ts_ahead_ms: i64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_ts_ahead_ms: 10 * 60 * 1000,
        }
    }
}

/// Why a message is not a valid reading. Each message says what to change on the device.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// A self-describing reading (a backfill line) does not name its `lot_id` or `space_id`.
    #[error(
        "the reading has no `{0}` field; a reading loaded from a file must name its lot and space"
    )]
    MissingId(&'static str),
    /// The topic's `lot_id` or `space_id` segment is empty (`parking//S1`).
    #[error("the topic's `{0}` segment is empty; publish to parking/<lot_id>/<space_id>")]
    EmptyTopicId(&'static str),
    /// A `lot_id` or `space_id` that fjord does not accept: longer than [`MAX_ID_BYTES`], or with
    /// a control character, an invisible formatting character (Unicode category Cf, e.g. U+200B,
    /// U+202E), a line or paragraph separator, a private-use or unassigned code point, an MQTT
    /// wildcard (`#`, `+`) or `/`.
    #[error(
        "`{field}` {problem}; ids are at most 128 bytes of printable characters without `#`, `+` or `/`"
    )]
    BadId {
        /// `lot_id` or `space_id`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The payload has no bytes.
    #[error("payload is empty; send a JSON object or a CBOR map")]
    Empty,
    /// The sender declared a content type other than JSON or CBOR.
    #[error(
        "content type {0:?} is not supported; send application/json or application/cbor (or no content type)"
    )]
    UnsupportedContentType(String),
    /// The payload is JSON or CBOR, but not an object/map; or neither format at all.
    #[error("payload must be a JSON object or a CBOR map, got {0}")]
    NotAnObject(String),
    /// The payload is not well-formed in its format.
    #[error("payload is not valid {format}: {detail}")]
    Malformed {
        /// The format it was read as.
        format: PayloadFormat,
        /// The parser's description of the problem.
        detail: String,
    },
    /// A field appears twice in the object.
    #[error("field `{0}` appears more than once")]
    DuplicateField(String),
    /// The required field `occupied` is absent.
    #[error("missing required field `occupied` (true or false)")]
    MissingOccupied,
    /// A known field has the wrong type or is out of range.
    #[error("`{field}` must be {expected}, got {got}")]
    InvalidField {
        /// The field name.
        field: &'static str,
        /// What is accepted, in words.
        expected: &'static str,
        /// What was sent.
        got: String,
    },
    /// The payload names a lot or space other than the topic it was published on.
    #[error(
        "`{field}` in the payload is {payload:?} but the topic says {topic:?}; publish to the topic of the space or drop the field"
    )]
    IdMismatch {
        /// `lot_id` or `space_id`.
        field: &'static str,
        /// The payload's value.
        payload: String,
        /// The topic's value.
        topic: String,
    },
    /// `ts` is before 2000-01-01.
    #[error(
        "`ts` {ts} ({iso}) is before 2000-01-01; the device clock is unset, or it sent seconds where milliseconds are expected"
    )]
    TsTooOld {
        /// The value as sent.
        ts: String,
        /// The same instant in RFC 3339.
        iso: String,
    },
    /// `ts` is further ahead of the receive time than allowed.
    #[error(
        "`ts` {ts} is {ahead_s} s ahead of the time it was received ({received}); check the device clock (at most {max_s} s ahead is accepted)"
    )]
    TsInFuture {
        /// The event time, RFC 3339.
        ts: String,
        /// The receive time, RFC 3339.
        received: String,
        /// How far ahead, in seconds.
        ahead_s: i64,
        /// The configured bound, in seconds.
        max_s: i64,
    },
}

impl DecodeError {
    /// A stable, low-cardinality label for metrics and logs (`fjord-error` carries the message).
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::EmptyTopicId(_) => "empty_id",
            DecodeError::MissingId(_) => "missing_id",
            DecodeError::BadId { .. } => "bad_id",
            DecodeError::Empty => "empty",
            DecodeError::UnsupportedContentType(_) => "content_type",
            DecodeError::NotAnObject(_) => "not_an_object",
            DecodeError::Malformed { .. } => "malformed",
            DecodeError::DuplicateField(_) => "duplicate_field",
            DecodeError::MissingOccupied => "missing_field",
            DecodeError::InvalidField { .. } => "invalid_field",
            DecodeError::IdMismatch { .. } => "id_mismatch",
            DecodeError::TsTooOld { .. } | DecodeError::TsInFuture { .. } => "ts_out_of_range",
        }
    }
}

/// Picks the payload format from the content type, or sniffs it when there is none.
pub fn detect_format(
    payload: &[u8],
    content_type: Option<&str>,
) -> Result<PayloadFormat, DecodeError> {
    if payload.is_empty() {
        return Err(DecodeError::Empty);
    }
    if let Some(ct) = content_type {
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/json")
            || essence.eq_ignore_ascii_case("text/json")
        {
            return Ok(PayloadFormat::Json);
        }
        if essence.eq_ignore_ascii_case("application/cbor") {
            return Ok(PayloadFormat::Cbor);
        }
        if !essence.is_empty() {
            return Err(DecodeError::UnsupportedContentType(ct.to_owned()));
        }
    }
    let first_text = payload
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .copied();
    let json_kind = match first_text {
        Some(b'{') => return Ok(PayloadFormat::Json),
        Some(b'[') => Some("a JSON array"),
        Some(b'"') => Some("a JSON string"),
        Some(b'-' | b'0'..=b'9') => Some("a JSON number"),
        Some(b't' | b'f') => Some("a JSON boolean"),
        Some(b'n') => Some("JSON null"),
        _ => None,
    };
    // CBOR major type 5 (map) is 0xa0..=0xbf; 0xd9d9f7 is the self-described CBOR tag.
    match payload[0] {
        0xa0..=0xbf => Ok(PayloadFormat::Cbor),
        0xd9 if payload.starts_with(&[0xd9, 0xd9, 0xf7]) => Ok(PayloadFormat::Cbor),
        first => Err(DecodeError::NotAnObject(match json_kind {
            Some(kind) => kind.to_owned(),
            None if first_text.is_none() => "only whitespace".to_owned(),
            None => format!("bytes that are neither JSON nor CBOR (first byte 0x{first:02x})"),
        })),
    }
}

/// Longest `lot_id` or `space_id`, in bytes: ids key the stream processor's state, Kafka records
/// and lake partitions, so one device must not be able to make them arbitrarily large.
pub const MAX_ID_BYTES: usize = 128;

/// What makes `c` unfit for an id although it is not a control character: it shows as nothing or
/// changes how the text around it shows (U+200B zero width space, U+202E right-to-left override),
/// so two ids that look alike would differ.
fn invisible(c: char) -> Option<&'static str> {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    match c.general_category() {
        GeneralCategory::Format => Some("an invisible formatting character"),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
            Some("a line or paragraph separator")
        }
        GeneralCategory::PrivateUse => Some("a private-use character"),
        GeneralCategory::Unassigned => Some("an unassigned code point"),
        _ => None,
    }
}

/// Checks an id against the rules of [`DecodeError::BadId`].
pub fn valid_id(field: &'static str, id: &str) -> Result<(), DecodeError> {
    // the common case, decided without Unicode tables (it runs for every id of every reading):
    // printable ASCII has no control, formatting, separator, private-use or unassigned character
    if id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && !matches!(b, b'#' | b'+' | b'/'))
    {
        return Ok(());
    }
    let problem = if id.len() > MAX_ID_BYTES {
        Some(format!("is {} bytes long", id.len()))
    } else if let Some(c) = id.chars().find(|c| c.is_control()) {
        Some(format!(
            "contains the control character U+{:04X}",
            u32::from(c)
        ))
    } else if let Some((c, what)) = id.chars().find_map(|c| invisible(c).map(|w| (c, w))) {
        Some(format!("contains U+{:04X}, {what}", u32::from(c)))
    } else {
        id.chars()
            .find(|c| matches!(c, '#' | '+' | '/'))
            .map(|c| format!("contains {c:?}"))
    };
    match problem {
        Some(problem) => Err(DecodeError::BadId { field, problem }),
        None => Ok(()),
    }
}

/// Decodes one message into a [`Reading`] (docs/contract.md §3.1).
pub fn decode_reading(msg: &RawMessage<'_>, opts: &DecodeOptions) -> Result<Reading, DecodeError> {
    if msg.lot_id.is_empty() {
        return Err(DecodeError::EmptyTopicId("lot_id"));
    }
    if msg.space_id.is_empty() {
        return Err(DecodeError::EmptyTopicId("space_id"));
    }
    let raw = parse(msg.payload, msg.content_type)?;
    finish(raw, msg.lot_id, msg.space_id, msg.received_at, opts)
}

/// Decodes a self-describing reading: a JSON or CBOR object that names its own `lot_id` and
/// `space_id` (a line of a backfill file), with the same rules as [`decode_reading`].
pub fn decode_document(
    payload: &[u8],
    received_at: TimestampMs,
    opts: &DecodeOptions,
) -> Result<Reading, DecodeError> {
    let raw = parse(payload, None)?;
    let id = |field: &'static str, v: Option<&Scalar>| match v {
        Some(Scalar::Str(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Scalar::Int(i)) => Ok(i.to_string()),
        None | Some(Scalar::Null) | Some(Scalar::Str(_)) => Err(DecodeError::MissingId(field)),
        Some(other) => Err(invalid(field, "a non-empty string", other)),
    };
    let lot_id = id("lot_id", raw.lot_id.as_ref())?;
    let space_id = id("space_id", raw.space_id.as_ref())?;
    finish(raw, &lot_id, &space_id, received_at, opts)
}

fn parse(payload: &[u8], content_type: Option<&str>) -> Result<RawPayload, DecodeError> {
    match detect_format(payload, content_type)? {
        PayloadFormat::Json => serde_json::from_slice(payload).map_err(|e| malformed_json(&e)),
        PayloadFormat::Cbor => {
            ciborium::from_reader(payload).map_err(|e| malformed_cbor(&e, payload))
        }
    }
}

fn finish(
    raw: RawPayload,
    lot_id: &str,
    space_id: &str,
    received_at: TimestampMs,
    opts: &DecodeOptions,
) -> Result<Reading, DecodeError> {
    if let Some(field) = raw.duplicate {
        return Err(DecodeError::DuplicateField(field));
    }
    valid_id("lot_id", lot_id)?;
    valid_id("space_id", space_id)?;
    check_id("lot_id", raw.lot_id.as_ref(), lot_id)?;
    check_id("space_id", raw.space_id.as_ref(), space_id)?;
    let occupied = match raw.occupied {
        None | Some(Scalar::Null) => return Err(DecodeError::MissingOccupied),
        Some(Scalar::Bool(b)) => b,
        Some(other) => return Err(invalid("occupied", "true or false", &other)),
    };
    let battery = match raw.battery {
        None | Some(Scalar::Null) => None,
        Some(v) => match v.as_integer() {
            Some(i @ 0..=100) => Some(i as u8),
            _ => return Err(invalid("battery", "an integer 0–100", &v)),
        },
    };
    let (ts, ts_source) = match raw.ts {
        None | Some(TsRaw::Other(Scalar::Null)) => (received_at, TsSource::Received),
        Some(v) => (device_ts(&v, received_at, opts)?, TsSource::Device),
    };
    let extra = if raw.extra.is_empty() {
        None
    } else {
        Some(serde_json::Value::Object(raw.extra).to_string())
    };
    Ok(Reading {
        lot_id: lot_id.to_owned(),
        space_id: space_id.to_owned(),
        ts,
        occupied,
        battery,
        extra,
        ts_source,
    })
}

const TS_EXPECTED: &str =
    "an RFC 3339 timestamp like \"2026-11-21T10:00:00Z\" or integer epoch milliseconds";

fn device_ts(
    v: &TsRaw,
    received_at: TimestampMs,
    opts: &DecodeOptions,
) -> Result<TimestampMs, DecodeError> {
    let (ts, sent) = match v {
        TsRaw::Rfc3339(ts) => (*ts, None),
        TsRaw::BadText(text, e) => {
            return Err(DecodeError::InvalidField {
                field: "ts",
                expected: TS_EXPECTED,
                got: format!("{} ({e})", Scalar::Str(text.clone()).describe()),
            });
        }
        TsRaw::Other(s) => match s.as_integer().and_then(|i| i64::try_from(i).ok()) {
            Some(ms) => (ms, Some(s)),
            None => return Err(invalid("ts", TS_EXPECTED, s)),
        },
    };
    if ts < MIN_TS {
        return Err(DecodeError::TsTooOld {
            ts: sent.map_or_else(|| format_rfc3339_ms(ts), Scalar::describe),
            iso: format_rfc3339_ms(ts.max(-62_135_596_800_000)),
        });
    }
    let ahead = ts.saturating_sub(received_at);
    if ahead > opts.max_ts_ahead_ms {
        return Err(DecodeError::TsInFuture {
            ts: format_rfc3339_ms(ts.min(253_402_300_799_999)),
            received: format_rfc3339_ms(received_at),
            ahead_s: ahead / 1000,
            max_s: opts.max_ts_ahead_ms / 1000,
        });
    }
    Ok(ts)
}

fn check_id(field: &'static str, value: Option<&Scalar>, topic: &str) -> Result<(), DecodeError> {
    let text = match value {
        None | Some(Scalar::Null) => return Ok(()),
        Some(Scalar::Str(s)) => s.clone(),
        Some(Scalar::Int(i)) => i.to_string(),
        Some(other) => return Err(invalid(field, "a string equal to the topic's", other)),
    };
    if text == topic {
        Ok(())
    } else {
        Err(DecodeError::IdMismatch {
            field,
            payload: text,
            topic: topic.to_owned(),
        })
    }
}

fn invalid(field: &'static str, expected: &'static str, got: &Scalar) -> DecodeError {
    DecodeError::InvalidField {
        field,
        expected,
        got: got.describe(),
    }
}

fn malformed_json(e: &serde_json::Error) -> DecodeError {
    DecodeError::Malformed {
        format: PayloadFormat::Json,
        detail: e.to_string(),
    }
}

fn malformed_cbor<T: fmt::Debug>(e: &ciborium::de::Error<T>, payload: &[u8]) -> DecodeError {
    let detail = match e {
        ciborium::de::Error::Io(_) => format!("truncated after {} bytes", payload.len()),
        ciborium::de::Error::Syntax(at) => format!("syntax error at byte {at}"),
        ciborium::de::Error::Semantic(Some(at), msg) => format!("{msg} (at byte {at})"),
        ciborium::de::Error::Semantic(None, msg) => msg.clone(),
        ciborium::de::Error::RecursionLimitExceeded => "nested too deeply".to_owned(),
    };
    DecodeError::Malformed {
        format: PayloadFormat::Cbor,
        detail,
    }
}

#[cfg(test)]
mod tests;
