//! The state store at Patch Tuesday scale: 100,000 clients × 200 updates, each client's Report
//! of 150 records applied under one lock. `store/apply_150/threads_<N>` applies every client's
//! Report once per iteration (15 M records), with serials rising so every record is newer.

use std::time::{Duration, Instant};

use backend::statesys::state::{Record, Target};
use backend::statesys::store::Store;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::Guid;

const CLIENTS: usize = 100_000;
const UPDATES: usize = 200;
const PER_REPORT: usize = 150;

fn reports() -> Vec<(Guid, Vec<Record>)> {
    (0..CLIENTS)
        .map(|c| {
            let id = Guid((c as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) | 1);
            let records = (0..PER_REPORT)
                .map(|k| Record {
                    time: 1_390_238_335_573_000 + k as i64,
                    serial: k as u64,
                    target: Target::Update {
                        index: ((c + k * 7) % UPDATES) as u32,
                        state: (1 + (c + k) % 3) as u8,
                    },
                })
                .collect();
            (id, records)
        })
        .collect()
}

fn apply(c: &mut Criterion) {
    let mut reports = reports();
    let store = Store::new(8, UPDATES);
    for (id, records) in &reports {
        store.apply(*id, "PC", records);
    }
    let bytes = store.state_bytes() as f64 / (CLIENTS * UPDATES) as f64;
    eprintln!(
        "store: {} clients x {UPDATES} updates, {bytes:.1} bytes per state (row capacity)",
        store.clients()
    );
    let mut round = 0u64;
    let mut g = c.benchmark_group("store/apply_150");
    g.throughput(Throughput::Elements((CLIENTS * PER_REPORT) as u64));
    g.sample_size(10);
    for threads in [1usize, 2] {
        g.bench_function(format!("threads_{threads}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let serial_base = round * PER_REPORT as u64;
                    for (_, records) in reports.iter_mut() {
                        for (k, r) in records.iter_mut().enumerate() {
                            r.serial = serial_base + k as u64;
                        }
                    }
                    let start = Instant::now();
                    let chunk = reports.len().div_ceil(threads);
                    std::thread::scope(|s| {
                        for part in reports.chunks(chunk) {
                            let store = &store;
                            s.spawn(move || {
                                for (id, records) in part {
                                    store.apply(*id, "PC", records);
                                }
                            });
                        }
                    });
                    total += start.elapsed();
                }
                total
            });
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10))
}

criterion_group! { name = benches; config = config(); targets = apply }
criterion_main!(benches);
