//! The per-query limits of `[serve]` (docs/contract.md §7) and the errors that name them.

use std::time::Duration;

use datafusion::error::DataFusionError;
use fjord_core::config::ServeConfig;

use crate::Error;

/// The per-query limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest a query may take, its result included.
    pub timeout: Duration,
    /// Memory all running queries may hold together.
    pub memory_bytes: usize,
    /// Disk their operators may spill to together (0: none).
    pub spill_bytes: u64,
    /// Most rows one query may return.
    pub max_rows: u64,
    /// Most bytes (Arrow data) one query may return.
    pub max_result_bytes: u64,
    /// How large a statement may be.
    pub sql: crate::guard::Shape,
}

impl Limits {
    /// The limits of `[serve]`.
    pub fn from_config(cfg: &ServeConfig) -> Self {
        Self {
            timeout: cfg.query_timeout.std(),
            memory_bytes: usize::try_from(cfg.query_memory_mb.saturating_mul(1024 * 1024))
                .unwrap_or(usize::MAX),
            spill_bytes: cfg.query_spill_mb.saturating_mul(1024 * 1024),
            max_rows: cfg.max_result_rows,
            max_result_bytes: cfg.max_result_mb.saturating_mul(1024 * 1024),
            sql: crate::guard::Shape {
                max_bytes: usize::try_from(cfg.max_sql_bytes).unwrap_or(usize::MAX),
                max_depth: usize::try_from(cfg.max_sql_depth).unwrap_or(usize::MAX),
            },
        }
    }

    /// The error of a query stopped at its time limit.
    pub fn time_error(&self) -> Error {
        Error::Limit(format!(
            "the query ran longer than its time limit of {} (serve.query_timeout) and was stopped",
            fjord_core::duration::Duration::from_millis(
                u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
            )
        ))
    }

    /// The error of a query stopped at its row limit.
    pub fn rows_error(&self) -> Error {
        Error::Limit(format!(
            "the query returns more than the row limit of {} rows (serve.max_result_rows); add a LIMIT or aggregate",
            self.max_rows
        ))
    }

    /// The error of a query stopped at its byte limit.
    pub fn bytes_error(&self) -> Error {
        Error::Limit(format!(
            "the query returns more than the result limit of {} MiB (serve.max_result_mb); add a LIMIT, select fewer columns or aggregate",
            self.max_result_bytes / (1024 * 1024)
        ))
    }

    /// The error for a DataFusion error: exhaustion names the memory limit, and the spill limit
    /// when the spill files outgrew it.
    pub fn error(&self, e: DataFusionError) -> Error {
        let root = e.find_root();
        // a spill file that outgrows the limit fails its write, which reaches us as an I/O error
        if matches!(root, DataFusionError::ResourcesExhausted(_)) || spilled_out(&root.to_string())
        {
            self.memory_error(&root.to_string())
        } else {
            Error::Engine(Box::new(e))
        }
    }

    /// The error for an error that reached us as text (through the Postgres wire library).
    pub fn error_text(&self, text: &str) -> Error {
        if text.contains("Resources exhausted") || spilled_out(text) {
            self.memory_error(text)
        } else {
            Error::Query(text.to_owned())
        }
    }

    fn memory_error(&self, detail: &str) -> Error {
        let spill = if self.spill_bytes == 0 {
            " (spilling to disk is off: serve.query_spill_mb = 0)".to_owned()
        } else if spilled_out(detail) {
            format!(
                " and more disk to spill to than the limit of {} MiB (serve.query_spill_mb)",
                self.spill_bytes / (1024 * 1024)
            )
        } else {
            String::new()
        };
        Error::Limit(format!(
            "the query needs more memory than the limit of {} MiB (serve.query_memory_mb){spill} and was stopped: {detail}",
            self.memory_bytes / (1024 * 1024),
        ))
    }
}

/// Whether DataFusion's exhaustion error says the spill files outgrew their limit (its disk
/// manager's `max_temp_directory_size`, which fjord sets from `serve.query_spill_mb`).
fn spilled_out(detail: &str) -> bool {
    detail.contains("disk space during the spilling process")
        || detail.contains("max_temp_directory_size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_query_names_the_limits_it_hit() {
        let mut cfg = ServeConfig {
            query_memory_mb: 64,
            query_spill_mb: 128,
            ..ServeConfig::default()
        };
        let memory = Limits::from_config(&cfg)
            .error_text("Resources exhausted: Failed to allocate additional 1.0 MB")
            .to_string();
        assert!(
            memory.contains("limit of 64 MiB (serve.query_memory_mb) and was stopped"),
            "{memory}"
        );
        let disk = Limits::from_config(&cfg)
            .error(DataFusionError::ArrowError(
                Box::new(arrow::error::ArrowError::IoError(
                    "The used disk space during the spilling process has exceeded the allowable limit of 128.0 MB".into(),
                    std::io::Error::other("spill"),
                )),
                None,
            ))
            .to_string();
        assert!(
            disk.contains("(serve.query_memory_mb) and more disk to spill to than the limit of 128 MiB (serve.query_spill_mb)"),
            "{disk}"
        );
        // the same error as the Postgres wire library hands it over, as text
        let disk_text = Limits::from_config(&cfg)
            .error_text("Arrow error: Io error: The used disk space during the spilling process has exceeded the allowable limit of 128.0 MB")
            .to_string();
        assert!(disk_text.contains("(serve.query_spill_mb)"), "{disk_text}");
        cfg.query_spill_mb = 0;
        let off = Limits::from_config(&cfg)
            .error_text(
                "Resources exhausted: Memory Exhausted while Sorting (DiskManager is disabled)",
            )
            .to_string();
        assert!(off.contains("serve.query_spill_mb = 0"), "{off}");
    }
}
