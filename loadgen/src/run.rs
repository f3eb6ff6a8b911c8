//! `loadgen run`: the backend (embedded unless `--target`), one arbiter per core with its share
//! of client actors, a one-second loop that merges the arbiters' interval histograms into the
//! interval log and the progress line and fires the profile's site events, then the end: every
//! client flushes, the backend drains and summarizes, verification, result files, thresholds.

use std::cell::RefCell;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use anyhow::Context as _;
use hyper::Method;
use serde_json::{Value, json};

use crate::client::{Arb, Finish, SimClient, SiteInfo, Truth};
use crate::metrics::{self, Figures};
use crate::profile::{Arrivals, Kind, Plan};
use crate::results::{self, HlogWriter};
use crate::signing::KeyPool;
use crate::sim::SimClock;
use crate::transport::{Transport, call, get_json};
use crate::verify;

/// Exit statuses (contract §3.1).
pub const EXIT_OK: u8 = 0;
pub const EXIT_THRESHOLD: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_VERIFY: u8 = 3;
/// The generator fell behind its schedule past the profile's bound: the figures describe the
/// generator, not the target.
pub const EXIT_GENERATOR: u8 = 4;

/// What `run` was asked. The default: the embedded backend, a folder under `results/runs`, the
/// whole population, verified, settled, quiet, no history line, one arbiter per core, and an exit
/// of its own when the generator falls behind.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Option<String>,
    pub out: Option<PathBuf>,
    /// `(i, n)`: this process runs the clients whose index is `i` modulo `n`.
    pub shard: Option<(u64, u64)>,
    pub verify: bool,
    /// Print the progress line (to stderr).
    pub progress: bool,
    /// Where `history.jsonl` goes (`results/` of the checkout); `None`: not written.
    pub history: Option<PathBuf>,
    /// Arbiters (default: one per core).
    pub arbiters: Option<usize>,
    /// Exit as the thresholds say even when the generator fell behind past the profile's bound.
    pub allow_late: bool,
    /// At the end, let the backend drain and summarize (`false`: a search's trial, whose
    /// figures are taken while it runs, ends at once; verification needs it).
    pub settle: bool,
    /// The site database: the embedded backend keeps it current; with a target, the target's.
    pub database: Option<String>,
    /// Verification also compares the site database's views with the clients' truth.
    pub verify_sql: bool,
    /// A shard of a fleet: intervals and the end's figures and truths go to this collector
    /// (`loadgen collect`), which fires the syncs, settles, verifies and judges.
    pub collector: Option<crate::collect::Uplink>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: None,
            out: None,
            shard: None,
            verify: true,
            progress: false,
            history: None,
            arbiters: None,
            allow_late: false,
            settle: true,
            database: None,
            verify_sql: false,
            collector: None,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub exit: u8,
    pub dir: PathBuf,
    pub summary: Value,
    /// What each client knew at the end, in client order.
    pub truths: Vec<Truth>,
    /// The clients' acknowledged scan results, as convergence counts them.
    pub acks: Vec<crate::convergence::Ack>,
}

thread_local! {
    static ARB: RefCell<Option<Rc<Arb>>> = const { RefCell::new(None) };
    static CLIENTS: RefCell<Vec<Addr<SimClient>>> = const { RefCell::new(Vec::new()) };
    /// Open model: fires when this arbiter's pacer has finished and its sends are answered.
    static OPEN_DONE: RefCell<Option<tokio::sync::oneshot::Receiver<()>>> = const { RefCell::new(None) };
}

/// The backend embedded in this process, on its own runtime and threads.
struct Embedded {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Embedded {
    fn start(
        data: &Path,
        plan: &Plan,
        require_signing: bool,
        database: Option<String>,
    ) -> std::io::Result<Embedded> {
        let mut config = backend::server::Config::new(data.to_owned());
        config.require_signing = require_signing;
        config.database = database;
        config.time_scale = plan.time_scale;
        // The generator's threads share this process and its cores at nice 0: at the backend's
        // own default (19) StateSys would get a seventieth of a core the generator wants, and
        // the convergence measured would be the generator's doing. At 10 it still keeps out of
        // the relay's way, as every shipped profile was measured.
        config.background_nice = 10;
        let b = &plan.backend;
        config.statesys_rate = b.statesys_rate;
        if let Some(n) = b.high_water_files {
            config.limits.high_water_files = n;
        }
        if let Some(s) = b.retry_after {
            config.limits.retry_after_secs = s;
        }
        if let Some(s) = b.statesys_pause {
            config.statesys_pause = Duration::from_secs(u64::from(s));
        }
        if let Some(every) = b.update_status.as_deref().and_then(protocol::units::parse_span) {
            config.site.schedules.update_status = every;
        }
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("backend".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
            {
                Ok(rt) => rt,
                Err(e) => return drop(addr_tx.send(Err(e))),
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => l,
                    Err(e) => return drop(addr_tx.send(Err(e))),
                };
                let _ = addr_tx.send(listener.local_addr());
                if let Err(e) = backend::server::run(listener, config, async {
                    let _ = stopped.await;
                })
                .await
                {
                    eprintln!("loadgen: the embedded backend stopped: {e}");
                }
            });
        })?;
        let addr = addr_rx.recv().map_err(std::io::Error::other)??;
        Ok(Embedded { addr, stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn utc_stamp() -> String {
    let t = protocol::Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64),
    );
    t.to_rfc3339().replace([':', '-'], "").chars().take(15).collect::<String>() + "Z"
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `hh:mm:ss`, for progress lines.
pub(crate) fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Asks every arbiter for something and gathers the answers.
async fn ask_all<T: Send + 'static>(
    arbiters: &[Arbiter],
    f: impl Fn() -> T + Send + Sync + Clone + 'static,
) -> Vec<T> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for a in arbiters {
        let (tx, f) = (tx.clone(), f.clone());
        a.spawn(async move {
            let _ = tx.send(f());
        });
    }
    drop(tx);
    let mut out = Vec::new();
    while let Some(v) = rx.recv().await {
        out.push(v);
    }
    out
}

