//! `backend pki init`: a test PKI for HTTPS and PKI mode (rcgen): a CA, a server certificate
//! for the names given (and `localhost`, `127.0.0.1`), and client certificates, as PEM files.
//! For labs and tests only: the keys are written unencrypted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The files [`init`] wrote.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// (certificate, key) per client, in order.
    pub clients: Vec<(PathBuf, PathBuf)>,
}

fn write(path: &Path, pem: &str) -> io::Result<()> {
    fs::write(path, pem)
}

/// Writes `ca.pem`, `server.pem`, `server-key.pem` and `clients/client-<i>.pem` (and `-key.pem`)
/// for `clients` clients under `dir`; the server certificate names `hosts` besides `localhost`
/// and `127.0.0.1`.
pub fn init(dir: &Path, hosts: &[String], clients: usize) -> io::Result<Pki> {
    let err = |e: rcgen::Error| io::Error::other(format!("certificate: {e}"));
    fs::create_dir_all(dir.join("clients"))?;
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.distinguished_name.push(DnType::CommonName, "sumstorm test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    names.extend(hosts.iter().cloned());
    let server_key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(names).map_err(err)?;
    params.distinguished_name.push(DnType::CommonName, hosts.first().map_or("localhost", String::as_str));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = params.signed_by(&server_key, &issuer).map_err(err)?;

    let pki = Pki {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        clients: (0..clients)
            .map(|i| {
                (dir.join(format!("clients/client-{i}.pem")), dir.join(format!("clients/client-{i}-key.pem")))
            })
            .collect(),
    };
    write(&pki.ca, &ca_cert.pem())?;
    write(&pki.server_cert, &server.pem())?;
    write(&pki.server_key, &server_key.serialize_pem())?;
    for (i, (cert, key)) in pki.clients.iter().enumerate() {
        let client_key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, format!("SUMSTORM-CLIENT-{i}"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let signed = params.signed_by(&client_key, &issuer).map_err(err)?;
        write(cert, &signed.pem())?;
        write(key, &client_key.serialize_pem())?;
    }
    Ok(pki)
}
