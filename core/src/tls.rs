//! TLS for fjord's listeners (`[tls]`): the server configuration from PEM files, and a listener
//! that hands out connections once their handshake is done; and for fjord's own clients of other
//! servers (the bridge's `mqtts://`): a client configuration trusting a CA file or the system's
//! roots.
//!
//! One certificate (chain) and key serve every listener of a process. Handshakes run in tasks of
//! their own, each bounded by [`HANDSHAKE_TIMEOUT`], so a client that connects and says nothing
//! delays nobody. The crypto is rustls with *ring*.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use rustls::ServerConfig;
pub use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::TlsConfig;
use crate::{Error, Result};

/// Longest a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most handshakes a listener runs at once. A connection beyond them is closed at once: clients
/// that connect and say nothing hold a handshake each for [`HANDSHAKE_TIMEOUT`], and without a
/// bound they could hold unbounded memory and file descriptors.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// ALPN of HTTP listeners.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// ALPN of gRPC (Flight SQL).
pub const ALPN_GRPC: &[&[u8]] = &[b"h2"];

/// A server-side TLS connection.
pub type ServerStream = TlsStream<TcpStream>;

/// The crypto provider fjord uses (the process may link several).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
        .map_err(|e| Error::Tls(format!("tls.cert_file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "tls.cert_file {}: no certificate in it (expected PEM `CERTIFICATE` blocks, the server's first)",
            path.display()
        )));
    }
    Ok(certs)
}

/// The server configuration of `cfg` with `alpn` protocols, or `None` when TLS is not configured.
pub fn server_config(cfg: &TlsConfig, alpn: &[&[u8]]) -> Result<Option<Arc<ServerConfig>>> {
    let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) else {
        return Ok(None);
    };
    let chain = certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Tls(format!("tls.key_file {}: {e}", key.display())))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Tls(format!("tls.cert_file and tls.key_file do not match: {e}")))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Some(Arc::new(config)))
}

/// A client configuration that trusts the PEM certificates of `ca_file` (`key` names the config key
/// in errors) or, without one, the operating system's trusted roots.
pub fn client_config(ca_file: Option<&Path>, key: &str) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
                .map_err(|e| Error::Tls(format!("{key} {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::Tls(format!(
                    "{key} {}: no usable certificate in it (expected PEM `CERTIFICATE` blocks)",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(Error::Tls(format!(
                    "no trusted roots found on this system ({:?}); set {key} to the CA that signed the server's certificate",
                    found.errors.first().map(ToString::to_string)
                )));
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts TCP connections and yields them once their TLS handshake succeeded; failed handshakes
/// are logged at debug level and dropped.
pub struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accept: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl TlsListener {
    /// Serves TLS with `config` on `listener`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> Result<Self> {
        let local = listener
            .local_addr()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
        let accept = tokio::spawn(async move {
            let mut last_warned = None;
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = pending.clone().try_acquire_owned() else {
                    if last_warned
                        .is_none_or(|t: std::time::Instant| t.elapsed() > Duration::from_secs(10))
                    {
                        tracing::warn!(%peer, limit = MAX_PENDING_HANDSHAKES, "TLS listener: too many handshakes in progress; closing new connections until some finish");
                        last_warned = Some(std::time::Instant::now());
                    }
                    drop(tcp);
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            local,
            ready,
            accept,
        })
    }

    /// The next connection whose handshake is done; `None` once the listener stopped.
    pub async fn next(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.ready.recv().await
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // the accept task only ends when the listener is dropped
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_means_no_tls_and_bad_files_say_which_key() {
        assert!(
            server_config(&TlsConfig::default(), ALPN_HTTP)
                .unwrap()
                .is_none()
        );
        let d = tempfile::tempdir().unwrap();
        let cert = d.path().join("c.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let cfg = TlsConfig {
            cert_file: Some(cert),
            key_file: Some(d.path().join("missing.pem")),
        };
        let e = server_config(&cfg, ALPN_HTTP).unwrap_err().to_string();
        assert!(e.contains("tls.cert_file"), "{e}");
    }
}
