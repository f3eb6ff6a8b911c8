//! Writes the benches' sample Report (`sample_report(N)`, UTF-8) to stdout, for load tools such
//! as `benches/load/relay.lua`: `write_report [N] [--catalog]`; with `--catalog` its updates are
//! the default site's (`catalog_report`), so StateSys stores every record.
#![allow(clippy::print_stdout)]

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args.iter().find_map(|a| a.parse().ok()).unwrap_or(150);
    let report = if args.iter().any(|a| a == "--catalog") {
        benches::catalog_report(n)
    } else {
        benches::sample_report(n)
    };
    std::io::stdout().write_all(&report).expect("stdout");
}
