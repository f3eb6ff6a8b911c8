//! StateSys's thread: when the [`Worker`] looks at its inboxes, how fast it may go, and when it
//! checkpoints; and StateSys's counters.
//!
//! ```text
//! wake: Reports handed over in memory, a sealed segment, or the poll
//!   coming out of idle: pause (site time, 10 s in the product) so files gather
//!   new catalog (a sync)? take the new update index
//!   apply what the relay handed over in memory (co-located: [`super::handoff`]), then run
//!     batches of files until the inboxes are empty (paced to `rate` state messages a second if
//!     set; a long backlog breaks off for a checkpoint when one is due); the inboxes are listed
//!     only when a file may wait (a segment not all handed over, a remote MP's file, the start,
//!     the stop) or once a poll (files dropped by hand)
//!   checkpoint when due and there is something to save (applied files, a task's changes)
//! stop: process what is left (unpaced: nobody waits on a stop), checkpoint, return
//! ```
//!
//! [`StateSys::start`] opens the worker's inboxes and starts the thread, which first loads the
//! store's base and log (`Loading` in the status; the MP already relays, and what it hears from
//! clients meanwhile is applied after), then recovers (every inbox file a previous run left;
//! `Recovering` until done, the times in `LoadSeconds` and `RecoverySeconds` and the log). A
//! store that cannot be loaded (damaged) stops the process: [`StateSys::take_fatal`].
//! [`StateSys::stop`] winds it down. The process sees only
//! the handle, the [`Counters`] and the store.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Paths;
use super::handoff::{Handoff, Wake};
use super::process::UpdateIndex;
use super::store::Store;
use super::worker::{Batch, Worker};
use crate::clock::SiteClock;
use crate::counters::Reading;
use crate::faults::Faults;
use crate::logs::{ComponentLog, Severity};
use crate::site::live::LiveSite;

/// A checkpoint comes before its time once this many entries changed (2 M: a frame of about
/// 50 MB), so that a frame stays small in memory, on disk and on its way to the site database
/// however fast Reports come.
const FRAME_ENTRIES: u64 = 1 << 21;

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
    /// Takes each checkpoint's frame once it is durable (the site database's mirror).
    pub sink: Option<Arc<dyn super::checkpoint::FrameSink>>,
    /// The nice value of StateSys's thread and the threads it starts (its processing threads,
    /// the compactor): [`crate::priority`].
    pub nice: i32,
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
    /// holds while StateSys pauses or is paced), down as StateSys applies a segment that came
    /// in memory, and set exactly whenever StateSys lists its inboxes.
    pub files_waiting: AtomicU64,
    pub checkpoints: AtomicU64,
    pub checkpoint_errors: AtomicU64,
    /// The last checkpoint failed (the relay answers 503 until one succeeds: acknowledged
    /// messages must not outgrow what StateSys can make durable).
    pub checkpoint_failing: AtomicBool,
    /// Bytes appended to the store's log (checkpoint frames).
    pub checkpoint_bytes: AtomicU64,
    /// StateSys is still loading the store's base and log: the store is not whole yet.
    pub loading: AtomicBool,
    /// StateSys is still applying what a previous run left in the inbox.
    pub recovering: AtomicBool,
    /// How long loading the store took at start, and then the recovery, in µs.
    pub load_us: AtomicU64,
    pub recovery_us: AtomicU64,
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
            Reading::counter(
                &["CheckpointBytes"],
                "sumstorm_statesys_checkpoint_bytes_total",
                n(&self.checkpoint_bytes),
            ),
            Reading::flag(&["Loading"], "sumstorm_statesys_loading", self.loading.load(Ordering::Relaxed)),
            Reading::flag(
                &["Recovering"],
                "sumstorm_statesys_recovering",
                self.recovering.load(Ordering::Relaxed),
            ),
            Reading::seconds(&["LoadSeconds"], "sumstorm_statesys_load_seconds", n(&self.load_us)),
            Reading::seconds(
                &["RecoverySeconds"],
                "sumstorm_statesys_recovery_seconds",
                n(&self.recovery_us),
            ),
        ]);
    }
}

/// Tells StateSys a segment was sealed: one more file waits (until StateSys has applied what
/// came of it in memory, or read it); look now.
#[derive(Debug, Clone)]
pub struct Notifier {
    counters: Arc<Counters>,
    wake: Sender<Wake>,
}

impl Notifier {
    /// A segment was sealed (at `path`, when known); `complete` when every record in it was
    /// handed over in memory, so StateSys need not read it.
    pub fn sealed(&self, path: Option<PathBuf>, complete: bool) {
        self.counters.files_waiting.fetch_add(1, Ordering::Relaxed);
        let _ = self.wake.send(match path {
            Some(path) => Wake::Sealed { path, complete },
            None => Wake::Look,
        });
    }
}

/// The running StateSys.
#[derive(Debug)]
pub struct StateSys {
    counters: Arc<Counters>,
    store: Arc<Store>,
    wake: Sender<Wake>,
    /// Reports handed over in memory and not yet applied.
    queued: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    /// Says why, if StateSys cannot go on (its store does not load).
    fatal: Option<tokio::sync::oneshot::Receiver<String>>,
}

