//! Group commit: Reports from many concurrent requests go into the open segment, one
//! `fdatasync` makes the batch durable, and only then is each acknowledged. Per-file fsync tops
//! out near 1,500 files/s on these machines; batching is what lets the relay acknowledge
//! hundreds of thousands of state messages a second.
//!
//! A commit costs the writer about 100 µs of CPU whatever its size (the write, the data and the
//! inode each sent to the disk, the cache flush, the wake-ups). When Reports arrive faster than
//! one per commit (the batch, or the last one, held more than one) and requests that will submit
//! are on their way ([`GroupCommit::on_its_way`]), the writer waits for them until the batch's
//! first has waited [`CommitConfig::commit_delay`], as PostgreSQL's `commit_delay` does while
//! other transactions are active. A lone Report under a light load, or a batch nobody is coming
//! to join (every client of a small closed loop is in it), is written at once.
//!
//! Co-located, each batch the writer made durable is also handed to StateSys in memory, already
//! scanned ([`crate::statesys::handoff`]); a segment is sealed `complete` when all its records
//! went that way, so StateSys need not read it back.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::adaptive::{Compression, Gauge, Switch};
use super::segment::{Encoded, SegmentWriter};
use crate::faults::Faults;
use crate::statesys::handoff::{Handoff, Parsed};

/// Why a Report was not made durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("writing the inbox failed: {0}")]
    Io(String),
    #[error("the inbox writer has stopped")]
    Closed,
}

/// Called once per Report: `Ok` only after the Report is on disk.
pub type Ack = Box<dyn FnOnce(Result<(), CommitError>) + Send>;

/// A request that may submit a record, from when it starts until it has (dropped after
/// [`GroupCommit::submit`], or when it ends without one): the writer waits for such requests to
/// join a batch, and only for them.
#[derive(Debug)]
pub struct OnItsWay(Arc<AtomicUsize>);

impl Drop for OnItsWay {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The queue is full: answer 503 and let the client retry. The ack comes back uncalled.
pub struct Busy {
    pub ack: Ack,
}

/// Called with each sealed segment's path, and whether every record in it was handed to
/// StateSys in memory.
pub type OnSealed = Box<dyn Fn(&Path, bool) + Send>;

impl std::fmt::Debug for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Busy")
    }
}

/// Tuning of the writer.
#[derive(Debug, Clone)]
pub struct CommitConfig {
    /// Where segments are written and sealed (an inbox `incoming` folder or the MP outbox).
    pub dir: PathBuf,
    /// Reports waiting for the writer at most; past this, [`GroupCommit::submit`] says busy.
    pub queue: usize,
    /// A batch stops growing at this many bytes (one write, one fdatasync).
    pub max_batch_bytes: usize,
    /// How long a batch's first Report may wait for others to share its commit, while Reports
    /// come faster than one per commit and requests are on their way (zero: commit what is
    /// queued at once).
    pub commit_delay: Duration,
    /// A segment is sealed (handed to StateSys) once it holds this many bytes of records as
    /// submitted, before compression: a segment holds as many Reports whatever the codec, so
    /// one StateSys must read back (it fell behind, or after a crash) costs no more...
    pub seal_bytes: u64,
    /// ...or once its first record is this old.
    pub seal_after: Duration,
    /// The fault-injection seam.
    pub faults: Arc<Faults>,
    /// The site clock: each segment records when it was opened.
    pub clock: crate::clock::SiteClock,
    /// Co-located: where durable records go in memory. `None`: StateSys reads every segment.
    pub handoff: Option<Handoff>,
    /// How records are stored (compressed by the submitting thread, not the writer's).
    pub compression: Compression,
    /// `auto` compresses above this many bytes/s of Reports as submitted.
    pub compress_above: u64,
    /// Where `auto` says when it turns compression on or off (the relay's `MP_Relay.log`).
    pub log: Option<Arc<crate::logs::ComponentLog>>,
}

impl CommitConfig {
    pub fn new(dir: PathBuf) -> CommitConfig {
        CommitConfig {
            dir,
            queue: 4096,
            max_batch_bytes: 8 << 20,
            commit_delay: COMMIT_DELAY,
            seal_bytes: 16 << 20,
            seal_after: Duration::from_millis(200),
            faults: Arc::default(),
            clock: crate::clock::SiteClock::real_time(),
            handoff: None,
            compression: Compression::default(),
            compress_above: super::adaptive::COMPRESS_ABOVE,
            log: None,
        }
    }
}