/// Runs `plan` (already validated, with overrides applied); `profile_text` is copied into the
/// run folder.
pub fn run(plan: Plan, profile_text: &str, opts: &Options) -> Result<Outcome, RunError> {
    let dir =
        opts.out.clone().unwrap_or_else(|| PathBuf::from("results/runs").join(&plan.name).join(utc_stamp()));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    std::fs::write(dir.join("profile.toml"), profile_text).context("profile.toml")?;
    if opts.target.is_some() && plan.backend != Default::default() {
        eprintln!("loadgen: [backend] applies to the embedded backend only; --target's settings are its own");
    }
    let signing = if signs(&plan, opts.target.is_some()) {
        let made = Instant::now();
        let s = &plan.signing;
        let pool = KeyPool::generate(plan.seed, s.keys, s.key_bits, s.padding).context("signing keys")?;
        Some(PoolMade { pool: Arc::new(pool), seconds: made.elapsed().as_secs_f64() })
    } else {
        None
    };
    let embedded = match &opts.target {
        Some(_) => None,
        None => Some(
            Embedded::start(&dir.join("backend-data"), &plan, signing.is_some(), opts.database.clone())
                .context("the embedded backend")?,
        ),
    };
    let base = match (&opts.target, &embedded) {
        (Some(t), _) => t.trim_end_matches('/').to_owned(),
        (None, Some(e)) => format!("http://{}", e.addr),
        (None, None) => unreachable!("embedded when no target"),
    };
    let plan = Arc::new(plan);
    let system = actix_rt::System::new();
    let outcome = system.block_on(drive(Arc::clone(&plan), base.clone(), dir.clone(), opts.clone(), signing));
    drop(embedded);
    let Driven { summary, exit, truths, acks } = outcome?;
    if let Some(history) = &opts.history {
        let line = json!({
            "profile": plan.name,
            "date": summary["finished"],
            "commit": summary["commit"],
            "host": summary["host"],
            "dir": dir.display().to_string(),
            "target": if opts.target.is_some() { "remote" } else { "embedded" },
            "clients": plan.clients,
            // Every key figure `loadgen compare` judges, for `loadgen trends`.
            "figures": crate::compare::baseline_entry(&dir, &summary)["figures"],
            "state_messages_per_second": summary["state_messages"]["acknowledged_per_second"],
            "state_report_p99_ms": summary["requests"]["state_report"]["latency_ms"]["p99"],
            "backend_records_per_second": summary["backend"]["records_per_second"],
            "verification": summary["verification"]["exact"],
            "exit": exit,
        });
        if let Some(parent) = history.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(history)
            .with_context(|| history.display().to_string())?;
        writeln!(f, "{line}").with_context(|| history.display().to_string())?;
    }
    Ok(Outcome { exit, dir, summary, truths, acks })
}

/// What a run hands back from its actix system.
struct Driven {
    summary: Value,
    exit: u8,
    truths: Vec<Truth>,
    acks: Vec<crate::convergence::Ack>,
}

/// Why a run stopped short.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--target` does not answer as an MP with the site API: a bad argument (exit 2).
    #[error("target: {base} does not answer as an MP with the site API ({why:#})")]
    Target { base: String, why: anyhow::Error },
    /// Anything else that stopped the run (exit 1).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The run in stages: setup, the one-second loop, finish (the clients flush), settle (the
/// backend drains and summarizes, verification), results.
async fn drive(
    plan: Arc<Plan>,
    base: String,
    dir: PathBuf,
    opts: Options,
    signing: Option<PoolMade>,
) -> Result<Driven, RunError> {
    let site =
        get_json(&base, "/api/v1/site").await.map_err(|why| RunError::Target { base: base.clone(), why })?;
    // A shard of a fleet starts when the collector says every shard is there.
    let link = match &opts.collector {
        Some(uplink) => Some(uplink.join(&plan, opts.shard.unwrap_or((0, 1)), opts.progress).await?),
        None => None,
    };
    let fleet = setup(&plan, &base, &site, &opts, signing).await?;
    // The profile's syncs are the site's: fired once, by the collector of a fleet, else by this
    // process unless it is one of several shards driving a shared target and not the first.
    let fires = link.is_none() && (opts.target.is_none() || opts.shard.is_none_or(|(i, _)| i == 0));
    let observed = observe(&plan, &base, &fleet, (opts.progress, fires), link.as_ref()).await;
    let finished = finish(&fleet).await;
    let settled = if opts.settle || opts.verify {
        settle(&plan, &base, &finished.truths, &opts, &dir).await?
    } else {
        Settled {
            status: get_json(&base, "/api/v1/status").await.unwrap_or(Value::Null),
            drain: Duration::ZERO,
            convergence: None,
            tasks: Value::Null,
            summarize: Duration::ZERO,
            verification: None,
        }
    };
    let (truths, acks) = (finished.truths.clone(), finished.acks.clone());
    let totals = link.as_ref().map(|_| finished.totals.clone());
    let (summary, mut exit) =
        write_results(&plan, &base, &dir, &opts, &Shape::of(&fleet, &plan), observed, finished, settled)?;
    if let (Some(link), Some(totals)) = (link, totals) {
        // The collector judges the fleet; this shard's part is done once it has the figures.
        link.done(&summary, &totals, &truths, &acks).await?;
        exit = EXIT_OK;
    }
    System::current().stop();
    Ok(Driven { summary, exit, truths, acks })
}

