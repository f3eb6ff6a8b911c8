//! A load client for the relay: each request is a fresh client's 150-message Report in the
//! faithful CCM envelope (UTF-16, zlib level 1), built with the protocol crate as loadgen will,
//! over N keep-alive connections, for D seconds.
//!
//! ```sh
//! cargo run --release -p benches --example relay_load -- http://127.0.0.1:18080 64 30
//! cargo run --release -p benches --example relay_load -- http://127.0.0.1:18080 64 30 signed
//! cargo run --release -p benches --example relay_load -- http://127.0.0.1:18080 64 30 catalog
//! cargo run --release -p benches --example relay_load -- http://127.0.0.1:18080 64 30 prebuilt
//! cargo run --release -p benches --example relay_load -- http://127.0.0.1:18080 64 30 prebuilt-catalog
//! ```
//! Prints requests/s and state messages/s acknowledged (HTTP 200 `NoReply`).
//!
//! `signed`: 256 clients register first, each signing its registration with a key of a
//! 16-key pool (as loadgen's clients do), then 1,024 Reports, each with its `clientauth` hook,
//! are built before the clock starts and sent round and round: the client spends nothing on
//! signing during the measurement, so a backend with `--require-signing` and one without
//! answer the same bytes and differ only in verifying them.
//!
//! `prebuilt`: 16,384 Reports, each from a client of its own, are built (and compressed) before
//! the clock starts and sent round and round, so the client's cost per request is sending bytes:
//! building a faithful request (UTF-16, zlib) costs about as much CPU as the backend spends
//! taking it, which otherwise makes this client the limit on a shared machine.
//!
//! `catalog`: the Reports' messages name the default site's updates (by default they name
//! updates no catalog has, which StateSys counts and keeps no state for), so every Report adds a
//! client with 150 update states to the store: what a site database has to keep up with.
//! `prebuilt-catalog`: `prebuilt`'s 16,384 clients with `catalog`'s updates, so StateSys keeps
//! (and, round after round, replaces) every state it is sent.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use protocol::envelope::{self, CONTENT_TYPE, MsgHeader};
use protocol::report::ReportWriter;
use protocol::{Guid, GuidStyle};

const MESSAGES: usize = benches::RELAY_MESSAGES;

/// The relayed Report's header from `client`.
fn relay_header(client: Guid) -> MsgHeader {
    MsgHeader {
        id: format!("{{{}}}", client.styled(GuidStyle::Upper)),
        source_id: format!("GUID:{client}"),
        source_host: "LOADPC".into(),
        target_address: "mp:MP_RelayEndpoint".into(),
        target_endpoint: "MP_RelayEndpoint".into(),
        reply_to: "direct:LOADPC:StateMessage".into(),
        reply_mode: "ASync".into(),
        properties: vec![("FileType".into(), "SMX".into())],
        ..MsgHeader::default()
    }
}

