//! Human-written durations in config: `"500ms"`, `"30s"`, `"10m"`, `"1h30m"`, `"7d"`.
//!
//! A config key that holds a duration takes a string with units, never a bare number, so that a
//! reader never has to guess whether `10` means seconds or minutes. [`Duration`] deserializes from
//! such a string (refusing anything else with a message that shows the accepted forms) and
//! serializes back to the shortest form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration with millisecond resolution, written with units in config.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {why}; write a number and a unit, e.g. \"500ms\", \"30s\", \"10m\", \"1h30m\" or \"7d\""
)]
pub struct DurationError {
    input: String,
    why: &'static str,
}

impl Duration {
    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }

    /// A duration of `s` seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }

    /// A duration of `m` minutes.
    pub const fn from_mins(m: u64) -> Self {
        Self(std::time::Duration::from_secs(m * 60))
    }

    /// The standard-library duration.
    pub const fn std(self) -> std::time::Duration {
        self.0
    }

    /// Whole milliseconds, saturating at `i64::MAX` (event-time arithmetic is in `i64` ms).
    pub fn as_millis_i64(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    /// True for a zero-length duration.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |why| DurationError {
            input: input.to_owned(),
            why,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        let mut total_ms: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let n_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            if n_len == 0 {
                return Err(err("expected a number"));
            }
            let n: u64 = rest[..n_len].parse().map_err(|_| err("number too large"))?;
            rest = rest[n_len..].trim_start();
            let u_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit_ms: u64 = match &rest[..u_len] {
                "ms" | "msec" | "millis" | "millisecond" | "milliseconds" => 1,
                "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
                "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
                "h" | "hr" | "hour" | "hours" => 3_600_000,
                "d" | "day" | "days" => 86_400_000,
                "" => return Err(err("a unit is required (ms, s, m, h or d)")),
                _ => return Err(err("unknown unit (use ms, s, m, h or d)")),
            };
            rest = rest[u_len..].trim_start();
            total_ms = n
                .checked_mul(unit_ms)
                .and_then(|v| total_ms.checked_add(v))
                .ok_or_else(|| err("too large"))?;
        }
        Ok(Duration::from_millis(total_ms))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms != 0 && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"30s\" or \"10m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "a duration needs a unit: write \"{v}s\" for {v} seconds or \"{v}ms\" for milliseconds"
                )))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        let p = |s: &str| s.parse::<Duration>().map(|d| d.std().as_millis());
        assert_eq!(p("500ms"), Ok(500));
        assert_eq!(p("30s"), Ok(30_000));
        assert_eq!(p("10m"), Ok(600_000));
        assert_eq!(p("1h30m"), Ok(5_400_000));
        assert_eq!(p("1h 30m"), Ok(5_400_000));
        assert_eq!(p("7d"), Ok(604_800_000));
        assert_eq!(p("0s"), Ok(0));
        assert_eq!(p("5 seconds"), Ok(5_000));
        assert_eq!(p("2 hours 1 min"), Ok(7_260_000));
    }

    #[test]
    fn refuses_without_unit_or_with_unknown_unit() {
        for bad in [
            "",
            "10",
            "ten minutes",
            "5 sekunder",
            "1.5s",
            "-3s",
            "3w",
            "s",
        ] {
            let e = bad.parse::<Duration>().unwrap_err().to_string();
            assert!(e.contains("e.g. \"500ms\""), "{bad}: {e}");
        }
    }

    #[test]
    fn displays_shortest_form() {
        assert_eq!(Duration::from_millis(90_000).to_string(), "90s");
        assert_eq!(Duration::from_mins(10).to_string(), "10m");
        assert_eq!(Duration::from_millis(1500).to_string(), "1500ms");
        assert_eq!(Duration::from_millis(0).to_string(), "0ms");
    }

    #[test]
    fn bare_numbers_are_refused_with_a_hint() {
        #[derive(Deserialize, Debug)]
        struct T {
            #[allow(dead_code)]
            d: Duration,
        }
        let e = toml::from_str::<T>("d = 30").unwrap_err().to_string();
        assert!(e.contains("write \"30s\""), "{e}");
    }
}