/// Whether the run's clients sign: as the profile says, else against `--target` only. Never on
/// the plain wire or in the open and closed models (their senders do not register).
pub fn signs(plan: &Plan, remote: bool) -> bool {
    plan.signing.enabled.unwrap_or(remote)
        && plan.wire == crate::profile::Wire::Ccm
        && plan.open_model.is_none()
}

/// The clients' key pool, and what making it took.
struct PoolMade {
    pool: Arc<KeyPool>,
    seconds: f64,
}

/// The arbiters and the clients living on them.
struct Fleet {
    arbiters: Vec<Arbiter>,
    clients: usize,
    clock: SimClock,
    /// The clients' keys, when they sign.
    signing: Option<PoolMade>,
    /// When setup began (real time, and Unix seconds for the interval logs).
    started: Instant,
    start_unix: f64,
    startup: Duration,
}

/// Setup: one arbiter per core (or `--arbiters`), each creating its share of the clients (this
/// shard's) on its own thread; the open model instead starts a pacer per arbiter.
async fn setup(
    plan: &Arc<Plan>,
    base: &str,
    site: &Value,
    opts: &Options,
    signing: Option<PoolMade>,
) -> anyhow::Result<Fleet> {
    let site_info = Arc::new(SiteInfo {
        site_code: site["SiteCode"].as_str().unwrap_or("PS1").to_owned(),
        update_source_id: site["UpdateSourceID"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .context("site: no UpdateSourceID")?,
    });
    let n =
        opts.arbiters.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let clock = SimClock::new(plan.time_scale);
    let started = Instant::now();
    let start_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let arbiters: Vec<Arbiter> = (0..n).map(|_| Arbiter::new()).collect();
    let per_arbiter_connections = plan.connections.div_ceil(n);
    let (shard_i, shard_n) = opts.shard.unwrap_or((0, 1));
    let mine: Vec<u64> = (0..plan.clients).filter(|i| i % shard_n == shard_i).collect();
    let mine = Arc::new(mine);
    let open_catalog = match plan.open_model {
        Some(_) => Some(Arc::new(crate::client::parse_catalog(
            &serde_json::to_vec(&get_json(base, "/api/v1/catalog").await?).unwrap_or_default(),
        )?)),
        None => None,
    };
    let real_end_at = SimClock::real_at(&clock, plan.duration);
    let chooser = crate::client::MpChooser::new(plan, site)?.map(Arc::new);
    // Each arbiter creates its share of the clients on its own thread.
    let counts = ask_all(&arbiters, {
        let (plan, site, base, mine) =
            (Arc::clone(plan), Arc::clone(&site_info), base.to_owned(), Arc::clone(&mine));
        let keys = signing.as_ref().map(|s| Arc::clone(&s.pool));
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let chooser = chooser.clone();
        move || {
            let a = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let arb = Rc::new(Arb {
                plan: Arc::clone(&plan),
                clock,
                transport: Rc::new(Transport::new(
                    &base,
                    per_arbiter_connections,
                    plan.wire,
                    plan.zlib_level,
                )),
                mps: plan
                    .mps
                    .iter()
                    .map(|m| {
                        Rc::new(Transport::new(&m.url, per_arbiter_connections, plan.wire, plan.zlib_level))
                    })
                    .collect(),
                chooser: chooser.clone(),
                site: Arc::clone(&site),
                keys: keys.clone(),
                catalogs: RefCell::default(),
                finishing: std::cell::Cell::new(false),
                truths: RefCell::default(),
                acks: RefCell::default(),
                open_acked: RefCell::default(),
                open_in_flight: std::cell::Cell::new(0),
                open_retrying: std::cell::Cell::new(0),
                outstanding: std::cell::Cell::new(0),
                all_done: RefCell::new(None),
            });
            let share: Vec<u64> = mine.iter().skip(a).step_by(n).copied().collect();
            let count = share.len();
            let addrs: Vec<Addr<SimClient>> = match (plan.open_model, &open_catalog) {
                (Some((arrivals, messages)), Some(catalog)) => {
                    let arb = Rc::clone(&arb);
                    let catalog = catalog.to_vec();
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    *arb.all_done.borrow_mut() = Some(tx);
                    OPEN_DONE.with(|d| *d.borrow_mut() = Some(rx));
                    actix_rt::spawn(async move {
                        let pacer = Rc::clone(&arb);
                        match arrivals {
                            Arrivals::Open { rate } => {
                                crate::open::open_model(
                                    pacer,
                                    share,
                                    rate / n as f64,
                                    messages,
                                    catalog,
                                    real_end_at,
                                )
                                .await;
                            }
                            Arrivals::Closed { in_flight } => {
                                let mine = in_flight.div_ceil(n);
                                crate::open::closed_model(pacer, share, mine, messages, catalog, real_end_at)
                                    .await;
                            }
                        }
                        if let Some(tx) = arb.all_done.borrow_mut().take() {
                            let _ = tx.send(());
                        }
                    });
                    Vec::new()
                }
                _ => share.iter().map(|&i| SimClient::new(Rc::clone(&arb), i).start()).collect(),
            };
            CLIENTS.with(|c| *c.borrow_mut() = addrs);
            ARB.with(|x| *x.borrow_mut() = Some(arb));
            count
        }
    })
    .await;
    let clients: usize = counts.iter().sum();
    let startup = started.elapsed();
    Ok(Fleet { arbiters, clients, clock, signing, started, start_unix, startup })
}

/// What the one-second loop recorded.
pub(crate) struct Observed {
    pub hlog: HlogWriter,
    pub service_hlog: HlogWriter,
    pub timeline: Vec<Value>,
    pub syncs: Vec<Value>,
    /// The syncs that took, for convergence.
    pub fired: Vec<crate::convergence::Sync>,
    pub peak_backlog: u64,
    /// From setup to the end of the loop.
    pub wall: Duration,
    /// The windowed thresholds' windows, and the abort that ended the run early, if one did.
    pub windows: crate::windows::Windows,
    pub aborted: Option<crate::windows::Abort>,
}

/// The run: once a second, merge the arbiters' intervals into the interval logs and the
/// timeline, show progress, fire the profile's due syncs (when `fires`), watch the backend's
/// backlog. A shard of a fleet (`link`) sends each interval to the collector, which judges the
/// windows and stops it on an abort.
async fn observe(
    plan: &Plan,
    base: &str,
    fleet: &Fleet,
    (progress, fires): (bool, bool),
    link: Option<&crate::collect::Link>,
) -> Observed {
    let real_end = fleet.clock.real_at(plan.duration);
    let mut hlog = HlogWriter::begin(fleet.start_unix);
    let mut service_hlog = HlogWriter::begin(fleet.start_unix);
    let mut timeline = Vec::new();
    let mut events = plan.events.iter().peekable();
    let mut syncs = Vec::new();
    let mut fired = Vec::new();
    let mut peak_backlog = 0u64;
    let mut last = Instant::now();
    let mut p99_so_far = metrics::histogram();
    let mut total_requests = 0u64;
    let ramp_end = fleet.clock.real_at(plan.ramp_up).saturating_duration_since(fleet.started).as_secs_f64();
    let mut windows = crate::windows::Windows::new(&plan.thresholds, ramp_end);
    let mut aborted = None;
    loop {
        let now = Instant::now();
        let next = (last + Duration::from_secs(1)).min(real_end);
        tokio::time::sleep(next.saturating_duration_since(now)).await;
        let interval = merge(ask_all(&fleet.arbiters, metrics::take_interval).await);
        let length = Instant::now().saturating_duration_since(last);
        let since = last.saturating_duration_since(fleet.started);
        hlog.interval(since, length, &interval);
        service_hlog.interval_of(since, length, &interval, true);
        let abort = windows.add(&interval, (since + length).as_secs_f64(), length.as_secs_f64());
        match link {
            None => aborted = abort,
            Some(link) => {
                link.send(length, &interval);
                if let Some(threshold) = link.stopped() {
                    let at = (since + length).as_secs_f64();
                    aborted = Some(crate::windows::Abort { threshold, at, actual: None });
                }
            }
        }
        last = Instant::now();
        while let Some(e) = events.next_if(|e| fires && fleet.clock.real_at(e.at) <= last) {
            sync(base, e, &fleet.clock, &mut syncs, &mut fired).await;
        }
        let status = get_json(base, "/api/v1/status").await.unwrap_or(Value::Null);
        let backlog = status["FilesWaiting"]["statesys.box/incoming"].as_u64().unwrap_or(0);
        peak_backlog = peak_backlog.max(backlog);
        let simulated = fleet.clock.sim_elapsed(last).min(plan.duration);
        timeline.push(timeline_entry(since + length, length, simulated, &interval, &status));
        if progress {
            let all: u64 = interval.requests();
            total_requests += all;
            for k in Kind::ALL {
                let _ = p99_so_far.add(&interval.kind(k).corrected);
            }
            let secs = length.as_secs_f64().max(1e-9);
            eprint!(
                "\r[sim {} / {}] clients {} | {:.0} req/s | {:.0} msg/s | p99 {:.1} ms | errors {} | backlog {backlog} files | requests {total_requests}   ",
                hms(fleet.clock.sim_elapsed(last).min(plan.duration)),
                hms(plan.duration),
                fleet.clients,
                all as f64 / secs,
                interval.messages_acked as f64 / secs,
                p99_so_far.value_at_quantile(0.99) as f64 / 1000.0,
                interval.errors(),
            );
        }
        if let Some(a) = &aborted {
            if progress {
                eprintln!();
            }
            match link {
                Some(_) => {
                    eprintln!("loadgen: the collector stopped the fleet at {:.0} s ({})", a.at, a.threshold)
                }
                None => eprintln!(
                    "loadgen: aborted at {:.0} s: threshold {} failed for its abort stretch ({})",
                    a.at,
                    a.threshold,
                    a.actual
                        .map_or("nothing measured".to_owned(), |v| format!("{v:.3} over its last window"))
                ),
            }
            break;
        }
        if last >= real_end {
            break;
        }
    }
    if progress && aborted.is_none() {
        eprintln!();
    }
    let wall = fleet.started.elapsed();
    Observed { hlog, service_hlog, timeline, syncs, fired, peak_backlog, wall, windows, aborted }
}

/// Fires a sync (`POST /api/v1/sync`) as `e` says, noting its answer in `syncs` and, when it
/// published a content version, in `fired` (at the simulated time `clock` gives its answer).
pub(crate) async fn sync(
    base: &str,
    e: &crate::profile::SyncEvent,
    clock: &SimClock,
    syncs: &mut Vec<Value>,
    fired: &mut Vec<crate::convergence::Sync>,
) {
    let body = format!("{{\"new_updates\": {}, \"superseded\": {}}}", e.new_updates, e.superseded);
    match call(base, Method::POST, "/api/v1/sync", body.as_bytes()).await {
        Ok((status, reply)) if status.is_success() => {
            // Convergence counts from the sync's answer: the new policy is out.
            let at = clock.sim_elapsed(Instant::now()).as_secs_f64();
            let reply = serde_json::from_slice::<Value>(&reply).unwrap_or(Value::Null);
            if let Some(version) = reply["ContentVersion"].as_u64().and_then(|v| u32::try_from(v).ok()) {
                fired.push(crate::convergence::Sync { version, at });
            }
            syncs.push(json!({ "at_simulated_seconds": e.at.as_secs_f64(), "answered_simulated_seconds": at, "reply": reply }));
        }
        Ok((status, _)) => eprintln!("loadgen: sync at {}: {status}", hms(e.at)),
        Err(e2) => eprintln!("loadgen: sync at {}: {e2}", hms(e.at)),
    }
}

/// One second of `timeline.json`: the interval that ended `t` after the start and lasted
/// `length`, `simulated` time into the run, with the backend's `status` at its end.
pub(crate) fn timeline_entry(
    t: Duration,
    length: Duration,
    simulated: Duration,
    interval: &Figures,
    status: &Value,
) -> Value {
    let per_kind: serde_json::Map<String, Value> =
        Kind::ALL.iter().map(|k| (k.name().to_owned(), json!(interval.kind(*k).requests()))).collect();
    json!({
        "t": t.as_secs_f64(),
        "length": length.as_secs_f64(),
        "simulated": simulated.as_secs_f64(),
        "requests": per_kind,
        "errors": interval.errors(),
        "messages_acknowledged": interval.messages_acked,
        "p99_ms": Kind::ALL.iter().filter_map(|k| results::stat_ms(&interval.kind(*k).corrected, "p99")).fold(0.0, f64::max),
        "backlog_files": status["FilesWaiting"]["statesys.box/incoming"].as_u64().unwrap_or(0),
        // State messages the MP has accepted, and StateSys applied, so far (our backend's
        // counters; absent from other targets).
        "accepted": status["StateMessagesAccepted"],
        "applied": status["RecordsProcessed"],
        // With a site database: how long its oldest change waited.
        "database_lag_seconds": status["Database"]["LagSeconds"],
        // Our backend's inbox commits so far (cumulative buckets); made per interval by
        // `inbox_commits_per_interval` before the timeline is written.
        "inbox_commit_at_most": status["InboxCommit"]["AtMost"],
    })
}

/// Replaces each interval's cumulative inbox-commit buckets (the backend's histogram of how long
/// a batch took to write and `fdatasync`) with that interval's figures: `inbox_commits` (how many
/// batches were committed) and `inbox_commit_slowest_ms` (`[above, at_most]`: the bounds the
/// slowest of them fell between; `at_most` is null past the last bound). A latency spike in a
/// second whose slowest commit was short did not come from the backend's disk.
pub(crate) fn inbox_commits_per_interval(timeline: &mut [Value]) {
    let mut before: Vec<(f64, u64)> = Vec::new();
    for entry in timeline {
        let Some(object) = entry.as_object_mut() else { continue };
        let Some(Value::Object(buckets)) = object.remove("inbox_commit_at_most") else { continue };
        let mut now: Vec<(f64, u64)> =
            buckets.iter().filter_map(|(bound, n)| Some((bound.parse::<f64>().ok()?, n.as_u64()?))).collect();
        now.sort_by(|a, b| a.0.total_cmp(&b.0));
        // How much each cumulative count grew in this interval (from zero at the first status or
        // after the buckets changed; a restarted backend's lower counts give no growth).
        let same = before.len() == now.len();
        let grew: Vec<u64> = now
            .iter()
            .enumerate()
            .map(|(i, n)| n.1.saturating_sub(if same { before[i].1 } else { 0 }))
            .collect();
        let count = grew.last().copied().unwrap_or(0);
        // The slowest bucket that gained a commit: the highest whose growth exceeds the one below's.
        let below = |i: usize| if i == 0 { 0 } else { grew[i - 1] };
        let slowest = (0..grew.len()).rev().find(|&i| grew[i] > below(i));
        object.insert("inbox_commits".into(), json!(count));
        if let Some(i) = slowest {
            let above = if i == 0 { 0.0 } else { now[i - 1].0 * 1e3 };
            let at_most = now[i].0.is_finite().then(|| now[i].0 * 1e3);
            object.insert("inbox_commit_slowest_ms".into(), json!([above, at_most]));
        }
        before = now;
    }
}

/// What the clients handed back.
pub(crate) struct Finished {
    pub totals: Figures,
    /// Per arbiter, the CPU seconds its thread used.
    pub cpu: Vec<Option<f64>>,
    /// In client order.
    pub truths: Vec<Truth>,
    /// The clients' acknowledged scan results (see [`crate::convergence`]).
    pub acks: Vec<crate::convergence::Ack>,
    pub flush: Duration,
    /// Per MP of the profile's: its clients, requests and failed requests.
    pub mps: Vec<[u64; 3]>,
}

/// The end: every client flushes its queue (bounded) and reports its truth; the arbiters stop.
async fn finish(fleet: &Fleet) -> Finished {
    let finish_started = Instant::now();
    let waits = ask_all(&fleet.arbiters, || {
        if let Some(rx) = OPEN_DONE.with(|d| d.borrow_mut().take()) {
            // A pacer stops at its end, or now when the run was cut short (an abort).
            ARB.with(|a| {
                if let Some(arb) = a.borrow().as_ref() {
                    arb.finishing.set(true);
                }
            });
            return rx;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        ARB.with(|a| {
            if let Some(arb) = a.borrow().as_ref() {
                arb.finishing.set(true);
                let count = CLIENTS.with(|c| c.borrow().len());
                arb.outstanding.set(count);
                if count == 0 {
                    let _ = tx.send(());
                } else {
                    *arb.all_done.borrow_mut() = Some(tx);
                }
            }
        });
        CLIENTS.with(|c| {
            for addr in c.borrow().iter() {
                addr.do_send(Finish);
            }
        });
        rx
    })
    .await;
    for w in waits {
        let _ = tokio::time::timeout(Duration::from_secs(120), w).await;
    }
    let flush = finish_started.elapsed();
    let totals = merge(ask_all(&fleet.arbiters, metrics::total).await);
    let cpu: Vec<Option<f64>> = ask_all(&fleet.arbiters, metrics::thread_cpu_seconds).await;
    let per_mp: Vec<Vec<[u64; 3]>> = ask_all(&fleet.arbiters, || {
        ARB.with(|a| {
            a.borrow().as_ref().map_or_else(Vec::new, |arb| {
                arb.mps
                    .iter()
                    .map(|t| {
                        [&t.users, &t.sent, &t.failed].map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
                    })
                    .collect()
            })
        })
    })
    .await;
    let mut mps: Vec<[u64; 3]> = Vec::new();
    for arbiter in per_mp {
        mps.resize(mps.len().max(arbiter.len()), [0; 3]);
        for (sum, c) in mps.iter_mut().zip(arbiter) {
            for k in 0..3 {
                sum[k] += c[k];
            }
        }
    }
    let handed: Vec<(Vec<Truth>, Vec<crate::convergence::Ack>)> = ask_all(&fleet.arbiters, || {
        CLIENTS.with(|c| c.borrow_mut().clear());
        ARB.with(|a| {
            a.borrow_mut()
                .take()
                .map(|arb| {
                    (
                        std::mem::take(&mut *arb.truths.borrow_mut()),
                        std::mem::take(&mut *arb.acks.borrow_mut()),
                    )
                })
                .unwrap_or_default()
        })
    })
    .await;
    let (mut truths, mut acks) = (Vec::new(), Vec::new());
    for (t, a) in handed {
        truths.extend(t);
        acks.extend(a);
    }
    for a in &fleet.arbiters {
        a.stop();
    }
    truths.sort_by_key(|t| t.index);
    acks.sort_by(|a, b| a.at.total_cmp(&b.at));
    Finished { totals, cpu, truths, acks, flush, mps }
}

/// What the result files say of the generator that ran: one process's arbiters, or a fleet's.
pub(crate) struct Shape {
    pub clients: usize,
    pub arbiters: usize,
    pub startup: Duration,
    /// `summary.json`'s `signing`.
    pub signing: Value,
    /// The generator's peak RSS (a fleet's: its largest shard's); `None`: this process's.
    pub peak_rss_mib: Option<f64>,
    /// `summary.json`'s `fleet` (a collector's shards), `Null` for one process.
    pub fleet: Value,
}

impl Shape {
    fn of(fleet: &Fleet, plan: &Plan) -> Shape {
        Shape {
            clients: fleet.clients,
            arbiters: fleet.arbiters.len(),
            startup: fleet.startup,
            signing: match &fleet.signing {
                None => json!({ "on": false }),
                Some(s) => json!({
                    "on": true,
                    "keys": s.pool.len(),
                    "key_bits": plan.signing.key_bits,
                    "padding": format!("{:?}", s.pool.padding),
                    "pool_seconds": s.seconds,
                }),
            },
            peak_rss_mib: None,
            fleet: Value::Null,
        }
    }
}

/// The backend's side of the end.
pub(crate) struct Settled {
    /// `/api/v1/status` as the drain left it.
    pub status: Value,
    pub drain: Duration,
    /// Our backend's `GET /api/v1/convergence` after the drain, before the summarization the
    /// run asks for (which is not the site's schedule).
    pub convergence: Option<Value>,
    /// The summarization tasks' answer.
    pub tasks: Value,
    pub summarize: Duration,
    pub verification: Option<verify::Verification>,
}

/// The backend drains (every acknowledged Report applied) and summarizes; with `verify`, its
/// views are checked against the clients' truth (`verify.json`).
pub(crate) async fn settle(
    plan: &Plan,
    base: &str,
    truths: &[Truth],
    opts: &Options,
    dir: &Path,
) -> anyhow::Result<Settled> {
    let drain_started = Instant::now();
    let drained = call(base, Method::POST, "/api/v1/drain?timeout=600", b"").await?;
    let drain = drain_started.elapsed();
    let backend_status: Value = serde_json::from_slice(&drained.1).unwrap_or(Value::Null);
    // A shard's clients are not the site's: the backend's curves count them all.
    let convergence = match opts.shard {
        Some(_) => None,
        None => get_json(base, "/api/v1/convergence").await.ok(),
    };
    let verify = opts.verify;
    let summarize_started = Instant::now();
    let summarized = call(base, Method::POST, "/api/v1/summarize", b"").await?;
    let summarize = summarize_started.elapsed();
    let tasks: Value = serde_json::from_slice(&summarized.1).unwrap_or(Value::Null);
    let verification = if verify {
        let mut v = verify::verify(plan, base, truths).await?;
        if opts.verify_sql {
            let url = opts.database.as_deref().context("--verify-sql needs --database")?;
            let (differences, took) =
                verify::verify_sql(url, Some(base), &v.expected, Duration::from_secs(900)).await?;
            v.json["sql"] = serde_json::json!({
                "exact": differences.is_empty(),
                "caught_up_seconds": took.as_secs_f64(),
                "differences": differences.iter().take(100).collect::<Vec<_>>(),
                "differences_total": differences.len(),
            });
            v.exact &= differences.is_empty();
            v.json["exact"] = Value::Bool(v.exact);
            v.differences.extend(differences);
        }
        write_json(&dir.join("verify.json"), &v.json)?;
        Some(v)
    } else {
        None
    };
    Ok(Settled { status: backend_status, drain, convergence, tasks, summarize, verification })
}

/// The result files (histograms, interval logs, timeline, `summary.json`, `report.html`) and
/// the exit status the thresholds and verification give.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_results(
    plan: &Plan,
    base: &str,
    dir: &Path,
    opts: &Options,
    shape: &Shape,
    observed: Observed,
    finished: Finished,
    settled: Settled,
) -> anyhow::Result<(Value, u8)> {
    let Observed { hlog, service_hlog, mut timeline, syncs, fired, peak_backlog, wall, windows, aborted } =
        observed;
    let Finished { totals, cpu, truths, acks, flush, mps } = finished;
    let mps: Value = if plan.mps.is_empty() {
        Value::Null
    } else {
        plan.mps
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let [clients, requests, errors] = mps.get(i).copied().unwrap_or_default();
                json!({ "url": m.url, "boundary_groups": m.boundary_groups, "clients": clients, "requests": requests, "errors": errors })
            })
            .collect()
    };
    let Settled { status: backend_status, drain, convergence, tasks, summarize, verification } = settled;
    let convergence = crate::convergence::compute(&fired, &truths, &acks, convergence.as_ref());
    let (clients, n, startup) = (shape.clients, shape.arbiters, shape.startup);
    let peak_rss_mib = shape.peak_rss_mib.or_else(metrics::peak_rss_mib);
    for kind in Kind::ALL {
        let h = &totals.kind(kind).corrected;
        if !h.is_empty() {
            std::fs::write(dir.join(format!("latency-{}.hgrm", kind.name())), results::hgrm(h))?;
        }
    }
    std::fs::write(dir.join("latency.hlog"), &hlog.bytes)?;
    std::fs::write(dir.join("service-time.hlog"), &service_hlog.bytes)?;
    let database_peak_lag =
        timeline.iter().filter_map(|t| t["database_lag_seconds"].as_f64()).reduce(f64::max);
    inbox_commits_per_interval(&mut timeline);
    write_json(&dir.join("timeline.json"), &Value::Array(timeline))?;
    let mut checked = results::check(&plan.thresholds, &totals, wall);
    for c in &mut checked {
        if let crate::profile::Metric::Convergence { stage, percent } = c.threshold.metric {
            c.actual = crate::convergence::worst(&convergence, stage, percent);
            c.passed = c.actual.is_some_and(|a| {
                if c.threshold.less_than { a < c.threshold.value } else { a > c.threshold.value }
            });
        }
    }
    // Windowed thresholds: the share of windows that met the condition.
    for (i, share, passed) in windows.verdicts() {
        (checked[i].actual, checked[i].passed) = (share, passed);
    }
    // The threshold that aborted the run failed, whatever its figure over the whole run.
    if let Some(a) = &aborted {
        for c in checked.iter_mut().filter(|c| c.threshold.name == a.threshold) {
            c.passed = false;
        }
    }
    let records = backend_status["RecordsProcessed"].as_u64().unwrap_or(0);
    let lateness = &totals.lateness;
    let cpu_seconds: f64 = cpu.iter().flatten().sum();
    // The generator's own delay: past the profile's bound, the figures describe it, not the target.
    let late_p99_ms =
        if lateness.is_empty() { 0.0 } else { lateness.value_at_quantile(0.99) as f64 / 1000.0 };
    let behind = late_p99_ms > plan.max_lateness_p99_ms;
    let exit = if verification.as_ref().is_some_and(|v| !v.exact) {
        EXIT_VERIFY
    } else if behind && !opts.allow_late {
        EXIT_GENERATOR
    } else if checked.iter().any(|c| !c.passed) {
        EXIT_THRESHOLD
    } else {
        EXIT_OK
    };
    let summary = json!({
        "profile": results::plan_json(plan),
        "exit": exit,
        "version": env!("CARGO_PKG_VERSION"),
        "commit": git_commit(),
        "host": results::host_json(),
        "finished": protocol::Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)).to_rfc3339(),
        "target": if opts.target.is_some() { base.to_owned() } else { format!("embedded ({base})") },
        "shard": opts.shard.map(|(i, n)| format!("{i}/{n}")),
        "clients": clients,
        "arbiters": n,
        "startup_seconds": startup.as_secs_f64(),
        "wall_seconds": wall.as_secs_f64(),
        "simulated_seconds": plan.duration.as_secs_f64(),
        "flush_seconds": flush.as_secs_f64(),
        "requests": results::kinds_json(&totals, wall),
        "state_messages": {
            "sent": totals.messages_sent,
            "acknowledged": totals.messages_acked,
            "acknowledged_per_second": totals.messages_acked as f64 / wall.as_secs_f64().max(1e-9),
        },
        // The site's MPs the clients spread over, when the profile lists them.
        "mps": mps,
        "syncs": syncs,
        "convergence": convergence,
        "signing": shape.signing,
        "fleet": shape.fleet,
        "generator": {
            "late_sends_over_10ms": lateness.count_between(10_001, u64::MAX),
            "lateness_ms": results::latency_json(lateness),
            "max_lateness_p99_ms": plan.max_lateness_p99_ms,
            "behind": behind,
            "cpu_seconds": cpu_seconds,
            "peak_rss_mib": peak_rss_mib,
            // The whole process's peak (the embedded backend's included, if any) over the clients.
            "bytes_per_client": peak_rss_mib.map(|mib| (mib * 1_048_576.0 / clients.max(1) as f64).round()),
            "cpu_share_of_arbiters": cpu_seconds / (wall + flush).as_secs_f64().max(1e-9) / n as f64,
        },
        "backend": {
            "records_processed": records,
            "records_per_second": records as f64 / (wall + flush + drain).as_secs_f64().max(1e-9),
            "invalid_records": backend_status["InvalidRecords"],
            "bad_files": backend_status["BadFiles"],
            "busy_answers": backend_status["Busy"],
            "peak_backlog_files": peak_backlog,
            "database_peak_lag_seconds": database_peak_lag,
            "drain_seconds": drain.as_secs_f64(),
            "summarize_seconds": summarize.as_secs_f64(),
            "summarization": tasks["Tasks"],
        },
        "verification": match &verification {
            None => json!({ "checked": false }),
            Some(v) => json!({
                "checked": true,
                "exact": v.exact,
                "differences": v.differences.len(),
                "sql": v.json.get("sql").map(|s| s["exact"].clone()),
            }),
        },
        "thresholds": results::thresholds_json(&checked),
        "aborted": aborted.as_ref().map(|a| json!({ "threshold": a.threshold, "at_seconds": a.at, "actual": a.actual })),
    });
    write_json(&dir.join("summary.json"), &summary)?;
    crate::report::write(dir)?;
    Ok((summary, exit))
}

