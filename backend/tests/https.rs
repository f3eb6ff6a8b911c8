//! HTTPS over real sockets with a PKI from `backend pki init`: the MP answers over TLS to a
//! client that trusts the test CA; in PKI mode a client path without a client certificate is
//! 403 `Client certificate required`, with one it is served, and `/ccm_system_altauth/request`
//! needs none; plain HTTP to the TLS listener gets nothing.

mod common;

use std::path::Path;
use std::sync::Arc;

use backend::pki::Pki;
use backend::server::tls::TlsSettings;
use common::{Server, fixture};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request over TLS on its own connection: (status, head in lower case, body).
fn https(
    addr: std::net::SocketAddr,
    pki: &Pki,
    client: Option<usize>,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(i) => {
            let (cert, key) = &pki.clients[i];
            let chain = CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect();
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap()).unwrap()
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let raw = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            protocol::envelope::CONTENT_TYPE,
            body.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        // The server may close without a TLS close_notify once it has answered.
        let _ = tls.read_to_end(&mut raw).await;
        raw
    });
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    (head[9..12].parse().unwrap(), head, raw[split + 4..].to_vec())
}

fn start(dir: &Path, pki: &Pki, client_ca: bool) -> Server {
    let settings = TlsSettings {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: client_ca.then(|| pki.ca.clone()),
    };
    Server::start(dir, move |c| c.tls = Some(settings))
}

#[test]
fn the_mp_answers_over_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = backend::pki::init(&tmp.path().join("pki"), &["mp.contoso.com".into()], 1).unwrap();
    let server = start(&tmp.path().join("data"), &pki, false);
    let (status, _, body) = https(server.addr, &pki, None, "GET", "/api/v1/site", b"");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"SiteCode\""));
    let location = fixture("ccm-wsus-location-request.bin");
    assert_eq!(https(server.addr, &pki, None, "CCM_POST", "/ccm_system/request", &location).0, 200);
    // Plain HTTP to the TLS listener: no HTTP answer.
    let plain = common::call(server.addr, "GET", "/api/v1/site", &[], b"");
    assert!(plain.is_err() || plain.as_ref().is_ok_and(|r| r.0 != 200), "{plain:?}");
}

#[test]
fn pki_mode_requires_a_client_certificate_except_on_altauth() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pki = backend::pki::init(&tmp.path().join("pki"), &[], 2).unwrap();
    let server = start(&data, &pki, true);
    let location = fixture("ccm-wsus-location-request.bin");
    let (status, _, body) = https(server.addr, &pki, None, "CCM_POST", "/ccm_system/request", &location);
    assert_eq!((status, String::from_utf8_lossy(&body).trim()), (403, "Client certificate required"));
    let log = std::fs::read_to_string(data.join("logs/MP_Framework.log")).unwrap();
    assert!(
        log.contains("/ccm_system/request") && log.contains("refused (403): no client certificate"),
        "{log}"
    );
    assert_eq!(https(server.addr, &pki, Some(1), "CCM_POST", "/ccm_system/request", &location).0, 200);
    assert_eq!(https(server.addr, &pki, None, "CCM_POST", "/ccm_system_altauth/request", &location).0, 200);
    // The site API and the MP list need no certificate.
    assert_eq!(https(server.addr, &pki, None, "GET", "/SMS_MP/.sms_aut?MPLIST", b"").0, 200);
}

#[test]
fn a_client_certificate_from_another_ca_is_refused_in_the_handshake() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = backend::pki::init(&tmp.path().join("pki"), &[], 1).unwrap();
    let other = backend::pki::init(&tmp.path().join("other"), &[], 1).unwrap();
    let server = start(&tmp.path().join("data"), &pki, true);
    // A client of the other CA, trusting this server's CA.
    let foreign = Pki { clients: other.clients.clone(), ..pki.clone() };
    let answer =
        std::panic::catch_unwind(|| https(server.addr, &foreign, Some(0), "GET", "/api/v1/site", b""));
    assert!(answer.is_err(), "a foreign client certificate must not get an answer");
}
