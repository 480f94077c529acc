//! The one error type of `fjord-batch`.

/// `Result` with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the batch layer. Every variant says which table or source it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration or a command-line argument cannot be used.
    #[error("configuration: {0}")]
    Config(String),
    /// The lake: a Delta table operation failed, or another writer committed first
    /// (`fjord_lake::Error::Conflict`; running again resolves it).
    #[error(transparent)]
    Lake(Box<fjord_lake::Error>),
    /// A query over the lake failed.
    #[error("query over `{table}`: {source}")]
    Query {
        /// The table.
        table: String,
        /// What DataFusion reported.
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// Kafka could not be read.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// An input file cannot be read.
    #[error("{path}: {reason}")]
    Input {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Building Arrow data failed (a bug, or a value outside the schema).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A task writing files of `table` panicked or was cancelled.
    #[error("writing `{table}`: {source}")]
    Task {
        /// The table.
        table: String,
        /// Why the task ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// An error of the shared core.
    #[error(transparent)]
    Core(#[from] fjord_core::Error),
}

impl Error {
    /// Wraps a delta-rs error for `table`, telling conflicts apart.
    pub fn delta(table: &str, source: deltalake::DeltaTableError) -> Self {
        fjord_lake::Error::delta(table, source).into()
    }

    /// Wraps a DataFusion error for `table`.
    pub fn query(table: &str, source: datafusion::error::DataFusionError) -> Self {
        Error::Query {
            table: table.into(),
            source,
        }
    }
}

impl From<fjord_lake::Error> for Error {
    fn from(e: fjord_lake::Error) -> Self {
        Error::Lake(Box::new(e))
    }
}

impl Error {
    /// Another writer committed first (running again resolves it): what it changed.
    pub fn conflict(&self) -> Option<&str> {
        match self {
            Error::Lake(e) => match e.as_ref() {
                fjord_lake::Error::Conflict { detail, .. } => Some(detail),
                _ => None,
            },
            _ => None,
        }
    }
}