fn merge(parts: Vec<Figures>) -> Figures {
    let mut all = Figures::default();
    for p in &parts {
        all.add(p);
    }
    all
}

fn write_json(path: &Path, v: &Value) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec_pretty(v)?;
    std::fs::write(path, bytes).with_context(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_commits_are_made_per_interval_with_the_slowest_ones_bounds() {
        let at_most = |counts: [u64; 4]| json!({ "0.001": counts[0], "0.025": counts[1], "0.5": counts[2], "+Inf": counts[3] });
        let mut timeline = vec![
            json!({ "t": 1.0, "inbox_commit_at_most": at_most([90, 100, 100, 100]) }),
            json!({ "t": 2.0, "inbox_commit_at_most": at_most([150, 200, 200, 200]) }),
            json!({ "t": 3.0, "inbox_commit_at_most": at_most([250, 300, 301, 301]) }),
            json!({ "t": 4.0, "inbox_commit_at_most": at_most([250, 300, 301, 302]) }),
            // Another target: no histogram, no figures.
            json!({ "t": 5.0, "inbox_commit_at_most": null }),
        ];
        inbox_commits_per_interval(&mut timeline);
        let figures: Vec<_> = timeline
            .iter()
            .map(|t| (t["inbox_commits"].clone(), t["inbox_commit_slowest_ms"].clone()))
            .collect();
        assert_eq!(
            figures,
            [
                (json!(100), json!([1.0, 25.0])),
                (json!(100), json!([1.0, 25.0])),
                (json!(101), json!([25.0, 500.0])),
                (json!(1), json!([500.0, null])),
                (Value::Null, Value::Null),
            ]
        );
        assert!(timeline.iter().all(|t| t.get("inbox_commit_at_most").is_none()), "the raw counts go");
    }
}
