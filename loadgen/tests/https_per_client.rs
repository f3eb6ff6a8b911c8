//! A certificate per simulated client: loadgen over HTTPS to our backend in PKI mode with
//! `--client-certs` (four certificates from `backend pki init --clients 4`): the small site runs
//! exact, and the MP saw four distinct client certificates. Its own test binary: TLS settings
//! are per process.

use loadgen::profile::Plan;
use loadgen::run::{EXIT_OK, run};
use loadgen::transport::ClientCertificates;

mod common;

#[test]
fn each_client_presents_its_own_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let (pki, server) = common::pki_backend(tmp.path(), 4, |_| {});
    let loaded =
        loadgen::transport::use_tls(&pki.ca, ClientCertificates::PerClient(&tmp.path().join("pki/clients")));
    assert_eq!(loaded.unwrap(), 4);
    let base = format!("https://localhost:{}", server.addr.port());
    let opts = common::remote_options(base.clone(), tmp.path().join("run"));
    let outcome = run(Plan::parse("small", common::SMALL).unwrap(), common::SMALL, &opts).unwrap();
    assert_eq!(outcome.exit, EXIT_OK, "{:#}", outcome.summary);
    assert_eq!(outcome.summary["verification"]["exact"], true);
    let status = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(loadgen::transport::get_json(&base, "/api/v1/status"))
        .unwrap();
    assert_eq!(status["ClientCertificates"], 4, "{status}");
}
