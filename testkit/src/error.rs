//! The test kit's own error type: test servers that are not installed or do not start. It is
//! not part of fjord-core's [`fjord_core::Error`], which production code returns.

use std::path::PathBuf;

/// `Result` with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the test kit could not provide a server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A server binary that the test kit needs is not installed.
    #[error("{name} is not installed (looked in {looked}); install it with: {install}")]
    MissingBinary {
        /// The program.
        name: &'static str,
        /// Where it was looked for.
        looked: String,
        /// The command that installs it.
        install: &'static str,
    },
    /// A server started by the test kit did not become ready.
    #[error("{name} did not start: {reason}; its log is at {}", log.display())]
    ServerStart {
        /// The program.
        name: &'static str,
        /// What went wrong.
        reason: String,
        /// Its log file.
        log: PathBuf,
    },
    /// fjord-core failed under the test kit (e.g. creating a topic).
    #[error(transparent)]
    Core(#[from] fjord_core::Error),
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