impl StateSys {
    /// Opens StateSys's inboxes over `paths` and starts its thread, which loads the store and
    /// recovers what a previous run left in the inbox before anything else.
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
        let mut worker = Worker::open(paths, index, updates, log, clock, faults)?;
        worker.threads = options.threads.max(1);
        worker.sink = options.sink.clone();
        if options.rate.is_some() {
            // Small batches, so the pace is even rather than bursts and long sleeps.
            worker.chunk_bytes = 1 << 20;
        }
        let counters = Arc::new(Counters::default());
        counters.loading.store(true, Ordering::Release);
        counters.recovering.store(true, Ordering::Release);
        let (fatal_tx, fatal) = tokio::sync::oneshot::channel();
        counters.files_waiting.store(worker.waiting()?.len() as u64, Ordering::Relaxed);
        let store = worker.store_handle();
        let (wake, woken) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicU64::new(0));
        let thread = {
            let (counters, stop, queued) = (Arc::clone(&counters), Arc::clone(&stop), Arc::clone(&queued));
            let run = Run {
                worker,
                woken,
                handed: Vec::new(),
                queued,
                fatal: Some(fatal_tx),
                site,
                site_version,
                counters,
                stop,
                options,
                clock,
                paced_from: Instant::now(),
                paced: 0,
                look: true,
                listed: Instant::now(),
            };
            std::thread::Builder::new().name("statesys".into()).spawn(move || run.run())?
        };
        Ok(StateSys { counters, store, wake, queued, stop, thread, fatal: Some(fatal) })
    }

    /// Resolves, once, with why StateSys cannot go on (the process should stop); never, if it
    /// can.
    pub fn take_fatal(&mut self) -> Option<tokio::sync::oneshot::Receiver<String>> {
        self.fatal.take()
    }

    /// What the co-located relay hands its durable Reports over with.
    pub fn handoff(&self) -> Handoff {
        Handoff::new(self.wake.clone(), Arc::clone(&self.queued))
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
        let _ = self.wake.send(Wake::Look);
        let _ = self.thread.join();
    }
}

/// The thread's state.
struct Run {
    worker: Worker,
    woken: Receiver<Wake>,
    /// What the relay handed over, in the order it came, not yet applied.
    handed: Vec<Wake>,
    queued: Arc<AtomicU64>,
    fatal: Option<tokio::sync::oneshot::Sender<String>>,
    site: Arc<LiveSite>,
    /// The site version the worker's update index was built from.
    site_version: u64,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    options: Options,
    clock: SiteClock,
    /// The pace: records applied since `paced_from`, which restarts whenever StateSys idles.
    paced_from: Instant,
    paced: u64,
    /// A file may wait to be read (a segment not all handed over, a remote MP's file, the
    /// start, the stop): list the inboxes. Otherwise they are listed once a `poll` (files
    /// dropped by hand), not on every batch: co-located under load, every segment comes in
    /// memory and listing a directory of applied segments would be all the work there is.
    look: bool,
    /// When a listing last found nothing to read.
    listed: Instant,
}

impl Run {
    /// Holds StateSys to `options.rate` state messages a second (if set, and not stopping:
    /// nobody waits on a stop), having just applied `records` more.
    fn pace(&mut self, records: u64) {
        if let Some(rate) = self.options.rate.filter(|r| *r > 0 && !self.stop.load(Ordering::Acquire)) {
            self.paced += records;
            let due = Duration::from_secs_f64(self.paced as f64 / rate as f64);
            std::thread::sleep(due.saturating_sub(self.paced_from.elapsed()));
        }
    }

    /// What a previous run left in the inbox, applied before anything else.
    fn recover(&mut self) {
        let started = Instant::now();
        match self.worker.recover() {
            Ok(recovered) => {
                self.counters.count(&Batch { relayed: 0, ..recovered });
                self.counters.reports_recovered.store(recovered.relayed, Ordering::Relaxed);
                self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
                if recovered.files > 0 {
                    self.worker.log().info(&format!(
                        "Recovered {} Reports from {} inbox files left by the previous run in {:.3} seconds.",
                        recovered.reports,
                        recovered.files,
                        started.elapsed().as_secs_f64()
                    ));
                }
            }
            // What was not applied stays in the inbox: the file loop takes it next.
            Err(e) => {
                self.worker.log().log(Severity::Error, &format!("Cannot recover the inbox: {e}"));
                eprintln!("sumstorm: StateSys cannot recover its inbox: {e}");
            }
        }
        self.counters.recovery_us.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.counters.recovering.store(false, Ordering::Release);
    }

