//! loadgen over HTTPS against our backend in PKI mode (client certificates from its CA required
//! on the client paths) that also requires signed messages: the small site runs exact, with the
//! process's client certificate presented on every connection and every client signing (on by
//! default against a target). Its own test binary: TLS settings are per process.

use loadgen::profile::Plan;
use loadgen::run::{EXIT_OK, run};

mod common;

#[test]
fn a_run_over_https_with_a_client_certificate_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let (pki, server) = common::pki_backend(tmp.path(), 1, |c| c.require_signing = true);
    let (cert, key) = &pki.clients[0];
    loadgen::transport::use_tls(&pki.ca, loadgen::transport::ClientCertificates::One(cert, key)).unwrap();
    let opts =
        common::remote_options(format!("https://localhost:{}", server.addr.port()), tmp.path().join("run"));
    let outcome = run(Plan::parse("small", common::SMALL).unwrap(), common::SMALL, &opts).unwrap();
    assert_eq!(outcome.exit, EXIT_OK, "{:#}", outcome.summary);
    assert_eq!(outcome.summary["verification"]["exact"], true);
    assert_eq!(outcome.summary["signing"]["on"], true, "{}", outcome.summary["signing"]);
    // Every client's key was kept: one frame of 8 + 16 + 276 bytes (a 2048-bit blob) each.
    let kept = std::fs::metadata(tmp.path().join("data/mp/keys.log")).unwrap().len();
    assert_eq!(kept, 40 * 300);
    for kind in ["registration", "policy_body", "wsus_location", "catalog", "state_report"] {
        let k = &outcome.summary["requests"][kind];
        assert!(k["count"].as_u64().unwrap() > 0 && k["errors"] == 0, "{kind}: {k}");
    }
}
