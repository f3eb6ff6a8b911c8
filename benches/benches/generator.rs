//! What the generator pays to build one request, apart from any server: a simulated client's
//! 150-message state Report (`loadgen::messages::Report`) made into the HTTP request it sends
//! (`loadgen::transport::mp_request`), on the faithful wire at several zlib levels and on the
//! plain wire: `generator/state_report_150msgs/<wire>`. The bytes each puts on the wire are
//! printed once. `generator/deflate_150msgs/<implementation>_l<level>` compresses that Report's
//! UTF-16 body alone with zlib-rs (through flate2, what loadgen uses), miniz_oxide and libdeflate,
//! to say whether another deflate would pay; `generator/utf16_150msgs` encodes it as UTF-16LE
//! alone.

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
    mp_request(wire, level, "http://127.0.0.1:8080", &mut header, None, xml).expect("builds")
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

/// The Report's XML, as the client writes it before the faithful wire encodes it.
fn report_xml() -> String {
    let client = Guid(0x1F6E_4C4E_0A2D_4B6B_9C1D_0000_0000_0001);
    let mut report = Report::begin(client, "PC000001", Timestamp(T0), 150);
    for i in 0..150u64 {
        let update = Guid(0x505f_da07_b4f3_45fb_83d9_8642_554e_0000 + u128::from(i));
        report.update(update, 200, 1 + (i % 3) as u8, Timestamp(T0 + i as i64), 230 + i);
    }
    report.finish()
}

/// The body the faithful wire compresses: the Report's XML as UTF-16LE with a BOM.
fn utf16_body() -> Vec<u8> {
    protocol::utf16::encode(&report_xml(), true)
}

/// `generator/utf16_150msgs`: the Report's XML made UTF-16LE (into a buffer kept between
/// requests, as the transport does), the step before deflate.
fn utf16(c: &mut Criterion) {
    let xml = report_xml();
    let mut out = Vec::new();
    c.bench_function("generator/utf16_150msgs", |b| {
        b.iter(|| {
            out.clear();
            protocol::utf16::encode_into(black_box(&xml), true, &mut out);
        })
    });
}

fn deflate(c: &mut Criterion) {
    use std::io::Write as _;
    let body = utf16_body();
    let mut g = c.benchmark_group("generator/deflate_150msgs");
    for level in [1u32, 6] {
        let zlib_rs = move |body: &[u8]| {
            let mut e = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::new(level),
            );
            e.write_all(body).expect("in memory");
            e.finish().expect("in memory")
        };
        let miniz = move |body: &[u8]| miniz_oxide::deflate::compress_to_vec_zlib(body, level as u8);
        let mut compressor =
            libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level as i32).expect("level"));
        let mut out = vec![0u8; compressor.zlib_compress_bound(body.len())];
        let libdeflate_len = compressor.zlib_compress(&body, &mut out).expect("fits");
        eprintln!(
            "generator/deflate_150msgs level {level}: {} UTF-16 bytes -> zlib-rs {}, miniz_oxide {}, libdeflate {}",
            body.len(),
            zlib_rs(&body).len(),
            miniz(&body).len(),
            libdeflate_len
        );
        g.bench_function(format!("zlib_rs_l{level}"), |b| b.iter(|| zlib_rs(black_box(&body))));
        g.bench_function(format!("miniz_oxide_l{level}"), |b| b.iter(|| miniz(black_box(&body))));
        g.bench_function(format!("libdeflate_l{level}"), |b| {
            b.iter(|| compressor.zlib_compress(black_box(&body), &mut out).expect("fits"))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! { name = benches; config = config(); targets = state_report, deflate, utf16 }
criterion_main!(benches);