/// The default [`CommitConfig::commit_delay`]: on two cores under 64 connections of 150-message
/// Reports, it takes the writer from ~2,600 commits/s to ~800 and the backend's CPU per state
/// message down by about a tenth (`results/bench/session20-2026-12-04.md`).
pub const COMMIT_DELAY: Duration = Duration::from_millis(1);

/// Each bucket of the batch-commit histogram ([`crate::counters::BOUNDS`], then the rest): its
/// place in the status API and its Prometheus sample.
const COMMIT_BUCKETS: [(&[&str], &str); 11] = [
    (&["InboxCommit", "AtMost", "0.0005"], "sumstorm_inbox_commit_seconds_bucket{le=\"0.0005\"}"),
    (&["InboxCommit", "AtMost", "0.001"], "sumstorm_inbox_commit_seconds_bucket{le=\"0.001\"}"),
    (&["InboxCommit", "AtMost", "0.0025"], "sumstorm_inbox_commit_seconds_bucket{le=\"0.0025\"}"),
    (&["InboxCommit", "AtMost", "0.005"], "sumstorm_inbox_commit_seconds_bucket{le=\"0.005\"}"),
    (&["InboxCommit", "AtMost", "0.01"], "sumstorm_inbox_commit_seconds_bucket{le=\"0.01\"}"),
    (&["InboxCommit", "AtMost", "0.025"], "sumstorm_inbox_commit_seconds_bucket{le=\"0.025\"}"),
    (&["InboxCommit", "AtMost", "0.05"], "sumstorm_inbox_commit_seconds_bucket{le=\"0.05\"}"),
    (&["InboxCommit", "AtMost", "0.1"], "sumstorm_inbox_commit_seconds_bucket{le=\"0.1\"}"),
    (&["InboxCommit", "AtMost", "0.5"], "sumstorm_inbox_commit_seconds_bucket{le=\"0.5\"}"),
    (&["InboxCommit", "AtMost", "2.5"], "sumstorm_inbox_commit_seconds_bucket{le=\"2.5\"}"),
    (&["InboxCommit", "AtMost", "+Inf"], "sumstorm_inbox_commit_seconds_bucket{le=\"+Inf\"}"),
];

/// Counters, read by the status API and metrics while the writer runs.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub reports: AtomicU64,
    /// Bytes of the records as submitted.
    pub bytes: AtomicU64,
    /// Bytes of the same records as stored in segments (compressed).
    pub stored_bytes: AtomicU64,
    /// fdatasync calls (one per batch).
    pub syncs: AtomicU64,
    pub segments_sealed: AtomicU64,
    pub errors: AtomicU64,
    /// How long each batch took to write and `fdatasync`: the wait every Report of the batch had
    /// for its durability, past its queueing. A stall of the disk shows here; a stall elsewhere
    /// (the CPU, the network, the client) does not.
    pub commit_took: crate::counters::Histogram,
    /// Whether records are compressed now.
    pub compression: Arc<Switch>,
}

impl CommitStats {
    /// The counters the status API and metrics show.
    pub fn readings(&self, out: &mut Vec<crate::counters::Reading>) {
        use crate::counters::{Kind, Reading};
        let n = |a: &AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        out.extend([
            Reading::counter(&["InboxSyncs"], "sumstorm_inbox_syncs_total", n(&self.syncs)),
            Reading::counter(
                &["SegmentsSealed"],
                "sumstorm_inbox_segments_sealed_total",
                n(&self.segments_sealed),
            ),
            Reading::counter(&["InboxWriteErrors"], "sumstorm_inbox_write_errors_total", n(&self.errors)),
            Reading::counter(&["InboxRecordBytes"], "sumstorm_inbox_record_bytes_total", n(&self.bytes)),
            Reading::counter(
                &["InboxStoredBytes"],
                "sumstorm_inbox_stored_bytes_total",
                n(&self.stored_bytes),
            ),
            Reading::flag(
                &["InboxCompressing"],
                "sumstorm_inbox_compressing",
                self.compression.compressing(),
            ),
            Reading::counter(
                &["InboxCompressionSwitches"],
                "sumstorm_inbox_compression_switches_total",
                self.compression.switches(),
            ),
        ]);
        let at_most = self.commit_took.cumulative();
        for (count, (status, metric)) in at_most.into_iter().zip(COMMIT_BUCKETS) {
            out.push(Reading::of(Kind::Bucket, status, metric, count));
        }
        let total = at_most.last().copied().unwrap_or(0);
        out.extend([
            Reading::of(
                Kind::Sum,
                &["InboxCommit", "Seconds"],
                "sumstorm_inbox_commit_seconds_sum",
                self.commit_took.sum_nanos(),
            ),
            Reading::of(Kind::Count, &["InboxCommit", "Count"], "sumstorm_inbox_commit_seconds_count", total),
        ]);
    }

