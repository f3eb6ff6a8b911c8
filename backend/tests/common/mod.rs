//! A minimal blocking HTTP/1.1 client for the tests: one request per connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

#[allow(dead_code)] // not every test binary has a site database
pub(crate) mod postgres;

use backend::server::{Config, run};
use protocol::report::write::Param;
use protocol::report::{OutMessage, ReportIdentity, ReportWriter};
use protocol::{Guid, GuidStyle, Timestamp};
use serde_json::Value;

/// (status, response head in lower case, body); `Err` when the connection fails.
pub(crate) fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, head, raw[split + 4..].to_vec()))
}

#[allow(dead_code)] // not every test binary reads fixtures
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The backend on its own runtime and threads, on 127.0.0.1, with short timers.
#[allow(dead_code)]
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[allow(dead_code)] // not every test binary runs the backend in-process
impl Server {
    pub(crate) fn start(data: &Path, tune: impl FnOnce(&mut Config)) -> Server {
        let mut config = Config::new(data.to_owned());
        config.checkpoint_every = Duration::from_millis(50);
        config.poll_every = Duration::from_millis(50);
        // The product's 10 s pause, on a site clock running 1,000x: 10 ms.
        config.time_scale = 1000.0;
        tune(&mut config);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                run(listener, config, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(30)).expect("server starts");
        Server { addr, stop: Some(stop), thread: Some(thread) }
    }

    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    /// One request on its own connection: (status, headers in lower case, body).
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        call(self.addr, method, path, headers, body).expect("the server answers")
    }

    #[allow(dead_code)]
    pub(crate) fn ccm(&self, body: &[u8]) -> (u16, String, Vec<u8>) {
        self.call(
            "CCM_POST",
            "/ccm_system/request",
            &[("Content-Type", protocol::envelope::CONTENT_TYPE)],
            body,
        )
    }

    /// A call that must answer 200 with JSON. A read the backend answers 503 (StateSys still
    /// loading or recovering its store after a start) is tried again, for up to 30 s.
    pub(crate) fn json(&self, method: &str, path: &str, body: &[u8]) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let (status, _, body) = loop {
            let answer = self.call(method, path, &[], body);
            if answer.0 != 503 || method != "GET" || std::time::Instant::now() > deadline {
                break answer;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Report from `client` (named `netbios`) with one 500 message: `update` in `state`, at `time`.
#[allow(dead_code)] // not every test binary relays
pub(crate) fn one_message_report(
    client: Guid,
    netbios: &str,
    update: Guid,
    serial: u64,
    state: u32,
    time: Timestamp,
) -> Vec<u8> {
    let mut w = ReportWriter::new();
    w.begin(
        &ReportIdentity { client, netbios_name: netbios, client_version: "5.00.7958.1000", priority: 5 },
        Timestamp(0),
    );
    w.push(&OutMessage {
        time,
        serial,
        topic_id: update,
        topic_style: GuidStyle::Lower,
        topic_type: 500,
        id_type: 3,
        state,
        criticality: 0,
        params: &[Param::Number(200)],
    });
    w.finish().to_vec()
}

/// SIGTERM to `child` (procps' `kill`; `.ci/run` installs it where it is missing).
#[allow(dead_code)]
pub(crate) fn sigterm(child: &std::process::Child) {
    let sent = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    assert!(sent.as_ref().is_ok_and(|s| s.success()), "cannot send SIGTERM (is procps installed?): {sent:?}");
}

/// The real `backend` binary on `data` (extra flags in `args`), on a free loopback port read
/// from its first line. Killed (SIGKILL) when dropped, unless stopped first.
#[allow(dead_code)] // not every test binary runs the binary
pub(crate) struct Binary {
    pub(crate) child: std::process::Child,
    pub(crate) addr: SocketAddr,
    pub(crate) log: std::path::PathBuf,
}

#[allow(dead_code)]
impl Binary {
    pub(crate) fn start(data: &Path, args: &[&str]) -> Binary {
        Self::try_start(data, args).unwrap_or_else(|text| panic!("the backend did not start: {text}"))
    }

    /// `Err` with what it printed when it exits or prints no address within 30 s.
    pub(crate) fn try_start(data: &Path, args: &[&str]) -> Result<Binary, String> {
        let log = data.with_extension("log");
        let offset = std::fs::metadata(&log).map_or(0, |m| m.len()) as usize;
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_backend"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(args)
            .stderr(stderr)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let text = text.get(offset..).unwrap_or_default().to_owned();
            if let Some(addr) = backend::server::served_address(&text) {
                return Ok(Binary { child, addr: addr.parse().unwrap(), log });
            }
            if child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(text);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM (a graceful stop), then waits for the exit.
    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        sigterm(&self.child);
        self.child.wait().unwrap()
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
