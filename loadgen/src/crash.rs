//! `loadgen crash` (issue 7 §1): SIGKILL the backend at random moments while clients relay
//! state messages, restart it on the same data directory, and prove at the end that every
//! acknowledged message was applied exactly once.
//!
//! The clients are closed-loop: each sends Reports of `messages` state messages with rising
//! serial numbers and times, one at a time, and resends a Report until it is acknowledged (as a
//! real client's queue does), backing off on refusals and honouring `Retry-After`. A Report
//! whose acknowledgement was lost in a kill may well have been applied already; the resend is
//! the duplicate every durable queue must absorb.
//!
//! Kills aim in turn at a random instant and at four phases, which the harness watches from
//! outside through `/proc/<pid>` (thread names, states, current system calls and open files):
//! the relay's `fdatasync`, a checkpoint being written (a `statesys` thread syncing the store's
//! log, or the `compactor` writing a new base, `state/store.tmp` open), a StateSys batch (a
//! `statesys` thread running, no checkpoint), and a summarization run (the `summarizer` thread
//! running). What was seen at the instant of each kill is recorded.
//!
//! Exactly once, checked: after the last restart the clients' last Reports are acknowledged,
//! the inbox drained and the views summarized; then for every client the store must hold, per
//! update, the state and serial of the newest message that named it, the serials seen must be
//! exactly 1..=last (nothing missing, nothing beyond what was sent), and every update's
//! compliance counts must equal the counts the clients' truth implies (each client counted
//! once).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};
use protocol::{Guid, GuidStyle, Timestamp};
use serde_json::{Value, json};

use crate::messages::{self, Report};
use crate::profile::{DEFAULT_ZLIB_LEVEL, Wire};
use crate::sim::mix;
use crate::transport::{Failure, Transport, mp_request};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `backend` binary to kill.
    pub backend: PathBuf,
    pub cycles: usize,
    pub clients: usize,
    /// State messages per Report.
    pub messages: usize,
    /// Requests in flight at most.
    pub connections: usize,
    pub seed: u64,
    pub wire: Wire,
    /// The longest random wait between a restart and the next kill.
    pub max_gap: Duration,
    /// The backend's `--checkpoint-ms` (short, so kills land in checkpoints often).
    pub checkpoint_ms: u64,
    /// Results (`crash.json`, `backend.log`) and the backend's data (`data/`, removed after a
    /// passing run unless `keep_data`).
    pub out: PathBuf,
    pub keep_data: bool,
}

/// What the harness can see a backend doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// The relay's group commit is in `fdatasync`/`fsync`.
    Fsync,
    /// StateSys is writing a checkpoint.
    Checkpoint,
    /// StateSys is applying inbox files.
    Batch,
    /// A summarization run is under way.
    Summarizing,
}

impl Phase {
    pub const ALL: [Phase; 4] = [Phase::Fsync, Phase::Checkpoint, Phase::Batch, Phase::Summarizing];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Fsync => "fsync",
            Phase::Checkpoint => "checkpoint",
            Phase::Batch => "statesys-batch",
            Phase::Summarizing => "summarization",
        }
    }
}

/// What the backend with process id `pid` is doing now, read from `/proc` (Linux).
pub fn phases(pid: u32) -> Vec<Phase> {
    let mut seen = Vec::new();
    let busy = |stat: &str| {
        // The state follows the command name's closing parenthesis.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|c| c == 'R' || c == 'D')
    };
    let compacting = fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten().any(|fd| fs::read_link(fd.path()).is_ok_and(|p| p.ends_with("state/store.tmp")))
    });
    if compacting {
        seen.push(Phase::Checkpoint);
    }
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return seen };
    for task in tasks.flatten() {
        let read = |name: &str| fs::read_to_string(task.path().join(name)).unwrap_or_default();
        // fsync is 74 and fdatasync 75 on x86_64 (82/83 on aarch64).
        let syncing = || {
            let call = read("syscall");
            let nr = call.split_whitespace().next().unwrap_or("").to_owned();
            let calls = if cfg!(target_arch = "aarch64") { ["82", "83"] } else { ["74", "75"] };
            calls.contains(&nr.as_str())
        };
        let phase = match read("comm").trim_end() {
            "inbox-commit" => syncing().then_some(Phase::Fsync),
            // StateSys syncs only the store's log (a checkpoint's frame).
            "statesys" if syncing() => Some(Phase::Checkpoint),
            "statesys" if busy(&read("stat")) => Some(Phase::Batch),
            "summarizer" if busy(&read("stat")) => Some(Phase::Summarizing),
            _ => None,
        };
        if let Some(p) = phase
            && !seen.contains(&p)
        {
            seen.push(p);
        }
    }
    seen.sort();
    seen
}

