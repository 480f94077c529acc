//! The one error type of `fjord-queries`.

/// `Result` with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the serving layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The statement is not allowed (only read-only queries are).
    #[error("refused: {0}")]
    Refused(String),
    /// The SQL is wrong or the query failed (a message of fjord's own).
    #[error("{0}")]
    Query(String),
    /// The query engine refused or failed the query; its error is kept as the cause.
    #[error("{0}")]
    Engine(#[source] Box<datafusion::error::DataFusionError>),
    /// The query hit one of its limits (time, memory, rows); the message names it.
    #[error("limit: {0}")]
    Limit(String),
    /// Kafka could not be read.
    #[error("kafka: {0}")]
    Kafka(String),
    /// A listener could not be bound or served.
    #[error("{0}")]
    Serve(String),
    /// An output format fjord does not write.
    #[error("unknown format {0:?}: use table, csv or json")]
    Format(String),
    /// The lake could not be read.
    #[error(transparent)]
    Lake(Box<fjord_lake::Error>),
    /// An error of the shared core.
    #[error(transparent)]
    Core(#[from] fjord_core::Error),
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::Engine(Box::new(e))
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Query(e.to_string())
    }
}

impl From<fjord_lake::Error> for Error {
    fn from(e: fjord_lake::Error) -> Self {
        Error::Lake(Box::new(e))
    }
}
