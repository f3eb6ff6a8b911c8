//! What the generator pays to build one request, apart from any server: a simulated client's
//! 150-message state Report (`loadgen::messages::Report`) made into the HTTP request it sends
//! (`loadgen::transport::mp_request`), on the faithful wire at several zlib levels and on the
//! plain wire: `generator/state_report_150msgs/<wire>`. The bytes each puts on the wire are
//! printed once.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::Full;
use hyper::body::Body as _;
use loadgen::messages::{self, Report};
use loadgen::profile::Wire;
use loadgen::transport::mp_request;
use protocol::{Guid, Timestamp};

const T0: i64 = 1_390_238_335_573_000;

/// The request a client sends after a scan of 150 updates, built as the transport builds it once
/// a connection is free.
fn build(wire: Wire, level: u32) -> hyper::Request<Full<Bytes>> {
    let client = Guid(0x1F6E_4C4E_0A2D_4B6B_9C1D_0000_0000_0001);
    let mut report = Report::begin(client, "PC000001", Timestamp(T0), 150);
    for i in 0..150u64 {
        let update = Guid(0x505f_da07_b4f3_45fb_83d9_8642_554e_0000 + u128::from(i));
        report.update(update, 200, 1 + (i % 3) as u8, Timestamp(T0 + i as i64), 230 + i);
    }
    let xml = Bytes::from(report.finish());
    let mut header = messages::header(Guid(7), Some(client), "PC000001", messages::RELAY);
    mp_request(wire, level, "http://127.0.0.1:8080", &mut header, xml).expect("builds")
}

fn state_report(c: &mut Criterion) {
    let mut g = c.benchmark_group("generator/state_report_150msgs");
    let wires = [
        ("ccm_zlib0", Wire::Ccm, 0),
        ("ccm_zlib1", Wire::Ccm, 1),
        ("ccm_zlib3", Wire::Ccm, 3),
        ("ccm_zlib6", Wire::Ccm, 6),
        ("ccm_zlib9", Wire::Ccm, 9),
        ("plain", Wire::Plain, 0),
    ];
    for (name, wire, level) in wires {
        let bytes = build(wire, level).body().size_hint().exact().unwrap_or(0);
        eprintln!("generator/state_report_150msgs/{name}: {bytes} bytes on the wire");
        g.bench_function(name, |b| b.iter(|| build(black_box(wire), level)));
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! { name = benches; config = config(); targets = state_report }
criterion_main!(benches);
