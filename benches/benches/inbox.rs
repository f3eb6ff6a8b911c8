//! The relay's durable write: Reports through the group-commit writer into SMX segments, each
//! acknowledged only after the fdatasync that covers it. `inbox/group_commit_43k/inflight_<N>`
//! keeps N Reports in flight (N concurrent relay requests), stored LZ4-compressed (`lz4`; the
//! submitting thread compresses); `inbox/group_commit_43k_uncompressed/...` stores them as
//! received (`none`, and `auto` while the disk is not the limit).

use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use backend::inbox::adaptive::Compression;
use backend::inbox::commit::{Ack, Busy, CommitConfig, CommitError, GroupCommit};
use benches::sample_report;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn group_commit(c: &mut Criterion) {
    let report = sample_report(150);
    for (group, codec) in [
        ("inbox/group_commit_43k", Compression::Lz4),
        ("inbox/group_commit_43k_uncompressed", Compression::None),
    ] {
        bench_codec(c, group, codec, &report);
    }
}

fn bench_codec(c: &mut Criterion, group: &str, compression: Compression, report: &[u8]) {
    let mut g = c.benchmark_group(group);
    for inflight in [1usize, 16, 256] {
        g.throughput(Throughput::Elements(inflight as u64));
        g.bench_function(format!("inflight_{inflight}"), |b| {
            let tmp = tempfile::tempdir().expect("temp dir");
            let mut config = CommitConfig::new(tmp.path().to_owned());
            config.compression = compression;
            let commit = GroupCommit::start(config, Box::new(|_, _| {})).expect("writer starts");
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let (tx, rx) = channel();
                    for _ in 0..inflight {
                        let tx = tx.clone();
                        let mut ack = Box::new(move |r| tx.send(r).expect("bench waits")) as Ack;
                        while let Err(Busy { ack: back }) = commit.submit(report.to_vec(), None, ack) {
                            ack = back;
                            std::thread::yield_now();
                        }
                    }
                    drop(tx);
                    assert!(rx.iter().all(|r: Result<(), CommitError>| r.is_ok()));
                }
                start.elapsed()
            });
            commit.shutdown();
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = group_commit }
criterion_main!(benches);