fn body(client: Guid, writer: &mut ReportWriter, catalog: Option<&[Guid]>) -> Vec<u8> {
    let xml = match catalog {
        Some(ids) => benches::relay_report_for(client, writer, |i| ids[i % ids.len()]),
        None => benches::relay_report(client, writer),
    };
    envelope::build_request(&mut relay_header(client), &xml, Some(1))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let base = args.first().map_or("http://127.0.0.1:18080", String::as_str).to_owned();
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(30);
    let authority = base.trim_start_matches("http://").trim_end_matches('/').to_owned();
    // Requests built before the clock starts (`signed`, `prebuilt`), sent round and round.
    let prepared = match args.get(3).map(String::as_str) {
        Some("signed") => Some(Arc::new(signed_bodies(&authority).await)),
        Some("prebuilt") => Some(Arc::new(prebuilt_bodies(PREBUILT, None))),
        Some("prebuilt-catalog") => Some(Arc::new(prebuilt_bodies(PREBUILT, Some(&site_updates())))),
        _ => None,
    };
    // `catalog`: the messages name the default site's updates, so StateSys keeps their states.
    let catalog: Option<Arc<Vec<Guid>>> =
        (args.get(3).map(String::as_str) == Some("catalog")).then(|| Arc::new(site_updates()));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    eprintln!("relay_load: sending");
    let cpu_at_start = cpu_seconds();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let (ok, failed, authority) = (Arc::clone(&ok), Arc::clone(&failed), authority.clone());
            let (prepared, catalog) = (prepared.clone(), catalog.clone());
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(&authority).await.expect("connect");
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
                tokio::spawn(conn);
                let mut writer = ReportWriter::new();
                let mut n = 0u128;
                while Instant::now() < deadline {
                    n += 1;
                    let client = Guid((c as u128) << 96 | n | 0x4000_8000_0000_0000_0000_0000);
                    let req = Request::builder()
                        .method("CCM_POST")
                        .uri("/ccm_system/request")
                        .header("host", authority.as_str())
                        .header("content-type", CONTENT_TYPE)
                        .body(Full::new(match &prepared {
                            Some(bodies) => bodies[(c * 7919 + n as usize) % bodies.len()].clone(),
                            None => {
                                Bytes::from(body(client, &mut writer, catalog.as_deref().map(Vec::as_slice)))
                            }
                        }))
                        .expect("request");
                    match sender.send_request(req).await {
                        Ok(resp) if resp.status() == 200 => {
                            let _ = resp.into_body().collect().await;
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    println!(
        "{ok} requests ok, {} failed in {secs:.2} s: {:.0} requests/s, {:.0} state messages/s acknowledged; \
         client_cpu_s={:.1} while sending",
        failed.load(Ordering::Relaxed),
        ok as f64 / secs,
        (ok * MESSAGES as u64) as f64 / secs,
        cpu_seconds() - cpu_at_start,
    );
}

/// This process's CPU time (user + system), from `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<u64>().ok()).sum();
    ticks as f64 / 100.0
}

/// Distinct clients' Reports built before the clock starts in `prebuilt` mode.
const PREBUILT: usize = 16_384;

/// The default site's updates, which `catalog` Reports name.
fn site_updates() -> Vec<Guid> {
    backend::site::Site::default_site().catalog.updates().iter().map(|u| u.id).collect()
}

/// `n` faithful requests, each a Report from a client of its own (naming `catalog`'s updates,
/// if given).
fn prebuilt_bodies(n: usize, catalog: Option<&[Guid]>) -> Vec<Bytes> {
    let mut writer = ReportWriter::new();
    (0..n as u128)
        .map(|i| Bytes::from(body(Guid(0x5EED_0000_0000_4000_8000_0000_0000_0000 | i), &mut writer, catalog)))
        .collect()
}

/// Registers 256 signing clients and builds 1,024 signed Reports from them.
async fn signed_bodies(authority: &str) -> Vec<Bytes> {
    use loadgen::signing::{KeyPool, Signer};
    use protocol::bodies::{ClientRegistrationRequest, ClientRegistrationResponse};
    let pool =
        Arc::new(KeyPool::generate(1, 16, 2048, protocol::signing::Padding::DigestInfo).expect("keys"));
    let stream = tokio::net::TcpStream::connect(authority).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let mut bodies = Vec::new();
    let mut writer = ReportWriter::new();
    for i in 0..256u64 {
        let machine = format!("SIGNPC{i:04}");
        let key = pool.for_client(i);
        let mut request = ClientRegistrationRequest {
            request_type: "Registration".into(),
            properties: vec![
                ("Netbios Name".into(), machine.clone()),
                ("FQ Name".into(), format!("{machine}.lab")),
            ],
            signing_certificate: key.certificate_hex.clone(),
            ..ClientRegistrationRequest::default()
        };
        let xml = request.to_signed_xml(|data| key.key.sign(data, pool.padding));
        let mut header = MsgHeader {
            target_endpoint: "MP_ClientRegistration".into(),
            reply_to: format!("direct:{machine}:Reg"),
            reply_mode: "Sync".into(),
            ..MsgHeader::default()
        };
        let req = Request::builder()
            .method("CCM_POST")
            .uri("/ccm_system/request")
            .header("host", authority)
            .header("content-type", CONTENT_TYPE)
            .body(Full::new(Bytes::from(envelope::build_request(&mut header, &xml, Some(1)))))
            .expect("request");
        sender.ready().await.expect("the connection stays open");
        let reply = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => panic!("registration {i}: {e:?}"),
        };
        assert_eq!(reply.status(), 200, "registration");
        let body = reply.into_body().collect().await.expect("reply").to_bytes();
        let Ok(envelope::Reply::Sync { body, .. }) =
            envelope::decode_reply(CONTENT_TYPE, &body, &envelope::Limits::default())
        else {
            panic!("a registration reply")
        };
        let client = ClientRegistrationResponse::parse(&body).expect("a response").sms_id;
        let source_id = format!("GUID:{client}");
        let signer = Signer::new(&pool, i, &source_id, &machine);
        for _ in 0..4 {
            let xml = benches::relay_report(client, &mut writer);
            let body = envelope::build_signed_request(&mut relay_header(client), &xml, Some(1), |p| {
                Some(signer.hook(p))
            });
            bodies.push(Bytes::from(body));
        }
    }
    bodies
}
