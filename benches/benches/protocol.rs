//! The protocol's hot paths: Report scanning (against a plain quick-xml loop), Report writing,
//! and envelope decoding. Names encode the matrix: `<stage>/<input>/<variant>`.

use std::hint::black_box;
use std::time::Duration;

use benches::{Fold, quick_xml_loop, sample_report};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::envelope::{self, CONTENT_TYPE, Limits, MsgHeader};
use protocol::report::{self, OutMessage, ReportIdentity, ReportWriter, reference};
use protocol::{Guid, GuidStyle, Timestamp, utf16};

fn scan(c: &mut Criterion) {
    let input = sample_report(150);
    let mut g = c.benchmark_group("scan/report_150msgs_40k");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("fast", |b| {
        b.iter(|| {
            let mut fold = Fold::default();
            report::scan(black_box(&input), &mut fold).expect("well-formed");
            fold
        })
    });
    let text = std::str::from_utf8(&input).expect("UTF-8");
    g.bench_function("fast_str", |b| {
        b.iter(|| {
            let mut fold = Fold::default();
            report::scan_str(black_box(text), &mut fold).expect("well-formed");
            fold
        })
    });
    g.bench_function("quick_xml", |b| b.iter(|| quick_xml_loop(black_box(&input))));
    g.bench_function("reference", |b| {
        b.iter(|| {
            let mut fold = Fold::default();
            reference::read(black_box(&input), &mut fold).expect("well-formed");
            fold
        })
    });
    g.finish();
}

fn write(c: &mut Criterion) {
    let len = sample_report(150).len() as u64;
    let mut g = c.benchmark_group("write/report_150msgs_40k");
    g.throughput(Throughput::Bytes(len));
    let mut w = ReportWriter::new();
    let id = ReportIdentity {
        client: Guid(0xA1006D0E),
        netbios_name: "PS1WIN7X64",
        client_version: "5.00.7958.1000",
        priority: 5,
    };
    let params = [report::write::Param::Number(200)];
    g.bench_function("template", |b| {
        b.iter(|| {
            w.begin(&id, Timestamp(0));
            for i in 0..150u64 {
                w.push(&OutMessage {
                    time: Timestamp(1_390_238_335_573_000 + i as i64),
                    serial: 230 + i,
                    topic_id: Guid(0x505fda07_b4f3_45fb_83d9_8642554e0000 + u128::from(i)),
                    topic_style: GuidStyle::Lower,
                    topic_type: 500,
                    id_type: 3,
                    state: 2,
                    criticality: 0,
                    params: &params,
                });
            }
            black_box(w.finish().len())
        })
    });
    g.finish();
}

fn envelope(c: &mut Criterion) {
    let report = String::from_utf8(sample_report(150)).expect("utf-8");
    let utf16_len = utf16::encode(&report, false).len() as u64 + 2;
    let header = MsgHeader {
        id: "{00000000-0000-0000-0000-000000005EED}".into(),
        source_id: "GUID:A1006D0E-CF56-41D1-A006-6330EFC39381".into(),
        source_host: "PS1WIN7X64".into(),
        target_address: "mp:MP_RelayEndpoint".into(),
        target_endpoint: "MP_RelayEndpoint".into(),
        reply_to: "direct:PS1WIN7X64:StateMessage".into(),
        reply_mode: "ASync".into(),
        properties: vec![("FileType".into(), "SMX".into())],
        ..MsgHeader::default()
    };
    // Throughput is the decompressed UTF-16 body size.
    let mut g = c.benchmark_group("envelope/decode_relay_150msgs");
    g.throughput(Throughput::Bytes(utf16_len));
    for (name, level) in [("zlib6", Some(6)), ("zlib1", Some(1)), ("raw", None)] {
        let body = envelope::build_request(&mut header.clone(), &report, level);
        g.bench_function(name, |b| {
            b.iter(|| {
                envelope::decode_request(CONTENT_TYPE, black_box(&body), &Limits::default()).expect("valid")
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("envelope/build_relay_150msgs");
    g.throughput(Throughput::Bytes(utf16_len));
    let levels =
        [("zlib0", Some(0)), ("zlib1", Some(1)), ("zlib3", Some(3)), ("zlib6", Some(6)), ("zlib9", Some(9))];
    for (name, level) in levels.into_iter().chain([("raw", None)]) {
        let size = envelope::build_request(&mut header.clone(), &report, level).len();
        eprintln!("envelope/build_relay_150msgs/{name}: {size} bytes on the wire");
        g.bench_function(name, |b| {
            b.iter(|| envelope::build_request(&mut header.clone(), black_box(&report), level))
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

criterion_group! { name = benches; config = config(); targets = scan, write, envelope }
criterion_main!(benches);
