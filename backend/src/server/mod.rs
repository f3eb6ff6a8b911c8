//! The backend process: the MP's HTTP side and the site's threads around the components.
//!
//! ```text
//! TcpListener ─► accept (connection cap) ─► hyper http1 (header timeout) ─► routes::handle
//!   CCM_POST ─► envelope::decode_request ─► mp::dispatch ─► reply │ relay ─► GroupCommit ─► ack
//!   GroupCommit seals a segment ─► notify ─► StateSys thread ─► Worker::run_batch ─► Store
//!   StateSys thread ─► Worker::checkpoint every `checkpoint_every` ─► processed files deleted
//!   summarizer thread ─► tasks on their site-clock schedules or on demand ─► Views (Arc swap)
//! ```
//! [`run`] is the whole process as a library function: tests call it on `127.0.0.1:0`.

mod deadline;
mod metrics;
mod routes;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use protocol::{Guid, Timestamp};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::clock::SiteClock;
use crate::inbox::commit::{CommitConfig, GroupCommit};
use crate::logs::{ComponentLog, Format, SampledLog};
use crate::mp::{self, MpIdentity};
use crate::site::Site;
use crate::site::chain::ChainLogs;
use crate::statesys::process::UpdateIndex;
use crate::statesys::store::Store;
use crate::statesys::tasks::{Summarizer, Task, TaskRun};
use crate::statesys::worker::{Batch, Paths, Worker};

/// Bounds on what clients may send and how much may wait.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request bodies larger than this get 413.
    pub max_body: usize,
    /// A CCM body may inflate to at most this many bytes.
    pub max_inflated: usize,
    /// Connections open at once; past this, new ones get 503 and are closed.
    pub max_connections: usize,
    /// Time allowed for a request's headers.
    pub header_timeout: Duration,
    /// Time allowed for a request's body.
    pub body_timeout: Duration,
    /// Time a write to a client may wait without progress (a client that does not read its
    /// answers); past it the connection is closed.
    pub write_timeout: Duration,
    /// Inbox files waiting for StateSys past which the relay answers 503 with `Retry-After`.
    pub high_water_files: usize,
    pub retry_after_secs: u32,
    /// Bytes that CCM requests may hold at once (bodies as read and as decoded, until
    /// answered); past this, 503 with `Retry-After`. Bounds the memory a flood can take.
    pub max_request_memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 8 << 20,
            max_inflated: 32 << 20,
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            high_water_files: 20_000,
            retry_after_secs: 5,
            max_request_memory: 1 << 30,
        }
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub site: Site,
    /// Site seconds per real second.
    pub time_scale: f64,
    pub limits: Limits,
    /// Admin calls (`sync`, `summarize`, `drain`) from other than loopback need this token.
    pub admin_token: Option<String>,
    /// StateSys checkpoints at most this often (real time) when it has applied files.
    pub checkpoint_every: Duration,
    /// StateSys looks at its inboxes at least this often (real time), notifications aside.
    pub poll_every: Duration,
    /// Run as an MP remote from the site server: the relay writes to `mp/outboxes/StateMsg.box`
    /// and MPFDM moves each sealed file into the site's inbox.
    pub remote_mp: bool,
    /// StateSys's pause after an inbox notification finds it idle, in site time (10 s in the
    /// product), so files gather; scaled by `time_scale`.
    pub statesys_pause: Duration,
    /// StateSys processing threads (the product's default is 4).
    pub statesys_threads: usize,
    /// Run the three summarizers once at start, so the views are not empty until the first
    /// scheduled run.
    pub summarize_at_start: bool,
    /// StateSys applies at most this many state messages a second (a site database's pace, for
    /// capacity planning and overload tests); `None`: as fast as it can.
    pub statesys_rate: Option<u64>,
    /// Serve `POST /api/v1/faults` (disk trouble on demand, for tests); off in production.
    pub fault_injection: bool,
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            site: Site::default_site(),
            time_scale: 1.0,
            limits: Limits::default(),
            admin_token: None,
            checkpoint_every: Duration::from_secs(5),
            poll_every: Duration::from_secs(1),
            remote_mp: false,
            statesys_pause: Duration::from_secs(10),
            statesys_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            summarize_at_start: true,
            fault_injection: false,
            statesys_rate: None,
        }
    }
}

