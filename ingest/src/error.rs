//! The one error type of `fjord-ingest`.

/// `Result` with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the ingest crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used (a bad mapping rule, URL or credential).
    #[error("configuration: {0}")]
    Config(String),
    /// The MQTT client failed in a way the bridge cannot recover from by reconnecting.
    #[error("MQTT: {0}")]
    Mqtt(String),
    /// The Kafka client failed in a way the bridge cannot recover from by retrying.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// The embedded broker could not listen on its address.
    #[error("the embedded MQTT broker cannot listen on {addr}: {reason}")]
    BrokerListen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why (the OS error, or the broker's own failure).
        reason: String,
    },
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An error of the shared core.
    #[error(transparent)]
    Core(#[from] fjord_core::Error),
}
