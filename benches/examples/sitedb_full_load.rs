//! The site database's full load at Patch Tuesday scale: a store of 175,000 clients × 200
//! updates (35 M status rows, every client with a scan) is written as a checkpoint into a data
//! directory, then the backend starts on it `ROUNDS` times with `--database URL`; each start
//! loads the whole store into the database (the clients through a staging table, the status
//! rows by binary `COPY` with the primary key built after). Prints each load's seconds (the
//! backend's `LastFullLoadSeconds`) and the rows in `v_UpdateComplianceStatus`-backing table.
//!
//! ```sh
//! cargo run --release -p benches --example sitedb_full_load -- postgres://postgres@127.0.0.1:5433/bench 3
//! ```
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::statesys::checkpoint::Durable;
use backend::statesys::state::{Record, Target};
use backend::statesys::store::Store;
use protocol::Guid;

const CLIENTS: usize = 175_000;
const UPDATES: usize = 200;

fn id(c: usize) -> Guid {
    Guid((c as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) | 1)
}

/// The store a storm leaves: every client scanned and reported every update.
fn fill(store: &Store) {
    let mut records = Vec::with_capacity(UPDATES + 1);
    for c in 0..CLIENTS {
        records.clear();
        records.push(Record {
            time: 1_795_000_000_000_000,
            serial: 1,
            target: Target::Scan { state: 3, content_version: 1 },
        });
        records.extend((0..UPDATES).map(|k| Record {
            time: 1_795_000_000_000_000 + k as i64,
            serial: 2 + k as u64,
            target: Target::Update { index: k as u32, state: (1 + (c + k) % 3) as u8 },
        }));
        store.apply(id(c), &format!("PC{c:06}"), &records);
    }
}

fn status(base: &str) -> serde_json::Value {
    let out = std::process::Command::new("curl").args(["-sf", &format!("{base}/api/v1/status")]).output();
    out.ok().and_then(|o| serde_json::from_slice(&o.stdout).ok()).unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args.first().expect("a postgres:// URL").clone();
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let started = Instant::now();
    {
        let store = Arc::new(Store::new(8, UPDATES));
        fill(&store);
        let state = data.join("state");
        std::fs::create_dir_all(&state).expect("state dir");
        let (mut durable, _) = Durable::open(&state, &Store::new(0, 0), Arc::default()).expect("opens");
        durable.save(&store).expect("frame");
        durable.compact_now(&store).expect("base");
        durable.finish();
    }
    println!(
        "store of {CLIENTS} clients x {UPDATES} updates written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for round in 1..=rounds {
        let mut config = backend::server::Config::new(data.clone());
        config.database = Some(url.clone());
        config.summarize_at_start = false;
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                backend::server::run(listener, config, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let base = format!("http://{}", addr_rx.recv().unwrap());
        let deadline = Instant::now() + Duration::from_secs(900);
        let db = loop {
            let s = status(&base);
            if s["Database"]["FullLoads"].as_u64() >= Some(1) {
                break s["Database"].clone();
            }
            assert!(Instant::now() < deadline, "no full load in 15 minutes: {s}");
            std::thread::sleep(Duration::from_millis(200));
        };
        println!(
            "round {round}: full load {:.1} s, {} rows",
            db["LastFullLoadSeconds"].as_f64().unwrap_or(f64::NAN),
            db["Rows"]
        );
        let _ = stop.send(());
        thread.join().unwrap();
    }
}
