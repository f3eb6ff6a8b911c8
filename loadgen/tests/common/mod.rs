//! What the load-run test binaries share: a small site profile and a run of it against the
//! embedded backend that must exit 0 with exact verification, the check that a page's plots
//! draw in headless Chromium, the null MP, and our backend in the test's process for runs with `--target`.

// Each test binary uses what it needs of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use loadgen::profile::Plan;
use loadgen::run::{EXIT_OK, Options, run};
use serde_json::Value;

pub(crate) const SMALL: &str = r#"
# A small site for the tests: 40 clients, short timers, a sync, 40 simulated minutes at 600x.
[population]
clients = 40
seed = 21
ad_sites = ["CM12-R2-PS1", "BRANCH-01"]
subnets = ["192.168.2.0/24", "10.1.0.0/16"]
[client]
policy_poll = "10m"
reporting_cycle = "2m"
scan_window = "8m"
scan_duration = "1m"
[run]
time_scale = 600
duration = "40m"
ramp_up = "2m"
[[event]]
at = "10m"
sync = { new_updates = 4, superseded = 1 }
[transport]
connections = 4
"#;

pub(crate) fn run_small(dir: &Path, shard: Option<(u64, u64)>) -> Value {
    let opts = Options {
        out: Some(dir.to_owned()),
        shard,
        arbiters: Some(2),
        // What these tests check is not the generator's pace (a shared CI machine).
        allow_late: true,
        ..Options::default()
    };
    let outcome = run(Plan::parse("small", SMALL).unwrap(), SMALL, &opts).unwrap();
    assert_eq!(outcome.exit, EXIT_OK, "{:#}", outcome.summary);
    assert_eq!(outcome.summary["verification"]["exact"], true);
    outcome.summary
}

/// Renders `page` in headless Chromium (when there is one) and returns the number of plots that
/// drew their lines (`data-plots-rendered`), or `None` where Chromium is missing and not required.
pub(crate) fn plots_rendered(page: &Path) -> Option<usize> {
    let Some(chromium) = chromium() else {
        // CI installs Chromium and sets this, so there the test cannot pass without it.
        assert!(
            std::env::var_os("SUMSTORM_REQUIRE_CHROMIUM").is_none(),
            "chromium is required here but missing"
        );
        eprintln!("SKIPPED the Chromium check: no chromium on PATH (apt-get install chromium)");
        return None;
    };
    let url = format!("file://{}", page.display());
    let dom = Command::new(&chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        .args(["--virtual-time-budget=3000", "--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    let at = dom
        .find("data-plots-rendered=\"")
        .unwrap_or_else(|| panic!("no render count: {}", &dom[..dom.len().min(400)]));
    let rest = &dom[at + "data-plots-rendered=\"".len()..];
    Some(rest[..rest.find('"').unwrap()].parse().unwrap())
}

/// Chromium on `PATH`, if any.
pub(crate) fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let out = Command::new("which").arg(name).output().ok()?;
        out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
}

/// Our backend in this process on 127.0.0.1 (its own runtime), kept running until dropped, so a
/// test can ask it after a run.
pub(crate) struct Backend {
    pub(crate) addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    pub(crate) fn start(config: backend::server::Config) -> Backend {
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
        Backend { addr: addr_rx.recv().unwrap(), stop: Some(stop), thread: Some(thread) }
    }
}

/// Our backend over HTTPS in PKI mode (client certificates from its CA required), its site
/// clock at 600x, with a test PKI of `clients` client certificates under `dir/pki` and its data
/// in `dir/data`; `tune` sets the rest.
pub(crate) fn pki_backend(
    dir: &Path,
    clients: usize,
    tune: impl FnOnce(&mut backend::server::Config),
) -> (backend::pki::Pki, Backend) {
    let pki = backend::pki::init(&dir.join("pki"), &[], clients).unwrap();
    let mut config = backend::server::Config::new(dir.join("data"));
    config.time_scale = 600.0;
    config.checkpoint_every = std::time::Duration::from_millis(200);
    config.tls = Some(backend::server::tls::TlsSettings {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: Some(pki.ca.clone()),
    });
    tune(&mut config);
    let server = Backend::start(config);
    (pki, server)
}

/// The options of a run of the small site against `target`, its files in `out`.
pub(crate) fn remote_options(target: String, out: PathBuf) -> Options {
    Options {
        target: Some(target),
        out: Some(out),
        arbiters: Some(2),
        allow_late: true,
        ..Options::default()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.thread.take().map(|t| t.join());
    }
}

/// `loadgen sink` in this process on 127.0.0.1, taking at most `capacity` relayed Reports a
/// second (`None`: unbounded).
pub(crate) fn sink(capacity: Option<f64>) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loadgen::sink::serve_on_with(listener, capacity).await.unwrap();
        });
    });
    rx.recv().unwrap()
}
