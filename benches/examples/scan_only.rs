use protocol::report::{self, ReportHeader, ReportSink, StateMessage};
use std::hint::black_box;
struct Nop;
impl<'a> ReportSink<'a> for Nop {
    fn on_header(&mut self, _: &ReportHeader<'a>) {}
    fn on_state_message(&mut self, m: &StateMessage<'a>) {
        black_box(m.serial);
    }
}
fn main() {
    let input = benches::sample_report(150);
    for _ in 0..200 {
        report::scan(black_box(&input), &mut Nop).unwrap();
    }
}