/// Counters the status API and metrics read; written with relaxed atomics by whoever counts.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub requests: AtomicU64,
    pub bad_requests: AtomicU64,
    pub busy: AtomicU64,
    /// Relayed Reports acknowledged (durable) and the state messages in them.
    pub reports_accepted: AtomicU64,
    pub messages_accepted: AtomicU64,
    /// What StateSys has taken out of inbox files; `reports_relayed` counts those from the
    /// relay's segments, which drain compares with `reports_accepted`.
    pub reports_processed: AtomicU64,
    pub reports_relayed: AtomicU64,
    /// Relayed Reports a previous run acknowledged and this start applied (recovery); kept out
    /// of `reports_relayed`, which drain compares with this run's acknowledgements.
    pub reports_recovered: AtomicU64,
    /// Checkpoints that failed, and whether the last one did (the relay answers 503 until one
    /// succeeds: acknowledged messages must not outgrow what StateSys can make durable).
    pub checkpoint_errors: AtomicU64,
    pub checkpoint_failing: AtomicBool,
    pub records_processed: AtomicU64,
    pub invalid_records: AtomicU64,
    pub files_processed: AtomicU64,
    pub bad_files: AtomicU64,
    /// Inbox files waiting for StateSys: counted up as the relay seals segments (so the
    /// high-water mark holds while StateSys pauses), set exactly by StateSys after each batch.
    pub files_waiting: Arc<AtomicU64>,
    pub checkpoints: AtomicU64,
    pub requests_by_endpoint: metrics::RequestMetrics,
}

/// What every request handler shares.
pub(crate) struct Shared {
    /// The site: read by every MP request, written by syncs (rare, short).
    pub site: RwLock<Site>,
    /// Bumped on every sync, so StateSys knows to take the new catalog index.
    pub site_version: AtomicU64,
    pub mp: MpIdentity,
    pub clock: SiteClock,
    pub limits: Limits,
    pub admin_token: Option<String>,
    pub commit: GroupCommit,
    pub store: Arc<Store>,
    pub stats: Stats,
    pub chain: ChainLogs,
    /// `MP_Relay.log` and `MP_Location.log`: the walkthrough's lines, sampled (see [`SampledLog`]).
    pub relay_log: SampledLog,
    pub location_log: SampledLog,
    pub policypv_box: PathBuf,
    /// Where the relay writes (for its log lines).
    pub relay_dir: PathBuf,
    pub started: Instant,
    /// Message IDs for replies: unique per process.
    pub next_id: AtomicU64,
    pub summarizer: Arc<Summarizer>,
    /// A task changed the store (status migrated or aged out): StateSys checkpoints it even
    /// with no inbox files applied.
    pub store_changed: AtomicBool,
    /// On-demand summarization requests for the summarizer thread.
    pub summarize: Mutex<std::sync::mpsc::Sender<SummarizeRequest>>,
    /// `state/site.json`: the site's state after syncs.
    pub site_state: PathBuf,
    /// `Limits::max_request_memory` in KiB permits.
    pub request_memory: Arc<Semaphore>,
    /// The disk-fault seam, when `Config::fault_injection` is on.
    pub faults: Option<Arc<crate::faults::Faults>>,
}

/// A message to the summarizer thread.
pub(crate) enum SummarizeRequest {
    Run(Vec<Task>, tokio::sync::oneshot::Sender<Vec<TaskRun>>),
    Stop,
}

impl Shared {
    pub(crate) fn reply_id(&self) -> Guid {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let t = self.clock.now().0 as u128;
        Guid((t << 64 | u128::from(n)) ^ 0x5EED_0000_0000_0000_0000_0000_0000_0000)
    }
}

