//! StateSys's thread: when the [`Worker`] looks at its inboxes, how fast it may go, and when it
//! checkpoints; and StateSys's counters.
//!
//! ```text
//! wake: a sealed segment (notify) or the poll
//!   coming out of idle: pause (site time, 10 s in the product) so files gather
//!   new catalog (a sync)? take the new update index
//!   run batches until the inboxes are empty (paced to `rate` state messages a second if set;
//!     a long backlog breaks off for a checkpoint when one is due)
//!   checkpoint when due and there is something to save (applied files, a task's changes)
//! stop: process what is left, checkpoint, return
//! ```
//!
//! [`StateSys::start`] opens the worker (recovery: the checkpoint, then every inbox file it does
//! not cover) and starts the thread; [`StateSys::stop`] winds it down. The process sees only
//! the handle, the [`Counters`] and the store.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Paths;
use super::process::UpdateIndex;
use super::store::Store;
use super::worker::{Batch, Worker};
use crate::clock::SiteClock;
use crate::counters::Reading;
use crate::faults::Faults;
use crate::logs::{ComponentLog, Severity};
use crate::site::live::LiveSite;

/// StateSys's intervals and limits.
#[derive(Debug, Clone)]
pub struct Options {
    /// Processing threads (the product's default is 4).
    pub threads: usize,
    /// Checkpoint at most this often (real time) when there is something to save.
    pub checkpoint_every: Duration,
    /// Look at the inboxes at least this often (real time), notifications aside.
    pub poll: Duration,
    /// The pause after a notification finds StateSys idle, in site time.
    pub pause: Duration,
    /// State messages a second at most (a site database's pace); `None`: as fast as it can.
    pub rate: Option<u64>,
}

/// What StateSys has done, for the status API and metrics. Written with relaxed atomics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Reports taken out of inbox files.
    pub reports_processed: AtomicU64,
    /// Of those, the ones from the relay's segments (what drain compares with the relay's
    /// acknowledgements).
    pub reports_relayed: AtomicU64,
    /// Relayed Reports a previous run acknowledged and this start applied (recovery); kept out
    /// of `reports_relayed`, which drain compares with this run's acknowledgements.
    pub reports_recovered: AtomicU64,
    pub records_processed: AtomicU64,
    pub invalid_records: AtomicU64,
    pub files_processed: AtomicU64,
    pub bad_files: AtomicU64,
    /// Inbox files waiting: counted up as the relay seals segments (so the high-water mark
    /// holds while StateSys pauses), set exactly by StateSys after each batch.
    pub files_waiting: AtomicU64,
    pub checkpoints: AtomicU64,
    pub checkpoint_errors: AtomicU64,
    /// The last checkpoint failed (the relay answers 503 until one succeeds: acknowledged
    /// messages must not outgrow what StateSys can make durable).
    pub checkpoint_failing: AtomicBool,
}

impl Counters {
    fn count(&self, b: &Batch) {
        self.files_processed.fetch_add(b.files, Ordering::Relaxed);
        self.bad_files.fetch_add(b.bad_files, Ordering::Relaxed);
        self.reports_processed.fetch_add(b.reports, Ordering::Relaxed);
        self.reports_relayed.fetch_add(b.relayed, Ordering::Relaxed);
        self.records_processed.fetch_add(b.processed.records, Ordering::Relaxed);
        self.invalid_records.fetch_add(b.processed.invalid, Ordering::Relaxed);
    }

    /// Every counter, for the status API and metrics.
    pub fn readings(&self, out: &mut Vec<Reading>) {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.extend([
            Reading::counter(
                &["ReportsProcessed"],
                "sumstorm_statesys_reports_total",
                n(&self.reports_processed),
            ),
            Reading::counter(
                &["ReportsRecovered"],
                "sumstorm_statesys_reports_recovered_total",
                n(&self.reports_recovered),
            ),
            Reading::counter(
                &["RecordsProcessed"],
                "sumstorm_statesys_records_total",
                n(&self.records_processed),
            ),
            Reading::counter(
                &["InvalidRecords"],
                "sumstorm_statesys_invalid_records_total",
                n(&self.invalid_records),
            ),
            Reading::counter(&["FilesProcessed"], "sumstorm_statesys_files_total", n(&self.files_processed)),
            Reading::counter(&["BadFiles"], "sumstorm_statesys_bad_files_total", n(&self.bad_files)),
            Reading::gauge(
                &["FilesWaiting", "statesys.box/incoming"],
                "sumstorm_statesys_files_waiting",
                n(&self.files_waiting),
            ),
            Reading::counter(&["Checkpoints"], "sumstorm_statesys_checkpoints_total", n(&self.checkpoints)),
            Reading::counter(
                &["CheckpointErrors"],
                "sumstorm_statesys_checkpoint_errors_total",
                n(&self.checkpoint_errors),
            ),
            Reading::flag(
                &["CheckpointFailing"],
                "sumstorm_statesys_checkpoint_failing",
                self.checkpoint_failing.load(Ordering::Relaxed),
            ),
        ]);
    }
}

/// Tells StateSys a segment was sealed: one more file waits, look now.
#[derive(Debug, Clone)]
pub struct Notifier {
    counters: Arc<Counters>,
    wake: Sender<()>,
}

impl Notifier {
    pub fn sealed(&self) {
        self.counters.files_waiting.fetch_add(1, Ordering::Relaxed);
        let _ = self.wake.send(());
    }
}

