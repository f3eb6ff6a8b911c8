//! Replays fuzz inputs (files or directories) against a running backend, through the router
//! target's request builder: `cargo run --release -p backend --example replay_router -- ADDR PATH... [--times N]`.
#![allow(clippy::print_stdout)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args.first().expect("ADDR").clone();
    let times: usize = args
        .iter()
        .position(|a| a == "--times")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let mut inputs = Vec::new();
    for p in args.iter().skip(1).take_while(|a| *a != "--times") {
        let path = std::path::Path::new(p);
        if path.is_dir() {
            let mut files: Vec<_> =
                std::fs::read_dir(path).expect("dir").flatten().map(|e| e.path()).collect();
            files.sort();
            inputs.extend(files.into_iter().filter_map(|f| std::fs::read(f).ok()));
        } else if let Ok(b) = std::fs::read(path) {
            inputs.push(b);
        }
    }
    let started = Instant::now();
    let mut slow = 0;
    for _ in 0..times {
        for data in &inputs {
            let request = backend::fuzzing::request(data);
            let t = Instant::now();
            let Ok(mut s) = TcpStream::connect(&addr) else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
            let _ = s.write_all(&request);
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            if t.elapsed() > Duration::from_millis(100) {
                slow += 1;
            }
        }
    }
    println!(
        "{} requests in {:.1} s ({slow} over 100 ms)",
        inputs.len() * times,
        started.elapsed().as_secs_f64()
    );
}
