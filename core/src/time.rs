//! Event-time arithmetic on UTC epoch milliseconds.
//!
//! fjord keeps every timestamp as `i64` milliseconds since the Unix epoch (UTC): it is what Kafka
//! uses, it orders and subtracts without surprises, and it is exact at the contract's millisecond
//! precision. This module parses and formats RFC 3339 by hand (the decoder's hot path parses one
//! timestamp per reading) and converts to calendar days for the lake's `date` partitions. All
//! functions are pure; the parser is checked against `chrono` by a property test.

use std::fmt::Write as _;

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type TimestampMs = i64;

/// Milliseconds in one day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// Current wall-clock time in epoch milliseconds.
pub fn now_ms() -> TimestampMs {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Why a string is not an RFC 3339 timestamp. The message names the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rfc3339Error(&'static str);

/// Parses an RFC 3339 timestamp (`2026-11-21T10:00:00Z`, `2026-11-21T11:00:00.123+01:00`) into epoch
/// milliseconds. Fractions finer than a millisecond are truncated. The separator may be `T`, `t` or
/// a space (RFC 3339 §5.6 note); the offset `Z`, `z` or `±HH:MM`. Leap seconds (`:60`) are refused.
pub fn parse_rfc3339(s: &str) -> Result<TimestampMs, Rfc3339Error> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return Err(Rfc3339Error(
            "too short for RFC 3339 (expected like 2026-11-21T10:00:00Z)",
        ));
    }
    let year = digits(b, 0, 4).ok_or(Rfc3339Error("year must be 4 digits"))?;
    if b[4] != b'-' || b[7] != b'-' {
        return Err(Rfc3339Error("date must be YYYY-MM-DD"));
    }
    let month = digits(b, 5, 2).ok_or(Rfc3339Error("month must be 2 digits"))?;
    let day = digits(b, 8, 2).ok_or(Rfc3339Error("day must be 2 digits"))?;
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(Rfc3339Error("date and time must be separated by 'T'"));
    }
    let hour = digits(b, 11, 2).ok_or(Rfc3339Error("hour must be 2 digits"))?;
    if b[13] != b':' || b[16] != b':' {
        return Err(Rfc3339Error("time must be HH:MM:SS"));
    }
    let minute = digits(b, 14, 2).ok_or(Rfc3339Error("minute must be 2 digits"))?;
    let second = digits(b, 17, 2).ok_or(Rfc3339Error("second must be 2 digits"))?;
    if !(1..=12).contains(&month) {
        return Err(Rfc3339Error("month must be 01-12"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(Rfc3339Error("day does not exist in that month"));
    }
    if hour > 23 || minute > 59 {
        return Err(Rfc3339Error("hour must be 00-23 and minute 00-59"));
    }
    if second > 59 {
        return Err(Rfc3339Error(
            "second must be 00-59 (leap seconds are not accepted)",
        ));
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return Err(Rfc3339Error("a '.' must be followed by fraction digits"));
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(b, i + 1, 2).ok_or(Rfc3339Error("offset hour must be 2 digits"))?;
            let om = digits(b, i + 4, 2).ok_or(Rfc3339Error("offset minute must be 2 digits"))?;
            if oh > 23 || om > 59 {
                return Err(Rfc3339Error("offset must be between -23:59 and +23:59"));
            }
            let m = i64::from(oh * 60 + om);
            if sign == b'-' { -m } else { m }
        }
        None => {
            return Err(Rfc3339Error(
                "a time zone is required: end with 'Z' or an offset like +01:00",
            ));
        }
        _ => {
            return Err(Rfc3339Error(
                "must end with 'Z' or an offset like +01:00 (a time zone is required)",
            ));
        }
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_min * 60;
    Ok(secs * 1000 + millis)
}

/// Formats epoch milliseconds as RFC 3339 in UTC with exactly three fraction digits:
/// `2026-11-21T10:00:00.000Z`. This is the form of every timestamp fjord writes as text.
pub fn format_rfc3339_ms(ts: TimestampMs) -> String {
    let mut s = String::with_capacity(24);
    write_rfc3339_ms(&mut s, ts);
    s
}

/// Appends the [`format_rfc3339_ms`] form of `ts` to `out`.
pub fn write_rfc3339_ms(out: &mut String, ts: TimestampMs) {
    let days = ts.div_euclid(MS_PER_DAY);
    let ms_of_day = ts.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        ms_of_day % 1000
    );
}

/// The UTC calendar day of `ts` as days since 1970-01-01 (Arrow's `Date32`, the lake's `date`).
pub fn epoch_day(ts: TimestampMs) -> i32 {
    i32::try_from(ts.div_euclid(MS_PER_DAY)).unwrap_or(if ts < 0 { i32::MIN } else { i32::MAX })
}

/// Formats a day number from [`epoch_day`] as `YYYY-MM-DD`.
pub fn format_date(day: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for &c in b.get(at..at + n)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_common_forms() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2026-11-21T10:00:00Z"), Ok(1_795_255_200_000));
        assert_eq!(
            parse_rfc3339("2026-11-21T10:00:00.5Z"),
            Ok(1_795_255_200_500)
        );
        assert_eq!(
            parse_rfc3339("2026-11-21T10:00:00.123456789Z"),
            Ok(1_795_255_200_123)
        );
        assert_eq!(
            parse_rfc3339("2026-11-21T11:00:00+01:00"),
            Ok(1_795_255_200_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-21t09:30:00-00:30"),
            Ok(1_795_255_200_000)
        );
        assert_eq!(parse_rfc3339("2026-11-21 10:00:00z"), Ok(1_795_255_200_000));
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for bad in [
            "",
            "2026-11-21",
            "2026-11-21T10:00:00",
            "2026-11-21T10:00:00+0100",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T10:00:60Z",
            "2026-11-21T10:00:00.Z",
            "2026/11/21T10:00:00Z",
            "2026-11-21T10:00:00Zjunk",
            "1795255200000",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
    }

    #[test]
    fn formats_with_milliseconds() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ms(1_795_255_200_123),
            "2026-11-21T10:00:00.123Z"
        );
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_date(epoch_day(1_795_255_200_123)), "2026-11-21");
        assert_eq!(epoch_day(-1), -1);
    }

    proptest! {
        #[test]
        fn agrees_with_chrono(ms in 0i64..253_400_000_000_000, off_min in -1439i32..1439) {
            let offset = chrono::FixedOffset::east_opt(off_min * 60).unwrap();
            let dt = chrono::DateTime::from_timestamp_millis(ms).unwrap().with_timezone(&offset);
            let text = dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            prop_assert_eq!(parse_rfc3339(&text), Ok(ms));
            let utc = chrono::DateTime::from_timestamp_millis(ms).unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            prop_assert_eq!(format_rfc3339_ms(ms), utc);
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_rfc3339(&s);
        }
    }
}