/// The file in the data directory that one process holds locked for its whole life.
pub const LOCK_FILE: &str = "backend.lock";

/// Takes the data directory for this process: an exclusive lock on [`LOCK_FILE`] (which names
/// the holder's pid), held until the returned file is dropped. The kernel lets go of it when the
/// process dies, however it dies. A second process is refused, with the holder's pid.
pub fn lock_data_dir(dir: &std::path::Path) -> io::Result<std::fs::File> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(LOCK_FILE);
    let mut file =
        std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "the data directory {} is in use by another backend (pid {}); one process owns a data directory",
                    dir.display(),
                    holder.trim()
                ),
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Runs the backend on `listener` until `shutdown` completes: stops serving (new connections
/// get 503 until the end), finishes in-flight requests, seals the inbox, lets StateSys finish
/// and checkpoint, and only then closes the listener and lets go of the data directory.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let lock = lock_data_dir(&config.data_dir)?;
    let local = listener.local_addr()?;
    let data = config.data_dir.clone();
    let logs_dir = data.join("logs");
    let clock = SiteClock::new(now_utc(), config.time_scale);
    let site_log =
        |file: &str, component: &str| ComponentLog::open(&logs_dir, file, component, Format::Site, clock);
    let mp_log =
        |file: &str, component: &str| ComponentLog::open(&logs_dir, file, component, Format::Mp, clock);
    let paths = Paths { statesys_box: data.join("inboxes/auth/statesys.box"), state: data.join("state") };
    let outbox = data.join("mp/outboxes/StateMsg.box");
    std::fs::create_dir_all(&outbox)?;
    std::fs::create_dir_all(paths.incoming())?;
    let policypv_box = data.join("inboxes/policypv.box");
    std::fs::create_dir_all(&policypv_box)?;

    // The site as the last run left it (syncs, policy version, migrations).
    let site_state = paths.state.join("site.json");
    let mut site = config.site.clone();
    crate::site::persist::restore(&mut site, &site_state)?;
    let index = UpdateIndex::new(&site.catalog);
    let updates = site.catalog.len();
    let statesys_log = Arc::new(site_log("StateSys.log", "SMS_STATE_SYSTEM")?);
    let open_paths = paths.clone();
    let worker_log = Arc::clone(&statesys_log);
    let (mut worker, recovered) =
        tokio::task::spawn_blocking(move || Worker::open(open_paths, index, updates, worker_log, clock))
            .await
            .map_err(io::Error::other)??;
    worker.threads = config.statesys_threads.max(1);
    if config.statesys_rate.is_some() {
        // Small batches, so the pace is even rather than bursts and long sleeps.
        worker.chunk_bytes = 1 << 20;
    }
    let faults = Arc::new(crate::faults::Faults::default());
    worker.faults = Arc::clone(&faults);
    let store = worker.store_handle();
    let summarizer = Arc::new(Summarizer::new(Arc::clone(&store), statesys_log, site_state.clone()));
    let (summarize_tx, summarize_rx) = channel::<SummarizeRequest>();

    let files_waiting = Arc::new(AtomicU64::new(0));
    let sealed_count = Arc::clone(&files_waiting);
    let (notify, notified) = channel::<()>();
    let sealed_notify = Mutex::new(notify.clone());
    // Co-located, the relay writes straight into StateSys's inbox; remote, into the MP outbox,
    // from which MPFDM moves each sealed file on.
    let (relay_dir, fdm) = if config.remote_mp {
        let log = site_log("MPFDM.log", "SMS_MP_FILE_DISPATCH_MANAGER")?;
        mp::fdm::dispatch_all(&outbox, &paths.incoming(), &log)?;
        (outbox, Some((log, paths.incoming())))
    } else {
        (paths.incoming(), None)
    };
    let mut commit_config = CommitConfig::new(relay_dir.clone());
    commit_config.faults = Arc::clone(&faults);
    commit_config.clock = clock;
    let commit = GroupCommit::start(
        commit_config,
        Box::new(move |sealed| {
            if let Some((log, incoming)) = &fdm
                && let Err(e) = mp::fdm::dispatch(sealed, incoming, log)
            {
                // The file stays in the outbox; the next start moves it.
                log.log(crate::logs::Severity::Error, &format!("Cannot move {}: {e}", sealed.display()));
            }
            sealed_count.fetch_add(1, Ordering::Relaxed);
            let _ = sealed_notify.lock().map(|n| n.send(()));
        }),
    )?;
    let shared = Arc::new(Shared {
        site: RwLock::new(site),
        site_version: AtomicU64::new(0),
        mp: MpIdentity {
            name: "SUMSTORM-MP".into(),
            fqdn: local.ip().to_string(),
            base_url: format!("http://{local}"),
            version: 9128,
        },
        clock,
        limits: config.limits.clone(),
        admin_token: config.admin_token.clone(),
        commit,
        store,
        stats: Stats { files_waiting, ..Stats::default() },
        chain: ChainLogs {
            wsyncmgr: site_log("WSyncMgr.log", "SMS_WSUS_SYNC_MANAGER")?,
            smsdbmon: site_log("SMSDBMON.log", "SMS_DATABASE_NOTIFICATION_MONITOR")?,
            policypv: site_log("PolicyPv.log", "SMS_POLICY_PROVIDER")?,
        },
        relay_log: SampledLog::new(mp_log("MP_Relay.log", "MP_RelayEndpoint")?, Duration::from_secs(1)),
        location_log: SampledLog::new(
            mp_log("MP_Location.log", "MP_LocationManager")?,
            Duration::from_secs(1),
        ),
        policypv_box,
        relay_dir,
        started: Instant::now(),
        next_id: AtomicU64::new(1),
        summarizer,
        store_changed: AtomicBool::new(false),
        summarize: Mutex::new(summarize_tx),
        site_state,
        faults: config.fault_injection.then_some(faults),
        request_memory: Arc::new(Semaphore::new((config.limits.max_request_memory >> 10).max(1))),
    });
    count_batch(&shared.stats, Batch { relayed: 0, ..recovered });
    shared.stats.reports_recovered.store(recovered.relayed, Ordering::Relaxed);
    let summarizer_thread = {
        let shared = Arc::clone(&shared);
        let at_start = config.summarize_at_start;
        std::thread::Builder::new()
            .name("summarizer".into())
            .spawn(move || summarizer_loop(&shared, &summarize_rx, at_start))?
    };

    let stop = Arc::new(AtomicBool::new(false));
    let statesys = {
        let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
        let timing = Timing {
            checkpoint_every: config.checkpoint_every,
            poll: config.poll_every,
            pause: config.statesys_pause,
            rate: config.statesys_rate,
        };
        std::thread::Builder::new()
            .name("statesys".into())
            .spawn(move || statesys_loop(worker, notified, &shared, &stop, timing))?
    };

    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(config.limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    // Out of descriptors and the like: keep serving the connections we have.
                    Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue; }
                };
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    shared.stats.busy.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(refuse(stream, shared.limits.retry_after_secs));
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                let stream = deadline::WriteDeadline::new(stream, shared.limits.write_timeout);
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(shared.limits.header_timeout)
                    .max_buf_size(64 * 1024)
                    // A client that half-closes after its request still gets its answer.
                    .half_close(true)
                    .serve_connection(
                        TokioIo::new(stream),
                        service_fn(move |req| routes::handle(Arc::clone(&shared), peer, req)),
                    );
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            () = &mut shutdown => break,
        }
    }
    // Until the data directory is let go, the port stays taken and new connections hear 503:
    // a script that waits for the port to close does not start a new process beside this one.
    let retry_after = shared.limits.retry_after_secs;
    let closing = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(refuse(stream, retry_after));
        }
    });
    // In-flight requests finish (bounded), then the inbox and StateSys wind down.
    let _ = tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await;
    let _ = tokio::task::spawn_blocking(move || {
        // Seal the open segment (StateSys is notified), then let StateSys take what is left.
        shared.commit.shutdown();
        stop.store(true, Ordering::Release);
        let _ = notify.send(());
        let _ = shared.summarize.lock().map(|tx| tx.send(SummarizeRequest::Stop));
        let _ = summarizer_thread.join();
        statesys.join()
    })
    .await;
    closing.abort();
    let _ = closing.await;
    drop(lock);
    Ok(())
}

