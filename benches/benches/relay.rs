//! The relay end to end, in-process (contract §4): `backend::server::run` on 127.0.0.1, 16
//! keep-alive connections posting 4,000 Reports of 150 state messages (each from a new client), then
//! `POST /api/v1/drain`: an iteration ends when every message is durable **and applied**, so
//! it includes the last segment's seal (at most 200 ms after its first Report).
//! Throughput is in state messages.
//!
//! - `relay/plain_150msgs/applied`: plain UTF-8 Reports (`X-Target-Endpoint`).
//! - `relay/ccm_150msgs/applied`: the faithful envelope (UTF-16LE, zlib level 1).
//!
//! Client and server share the machine's cores, as they do in the load runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::server::{Config, run};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use protocol::Guid;
use protocol::envelope::{self, CONTENT_TYPE, MsgHeader};
use protocol::report::ReportWriter;

const REPORTS: usize = 4000;
const MESSAGES: usize = benches::RELAY_MESSAGES;
const CONNECTIONS: usize = 16;

/// The iteration's request bodies, each from a client not seen before.
fn bodies(round: u64, ccm: bool) -> Vec<Bytes> {
    let mut w = ReportWriter::new();
    (0..REPORTS)
        .map(|i| {
            let client = Guid(u128::from(round) << 64 | i as u128 | 0x4000_8000_0000_0000_0000_0000);
            let xml = benches::relay_report(client, &mut w);
            if ccm {
                let mut header = MsgHeader {
                    source_id: format!("GUID:{client}"),
                    target_endpoint: "MP_RelayEndpoint".into(),
                    reply_to: "direct:BENCHPC:StateMessage".into(),
                    reply_mode: "ASync".into(),
                    properties: vec![("FileType".into(), "SMX".into())],
                    ..MsgHeader::default()
                };
                Bytes::from(envelope::build_request(&mut header, &xml, Some(1)))
            } else {
                Bytes::from(xml)
            }
        })
        .collect()
}

async fn post_all(addr: std::net::SocketAddr, bodies: Vec<Bytes>, ccm: bool) {
    let bodies = Arc::new(bodies);
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let bodies = Arc::clone(&bodies);
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
                tokio::spawn(conn);
                for body in bodies.iter().skip(c).step_by(CONNECTIONS) {
                    let builder = Request::builder().uri("/ccm_system/request").header("host", "bench");
                    let req = if ccm {
                        builder.method("CCM_POST").header("content-type", CONTENT_TYPE)
                    } else {
                        builder
                            .method("POST")
                            .header("content-type", "text/xml")
                            .header("x-target-endpoint", "MP_RelayEndpoint")
                    }
                    .body(Full::new(body.clone()))
                    .expect("request");
                    let resp = sender.send_request(req).await.expect("answer");
                    assert_eq!(resp.status(), 200, "the relay acknowledged");
                    let _ = resp.into_body().collect().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("poster");
    }
    // Durable is not enough: wait until StateSys has applied everything.
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/drain?timeout=60")
        .header("host", "bench")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = sender.send_request(req).await.expect("drain");
    assert_eq!(resp.status(), 200, "drained");
}

fn relay(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(tmp.path().to_owned());
    config.statesys_pause = Duration::ZERO;
    config.summarize_at_start = false;
    let server_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(run(listener, config, async {
        let _ = stopped.await;
    }));
    let client_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    let mut round = 0u64;
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements((REPORTS * MESSAGES) as u64));
    g.sample_size(10);
    for (name, ccm) in [("plain_150msgs/applied", false), ("ccm_150msgs/applied", true)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let bodies = bodies(round, ccm);
                    let start = Instant::now();
                    client_rt.block_on(post_all(addr, bodies, ccm));
                    total += start.elapsed();
                }
                total
            });
        });
    }
    g.finish();
    let _ = stop.send(());
    let _ = server_rt.block_on(server);
}

criterion_group!(benches, relay);
criterion_main!(benches);