/// The running StateSys.
#[derive(Debug)]
pub struct StateSys {
    counters: Arc<Counters>,
    store: Arc<Store>,
    wake: Sender<()>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl StateSys {
    /// Opens StateSys over `paths` (recovering what a previous run left) and starts its thread.
    /// Blocks for the recovery.
    pub fn start(
        paths: Paths,
        site: Arc<LiveSite>,
        log: Arc<ComponentLog>,
        clock: SiteClock,
        faults: Arc<Faults>,
        options: Options,
    ) -> io::Result<StateSys> {
        let (site_version, index, updates) = {
            let s = site.read();
            (site.version(), UpdateIndex::new(&s.catalog), s.catalog.len())
        };
        let (mut worker, recovered) = Worker::open(paths, index, updates, log, clock)?;
        worker.threads = options.threads.max(1);
        if options.rate.is_some() {
            // Small batches, so the pace is even rather than bursts and long sleeps.
            worker.chunk_bytes = 1 << 20;
        }
        worker.faults = faults;
        let counters = Arc::new(Counters::default());
        counters.count(&Batch { relayed: 0, ..recovered });
        counters.reports_recovered.store(recovered.relayed, Ordering::Relaxed);
        let store = worker.store_handle();
        let (wake, woken) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (counters, stop) = (Arc::clone(&counters), Arc::clone(&stop));
            let run = Run { worker, woken, site, site_version, counters, stop, options, clock };
            std::thread::Builder::new().name("statesys".into()).spawn(move || run.run())?
        };
        Ok(StateSys { counters, store, wake, stop, thread })
    }

    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// The state store StateSys applies to.
    pub fn store(&self) -> Arc<Store> {
        Arc::clone(&self.store)
    }

    /// What the inbox writer calls when it seals a segment.
    pub fn notifier(&self) -> Notifier {
        Notifier { counters: Arc::clone(&self.counters), wake: self.wake.clone() }
    }

    /// Processes what is in the inboxes now, checkpoints, and stops. Blocks until done.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.send(());
        let _ = self.thread.join();
    }
}

/// The thread's state.
struct Run {
    worker: Worker,
    woken: Receiver<()>,
    site: Arc<LiveSite>,
    /// The site version the worker's update index was built from.
    site_version: u64,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    options: Options,
    clock: SiteClock,
}

impl Run {
    fn run(mut self) {
        let timing = self.options.clone();
        let mut last_checkpoint = Instant::now();
        // The pace: records applied since `paced_from`, which restarts whenever StateSys idles.
        let mut paced_from = Instant::now();
        let mut paced = 0u64;
        let mut idle = true;
        // Files were left for after a checkpoint: look again at once.
        let mut more = false;
        loop {
            let wait = if more { Duration::ZERO } else { timing.poll };
            let (woken, stopping) = match self.woken.recv_timeout(wait) {
                Ok(()) => (true, self.stop.load(Ordering::Acquire)),
                Err(RecvTimeoutError::Timeout) => (false, self.stop.load(Ordering::Acquire)),
                Err(RecvTimeoutError::Disconnected) => (false, true),
            };
            if woken && idle && !stopping && !timing.pause.is_zero() {
                self.worker.log().info(&format!(
                    "Inbox notification triggered, pause for {} seconds......",
                    timing.pause.as_secs()
                ));
                std::thread::sleep(self.clock.real(timing.pause));
            }
            self.follow_the_catalog();
            if idle {
                (paced_from, paced) = (Instant::now(), 0);
            }
            idle = true;
            more = false;
            loop {
                // A long backlog still gets checkpoints, so applied files are deleted as it
                // drains rather than all at its end.
                if !idle && !stopping && last_checkpoint.elapsed() >= timing.checkpoint_every {
                    more = true;
                    break;
                }
                match self.worker.run_batch() {
                    Ok(b) if b.files > 0 => {
                        idle = false;
                        if let Some(rate) = timing.rate.filter(|r| *r > 0) {
                            paced += b.processed.records;
                            let due = Duration::from_secs_f64(paced as f64 / rate as f64);
                            std::thread::sleep(due.saturating_sub(paced_from.elapsed()));
                        }
                        self.counters.files_waiting.store(b.left, Ordering::Relaxed);
                        self.counters.count(&b);
                    }
                    Ok(_) => {
                        self.counters.files_waiting.store(0, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => {
                        eprintln!("sumstorm: StateSys cannot process its inbox: {e}");
                        break;
                    }
                }
            }
            if stopping || last_checkpoint.elapsed() >= timing.checkpoint_every {
                // Taken before saving: a change made while saving is saved next time.
                let task_changes = self.worker.store().take_task_changes();
                if (self.worker.pending() > 0 || task_changes) && self.checkpoint() {
                    last_checkpoint = Instant::now();
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// A sync changed the catalog: records for the new updates resolve from now on.
    fn follow_the_catalog(&mut self) {
        let version = self.site.version();
        if version != self.site_version {
            self.site_version = version;
            self.worker.set_index(UpdateIndex::new(&self.site.read().catalog));
        }
    }

    /// Writes a checkpoint; whether it was written.
    fn checkpoint(&mut self) -> bool {
        match self.worker.checkpoint() {
            Ok(()) => {
                self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
                self.counters.checkpoint_failing.store(false, Ordering::Release);
                true
            }
            Err(e) => {
                // Tried again on the next wake-up; the old checkpoint and the inbox files it
                // does not cover are untouched.
                self.worker.store().keep_task_changes();
                self.counters.checkpoint_errors.fetch_add(1, Ordering::Relaxed);
                self.counters.checkpoint_failing.store(true, Ordering::Release);
                self.worker.log().log(Severity::Error, &format!("Cannot write the checkpoint: {e}"));
                eprintln!("sumstorm: StateSys cannot checkpoint: {e}");
                false
            }
        }
    }
}
