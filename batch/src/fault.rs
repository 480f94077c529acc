//! Fault injection for the crash tests: `FJORD_FAULT_CRASH_BEFORE_COMMIT=<table>:<n>` makes the
//! process abort right after it wrote the data files of its `n`-th commit to `<table>` and before
//! committing them — the window a real crash can hit. Unset (always, outside tests), it costs one
//! relaxed atomic load per commit.

use std::sync::atomic::{AtomicU32, Ordering};

static COMMITS: AtomicU32 = AtomicU32::new(0);

/// Called between writing files and committing them to `table`.
pub fn before_commit(table: &str) {
    let Ok(spec) = std::env::var("FJORD_FAULT_CRASH_BEFORE_COMMIT") else {
        return;
    };
    let Some((target, n)) = spec.split_once(':') else {
        return;
    };
    if target != table {
        return;
    }
    let count = COMMITS.fetch_add(1, Ordering::Relaxed) + 1;
    if n.parse::<u32>().is_ok_and(|n| n == count) {
        eprintln!(
            "fault injection: files of commit {count} to {table} written, aborting before the commit"
        );
        std::process::abort();
    }
}
