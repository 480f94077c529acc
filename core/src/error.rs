//! The one error type of `fjord-core`. Each variant says what failed and carries the context a user
//! needs to fix it (a path, a row, a broker address).

use std::path::PathBuf;

/// `Result` with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the core crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; every problem is listed.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigErrors),
    /// The lots registry has invalid or duplicate lots.
    #[error("lots registry: {0}")]
    Lots(String),
    /// Rows of a lots CSV file are invalid.
    #[error("{} problem(s) in lots file {}:{}", problems.len(), path.display(), problems.iter().map(|(l, m)| format!("\n  - line {l}: {m}")).collect::<String>())]
    LotsCsv {
        /// The file.
        path: PathBuf,
        /// (line, message) per problem.
        problems: Vec<(usize, String)>,
    },
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A Kafka client operation failed.
    #[error("kafka: {context}: {source}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Logging or metrics could not be set up.
    #[error("telemetry: {0}")]
    Telemetry(String),
    /// TLS could not be set up (the message names the config key).
    #[error("TLS: {0}")]
    Tls(String),
}

impl Error {
    /// Wraps a Kafka error with what was being done.
    pub fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        Error::Kafka {
            context: context.into(),
            source,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
