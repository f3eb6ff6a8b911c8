//! A certificate per simulated client: loadgen over HTTPS to our backend in PKI mode with
//! `--client-certs` (four certificates from `backend pki init --clients 4`): the small site runs
//! exact, and the MP saw four distinct client certificates. Its own test binary: TLS settings
//! are per process.

use std::time::Duration;

use loadgen::profile::Plan;
use loadgen::run::{EXIT_OK, Options, run};
use loadgen::transport::ClientCertificates;

mod common;

#[test]
fn each_client_presents_its_own_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = backend::pki::init(&tmp.path().join("pki"), &[], 4).unwrap();
    let mut config = backend::server::Config::new(tmp.path().join("data"));
    config.time_scale = 600.0;
    config.checkpoint_every = Duration::from_millis(200);
    config.tls = Some(backend::server::tls::TlsSettings {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: Some(pki.ca.clone()),
    });
    let server = common::Backend::start(config);
    let loaded =
        loadgen::transport::use_tls(&pki.ca, ClientCertificates::PerClient(&tmp.path().join("pki/clients")));
    assert_eq!(loaded.unwrap(), 4);
    let base = format!("https://localhost:{}", server.addr.port());
    let opts = Options {
        target: Some(base.clone()),
        out: Some(tmp.path().join("run")),
        arbiters: Some(2),
        allow_late: true,
        ..Options::default()
    };
    let outcome = run(Plan::parse("small", common::SMALL).unwrap(), common::SMALL, &opts).unwrap();
    assert_eq!(outcome.exit, EXIT_OK, "{:#}", outcome.summary);
    assert_eq!(outcome.summary["verification"]["exact"], true);
    let status = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(loadgen::transport::get_json(&base, "/api/v1/status"))
        .unwrap();
    assert_eq!(status["ClientCertificates"], 4, "{status}");
}
