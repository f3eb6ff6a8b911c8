//! The pacer's Reports instead of simulated clients' lives. The open model (contract §3.3):
//! Reports arrive at a fixed rate whatever the answers, each from the next client in turn. Sends are not awaited: a slow server shows as latency from the
//! intended time, not as a slower schedule. A refusal (503 or no connection) is sent again after
//! the `Retry-After` the server asked for, as a client's queue does, up to [`OPEN_RETRIES`]
//! times; each retry is a new request measured from its own intended time. The closed model
//! (an extension, see the README) keeps a fixed number of Reports in flight, each sent when
//! another is answered: the target's saturation throughput, for regression tracking.

use std::rc::Rc;
use std::time::{Duration, Instant};

use protocol::Guid;

use crate::client::{Arb, CatalogEntry, Truth, push_update};
use crate::messages::{self, Report};
use crate::metrics;
use crate::profile::Kind;
use crate::sim;
use crate::transport::Failure;

/// How often an open-model Report is sent again after a refusal before it counts as failed.
pub const OPEN_RETRIES: u64 = 30;

/// Reports of `messages` state messages at a fixed arrival rate (`rate` per second on this
/// arbiter), whatever the answers, each from the next client of `clients` in turn, about the
/// catalog's first updates. Runs until the real instant `end`.
pub async fn open_model(
    arb: Rc<Arb>,
    clients: Vec<u64>,
    rate: f64,
    messages: usize,
    catalog: Vec<CatalogEntry>,
    end: Instant,
) {
    let entries: Rc<Vec<CatalogEntry>> = Rc::new(catalog.into_iter().take(messages).collect());
    let period = Duration::from_secs_f64(1.0 / rate);
    let max_outstanding = 16 * arb.plan.connections.max(16);
    let start = Instant::now();
    for k in 0u64.. {
        let intended = start + period.mul_f64(k as f64);
        if intended >= end || clients.is_empty() || arb.finishing.get() {
            break;
        }
        tokio::time::sleep_until(intended.into()).await;
        // Outstanding sends are bounded (memory): past the bound the pacer waits, which shows as
        // lateness (generator saturation) and, measured from the intended time, as latency.
        while arb.open_in_flight.get() >= max_outstanding {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        arb.open_in_flight.set(arb.open_in_flight.get() + 1);
        actix_rt::spawn(send(Rc::clone(&arb), &clients, &entries, k, intended));
    }
    collect(&arb).await;
}

/// Reports of `messages` state messages, `in_flight` of them at a time on this arbiter: each
/// sent as soon as another is answered, each from the next client of `clients` in turn, until
/// the real instant `end`. The target's pace is the only limit: its saturation throughput.
pub async fn closed_model(
    arb: Rc<Arb>,
    clients: Vec<u64>,
    in_flight: usize,
    messages: usize,
    catalog: Vec<CatalogEntry>,
    end: Instant,
) {
    if clients.is_empty() {
        return collect(&arb).await;
    }
    let entries: Rc<Vec<CatalogEntry>> = Rc::new(catalog.into_iter().take(messages).collect());
    let (clients, next) = (Rc::new(clients), Rc::new(std::cell::Cell::new(0u64)));
    let workers: Vec<_> = (0..in_flight.max(1))
        .map(|_| {
            let (arb, clients, entries, next) =
                (Rc::clone(&arb), Rc::clone(&clients), Rc::clone(&entries), Rc::clone(&next));
            actix_rt::spawn(async move {
                loop {
                    let now = Instant::now();
                    if now >= end || arb.finishing.get() {
                        break;
                    }
                    let k = next.get();
                    next.set(k + 1);
                    arb.open_in_flight.set(arb.open_in_flight.get() + 1);
                    send(Rc::clone(&arb), &clients, &entries, k, now).await;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    collect(&arb).await;
}

/// Report `k` (from the next client in turn) intended at `intended`: built, sent, and sent again
/// after a refusal. Counted in `open_in_flight` by the caller, uncounted here when done.
fn send(
    arb: Rc<Arb>,
    clients: &[u64],
    entries: &Rc<Vec<CatalogEntry>>,
    k: u64,
    intended: Instant,
) -> impl std::future::Future<Output = ()> + 'static {
    let index = clients[(k % clients.len() as u64) as usize];
    let visit = k / clients.len() as u64;
    let id = sim::identity(&arb.plan, index);
    // The SMS ID the site would give this machine: reports name it.
    let client = Guid(u128::from(sim::mix(index ^ arb.plan.seed)) << 64 | u128::from(sim::mix(!index)));
    let time = arb.clock.timestamp(intended);
    let mut report = Report::begin(client, &id.netbios_name, time, entries.len());
    for (j, e) in entries.iter().enumerate() {
        push_update(&mut report, &arb.plan, index, e, time, 1 + visit * entries.len() as u64 + j as u64);
    }
    // Shared by every attempt at sending it, not copied.
    let xml = bytes::Bytes::from(report.finish());
    let message = Guid(u128::from(sim::mix(k)) << 64 | u128::from(index));
    let header = messages::header(message, Some(client), &id.netbios_name, messages::RELAY);
    let n = entries.len() as u32;
    async move {
        let mut intended = intended;
        let mut tries = 0u64;
        let ok = loop {
            let attempt = xml.clone();
            let failure = match arb
                .transport
                .mp(Kind::StateReport, intended, index, header.clone(), move || attempt)
                .await
            {
                Ok(_) => break true,
                Err(f) => f,
            };
            // A refusal (503, or no connection) is retried after the Retry-After the server
            // asked for (1 s if none) plus up to half again of jitter, as a client's queue does;
            // a retry is a new request, measured from its own intended time. Waiting is not in
            // flight: it holds only the Report.
            let wait = match failure {
                Failure::Status(503, after) => after.unwrap_or(Duration::from_secs(1)),
                Failure::Connection(_) => Duration::from_secs(1),
                _ => break false,
            };
            tries += 1;
            if tries > OPEN_RETRIES {
                break false;
            }
            let jitter = wait.mul_f64((sim::mix(k ^ tries << 48) % 1000) as f64 / 2000.0);
            intended = Instant::now() + wait + jitter;
            arb.open_in_flight.set(arb.open_in_flight.get() - 1);
            arb.open_retrying.set(arb.open_retrying.get() + 1);
            tokio::time::sleep_until(intended.into()).await;
            arb.open_retrying.set(arb.open_retrying.get() - 1);
            arb.open_in_flight.set(arb.open_in_flight.get() + 1);
        };
        metrics::messages(u64::from(n), ok);
        if ok {
            arb.open_acked.borrow_mut().insert(index, n);
        }
        arb.open_in_flight.set(arb.open_in_flight.get() - 1);
    }
}

/// Lets what is in flight or waiting to retry finish (bounded), then records what each client
/// had acknowledged for verification.
async fn collect(arb: &Arb) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while arb.open_in_flight.get() + arb.open_retrying.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acked = std::mem::take(&mut *arb.open_acked.borrow_mut());
    arb.truths.borrow_mut().extend(acked.into_iter().map(|(index, n)| Truth {
        index,
        registered: false,
        located: false,
        acked_version: None,
        reported_first: n,
        scanned: None,
    }));
}
