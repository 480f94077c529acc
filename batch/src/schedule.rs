//! When a scheduled batch job runs next: `--every DURATION` (aligned to the epoch, so several
//! schedulers agree) or `--cron EXPR` (five fields, UTC: minute hour day-of-month month
//! day-of-week, with `*`, lists, ranges and `/step`; day-of-week 0 or 7 is Sunday). Pure.

use fjord_core::time::{TimestampMs, civil_from_days, days_from_civil};

/// A schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every this many milliseconds.
    Every(i64),
    /// A cron expression.
    Cron(Cron),
}

impl Schedule {
    /// The first run time strictly after `now`.
    pub fn next_after(&self, now: TimestampMs) -> TimestampMs {
        match self {
            Schedule::Every(ms) => (now.div_euclid(*ms) + 1) * ms,
            Schedule::Cron(c) => c.next_after(now),
        }
    }
}

/// A parsed five-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day-of-month and day-of-week were both restricted: either matches (cron's rule).
    either_day: bool,
}

fn parse_field(field: &str, min: u32, max: u32, name: &str) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let restricted = field != "*";
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("{name}: step {s:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{name}: a step of 0 never advances"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a: u32 = a
                .parse()
                .map_err(|_| format!("{name}: {a:?} is not a number"))?;
            let b: u32 = b
                .parse()
                .map_err(|_| format!("{name}: {b:?} is not a number"))?;
            (a, b)
        } else {
            let v: u32 = range
                .parse()
                .map_err(|_| format!("{name}: {range:?} is not a number"))?;
            // "5/15" means from 5 to the end in steps of 15.
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{name}: {range:?} is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, restricted))
}

impl Cron {
    /// Parses `expr`, e.g. `"0 * * * *"` (hourly) or `"*/15 6-22 * * 1-5"`.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields[..] else {
            return Err(format!(
                "cron expression {expr:?} must have 5 fields (minute hour day-of-month month day-of-week), it has {}",
                fields.len()
            ));
        };
        let (minutes, _) = parse_field(m, 0, 59, "minute")?;
        let (hours, _) = parse_field(h, 0, 23, "hour")?;
        let (days, dom_r) = parse_field(dom, 1, 31, "day of month")?;
        let (months, _) = parse_field(mon, 1, 12, "month")?;
        let (mut weekdays, dow_r) = parse_field(dow, 0, 7, "day of week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Self {
            minutes,
            hours,
            days,
            months,
            weekdays,
            either_day: dom_r && dow_r,
        })
    }

    fn day_matches(&self, day: i64) -> bool {
        let (_, month, dom) = civil_from_days(day);
        if self.months & (1 << month) == 0 {
            return false;
        }
        // 1970-01-01 was a Thursday (4).
        let dow = (day + 4).rem_euclid(7);
        let d = self.days & (1 << dom) != 0;
        let w = self.weekdays & (1 << dow) != 0;
        if self.either_day { d || w } else { d && w }
    }

    /// The first matching minute strictly after `now`.
    pub fn next_after(&self, now: TimestampMs) -> TimestampMs {
        let mut minute = now.div_euclid(60_000) + 1;
        // At most ~8 years of days to scan (e.g. "0 0 29 2 *" runs only in leap years).
        for _ in 0..(366 * 8 * 24 * 60) {
            let day = minute.div_euclid(1440);
            if !self.day_matches(day) {
                minute = (day + 1) * 1440;
                continue;
            }
            let m = minute.rem_euclid(1440);
            let (h, mm) = (m / 60, m % 60);
            if self.hours & (1 << h) == 0 {
                minute = day * 1440 + (h + 1) * 60;
                continue;
            }
            if self.minutes & (1 << mm) == 0 {
                minute += 1;
                continue;
            }
            return minute * 60_000;
        }
        i64::MAX
    }
}

/// Epoch ms of a UTC date and time (for tests and messages).
pub fn utc(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> TimestampMs {
    (days_from_civil(y, mo, d) * 1440 + h * 60 + mi) * 60_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_is_aligned_to_the_epoch() {
        let s = Schedule::Every(600_000);
        assert_eq!(
            s.next_after(utc(2026, 11, 22, 3, 7)),
            utc(2026, 11, 22, 3, 10)
        );
        assert_eq!(
            s.next_after(utc(2026, 11, 22, 3, 10)),
            utc(2026, 11, 22, 3, 20)
        );
    }

    #[test]
    fn hourly() {
        let c = Cron::parse("0 * * * *").unwrap();
        assert_eq!(
            c.next_after(utc(2026, 11, 22, 3, 0)),
            utc(2026, 11, 22, 4, 0)
        );
        assert_eq!(
            c.next_after(utc(2026, 11, 22, 23, 59)),
            utc(2026, 11, 23, 0, 0)
        );
    }

    #[test]
    fn steps_ranges_and_weekdays() {
        // Weekdays 6:00-22:59 every 15 minutes. 2026-11-22 is a Sunday.
        let c = Cron::parse("*/15 6-22 * * 1-5").unwrap();
        assert_eq!(
            c.next_after(utc(2026, 11, 22, 12, 0)),
            utc(2026, 11, 23, 6, 0)
        );
        assert_eq!(
            c.next_after(utc(2026, 11, 23, 6, 0)),
            utc(2026, 11, 23, 6, 15)
        );
        assert_eq!(
            c.next_after(utc(2026, 11, 23, 22, 45)),
            utc(2026, 11, 24, 6, 0)
        );
        // Sunday as 7.
        let c = Cron::parse("30 2 * * 7").unwrap();
        assert_eq!(
            c.next_after(utc(2026, 11, 21, 0, 0)),
            utc(2026, 11, 22, 2, 30)
        );
    }

    #[test]
    fn month_and_leap_days() {
        let c = Cron::parse("0 0 29 2 *").unwrap();
        assert_eq!(
            c.next_after(utc(2026, 11, 22, 0, 0)),
            utc(2028, 2, 29, 0, 0)
        );
        let c = Cron::parse("5,35 1 1 1,7 *").unwrap();
        assert_eq!(c.next_after(utc(2026, 11, 22, 0, 0)), utc(2027, 1, 1, 1, 5));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        assert!(Cron::parse("* * * *").unwrap_err().contains("5 fields"));
        assert!(Cron::parse("61 * * * *").unwrap_err().contains("minute"));
        assert!(Cron::parse("*/0 * * * *").unwrap_err().contains("step"));
        assert!(Cron::parse("x * * * *").unwrap_err().contains("\"x\""));
    }
}
