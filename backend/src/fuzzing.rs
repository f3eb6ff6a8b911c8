//! The router fuzz target's harness, in one place: `fuzz/fuzz_targets/router.rs` drives it, and
//! `tests/fuzz_router.rs` replays the saved corpus through it on stable Rust.
//!
//! [`Harness`] is a whole backend ([`crate::server::run`]) on a loopback port in this process,
//! on a data directory of its own. [`request`] turns fuzz bytes into one HTTP request aimed at
//! the routes (methods, paths, queries, headers and bodies, CCM envelopes to each endpoint,
//! compressed or not) and [`Harness::send`] sends it and requires an answer, and the server
//! still serving after it. A panic anywhere in the server aborts the process (release builds
//! and the fuzzer), which is what the target looks for.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use protocol::envelope::{self, MsgHeader};

const METHODS: &[&str] = &["GET", "POST", "CCM_POST", "HEAD", "PUT", "DELETE", "OPTIONS"];
const PATHS: &[&str] = &[
    "/ccm_system/request",
    "/ccm_system_windowsauth/request",
    "/ccm_system_altauth/request",
    "/SMS_MP/.sms_aut",
    "/SMS_MP/.sms_pol",
    "/wsus/PS1SYS/catalog",
    "/wsus/catalog",
    "/wsus/",
    "/api/v1/site",
    "/api/v1/catalog",
    "/api/v1/status",
    "/api/v1/statenames",
    "/api/v1/convergence",
    "/api/v1/clients/",
    "/api/v1/sync",
    "/api/v1/drain",
    "/api/v1/summarize",
    "/api/v1/summary/updates",
    "/api/v1/summary/update-groups",
    "/api/v1/summary/deployments",
    "/api/v1/faults",
    "/metrics",
];
const ENDPOINTS: &[&str] = &[
    "MP_ClientRegistration",
    "MP_PolicyManager",
    "MP_LocationManager",
    "MP_RelayEndpoint",
    "MP_DdrEndpoint",
];

/// Bytes that may not stand in a request target or header value as sent.
fn clean(bytes: &[u8]) -> String {
    bytes.iter().filter(|b| !matches!(b, b'\r' | b'\n' | b' ' | 0)).map(|&b| char::from(b)).collect()
}

/// One HTTP/1.1 request from fuzz bytes. The first bytes choose a method, a path and a body
/// shape; the rest, split at `0xFF`, is the query, extra header lines and the body.
pub fn request(data: &[u8]) -> Vec<u8> {
    let [m, p, shape, rest @ ..] = data else {
        return b"GET / HTTP/1.1\r\nHost: f\r\nConnection: close\r\n\r\n".to_vec();
    };
    let mut parts = rest.splitn(4, |&b| b == 0xFF);
    let (suffix, query, headers, body) =
        (parts.next().unwrap_or_default(), parts.next(), parts.next().unwrap_or_default(), parts.next());
    let method = METHODS.get(usize::from(*m) % (METHODS.len() + 1)).copied().unwrap_or("PATCH");
    let mut path = PATHS.get(usize::from(*p) % PATHS.len()).copied().unwrap_or("/").to_owned();
    path.push_str(&clean(suffix).replace('?', ""));
    if let Some(q) = query {
        path.push('?');
        path.push_str(&clean(q));
    }
    let raw_body = body.unwrap_or_default();
    let endpoint = ENDPOINTS.get(usize::from(shape >> 2) % ENDPOINTS.len()).copied().unwrap_or("MP_X");
    let mut extra = String::new();
    let body: Vec<u8> = match shape & 3 {
        // A faithful envelope, compressed or not, around whatever text the rest is.
        0 | 1 => {
            let mut header = MsgHeader {
                id: "{00000000-0000-0000-0000-000000000001}".into(),
                source_id: if shape & 0x80 == 0 {
                    String::new()
                } else {
                    "GUID:C0FFEE00-0000-4000-8000-000000000001".into()
                },
                target_endpoint: endpoint.into(),
                reply_to: "direct:FUZZ:Reply".into(),
                reply_mode: "Sync".into(),
                ..MsgHeader::default()
            };
            extra.push_str(&format!("Content-Type: {}\r\n", envelope::CONTENT_TYPE));
            envelope::build_request(
                &mut header,
                &String::from_utf8_lossy(raw_body),
                (shape & 1 == 0).then_some(1),
            )
        }
        // Plain XML for tools.
        2 => {
            extra.push_str(&format!("X-Target-Endpoint: {endpoint}\r\nContent-Type: text/xml\r\n"));
            raw_body.to_vec()
        }
        // Raw bytes under a multipart content type.
        _ => {
            extra.push_str(&format!("Content-Type: {}\r\n", envelope::CONTENT_TYPE));
            raw_body.to_vec()
        }
    };
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n{extra}");
    for line in headers.split(|&b| b == b'\n').filter(|l| !l.is_empty()).take(16) {
        let line: String =
            String::from_utf8_lossy(line).chars().filter(|c| !matches!(c, '\r' | '\0')).collect();
        let lower = line.to_ascii_lowercase();
        // The framing stays the harness's: a request that cannot end, or a connection kept
        // open, would only wait for a timeout.
        let framing = ["content-length", "transfer-encoding", "connection"];
        if line.contains(':') && !framing.iter().any(|f| lower.trim_start().starts_with(f)) {
            out.push_str(&line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// A backend in this process, on its own runtime, port and data directory.
#[derive(Debug)]
pub struct Harness {
    addr: SocketAddr,
}

impl Harness {
    /// Starts the backend (StateSys without its pause, short timers) in a new data directory
    /// under `dir`.
    pub fn start(dir: &std::path::Path) -> Harness {
        let mut config = crate::server::Config::new(dir.join(format!("router-{}", std::process::id())));
        config.statesys_pause = Duration::ZERO;
        config.checkpoint_every = Duration::from_millis(200);
        config.poll_every = Duration::from_millis(50);
        config.limits.body_timeout = Duration::from_secs(2);
        config.limits.header_timeout = Duration::from_secs(2);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
                let _ = tx.send(listener.local_addr().expect("an address"));
                crate::server::run(listener, config, std::future::pending()).await.expect("the backend runs");
            });
        });
        Harness { addr: rx.recv_timeout(Duration::from_secs(60)).expect("the backend starts") }
    }

    /// Sends one request; panics unless it gets an HTTP answer (any status).
    pub fn send(&self, request: &[u8]) {
        let mut stream = TcpStream::connect(self.addr).expect("the backend accepts");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("a timeout");
        // The server may answer (413, 400) and close before taking the whole body.
        let _ = stream.write_all(request);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 "),
            "no answer to {:?}",
            String::from_utf8_lossy(request.get(..200.min(request.len())).unwrap_or_default())
        );
    }
}
