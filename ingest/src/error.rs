//! The one error type of `fjord-ingest`.

/// `Result` with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the ingest crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The embedded broker could not listen on its address.
    #[error("the embedded MQTT broker cannot listen on {addr}: {reason}")]
    BrokerListen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why (the OS error, or the broker's own failure).
        reason: String,
    },
    /// An error of the shared core.
    #[error(transparent)]
    Core(#[from] fjord_core::Error),
}
