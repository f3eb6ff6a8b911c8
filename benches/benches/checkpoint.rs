//! The checkpoint at Patch Tuesday scale: 175,000 clients × 200 updates (35 M states, the
//! largest stand-alone primary site). `checkpoint/full` writes the whole store (a compaction:
//! what every checkpoint cost before the store had a log); `checkpoint/changed_<P>pct` changes
//! P % of the states (spread over every client, 2 of a client's 200 at 1 %) and then appends the
//! checkpoint's frame and syncs it; `checkpoint/clients_1pct` changes every state of 1 % of the
//! clients (a storm's Reports). Each iteration's time is the checkpoint alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::statesys::checkpoint::Durable;
use backend::statesys::state::{Record, Target};
use backend::statesys::store::Store;
use criterion::{Criterion, criterion_group, criterion_main};
use protocol::Guid;

const CLIENTS: usize = 175_000;
const UPDATES: usize = 200;

fn id(c: usize) -> Guid {
    Guid((c as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) | 1)
}

/// Sets `per_client` updates of every `every`-th client to a new state, at time `round`; each
/// client's serials rise by one per message, as a real client's do (`serials`: the next one).
fn change(
    store: &Store,
    round: u64,
    every: usize,
    per_client: usize,
    serials: &mut [u64],
    records: &mut Vec<Record>,
) {
    for c in (0..CLIENTS).step_by(every) {
        records.clear();
        let first = serials[c];
        serials[c] += per_client as u64;
        records.extend((0..per_client).map(|k| Record {
            time: 1_390_238_335_573_000 + round as i64 * 1_000,
            serial: first + k as u64,
            target: Target::Update {
                index: ((c + k * 97 + round as usize) % UPDATES) as u32,
                state: (1 + (round as usize + k) % 3) as u8,
            },
        }));
        store.apply(id(c), "PC", records);
    }
}

fn checkpoint(c: &mut Criterion) {
    let store = Arc::new(Store::new(8, UPDATES));
    let (mut records, mut serials) = (Vec::new(), vec![1u64; CLIENTS]);
    change(&store, 1, 1, UPDATES, &mut serials, &mut records);
    let tmp = tempfile::tempdir().expect("temp dir");
    let (mut durable, _) = Durable::open(tmp.path(), &Store::new(0, 0), Arc::default()).expect("opens");
    // No compaction behind the frames' backs: each measures its own frame.
    durable.compact_min = u64::MAX;
    durable.save(&store).expect("first frame");
    durable.compact_now(&store).expect("first base");
    let mut round = 1u64;
    let mut g = c.benchmark_group("checkpoint");
    g.sample_size(10);
    g.bench_function("full", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                durable.compact_now(&store).expect("compacts");
                total += start.elapsed();
            }
            total
        })
    });
    // (every n-th client, states per client): 1 %, 10 %, 100 % of all states.
    for (name, every, per_client) in [
        ("changed_1pct", 1, 2),
        ("changed_10pct", 1, 20),
        ("changed_100pct", 1, UPDATES),
        ("clients_1pct", 100, UPDATES),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    change(&store, round, every, per_client, &mut serials, &mut records);
                    let start = Instant::now();
                    let saved = durable.save(&store).expect("saves");
                    total += start.elapsed();
                    assert!(saved.clients as usize >= CLIENTS / every);
                }
                total
            })
        });
        // The log would otherwise grow by every iteration's frames.
        durable.compact_now(&store).expect("compacts");
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10))
}

criterion_group! { name = benches; config = config(); targets = checkpoint }
criterion_main!(benches);
