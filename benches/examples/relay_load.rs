//! A load client for the relay: each request is a fresh client's 150-message Report in the
//! faithful CCM envelope (UTF-16, zlib level 1), built with the protocol crate as loadgen will,
//! over N keep-alive connections, for D seconds.
//!
//! ```sh
//! cargo run --release -p benches --example relay_load -- http://127.0.0.1:18080 64 30
//! ```
//! Prints requests/s and state messages/s acknowledged (HTTP 200 `NoReply`).
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

fn body(client: Guid, writer: &mut ReportWriter) -> Vec<u8> {
    let xml = benches::relay_report(client, writer);
    let mut header = MsgHeader {
        id: format!("{{{}}}", client.styled(GuidStyle::Upper)),
        source_id: format!("GUID:{client}"),
        source_host: "LOADPC".into(),
        target_address: "mp:MP_RelayEndpoint".into(),
        target_endpoint: "MP_RelayEndpoint".into(),
        reply_to: "direct:LOADPC:StateMessage".into(),
        reply_mode: "ASync".into(),
        properties: vec![("FileType".into(), "SMX".into())],
        ..MsgHeader::default()
    };
    envelope::build_request(&mut header, &xml, Some(1))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let base = args.first().map_or("http://127.0.0.1:18080", String::as_str).to_owned();
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(30);
    let authority = base.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let (ok, failed, authority) = (Arc::clone(&ok), Arc::clone(&failed), authority.clone());
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
                        .body(Full::new(Bytes::from(body(client, &mut writer))))
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
        "{ok} requests ok, {} failed in {secs:.2} s: {:.0} requests/s, {:.0} state messages/s acknowledged",
        failed.load(Ordering::Relaxed),
        ok as f64 / secs,
        (ok * MESSAGES as u64) as f64 / secs
    );
}
