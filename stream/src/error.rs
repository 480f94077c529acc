//! The one error type of `fjord-stream`.

/// `Result` with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the stream crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used.
    #[error("configuration: {0}")]
    Config(String),
    /// Kafka failed in a way the processor does not recover from in-process (it stops; on restart
    /// it resumes from its last checkpoint).
    #[error("Kafka: {0}")]
    Kafka(String),
    /// Another instance with the same transactional id took over: this one must stop.
    #[error("fenced: another stream instance with the same transactional id took over ({0})")]
    Fenced(String),
    /// A checkpoint could not be read back.
    #[error("checkpoint of partition {partition}: {reason}")]
    Checkpoint {
        /// The input partition.
        partition: i32,
        /// What is wrong.
        reason: String,
    },
    /// An error of the shared core.
    #[error(transparent)]
    Core(#[from] fjord_core::Error),
}
