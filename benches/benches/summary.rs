//! The summarization tasks at the size issue 4 sets: 100,000 clients × 200 updates (20 M states),
//! the default site's two update groups of 100 and its two deployments (all clients; the
//! boundary group, which half the clients said they are in).
//!
//! - `summary/all_tasks/full`: the five tasks through `Summarizer::run`, after a sync (untimed)
//!   that forces every shard to recount.
//! - `summary/all_tasks/after_1pct`: the five tasks after 200,000 states (1 %) changed at random
//!   clients and updates (applied untimed): the incremental path.
//! - `summary/count/full/threads_<N>`: the counting pass alone on N threads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::clock::SiteClock;
use backend::logs::{ComponentLog, Format};
use backend::site::live::LiveSite;
use backend::site::{Location, Site};
use backend::statesys::state::{Record, Target};
use backend::statesys::store::Store;
use backend::statesys::summary::SummaryPlan;
use backend::statesys::tasks::{Summarizer, Task};
use criterion::{Criterion, criterion_group, criterion_main};
use protocol::{Guid, Timestamp};

const CLIENTS: usize = 100_000;
const UPDATES: usize = 200;
const T0: i64 = 1_390_238_335_573_000;

fn id(c: usize) -> Guid {
    Guid((c as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) | 1)
}

/// SplitMix64 step: deterministic pseudo-random numbers for the inputs.
fn next(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn populated() -> Store {
    let store = Store::new(8, UPDATES);
    let mut x = 7;
    for c in 0..CLIENTS {
        let records: Vec<Record> = (0..UPDATES)
            .map(|u| Record {
                time: T0,
                serial: u as u64,
                // Mostly installed or not required, some required, a few unknown.
                target: Target::Update {
                    index: u as u32,
                    state: [3, 3, 1, 1, 2, 0][(next(&mut x) % 6) as usize],
                },
            })
            .collect();
        store.apply(id(c), "PC", &records);
        if c % 2 == 0 {
            store.discover(
                id(c),
                "PC",
                Some(Location { ad_site: "CM12-R2-PS1".into(), boundary_groups: 1 }),
                T0,
            );
        }
    }
    store
}

/// 1 % of the states change: newer records with another state at random (client, update).
fn change_one_percent(store: &Store, x: &mut u64, round: i64) {
    for _ in 0..CLIENTS * UPDATES / 100 {
        let (c, u) = ((next(x) % CLIENTS as u64) as usize, (next(x) % UPDATES as u64) as u32);
        let r = Record {
            time: T0 + round,
            serial: 1_000 + round as u64,
            target: Target::Update { index: u, state: (next(x) % 4) as u8 },
        };
        store.apply(id(c), "PC", &[r]);
    }
}

fn summarize(c: &mut Criterion) {
    let store = Arc::new(populated());
    let tmp = tempfile::tempdir().unwrap();
    let clock = SiteClock::new(Timestamp(T0), 1.0);
    let log = Arc::new(
        ComponentLog::open(tmp.path(), "StateSys.log", "SMS_STATE_SYSTEM", Format::Site, clock).unwrap(),
    );
    let summarizer = Summarizer::new(Arc::clone(&store), log);
    let site = LiveSite::open_in(tmp.path(), Site::default_site(), clock).unwrap();
    let now = Timestamp(T0 + 1_000_000);

    let mut g = c.benchmark_group("summary/all_tasks");
    g.sample_size(10);
    g.bench_function("full", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // A sync that brings one update: a new plan, so every shard recounts.
                // The model's side of the sync only: the chain's files and logs are not what
                // this times, and their writeback should not run beside it.
                site.change(|site| {
                    site.sync(1, 0);
                    false
                })
                .unwrap();
                let start = Instant::now();
                let runs = summarizer.run(&site, &Task::ALL, now);
                total += start.elapsed();
                assert_eq!(runs.len(), 5);
            }
            total
        });
    });
    let mut x = 11;
    let mut round = 0;
    g.bench_function("after_1pct", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                change_one_percent(&store, &mut x, round);
                let start = Instant::now();
                summarizer.run(&site, &Task::ALL, now);
                total += start.elapsed();
            }
            total
        });
    });
    g.finish();

    // What the last run counted (nothing when a filter left the runs out).
    let views = summarizer.views();
    if let (Some(u), Some(g)) = (views.updates.first(), views.groups.first()) {
        eprintln!(
            "summary: {} clients; update 0: {} present, {} missing; group 0: {} compliant of {}",
            u.total, u.present, u.missing, g.compliant, g.total
        );
    }

    let site = site.read().clone();
    let mut epoch = 1_000;
    let mut g = c.benchmark_group("summary/count/full");
    g.sample_size(10);
    for threads in [1usize, 2] {
        g.bench_function(format!("threads_{threads}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    epoch += 1;
                    let plan = SummaryPlan::new(&site, epoch);
                    let start = Instant::now();
                    let tally = store.summarize(&plan, threads);
                    total += start.elapsed();
                    assert_eq!(tally.clients, CLIENTS as i64);
                }
                total
            });
        });
    }
    g.finish();
}

criterion_group!(benches, summarize);
criterion_main!(benches);
