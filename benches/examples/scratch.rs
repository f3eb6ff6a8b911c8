use std::hint::black_box;
use std::time::Instant;
use protocol::report::{self, ReportSink, ReportHeader, StateMessage};

struct Nop;
impl<'a> ReportSink<'a> for Nop {
    fn on_header(&mut self, _: &ReportHeader<'a>) {}
    fn on_state_message(&mut self, m: &StateMessage<'a>) { black_box(m.serial); }
}

fn time(name: &str, n: usize, bytes: usize, mut f: impl FnMut()) {
    for _ in 0..n / 10 { f(); }
    let t = Instant::now();
    for _ in 0..n { f(); }
    let per = t.elapsed().as_secs_f64() / n as f64;
    println!("{name:30} {:8.2} us  {:7.0} MB/s", per * 1e6, bytes as f64 / per / 1e6);
}

fn main() {
    let input = benches::sample_report(150);
    let n = 20000;
    time("from_utf8", n, input.len(), || { black_box(std::str::from_utf8(black_box(&input)).is_ok()); });
    time("is_ascii", n, input.len(), || { black_box(black_box(&input).is_ascii()); });
    time("memchr < count", n, input.len(), || { black_box(black_box(&input).iter().filter(|&&b| b == b'<').count()); });
    time("scan nop sink", n, input.len(), || { report::scan(black_box(&input), &mut Nop).unwrap(); });
    let t = b"505fda07-b4f3-45fb-83d9-8642554e2773";
    time("guid x150", n, input.len(), || { for _ in 0..150 { black_box(protocol::Guid::parse(black_box(t)).unwrap()); } });
    let c = b"20140120171855.573000+000";
    time("cim x150", n, input.len(), || { for _ in 0..150 { black_box(protocol::Timestamp::parse_cim(black_box(c)).unwrap()); } });
    time("u64 parse x600", n, input.len(), || { for _ in 0..600 { black_box(black_box("232").trim().parse::<u64>().unwrap()); } });
}