    #[cfg(test)]
    fn readings_vec(&self) -> Vec<crate::counters::Reading> {
        let mut out = Vec::new();
        self.readings(&mut out);
        out
    }
}

struct Entry {
    record: Encoded,
    /// When it was submitted.
    queued: Instant,
    /// Its length as submitted.
    len: usize,
    /// The record as StateSys takes it in memory; `None`: it must be read from the segment.
    parsed: Option<Parsed>,
    ack: Ack,
}

/// The writer thread and the way to it.
pub struct GroupCommit {
    /// `None` once shut down; dropping the sender lets the thread drain, seal and exit. Read-locked
    /// per submit (uncontended), write-locked once at shutdown.
    tx: RwLock<Option<SyncSender<Entry>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<CommitStats>,
    /// Requests on their way to submitting ([`OnItsWay`]).
    on_its_way: Arc<AtomicUsize>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the writer. `on_sealed` is called with each sealed segment (StateSys's in-process
    /// notification).
    pub fn start(config: CommitConfig, on_sealed: OnSealed) -> io::Result<GroupCommit> {
        std::fs::create_dir_all(&config.dir)?;
        let (tx, rx) = sync_channel(config.queue.max(1));
        let switch = Arc::new(Switch::new(config.compression));
        let gauge = (config.compression == Compression::Auto).then(|| {
            Gauge::new(Arc::clone(&switch), config.compress_above, Instant::now(), config.log.clone())
        });
        let stats = Arc::new(CommitStats { compression: switch, ..CommitStats::default() });
        let on_its_way = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            on_its_way: Arc::clone(&on_its_way),
            gauge,
            seq: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64),
            config,
            stats: Arc::clone(&stats),
            segment: None,
            opened: 0,
            complete: true,
            submitted: 0,
            on_sealed,
            busy: false,
        };
        let thread = std::thread::Builder::new().name("inbox-commit".into()).spawn(move || writer.run(rx))?;
        Ok(GroupCommit { tx: RwLock::new(Some(tx)), thread: Mutex::new(Some(thread)), stats, on_its_way })
    }

    /// Counts a request that may submit a record until the guard is dropped (after its submit).
    pub fn on_its_way(&self) -> OnItsWay {
        self.on_its_way.fetch_add(1, Ordering::Relaxed);
        OnItsWay(Arc::clone(&self.on_its_way))
    }

    /// Queues a record (with its in-memory form for StateSys, if it has one); `ack` is called
    /// once it is durable (or failed). Never blocks; the record is encoded (compressed, if it is
    /// to be) here, on the caller's thread, so the one writer thread only writes.
    pub fn submit(&self, report: Vec<u8>, parsed: Option<Parsed>, ack: Ack) -> Result<(), Busy> {
        let guard = self.tx.read().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = guard.as_ref() else {
            ack(Err(CommitError::Closed));
            return Ok(());
        };
        let len = report.len();
        match tx.try_send(Entry {
            record: self.stats.compression.codec().encode(report),
            queued: Instant::now(),
            len,
            parsed,
            ack,
        }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(e)) => Err(Busy { ack: e.ack }),
            Err(TrySendError::Disconnected(e)) => {
                (e.ack)(Err(CommitError::Closed));
                Ok(())
            }
        }
    }

    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }

    /// Stops accepting (later submits are acked `Closed`), commits what is queued, seals the open
    /// segment and waits for the thread. Idempotent.
    pub fn shutdown(&self) {
        self.tx.write().unwrap_or_else(|p| p.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Writer {
    config: CommitConfig,
    stats: Arc<CommitStats>,
    /// Next segment name (hex, so names sort in creation order).
    seq: u64,
    /// The open segment and when its first record arrived.
    segment: Option<(SegmentWriter, Instant)>,
    /// The open segment's opening time (site µs), and whether every record written to it so far
    /// was handed over in memory.
    opened: i64,
    complete: bool,
    /// Bytes of the open segment's records as submitted.
    submitted: u64,
    on_sealed: OnSealed,
    /// `auto` compression's measure of the rate Reports arrive at.
    gauge: Option<Gauge>,
    /// The last batch held more than one Report: the next waits for company.
    busy: bool,
    /// Requests on their way to submitting.
    on_its_way: Arc<AtomicUsize>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Entry>) {
        let mut batch: Vec<Entry> = Vec::new();
        loop {
            let wait = match &self.segment {
                Some((_, since)) => self.config.seal_after.saturating_sub(since.elapsed()),
                None => Duration::from_secs(3600),
            };
            match rx.recv_timeout(wait) {
                Ok(first) => {
                    let wait = Wait {
                        busy: self.busy,
                        delay: self.config.commit_delay,
                        on_its_way: &self.on_its_way,
                    };
                    self.busy = gather(&rx, first, &mut batch, wait, self.config.max_batch_bytes);
                    self.commit(&mut batch);
                }
                Err(RecvTimeoutError::Timeout) => self.seal(),
                Err(RecvTimeoutError::Disconnected) => {
                    self.seal();
                    return;
                }
            }
        }
    }

    fn commit(&mut self, batch: &mut Vec<Entry>) {
        let started = Instant::now();
        let result = self.write(batch);
        let took = started.elapsed();
        self.stats.commit_took.record(took);
        let bytes: usize = batch.iter().map(|e| e.len).sum();
        if let (Some(gauge), Ok(())) = (&mut self.gauge, &result) {
            gauge.commit(started + took, bytes);
        }
        let stored: usize = batch.iter().map(|e| e.record.stored_len()).sum();
        match &result {
            Ok(()) => {
                self.stats.reports.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                self.stats.stored_bytes.fetch_add(stored as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        // In memory to StateSys first, then the answers.
        let mut acks = Vec::with_capacity(batch.len());
        let mut handed = Vec::with_capacity(batch.len());
        for entry in batch.drain(..) {
            acks.push(entry.ack);
            match entry.parsed {
                Some(p) => handed.push(p),
                None => self.complete = false,
            }
        }
        match (&result, &self.config.handoff, &self.segment) {
            (Ok(()), Some(handoff), Some((segment, _))) => {
                if !handed.is_empty() && !handoff.durable(segment.path(), self.opened, handed) {
                    self.complete = false;
                }
            }
            _ => self.complete = false,
        }
        for ack in acks {
            ack(result.clone());
        }
        if result.is_ok() {
            self.submitted += bytes as u64;
        }
        if self.submitted >= self.config.seal_bytes {
            self.seal();
        }
    }

    fn write(&mut self, batch: &[Entry]) -> Result<(), CommitError> {
        let io_err = |e: io::Error| CommitError::Io(e.to_string());
        if self.segment.is_none() {
            let writer = self.create().map_err(io_err)?;
            self.segment = Some((writer, Instant::now()));
        }
        let Some((segment, _)) = self.segment.as_mut() else { return Err(CommitError::Closed) };
        segment.append_all(batch.iter().map(|e| &e.record)).map_err(io_err)?;
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        segment.sync().map_err(io_err)
    }

    fn create(&mut self) -> io::Result<SegmentWriter> {
        loop {
            self.seq += 1;
            let created = self.config.clock.now().0;
            (self.opened, self.complete, self.submitted) = (created, true, 0);
            match SegmentWriter::create(&self.config.dir, &format!("{:016X}", self.seq), created) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                other => return other.map(|w| w.with_faults(Arc::clone(&self.config.faults))),
            }
        }
    }

    /// Seals the open segment, if it holds anything, and tells StateSys.
    fn seal(&mut self) {
        let Some((segment, _)) = self.segment.take() else { return };
        if segment.is_empty() {
            // Nothing acknowledged lives here; leave the empty part for recovery to remove.
            return;
        }
        match segment.seal() {
            Ok(path) => {
                self.stats.segments_sealed.fetch_add(1, Ordering::Relaxed);
                (self.on_sealed)(&path, self.complete && self.config.handoff.is_some());
            }
            // Acknowledged records are synced in the .part; recovery seals it at the next start.
            Err(e) => eprintln!("sumstorm: cannot seal an inbox segment: {e}"),
        }
    }
}

/// How long a batch may wait for company (see [`gather`]).
struct Wait<'a> {
    /// The last batch held more than one Report.
    busy: bool,
    /// How long the batch's first Report may wait.
    delay: Duration,
    /// Requests on their way to submitting.
    on_its_way: &'a AtomicUsize,
}

/// When a waiting writer looks whether anyone is still on the way: soon after it starts (a small
/// closed loop's others arrive within a scan's time), then every 200 µs.
const FIRST_LOOK: Duration = Duration::from_micros(50);
const LOOK_EVERY: Duration = Duration::from_micros(200);

/// Fills `batch`: `first` and what is queued behind it; then, if the last batch had company
/// (`busy`) or this one has (Reports arrive faster than one per commit), and while requests are
/// on their way to submitting, takes what arrives until `first` has waited the delay, up to
/// `max_bytes` stored. It sleeps in steps ([`FIRST_LOOK`], then [`LOOK_EVERY`]) rather than waiting
/// on the queue, so that each arrival does not wake it. Says whether the batch had company.
fn gather(rx: &Receiver<Entry>, first: Entry, batch: &mut Vec<Entry>, wait: Wait, max_bytes: usize) -> bool {
    let deadline = first.queued + wait.delay;
    let mut bytes = first.record.stored_len();
    batch.push(first);
    let mut take_queued = |batch: &mut Vec<Entry>| {
        while bytes < max_bytes {
            let Ok(next) = rx.try_recv() else { break };
            bytes += next.record.stored_len();
            batch.push(next);
        }
        bytes < max_bytes
    };
    let mut room = take_queued(batch);
    if batch.len() > 1 || wait.busy {
        let mut step = FIRST_LOOK;
        while room && wait.on_its_way.load(Ordering::Relaxed) > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(step));
            step = LOOK_EVERY;
            room = take_queued(batch);
        }
    }
    batch.len() > 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::segment::{Codec, SEALED, records};
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    use std::sync::mpsc::channel;

    fn sealed_reports(dir: &Path) -> Vec<Vec<u8>> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == SEALED))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let bytes = std::fs::read(f).unwrap();
            out.extend(records(&bytes).map(|r| r.unwrap().to_vec().unwrap()));
        }
        out
    }

    #[test]
    fn concurrent_reports_are_all_acknowledged_and_sealed_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("incoming");
        let mut config = CommitConfig::new(dir.clone());
        config.seal_bytes = 64 * 1024;
        // Small batches, so several segments fill even when everything queues behind one fsync.
        config.max_batch_bytes = 8 * 1024;
        config.compression = Compression::Lz4;
        let sealed = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sealed);
        let commit = Arc::new(
            GroupCommit::start(config, Box::new(move |p, _| seen.lock().unwrap().push(p.to_owned())))
                .unwrap(),
        );
        let (done_tx, done_rx) = channel();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let commit = Arc::clone(&commit);
                let done = done_tx.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let report = format!("<Report t=\"{t}\" i=\"{i}\">{}</Report>", "y".repeat(i % 300));
                        let done = done.clone();
                        let mut ack = Box::new(move |r| done.send(r).unwrap()) as Ack;
                        // A full queue is back-pressure: try again, as a client would.
                        while let Err(Busy { ack: back }) =
                            commit.submit(report.clone().into_bytes(), None, ack)
                        {
                            ack = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(done_tx);
        let acks: Vec<_> = done_rx.iter().collect();
        assert_eq!(acks.len(), 4000);
        assert!(acks.iter().all(Result::is_ok));
        let commit = Arc::try_unwrap(commit).unwrap();
        let syncs = commit.stats().syncs.load(Ordering::Relaxed);
        commit.shutdown();
        let reports = sealed_reports(&dir);
        assert_eq!(reports.len(), 4000);
        assert_eq!(reports.iter().collect::<BTreeSet<_>>().len(), 4000, "each exactly once");
        assert!(syncs < 4000, "batches share fsyncs ({syncs} for 4000 reports)");
        let mut status = serde_json::Map::new();
        crate::counters::status_json(&commit.stats().readings_vec(), &mut status);
        assert_eq!(status["InboxCommit"]["Count"], syncs, "every batch's commit is timed: {status:?}");
        assert_eq!(status["InboxCommit"]["AtMost"]["+Inf"], syncs);
        // Compressed, the repetitive Reports took fewer bytes than they came in.
        let (record, stored) =
            (status["InboxRecordBytes"].as_u64().unwrap(), status["InboxStoredBytes"].as_u64().unwrap());
        let sent: usize = reports.iter().map(Vec::len).sum();
        assert_eq!(record, sent as u64);
        assert!(stored < record / 2, "{stored} stored of {record}");
        let sealed = sealed.lock().unwrap();
        assert!(sealed.len() > 1, "segments are sealed by size");
        assert!(
            std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .all(|e| e.path().extension().is_some_and(|x| x == SEALED))
        );
    }

    fn entry(queued: Instant) -> Entry {
        let report = b"<Report/>".to_vec();
        Entry {
            len: report.len(),
            record: Codec::Plain.encode(report),
            queued,
            parsed: None,
            ack: Box::new(|_| ()),
        }
    }

    /// Sends an entry `after` from now, from another thread (a Report arriving meanwhile).
    fn arrives(tx: &SyncSender<Entry>, after: Duration) -> JoinHandle<()> {
        let tx = tx.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            tx.send(entry(Instant::now())).unwrap();
        })
    }

    fn wait(busy: bool, delay: Duration, on_its_way: &AtomicUsize) -> Wait<'_> {
        Wait { busy, delay, on_its_way }
    }

    /// Gathers a batch under a minute's delay (`queued` Reports behind the first) and says its
    /// size and whether it had company; panics if it waited (waiting at all would show).
    fn gather_at_once(queued: usize, busy: bool, on_its_way: usize) -> (usize, bool) {
        let (tx, rx) = sync_channel(16);
        for _ in 0..queued {
            tx.send(entry(Instant::now())).unwrap();
        }
        let coming = AtomicUsize::new(on_its_way);
        let mut batch = Vec::new();
        let started = Instant::now();
        let company = gather(
            &rx,
            entry(Instant::now()),
            &mut batch,
            wait(busy, Duration::from_secs(60), &coming),
            1 << 20,
        );
        assert!(started.elapsed() < Duration::from_secs(20), "it waited");
        (batch.len(), company)
    }

    #[test]
    fn a_lone_report_under_a_light_load_is_committed_without_waiting() {
        // Someone on the way, but nothing says Reports come faster than one per commit.
        assert_eq!(gather_at_once(0, false, 1), (1, false));
    }

    #[test]
    fn a_batch_nobody_is_coming_to_join_is_committed_without_waiting() {
        // Every client of a small closed loop is in the batch: none can come.
        assert_eq!(gather_at_once(1, true, 0), (2, true));
    }

    #[test]
    fn a_batch_with_company_waits_for_those_on_their_way() {
        let (tx, rx) = sync_channel(16);
        let delay = Duration::from_millis(1500);
        let coming = AtomicUsize::new(1);
        // Two queued together, a third arriving while the writer waits, and another request still
        // on its way: the batch waits the delay out.
        tx.send(entry(Instant::now())).unwrap();
        let late = arrives(&tx, Duration::from_millis(50));
        let mut batch = Vec::new();
        let first = entry(Instant::now());
        let started = first.queued;
        let busy = gather(&rx, first, &mut batch, wait(false, delay, &coming), 1 << 20);
        assert!(started.elapsed() >= delay, "it waited the delay out");
        assert_eq!((batch.len(), busy), (3, true));
        late.join().unwrap();

        // The last batch had company: a lone first waits too, and takes what arrives.
        let late = arrives(&tx, Duration::from_millis(50));
        batch.clear();
        assert!(gather(&rx, entry(Instant::now()), &mut batch, wait(true, delay, &coming), 1 << 20));
        assert_eq!(batch.len(), 2);
        late.join().unwrap();

        // Nothing arrives: the batch is alone, and the next will not wait.
        batch.clear();
        let short = wait(true, Duration::from_millis(20), &coming);
        assert!(!gather(&rx, entry(Instant::now()), &mut batch, short, 1 << 20));
        assert_eq!(batch.len(), 1);
    }

    #[test]
    fn the_wait_ends_when_everyone_on_the_way_has_arrived() {
        let (tx, rx) = sync_channel(16);
        let coming = Arc::new(AtomicUsize::new(1));
        tx.send(entry(Instant::now())).unwrap();
        // The one request on its way submits after 50 ms, then counts itself out.
        let last = {
            let (tx, coming) = (tx.clone(), Arc::clone(&coming));
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                tx.send(entry(Instant::now())).unwrap();
                coming.fetch_sub(1, Ordering::Relaxed);
            })
        };
        let mut batch = Vec::new();
        let started = Instant::now();
        gather(
            &rx,
            entry(Instant::now()),
            &mut batch,
            wait(false, Duration::from_secs(60), &coming),
            1 << 20,
        );
        assert!(started.elapsed() < Duration::from_secs(20), "not the whole delay");
        assert_eq!(batch.len(), 3);
        last.join().unwrap();
    }

    #[test]
    fn the_delay_counts_from_the_first_reports_arrival_and_stops_at_the_batch_size() {
        let (tx, rx) = sync_channel(16);
        let coming = AtomicUsize::new(1);
        // The first Report already waited longer than the delay (behind the last commit).
        let first = entry(Instant::now().checked_sub(Duration::from_secs(10)).expect("up for 10 s"));
        tx.send(entry(Instant::now())).unwrap();
        let mut batch = Vec::new();
        let started = Instant::now();
        assert!(gather(&rx, first, &mut batch, wait(true, Duration::from_secs(8), &coming), 1 << 20));
        assert!(started.elapsed() < Duration::from_secs(4), "waited the delay a second time");
        assert_eq!(batch.len(), 2);

        // A full batch stops taking, and waits for no one: the rest wait for the next commit.
        for _ in 0..5 {
            tx.send(entry(Instant::now())).unwrap();
        }
        batch.clear();
        let size = entry(Instant::now()).record.stored_len();
        let started = Instant::now();
        gather(
            &rx,
            entry(Instant::now()),
            &mut batch,
            wait(true, Duration::from_secs(60), &coming),
            3 * size,
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(batch.len(), 3);
        assert_eq!(rx.try_iter().count(), 3);
    }

    #[test]
    fn the_commit_buckets_names_are_the_shared_bounds() {
        let named: Vec<f64> = COMMIT_BUCKETS.iter().map(|(status, _)| status[2].parse().unwrap()).collect();
        let bounds: Vec<f64> = crate::counters::BOUNDS.iter().copied().chain([f64::INFINITY]).collect();
        assert_eq!(named, bounds);
        for (status, metric) in COMMIT_BUCKETS {
            assert_eq!(*metric, format!("sumstorm_inbox_commit_seconds_bucket{{le=\"{}\"}}", status[2]));
        }
    }

    #[test]
    fn commit_times_fall_in_the_bucket_their_bound_includes() {
        let stats = CommitStats::default();
        for ms in [0.2, 1.0, 1.001, 20.0, 3_000.0] {
            stats.commit_took.record(Duration::from_secs_f64(ms / 1e3));
        }
        let mut status = serde_json::Map::new();
        crate::counters::status_json(&stats.readings_vec(), &mut status);
        let at_most = &status["InboxCommit"]["AtMost"];
        assert_eq!(
            (&at_most["0.0005"], &at_most["0.001"], &at_most["0.0025"]),
            (&1.into(), &2.into(), &3.into())
        );
        assert_eq!((&at_most["0.01"], &at_most["0.025"], &at_most["2.5"]), (&3.into(), &4.into(), &4.into()));
        assert_eq!(at_most["+Inf"], 5);
        assert_eq!(status["InboxCommit"]["Count"], 5);
        let seconds = status["InboxCommit"]["Seconds"].as_f64().unwrap();
        assert!((seconds - 3.022_201).abs() < 1e-6, "{seconds}");
    }

    #[test]
    fn a_quiet_segment_is_sealed_after_its_age() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let mut config = CommitConfig::new(dir.clone());
        config.seal_after = Duration::from_millis(50);
        let (sealed_tx, sealed_rx) = channel();
        let commit =
            GroupCommit::start(config, Box::new(move |p, _| sealed_tx.send(p.to_owned()).unwrap())).unwrap();
        let (ack_tx, ack_rx) = channel();
        commit.submit(b"<Report/>".to_vec(), None, Box::new(move |r| ack_tx.send(r).unwrap())).unwrap();
        assert_eq!(ack_rx.recv_timeout(Duration::from_secs(10)).unwrap(), Ok(()));
        let path = sealed_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(sealed_reports(&dir), vec![b"<Report/>".to_vec()]);
        assert!(path.exists());
        commit.shutdown();
    }
}
