//! HTTPS: the MP's listener over TLS (rustls, the `ring` provider), and PKI mode: client
//! certificates issued by a given CA, required (as an HTTPS MP with "require client
//! certificates" does) on the paths clients use, except `/ccm_system_altauth/request`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

/// Where the server's certificate and key are, and (PKI mode) the CA whose client certificates
/// it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the server's certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM: its private key.
    pub key: PathBuf,
    /// PEM: the CA that issues client certificates; requests on client paths need one.
    pub client_ca: Option<PathBuf>,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{}: {why}", path.display()))
}

fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(bad(path, "no certificate in it"));
    }
    Ok(certs)
}

/// The acceptor the listener wraps each connection in. Errors name the file and what is wrong.
pub fn acceptor(s: &TlsSettings) -> io::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&s.cert)?;
    let key = PrivateKeyDer::from_pem_file(&s.key).map_err(|e| bad(&s.key, e))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match &s.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert).map_err(|e| bad(ca, e))?;
            }
            // A connection without a certificate is accepted; the requests that need one are
            // answered 403, as the product's IIS answers them.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| bad(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| bad(&s.cert, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What the connection a request came on says of its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    /// Plain HTTP.
    Http,
    /// HTTPS; whether the client presented a certificate the CA issued (PKI mode), and whether
    /// the server asks for one.
    Https { client_certificate: bool, pki: bool },
}

impl Channel {
    /// Whether a request for `path` must be refused for want of a client certificate.
    pub(crate) fn needs_certificate(self, path: &str) -> bool {
        let client_path = matches!(path, "/ccm_system/request" | "/ccm_system_windowsauth/request")
            || path.starts_with("/SMS_MP/.sms_pol")
            || path.starts_with("/wsus/");
        matches!(self, Channel::Https { client_certificate: false, pki: true }) && client_path
    }
}

/// The distinct client certificates connections presented (by SHA-256 of the DER), up to
/// [`SeenCertificates::MAX`]: how many client machines an MP in PKI mode saw.
#[derive(Debug, Default)]
pub(crate) struct SeenCertificates {
    seen: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
}

impl SeenCertificates {
    /// Past this many, new certificates are not remembered (the count says "at least").
    pub(crate) const MAX: usize = 1 << 20;

    pub(crate) fn saw(&self, cert: &CertificateDer<'_>) {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(cert.as_ref()).into();
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() < Self::MAX {
            seen.insert(digest);
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}