fn now_utc() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    Timestamp(micros)
}

/// Past the connection cap: a short 503 and close.
async fn refuse(mut stream: tokio::net::TcpStream, retry_after: u32) {
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn count_batch(stats: &Stats, b: Batch) {
    stats.files_processed.fetch_add(b.files, Ordering::Relaxed);
    stats.bad_files.fetch_add(b.bad_files, Ordering::Relaxed);
    stats.reports_processed.fetch_add(b.reports, Ordering::Relaxed);
    stats.reports_relayed.fetch_add(b.relayed, Ordering::Relaxed);
    stats.records_processed.fetch_add(b.processed.records, Ordering::Relaxed);
    stats.invalid_records.fetch_add(b.processed.invalid, Ordering::Relaxed);
}

/// StateSys's intervals.
struct Timing {
    checkpoint_every: Duration,
    poll: Duration,
    /// Site time.
    pause: Duration,
    /// State messages a second at most.
    rate: Option<u64>,
}

/// StateSys: wake on a sealed segment or the poll; coming out of idle, pause (site time) so files
/// gather, as the product does; process until the inboxes are empty; checkpoint when due. The
/// Policy Provider's `.STN` inbox is looked at on the same poll. At shutdown, process what is
/// left and checkpoint.
fn statesys_loop(
    mut worker: Worker,
    notified: Receiver<()>,
    shared: &Shared,
    stop: &AtomicBool,
    timing: Timing,
) {
    let mut last_checkpoint = Instant::now();
    // The pace: records applied since `paced_from`, which restarts whenever StateSys idles.
    let mut paced_from = Instant::now();
    let mut paced = 0u64;
    let mut site_version = 0;
    let mut idle = true;
    // Files were left for after a checkpoint: look again at once.
    let mut more = false;
    loop {
        let wait = if more { Duration::ZERO } else { timing.poll };
        let (woken, stopping) = match notified.recv_timeout(wait) {
            Ok(()) => (true, stop.load(Ordering::Acquire)),
            Err(RecvTimeoutError::Timeout) => (false, stop.load(Ordering::Acquire)),
            Err(RecvTimeoutError::Disconnected) => (false, true),
        };
        if woken && idle && !stopping && !timing.pause.is_zero() {
            worker.log().info(&format!(
                "Inbox notification triggered, pause for {} seconds......",
                timing.pause.as_secs()
            ));
            std::thread::sleep(shared.clock.real(timing.pause));
        }
        pick_up_stn(shared);
        let now_version = shared.site_version.load(Ordering::Acquire);
        if now_version != site_version {
            site_version = now_version;
            if let Ok(site) = shared.site.read() {
                worker.set_index(UpdateIndex::new(&site.catalog));
            }
        }
        if idle {
            (paced_from, paced) = (Instant::now(), 0);
        }
        idle = true;
        more = false;
        loop {
            // A long backlog still gets checkpoints, so applied files are deleted as it drains
            // rather than all at its end.
            if !idle && !stopping && last_checkpoint.elapsed() >= timing.checkpoint_every {
                more = true;
                break;
            }
            match worker.run_batch() {
                Ok(b) if b.files > 0 => {
                    idle = false;
                    if let Some(rate) = timing.rate.filter(|r| *r > 0) {
                        paced += b.processed.records;
                        let due = Duration::from_secs_f64(paced as f64 / rate as f64);
                        std::thread::sleep(due.saturating_sub(paced_from.elapsed()));
                    }
                    shared.stats.files_waiting.store(b.left, Ordering::Relaxed);
                    count_batch(&shared.stats, b);
                }
                Ok(_) => {
                    shared.stats.files_waiting.store(0, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    eprintln!("sumstorm: StateSys cannot process its inbox: {e}");
                    break;
                }
            }
        }
        let store_changed = shared.store_changed.load(Ordering::Acquire);
        if (worker.pending() > 0 || store_changed)
            && (stopping || last_checkpoint.elapsed() >= timing.checkpoint_every)
        {
            // Cleared before saving: a change made while saving is saved next time.
            shared.store_changed.store(false, Ordering::Release);
            match worker.checkpoint() {
                Ok(()) => {
                    shared.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                    shared.stats.checkpoint_failing.store(false, Ordering::Release);
                    last_checkpoint = Instant::now();
                }
                Err(e) => {
                    // Tried again on the next wake-up; the old checkpoint and the inbox files
                    // it does not cover are untouched.
                    shared.store_changed.store(true, Ordering::Release);
                    shared.stats.checkpoint_errors.fetch_add(1, Ordering::Relaxed);
                    shared.stats.checkpoint_failing.store(true, Ordering::Release);
                    worker
                        .log()
                        .log(crate::logs::Severity::Error, &format!("Cannot write the checkpoint: {e}"));
                    eprintln!("sumstorm: StateSys cannot checkpoint: {e}");
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// The summarization tasks: each on its schedule on the site clock (counted from the start),
/// or on demand. A task run on demand starts its schedule over.
fn summarizer_loop(shared: &Shared, requests: &Receiver<SummarizeRequest>, at_start: bool) {
    let clock = shared.clock;
    let schedules = shared.site.read().unwrap_or_else(|p| p.into_inner()).schedules;
    let mut last = [clock.now(); 5];
    let run = |tasks: &[Task], last: &mut [Timestamp; 5]| {
        let now = clock.now();
        let runs = shared.summarizer.run(&shared.site, tasks, now);
        let changes_store = |t: Task| matches!(t, Task::MigrateUpdateStatus | Task::DeleteAgedStatus);
        if runs.iter().any(|r| changes_store(r.task) && r.rows > 0) {
            shared.store_changed.store(true, Ordering::Release);
        }
        for r in &runs {
            last[Task::ALL.iter().position(|&t| t == r.task).unwrap_or(0)] = now;
        }
        runs
    };
    if at_start {
        run(&[Task::UpdateStatus, Task::UpdateGroupStatus, Task::AssignmentCompliance], &mut last);
    }
    loop {
        let due = |i: usize, last: &[Timestamp; 5]| {
            let every = Task::ALL[i].every(&schedules);
            Timestamp(last[i].0.saturating_add(i64::try_from(every.as_micros()).unwrap_or(i64::MAX)))
        };
        let next = (0..5).map(|i| clock.real_instant(due(i, &last))).min().unwrap_or_else(Instant::now);
        match requests.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(SummarizeRequest::Run(tasks, reply)) => {
                let _ = reply.send(run(&tasks, &mut last));
            }
            Ok(SummarizeRequest::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                let now = clock.now();
                let tasks: Vec<Task> =
                    (0..5).filter(|&i| due(i, &last) <= now).map(|i| Task::ALL[i]).collect();
                run(&tasks, &mut last);
            }
        }
    }
}

/// The Policy Provider's poll: an `.STN` file in `policypv.box` (from a sync, or dropped there by
/// hand) bumps the UpdateSource policy.
fn pick_up_stn(shared: &Shared) {
    let has_stn = std::fs::read_dir(&shared.policypv_box).is_ok_and(|entries| {
        entries.flatten().any(|e| e.path().extension().is_some_and(|x| x.eq_ignore_ascii_case("STN")))
    });
    if has_stn {
        let mut site = shared.site.write().unwrap_or_else(|p| p.into_inner());
        let result = crate::site::chain::policy_provider(&mut site, &shared.policypv_box, &shared.chain)
            .and_then(|_| crate::site::persist::save(&site, &shared.site_state));
        if let Err(e) = result {
            eprintln!("sumstorm: Policy Provider: {e}");
        }
    }
}
