//! Which dates of `readings` changed between two table versions, read from the Delta log's commit
//! files. Compaction commits (which rewrite files without changing rows) are ignored. Pure
//! parsing; the job reads the files.

use std::collections::BTreeSet;

use crate::commit::OPERATION_KEY;

/// The `date` partitions that the commit `json` (one Delta commit file, newline-delimited
/// actions) adds or removes files in. `None` when the commit only compacted files.
pub fn touched_dates(json: &str) -> Result<Option<BTreeSet<i32>>, String> {
    let mut dates = BTreeSet::new();
    for line in json.lines().filter(|l| !l.trim().is_empty()) {
        let action: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("unreadable log line: {e}"))?;
        if let Some(info) = action.get("commitInfo")
            && info.get(OPERATION_KEY).and_then(|v| v.as_str()) == Some("compact")
        {
            return Ok(None);
        }
        for kind in ["add", "remove"] {
            let Some(date) = action
                .get(kind)
                .and_then(|a| a.get("partitionValues"))
                .and_then(|p| p.get("date"))
                .and_then(|d| d.as_str())
            else {
                continue;
            };
            dates.insert(parse_date(date).ok_or_else(|| format!("bad date partition {date:?}"))?);
        }
    }
    Ok(Some(dates))
}

/// Parses `YYYY-MM-DD` into days since the epoch.
pub fn parse_date(s: &str) -> Option<i32> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    i32::try_from(fjord_core::time::days_from_civil(y, m, d)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_dates_of_added_and_removed_files() {
        let commit = r#"{"commitInfo":{"operation":"WRITE","fjord.operation":"ingest"}}
{"txn":{"appId":"fjord:x:t:0","version":10}}
{"add":{"path":"date=2026-11-21/a.parquet","partitionValues":{"date":"2026-11-21"},"size":1}}
{"remove":{"path":"date=2026-11-20/b.parquet","partitionValues":{"date":"2026-11-20"}}}
"#;
        let dates = touched_dates(commit).unwrap().unwrap();
        let want: BTreeSet<i32> = [
            parse_date("2026-11-20").unwrap(),
            parse_date("2026-11-21").unwrap(),
        ]
        .into_iter()
        .collect();
        assert_eq!(dates, want);
    }

    #[test]
    fn compaction_touches_nothing() {
        let commit = r#"{"commitInfo":{"fjord.operation":"compact"}}
{"add":{"path":"x","partitionValues":{"date":"2026-11-21"}}}"#;
        assert_eq!(touched_dates(commit).unwrap(), None);
    }

    #[test]
    fn dates_parse() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("x"), None);
    }
}
