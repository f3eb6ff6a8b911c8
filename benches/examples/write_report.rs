//! Writes the benches' sample Report (`sample_report(N)`, UTF-8) to stdout, for load tools such
//! as `benches/load/relay.lua`.
#![allow(clippy::print_stdout)]

use std::io::Write;

fn main() {
    let n = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(150);
    let report = benches::sample_report(n);
    std::io::stdout().write_all(&report).expect("stdout");
}
