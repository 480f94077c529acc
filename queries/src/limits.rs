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

    /// The error for a DataFusion error: memory exhaustion names the memory limit.
    pub fn error(&self, e: DataFusionError) -> Error {
        if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) {
            self.memory_error(&e.find_root().to_string())
        } else {
            Error::Engine(Box::new(e))
        }
    }

    /// The error for an error that reached us as text (through the Postgres wire library).
    pub fn error_text(&self, text: &str) -> Error {
        if text.contains("Resources exhausted") {
            self.memory_error(text)
        } else {
            Error::Query(text.to_owned())
        }
    }

    fn memory_error(&self, detail: &str) -> Error {
        Error::Limit(format!(
            "the query needs more memory than the limit of {} MiB (serve.query_memory_mb) and was stopped: {detail}",
            self.memory_bytes / (1024 * 1024),
        ))
    }
}