/// One kill.
#[derive(Debug, Clone)]
pub struct Kill {
    /// The phase this kill waited for (`None`: a random instant).
    pub aim: Option<Phase>,
    /// What the backend was doing when the signal went.
    pub seen: Vec<Phase>,
    /// From the restart's spawn to its first answer.
    pub recovery: Duration,
}

/// The outcome, as `crash.json` holds it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exact: bool,
    pub differences: Vec<String>,
    pub kills: Vec<Kill>,
    pub reports: u64,
    pub messages: u64,
    pub resends: u64,
    pub elapsed: Duration,
    pub json: Value,
}

/// A running backend child.
struct Backend {
    child: Child,
    base: String,
}

fn start(opts: &Options, data: &Path, log: &Path) -> anyhow::Result<Backend> {
    let offset = fs::metadata(log).map_or(0, |m| m.len());
    let stderr = OpenOptions::new().create(true).append(true).open(log)?;
    let mut child = Command::new(&opts.backend)
        .args(["serve", "--listen", "127.0.0.1:0", "--statesys-pause", "0", "--checkpoint-ms"])
        .arg(opts.checkpoint_ms.to_string())
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| opts.backend.display().to_string())?;
    // The backend names its address on its first line.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut text = String::new();
        if let Ok(mut f) = File::open(log) {
            use std::io::Seek;
            let _ = f.seek(std::io::SeekFrom::Start(offset));
            let _ = f.read_to_string(&mut text);
        }
        if let Some(addr) = backend::server::served_address(&text) {
            return Ok(Backend { child, base: format!("http://{addr}") });
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(anyhow!("the backend exited at start ({status}); see {}", log.display()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(anyhow!("the backend named no address within 60 s; see {}", log.display()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the load shares.
struct Load {
    /// The clients' transport (unmeasured here): at most `connections` requests in flight.
    transport: Transport,
    /// The backend's address, which moves with each restart.
    base: RwLock<String>,
    stop: AtomicBool,
    wire: Wire,
    updates: Vec<Guid>,
    seed: u64,
    messages: usize,
    /// Message times: a day before the run began, a millisecond per serial (recent enough that
    /// Delete Aged Update Status leaves them alone).
    epoch: i64,
    reports: AtomicU64,
    resends: AtomicU64,
}

/// What one client had acknowledged: per update the newest (serial, state), and the last serial.
struct Truth {
    id: Guid,
    rows: Vec<Option<(u64, u8)>>,
    last: u64,
}

fn client_id(seed: u64, k: usize) -> Guid {
    Guid(u128::from(mix(seed ^ 0xC4A5)) << 64 | k as u128)
}

/// The message with serial `s` of client `k`: which update, which state.
fn message(load: &Load, k: usize, s: u64) -> (usize, u8) {
    let h = mix(load.seed ^ (k as u64) << 40 ^ s);
    ((h % load.updates.len() as u64) as usize, 1 + ((h >> 32) % 3) as u8)
}

fn report_xml(load: &Load, k: usize, id: Guid, first: u64) -> String {
    let mut report = Report::begin(id, &format!("CRASH{k:06}"), Timestamp(0), load.messages);
    for s in first..first + load.messages as u64 {
        let (u, state) = message(load, k, s);
        report.update(load.updates[u], 200, state, Timestamp(load.epoch + s as i64 * 1000), s);
    }
    report.finish()
}

fn relay_request(load: &Load, base: &str, id: Guid, k: usize, first: u64, xml: &str) -> Request<Full<Bytes>> {
    let message = Guid(u128::from(mix(k as u64)) << 64 | u128::from(first));
    let mut header = messages::header(message, Some(id), &format!("CRASH{k:06}"), messages::RELAY);
    mp_request(load.wire, DEFAULT_ZLIB_LEVEL, base, &mut header, None, Bytes::copy_from_slice(xml.as_bytes()))
        .unwrap_or_default()
}

/// Sends a request; `Ok` on 2xx, else how long to wait before trying again: refused or reset (a
/// kill), soon; a 503 says when.
async fn send(load: &Load, request: Request<Full<Bytes>>) -> Result<Bytes, Duration> {
    load.transport.exchange(request).await.map_err(|failure| match failure {
        Failure::Status(_, Some(after)) => after,
        _ => Duration::from_millis(20),
    })
}

/// One client: Reports until the harness stops, each resent until acknowledged.
async fn client(load: Arc<Load>, k: usize) -> anyhow::Result<Truth> {
    let id = client_id(load.seed, k);
    let mut truth = Truth { id, rows: vec![None; load.updates.len()], last: 0 };
    let deadline = || Instant::now() + Duration::from_secs(180);
    while !load.stop.load(Ordering::Relaxed) {
        let first = truth.last + 1;
        let xml = report_xml(&load, k, id, first);
        let give_up = deadline();
        loop {
            let base = load.base.read().map(|b| b.clone()).unwrap_or_default();
            match send(&load, relay_request(&load, &base, id, k, first, &xml)).await {
                Ok(_) => break,
                Err(_) if Instant::now() > give_up => {
                    return Err(anyhow!("client {k}: a Report was not acknowledged within 180 s"));
                }
                Err(wait) => {
                    load.resends.fetch_add(1, Ordering::Relaxed);
                    let jitter = Duration::from_millis(mix(first ^ k as u64) % 20);
                    tokio::time::sleep(wait + jitter).await;
                }
            }
        }
        load.reports.fetch_add(1, Ordering::Relaxed);
        for s in first..first + load.messages as u64 {
            let (u, state) = message(&load, k, s);
            truth.rows[u] = Some((s, state));
        }
        truth.last = first + load.messages as u64 - 1;
    }
    Ok(truth)
}

/// An admin or site API call to the backend, as it is now: the JSON of a 200.
async fn call(load: &Load, method: Method, path: &str) -> anyhow::Result<Value> {
    let base = load.base.read().map(|b| b.clone()).unwrap_or_default();
    let (status, body) = crate::transport::call(&base, method, path, b"").await?;
    if status != StatusCode::OK {
        anyhow::bail!("{path}: {status}: {}", String::from_utf8_lossy(&body).trim());
    }
    serde_json::from_slice(&body).with_context(|| format!("{path}: not JSON"))
}

/// Kills and restarts the backend `opts.cycles` times.
fn kill_cycles(
    opts: &Options,
    load: &Load,
    rt: &tokio::runtime::Handle,
    mut backend: Backend,
    data: &Path,
    log: &Path,
) -> anyhow::Result<(Backend, Vec<Kill>)> {
    let mut kills = Vec::with_capacity(opts.cycles);
    let aims: [Option<Phase>; 5] =
        [None, Some(Phase::Fsync), Some(Phase::Checkpoint), Some(Phase::Batch), Some(Phase::Summarizing)];
    let mut x = opts.seed;
    for cycle in 0..opts.cycles {
        x = mix(x ^ cycle as u64);
        let aim = aims[cycle % aims.len()];
        let gap = opts.max_gap.mul_f64((x % 1000) as f64 / 1000.0);
        std::thread::sleep(gap.max(Duration::from_millis(20)));
        let pid = backend.child.id();
        let seen = match aim {
            None => phases(pid),
            Some(want) => {
                // Watch for the phase (bounded); kill the moment it shows.
                let until = Instant::now() + Duration::from_secs(3);
                loop {
                    let now = phases(pid);
                    if now.contains(&want) || Instant::now() > until {
                        break now;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        };
        backend.child.kill().map_err(|e| anyhow!("kill: {e}"))?;
        backend.child.wait().map_err(|e| anyhow!("wait: {e}"))?;
        let spawned = Instant::now();
        backend = start(opts, data, log)?;
        if let Ok(mut b) = load.base.write() {
            b.clone_from(&backend.base);
        }
        // Ready once it answers (recovery runs before the server accepts).
        rt.block_on(async {
            let until = Instant::now() + Duration::from_secs(120);
            while call(load, Method::GET, "/api/v1/status").await.is_err() {
                if Instant::now() > until {
                    return Err(anyhow!(
                        "the backend did not answer within 120 s of a restart; see {}",
                        log.display()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok(())
        })?;
        kills.push(Kill { aim, seen, recovery: spawned.elapsed() });
    }
    Ok((backend, kills))
}

/// Compares the backend's store and views with the clients' truth.
async fn verify(load: &Load, truths: &[Truth]) -> anyhow::Result<Vec<String>> {
    let mut differences = Vec::new();
    let mut differ = |d: String| {
        if differences.len() < 50 {
            differences.push(d);
        }
    };
    let index: BTreeMap<String, usize> =
        load.updates.iter().enumerate().map(|(i, g)| (g.styled(GuidStyle::Lower).to_string(), i)).collect();
    for t in truths.iter().filter(|t| t.last > 0) {
        let json = match call(load, Method::GET, &format!("/api/v1/clients/{}", t.id)).await {
            Ok(j) => j,
            Err(e) => {
                differ(format!("client {}: {e}", t.id));
                continue;
            }
        };
        if json["LastSerialNumber"] != t.last {
            differ(format!("client {}: last serial {} (sent {})", t.id, json["LastSerialNumber"], t.last));
        }
        if json["MissingSerialRanges"] != json!([]) {
            differ(format!("client {}: serials missing {}", t.id, json["MissingSerialRanges"]));
        }
        let mut rows: Vec<Option<(u64, u8)>> = vec![None; load.updates.len()];
        for row in json["Updates"].as_array().into_iter().flatten() {
            let Some(&u) = row["UpdateID"].as_str().and_then(|id| index.get(id)) else {
                differ(format!("client {}: a row for an update never named: {row}", t.id));
                continue;
            };
            rows[u] =
                Some((row["SerialNumber"].as_u64().unwrap_or(0), row["Status"].as_u64().unwrap_or(0) as u8));
        }
        for (u, (got, want)) in rows.iter().zip(&t.rows).enumerate() {
            if got != want {
                differ(format!("client {} update {u}: store {got:?}, acknowledged {want:?}", t.id));
            }
        }
    }
    // Each client counted once per update.
    let total = truths.iter().filter(|t| t.last > 0).count() as i64;
    let mut want = vec![[0i64; 4]; load.updates.len()];
    for t in truths {
        for (u, row) in t.rows.iter().enumerate() {
            if let Some((_, state)) = row {
                want[u][usize::from(*state)] += 1;
            }
        }
    }
    let views = call(load, Method::GET, "/api/v1/summary/updates").await?;
    for v in views.as_array().into_iter().flatten() {
        let Some(&u) = v["UpdateID"].as_str().and_then(|id| index.get(id)) else { continue };
        let [_, na, missing, present] = want[u];
        let expected = json!([total, total - na - missing - present, na, missing, present]);
        let got =
            json!([v["NumTotal"], v["NumUnknown"], v["NumNotApplicable"], v["NumMissing"], v["NumPresent"]]);
        if got != expected {
            differ(format!(
                "update {u} counts [total, unknown, n/a, missing, present]: {got}, expected {expected}"
            ));
        }
    }
    Ok(differences)
}

/// Runs the harness. `Err` is a harness failure (the backend could not be started, say); a
/// verification failure is an `Outcome` with `exact: false`.
pub fn run(opts: &Options) -> anyhow::Result<Outcome> {
    if !opts.backend.is_file() {
        return Err(anyhow!(
            "{}: no backend binary (build it with `cargo build --release -p backend`, or pass --backend)",
            opts.backend.display()
        ));
    }
    let began = Instant::now();
    fs::create_dir_all(&opts.out).with_context(|| opts.out.display().to_string())?;
    let data = opts.out.join("data");
    let log = opts.out.join("backend.log");
    let _ = fs::remove_dir_all(&data);
    let _ = fs::remove_file(&log);
    let backend = start(opts, &data, &log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut load = Load {
        transport: Transport::new(&backend.base, opts.connections, opts.wire, DEFAULT_ZLIB_LEVEL),
        base: RwLock::new(backend.base.clone()),
        stop: AtomicBool::new(false),
        wire: opts.wire,
        updates: Vec::new(),
        seed: opts.seed,
        messages: opts.messages.max(1),
        epoch: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64 - 86_400_000_000),
        reports: AtomicU64::new(0),
        resends: AtomicU64::new(0),
    };
    let catalog = runtime.block_on(async {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            match call(&load, Method::GET, "/api/v1/catalog").await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() > until => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })?;
    load.updates = catalog["Updates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["UpdateID"].as_str()?.parse().ok())
        .collect();
    if load.updates.is_empty() {
        anyhow::bail!("the backend's catalog is empty");
    }
    let load = Arc::new(load);
    let clients: Vec<_> = (0..opts.clients).map(|k| runtime.spawn(client(Arc::clone(&load), k))).collect();
    // Summarization runs often, so kills find it under way.
    let summarizing = {
        let load = Arc::clone(&load);
        runtime.spawn(async move {
            while !load.stop.load(Ordering::Relaxed) {
                let _ = call(&load, Method::POST, "/api/v1/summarize").await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    let cycles = kill_cycles(opts, &load, runtime.handle(), backend, &data, &log);
    load.stop.store(true, Ordering::Relaxed);
    let (mut backend, kills) = match cycles {
        Ok(c) => c,
        Err(e) => {
            runtime.shutdown_timeout(Duration::from_secs(1));
            return Err(e);
        }
    };
    let result = runtime.block_on(async {
        let _ = summarizing.await;
        let mut truths = Vec::with_capacity(clients.len());
        for c in clients {
            truths.push(c.await??);
        }
        let drained = call(&load, Method::POST, "/api/v1/drain?timeout=300").await?;
        call(&load, Method::POST, "/api/v1/summarize").await?;
        let differences = verify(&load, &truths).await?;
        Ok::<_, anyhow::Error>((truths, drained, differences))
    });
    let _ = backend.child.kill();
    let _ = backend.child.wait();
    let (truths, drained, differences) = result?;
    let messages: u64 = truths.iter().map(|t| t.last).sum();
    let reports = load.reports.load(Ordering::Relaxed);
    let resends = load.resends.load(Ordering::Relaxed);
    let exact = differences.is_empty();
    if exact && !opts.keep_data {
        let _ = fs::remove_dir_all(&data);
    }
    let mut recoveries: Vec<f64> = kills.iter().map(|k| k.recovery.as_secs_f64() * 1000.0).collect();
    recoveries.sort_by(f64::total_cmp);
    let by_phase: BTreeMap<&str, usize> =
        Phase::ALL.iter().map(|p| (p.name(), kills.iter().filter(|k| k.seen.contains(p)).count())).collect();
    let json = json!({
        "Cycles": kills.len(),
        "Clients": opts.clients,
        "MessagesPerReport": load.messages,
        "Wire": format!("{:?}", opts.wire).to_lowercase(),
        "ReportsAcknowledged": reports,
        "MessagesAcknowledged": messages,
        "MessagesChecked": messages,
        "Resends": resends,
        "KillsDuring": by_phase,
        "KillsAimed": Phase::ALL.iter().map(|p| (p.name(), kills.iter().filter(|k| k.aim == Some(*p)).count())).collect::<BTreeMap<_, _>>(),
        "AimedPhaseSeen": kills.iter().filter(|k| k.aim.is_some_and(|a| k.seen.contains(&a))).count(),
        "RecoveryMs": {
            "Median": recoveries.get(recoveries.len() / 2),
            "Max": recoveries.last(),
        },
        "Kills": kills.iter().map(|k| json!({
            "Aim": k.aim.map_or("random", Phase::name),
            "Seen": k.seen.iter().map(|p| p.name()).collect::<Vec<_>>(),
            "RecoveryMs": (k.recovery.as_secs_f64() * 1e4).round() / 10.0,
        })).collect::<Vec<_>>(),
        "Drain": drained,
        "Exact": exact,
        "Differences": differences,
        "ElapsedS": (began.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    });
    let text = serde_json::to_vec_pretty(&json).unwrap_or_default();
    fs::write(opts.out.join("crash.json"), text).map_err(|e| anyhow!("crash.json: {e}"))?;
    Ok(Outcome { exact, differences, kills, reports, messages, resends, elapsed: began.elapsed(), json })
}

/// The console lines.
pub fn summary(o: &Outcome) -> String {
    let mut s = format!(
        "crash: {} kill cycles in {:.0} s; {} Reports ({} state messages) acknowledged, {} resends\n",
        o.kills.len(),
        o.elapsed.as_secs_f64(),
        o.reports,
        o.messages,
        o.resends
    );
    for p in Phase::ALL {
        let during = o.kills.iter().filter(|k| k.seen.contains(&p)).count();
        s += &format!("  killed during {:<15} {during}\n", p.name());
    }
    let aimed = o.kills.iter().filter(|k| k.aim.is_some()).count();
    s += &format!("  aimed at a phase and caught in it: {} of {aimed}\n", o.json["AimedPhaseSeen"]);
    let ms = |v: &Value| v.as_f64().unwrap_or(0.0);
    s += &format!(
        "  recovery (spawn to first answer): median {:.0} ms, max {:.0} ms\n",
        ms(&o.json["RecoveryMs"]["Median"]),
        ms(&o.json["RecoveryMs"]["Max"])
    );
    if o.exact {
        s += "verification: exact (every acknowledged message applied, once)\n";
    } else {
        s += &format!("verification: FAILED, {} differences:\n", o.differences.len());
        for d in o.differences.iter().take(20) {
            s += &format!("  {d}\n");
        }
    }
    s
}
