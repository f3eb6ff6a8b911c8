//! loadgen over HTTPS against our backend in PKI mode (client certificates from its CA required
//! on the client paths): the small site runs exact, with the process's client certificate
//! presented on every connection. Its own test binary: TLS settings are per process.

use std::path::Path;
use std::time::Duration;

use loadgen::profile::Plan;
use loadgen::run::{EXIT_OK, Options, run};

mod common;

/// Our backend over TLS in PKI mode, kept to the end of the test.
struct Backend {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    fn start(data: &Path, pki: &backend::pki::Pki) -> Backend {
        let mut config = backend::server::Config::new(data.to_owned());
        config.time_scale = 600.0;
        config.checkpoint_every = Duration::from_millis(200);
        config.tls = Some(backend::server::tls::TlsSettings {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            client_ca: Some(pki.ca.clone()),
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                backend::server::run(listener, config, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let port = addr_rx.recv().unwrap().port();
        Backend { port, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.thread.take().map(|t| t.join());
    }
}

#[test]
fn a_run_over_https_with_a_client_certificate_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = backend::pki::init(&tmp.path().join("pki"), &[], 1).unwrap();
    let server = Backend::start(&tmp.path().join("data"), &pki);
    let (cert, key) = &pki.clients[0];
    loadgen::transport::use_tls(&pki.ca, Some((cert, key))).unwrap();
    let opts = Options {
        target: Some(format!("https://localhost:{}", server.port)),
        out: Some(tmp.path().join("run")),
        arbiters: Some(2),
        allow_late: true,
        ..Options::default()
    };
    let outcome = run(Plan::parse("small", common::SMALL).unwrap(), common::SMALL, &opts).unwrap();
    assert_eq!(outcome.exit, EXIT_OK, "{:#}", outcome.summary);
    assert_eq!(outcome.summary["verification"]["exact"], true);
    for kind in ["registration", "policy_body", "wsus_location", "catalog", "state_report"] {
        let k = &outcome.summary["requests"][kind];
        assert!(k["count"].as_u64().unwrap() > 0 && k["errors"] == 0, "{kind}: {k}");
    }
}
