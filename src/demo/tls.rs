//! `fjord demo --tls`: a throw-away certificate authority and a server certificate for
//! `localhost` / `127.0.0.1`, written to `<data dir>/tls/` (kept across restarts, so a client
//! that trusts the CA once keeps trusting it). Keys are mode 0600.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// Where the demo's TLS files are.
#[derive(Debug, Clone)]
pub struct DemoTls {
    /// The CA certificate clients trust (`--cacert`, `sslrootcert`).
    pub ca: PathBuf,
    /// The server certificate, then the CA's.
    pub cert: PathBuf,
    /// The server's key.
    pub key: PathBuf,
}

fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The files in `data_dir/tls`, made when they are not all there.
pub fn ensure(data_dir: &Path) -> anyhow::Result<DemoTls> {
    let dir = data_dir.join("tls");
    let tls = DemoTls {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    if tls.ca.is_file() && tls.cert.is_file() && tls.key.is_file() {
        return Ok(tls);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "fjord demo CA (throw-away)");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate()?;
    let cert = server.signed_by(&key, &ca)?;
    write(&tls.key, &key.serialize_pem(), 0o600)?;
    write(&tls.cert, &format!("{}{}", cert.pem(), ca.pem()), 0o644)?;
    write(&tls.ca, &ca.pem(), 0o644)?;
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_are_made_once_and_loadable() {
        let d = tempfile::tempdir().unwrap();
        let tls = ensure(d.path()).unwrap();
        let first = std::fs::read(&tls.cert).unwrap();
        let again = ensure(d.path()).unwrap();
        assert_eq!(
            std::fs::read(&again.cert).unwrap(),
            first,
            "kept, not remade"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&tls.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let cfg = fjord_core::config::TlsConfig {
            cert_file: Some(tls.cert),
            key_file: Some(tls.key),
        };
        assert!(
            fjord_core::tls::server_config(&cfg, fjord_core::tls::ALPN_HTTP)
                .unwrap()
                .is_some()
        );
    }
}