    fn run(mut self) {
        crate::priority::lower_this_thread_or_warn(
            self.options.nice,
            self.worker.log(),
            "StateSys's threads",
        );
        match self.worker.load() {
            Ok(loaded) => {
                self.counters.load_us.store(loaded.took.as_micros() as u64, Ordering::Relaxed);
                self.counters.loading.store(false, Ordering::Release);
            }
            Err(e) => {
                let why = format!("StateSys cannot load its store: {e}");
                self.worker.log().log(Severity::Error, &why);
                if let Some(fatal) = self.fatal.take() {
                    let _ = fatal.send(why);
                }
                return;
            }
        }
        self.recover();
        let timing = self.options.clone();
        let mut last_checkpoint = Instant::now();
        let store = self.worker.store_handle();
        // A checkpoint is due every `checkpoint_every`, or sooner once its frame would be large.
        let due = |last: Instant| {
            last.elapsed() >= timing.checkpoint_every || store.unsaved_entries() >= FRAME_ENTRIES
        };
        let mut idle = true;
        // Files were left for after a checkpoint: look again at once.
        let mut more = false;
        loop {
            let wait = if more { Duration::ZERO } else { timing.poll };
            let (woken, stopping) = match self.woken.recv_timeout(wait) {
                Ok(wake) => {
                    self.handed.push(wake);
                    (true, self.stop.load(Ordering::Acquire))
                }
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
                (self.paced_from, self.paced) = (Instant::now(), 0);
            }
            idle = true;
            more = false;
            loop {
                // A long backlog still gets checkpoints, so applied files are deleted as it
                // drains rather than all at its end.
                if !idle && !stopping && due(last_checkpoint) {
                    more = true;
                    break;
                }
                // What came in memory first: whatever it covers need not be read.
                // (Counted and paced Report by Report as they are applied.)
                let handed = self.apply_handed();
                if handed.reports > 0 || handed.files > 0 {
                    idle = false;
                }
                if !self.look && !stopping && self.listed.elapsed() < timing.poll {
                    break;
                }
                let (woken, handed) = (&self.woken, &mut self.handed);
                let refresh = |w: &mut Worker| {
                    for wake in woken.try_iter() {
                        if let Wake::Durable { segment, .. } = &wake {
                            w.handing(segment);
                        }
                        handed.push(wake);
                    }
                };
                match self.worker.run_batch(refresh) {
                    Ok(b) if b.files > 0 => {
                        idle = false;
                        self.pace(b.processed.records);
                        self.counters.files_waiting.store(b.left, Ordering::Relaxed);
                        self.counters.count(&b);
                    }
                    Ok(_) => {
                        self.counters.files_waiting.store(0, Ordering::Relaxed);
                        (self.look, self.listed) = (false, Instant::now());
                        break;
                    }
                    Err(e) => {
                        eprintln!("sumstorm: StateSys cannot process its inbox: {e}");
                        break;
                    }
                }
            }
            if (stopping || due(last_checkpoint)) && self.worker.needs_checkpoint() && self.checkpoint() {
                last_checkpoint = Instant::now();
            }
            if stopping {
                self.worker.finish();
                return;
            }
        }
    }

    /// Applies what the relay handed over in memory (and what came since), in order: Reports
    /// into the store, and sealed segments all of whose records came this way marked applied.
    /// Each is counted as it is applied and paced (a paced StateSys applies at its rate Report
    /// by Report, not in lumps of a whole queue).
    fn apply_handed(&mut self) -> Batch {
        self.handed.extend(self.woken.try_iter());
        let mut batch = Batch::default();
        for wake in std::mem::take(&mut self.handed) {
            match wake {
                Wake::Durable { segment, opened, records } => {
                    let b = self.worker.apply_handed(&segment, opened, &records);
                    self.queued.fetch_sub(b.reports, Ordering::Relaxed);
                    self.counters.count(&b);
                    self.pace(b.processed.records);
                    batch.reports += b.reports;
                    batch.relayed += b.relayed;
                    batch.processed += b.processed;
                }
                Wake::Sealed { path, complete } => {
                    self.look |= !complete;
                    if complete {
                        // Applied: it waits no more (the inboxes are not listed to say so).
                        let _ = self.counters.files_waiting.fetch_update(
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                            |n| Some(n.saturating_sub(1)),
                        );
                    }
                    self.worker.sealed(path, complete);
                    let files = u64::from(complete);
                    self.counters.count(&Batch { files, ..Batch::default() });
                    batch.files += files;
                }
                Wake::Look => self.look = true,
            }
        }
        if batch.reports > 0 {
            self.worker.log().info(&format!(
                "CMessageProcessor - Processed {} records with {} invalid records.",
                batch.processed.records, batch.processed.invalid
            ));
        }
        batch
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
            Ok(bytes) => {
                self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
                self.counters.checkpoint_bytes.fetch_add(bytes, Ordering::Relaxed);
                self.counters.checkpoint_failing.store(false, Ordering::Release);
                true
            }
            Err(e) => {
                // Tried again on the next wake-up; what was durable stays so, the changes not
                // yet written are kept, and the inbox files they come from are not deleted.
                self.counters.checkpoint_errors.fetch_add(1, Ordering::Relaxed);
                self.counters.checkpoint_failing.store(true, Ordering::Release);
                self.worker.log().log(Severity::Error, &format!("Cannot write the checkpoint: {e}"));
                eprintln!("sumstorm: StateSys cannot checkpoint: {e}");
                false
            }
        }
    }
}
