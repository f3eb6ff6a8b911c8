//! The backend process: configuration, the data directory's lock, the listener and its limits,
//! the stages' threads started and stopped in order, and graceful shutdown.
//!
//! ```text
//! TcpListener ─► accept (connection cap) ─► [TLS handshake, tls.rs] ─► hyper http1 (header
//!   timeout, write deadline) ─► routes::handle ─► routes/{mp, site_api, admin, metrics}.rs
//! started here, each owning its thread:
//!   inbox::commit::GroupCommit   the relay's durable writer (seals segments, notifies StateSys)
//!   statesys::service::StateSys  applies inbox files to the store, checkpoints
//!   statesys::schedule::Schedule runs the summarization tasks on their schedules
//!   site::live::PolicyProvider   polls policypv.box for .STN files
//! ```
//! [`run`] is the whole process as a library function: tests call it on `127.0.0.1:0`.

mod counters;
mod deadline;
mod http;
mod routes;
pub mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use protocol::{Guid, Timestamp};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::clock::SiteClock;
use crate::counters::Reading;
use crate::faults::Faults;
use crate::inbox::commit::{CommitConfig, GroupCommit};
use crate::logs::{ComponentLog, Format, SampledLog, Severity};
use crate::mp::keys::ClientKeys;
use crate::mp::{self, MpIdentity, RelayCounters};
use crate::site::Site;
use crate::site::chain::ChainLogs;
use crate::site::live::{LiveSite, PolicyProvider};
use crate::statesys::Paths;
use crate::statesys::schedule::Schedule;
use crate::statesys::service::{self, StateSys};
use crate::statesys::store::Store;
use crate::statesys::tasks::Summarizer;

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
    /// The nice value of the site server's threads (StateSys, its compactor, the summarizer),
    /// so the MP's request path comes first ([`crate::priority`]); 0 keeps them level with it.
    pub background_nice: i32,
    /// Run the summarizers once at start, so the views are not empty until the first
    /// scheduled run.
    pub summarize_at_start: bool,
    /// StateSys applies at most this many state messages a second (a site database's pace, for
    /// capacity planning and overload tests); `None`: as fast as it can.
    pub statesys_rate: Option<u64>,
    /// Serve `POST /api/v1/faults` (disk trouble on demand, for tests); off in production.
    pub fault_injection: bool,
    /// Serve HTTPS instead of HTTP on the listener (and PKI mode, with a client CA).
    pub tls: Option<tls::TlsSettings>,
    /// Require signed messages: registrations signed by their certificate's key, and the
    /// `clientauth` hook on messages to the signed endpoints (`crate::mp::keys`).
    pub require_signing: bool,
    /// Keep a PostgreSQL site database current (`postgres://...`; [`crate::sitedb`]).
    pub database: Option<String>,
    /// How the relay stores Reports in its inbox segments.
    pub inbox_compression: crate::inbox::adaptive::Compression,
    /// `auto` compresses above this many bytes/s of Reports.
    pub inbox_compress_above: u64,
    /// How long a Report may wait for others to share its inbox commit under load.
    pub inbox_commit_delay: Duration,
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
            background_nice: crate::priority::BACKGROUND_NICE,
            summarize_at_start: true,
            fault_injection: false,
            tls: None,
            statesys_rate: None,
            require_signing: false,
            database: None,
            inbox_compression: crate::inbox::adaptive::Compression::default(),
            inbox_compress_above: crate::inbox::adaptive::COMPRESS_ABOVE,
            inbox_commit_delay: crate::inbox::commit::COMMIT_DELAY,
        }
    }
}

/// What every request handler shares: the site, the stages' handles and counters, the limits.
pub(crate) struct Shared {
    /// The site: read by every MP request, changed by syncs (rare, short).
    pub site: Arc<LiveSite>,
    pub mp: MpIdentity,
    pub clock: SiteClock,
    pub limits: Limits,
    pub admin_token: Option<String>,
    /// The relay's durable writer.
    pub commit: GroupCommit,
    /// StateSys's store: the MP records what registrations and locations teach it, the site API
    /// reads clients.
    pub store: Arc<Store>,
    pub http: counters::HttpCounters,
    pub relay: RelayCounters,
    pub statesys: Arc<service::Counters>,
    /// `MP_Relay.log` and `MP_Location.log`: the walkthrough's lines, sampled (see [`SampledLog`]).
    pub relay_log: SampledLog,
    pub location_log: SampledLog,
    /// Messages this MP does not process or refuses, and refused authentication
    /// (`MP_Framework.log`).
    pub framework_log: SampledLog,
    /// Registrations (`MP_RegistrationManager.log`).
    pub registration_log: SampledLog,
    /// Policy assignment requests and policy downloads (`MP_Policy.log`).
    pub policy_log: SampledLog,
    /// The site's and the MP's signing certificates (`.sms_aut`).
    pub certificates: Arc<crate::mp::certs::SiteCertificates>,
    /// The site database's mirror, with `--database`.
    pub mirror: Option<Arc<crate::sitedb::Mirror>>,
    /// Discovery data records (`MP_Ddr.log`).
    pub ddr_log: SampledLog,
    /// Where the relay writes (for its log lines).
    pub relay_dir: PathBuf,
    pub started: Instant,
    /// Message IDs for replies: unique per process.
    pub next_id: AtomicU64,
    /// The summaries' views.
    pub summarizer: Arc<Summarizer>,
    /// Summarization on demand.
    pub schedule: Schedule,
    /// `Limits::max_request_memory` in KiB permits.
    pub request_memory: Arc<Semaphore>,
    /// The disk-fault seam, when `Config::fault_injection` is on.
    pub faults: Option<Arc<Faults>>,
    /// The clients' keys, when the MP requires signing.
    pub keys: Option<Arc<ClientKeys>>,
    /// Messages refused for their signature (or its absence).
    pub signing_refused: AtomicU64,
    /// The distinct client certificates HTTPS connections presented.
    pub client_certificates: tls::SeenCertificates,
}

impl Shared {
    pub(crate) fn reply_id(&self) -> Guid {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let t = self.clock.now().0 as u128;
        Guid((t << 64 | u128::from(n)) ^ 0x5EED_0000_0000_0000_0000_0000_0000_0000)
    }

    /// Every stage's counters, in one list: what `/api/v1/status` and `/metrics` show.
    pub(crate) fn readings(&self) -> Vec<Reading> {
        let mut out = Vec::with_capacity(24);
        self.http.readings(&mut out);
        self.relay.readings(&mut out);
        self.commit.stats().readings(&mut out);
        self.statesys.readings(&mut out);
        out.push(Reading::gauge(&["Clients"], "sumstorm_store_clients", self.store.clients() as u64));
        if self.client_certificates.count() > 0 {
            out.push(Reading::gauge(
                &["ClientCertificates"],
                "sumstorm_tls_client_certificates",
                self.client_certificates.count() as u64,
            ));
        }
        if let Some(m) = &self.mirror {
            m.readings(&mut out);
        }
        if let Some(keys) = &self.keys {
            out.push(Reading::gauge(&["SigningKeys"], "sumstorm_mp_signing_keys", keys.len() as u64));
            out.push(Reading::counter(
                &["SigningRefused"],
                "sumstorm_mp_signing_refused_total",
                self.signing_refused.load(Ordering::Relaxed),
            ));
        }
        out
    }
}

/// The line `backend serve` writes first to stderr, naming where it serves. Scripts and
/// harnesses read it while the process runs, so it must go out in one write (`eprintln!` writes
/// each formatted piece on its own: a reader between two of them saw `http://127.0.0.1` without
/// its port); [`served_address`] reads it back.
pub fn serving_line(tls: bool, addr: SocketAddr, data_dir: &std::path::Path) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("backend: serving {scheme}://{addr} (data in {})\n", data_dir.display())
}

/// The address on the `serving http://` line of [`serving_line`] in `text` (a log read
/// while the process writes it), once the whole line is there.
pub fn served_address(text: &str) -> Option<&str> {
    let (line, _) = text.split("serving http://").nth(1)?.split_once('\n')?;
    line.split_whitespace().next()
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
    let paths = Paths::in_data_dir(&data);
    let outbox = data.join("mp/outboxes/StateMsg.box");
    std::fs::create_dir_all(&outbox)?;
    std::fs::create_dir_all(paths.incoming())?;

    // The site as the last run left it (syncs, policy version, migrations).
    let site = Arc::new(LiveSite::open(
        config.site.clone(),
        paths.state.join("site.json"),
        data.join("inboxes/policypv.box"),
        ChainLogs::open(&logs_dir, clock)?,
    )?);
    let statesys_log = Arc::new(site_log("StateSys.log", "SMS_STATE_SYSTEM")?);
    let faults = Arc::new(Faults::default());
    // The site database answers (and has its schema) before anything is served.
    let mirror = match &config.database {
        Some(url) => {
            let code = site.read().code.clone();
            Some(crate::sitedb::Mirror::open(url, &code).await?)
        }
        None => None,
    };
    let mut statesys = {
        let options = service::Options {
            threads: config.statesys_threads,
            checkpoint_every: config.checkpoint_every,
            poll: config.poll_every,
            pause: config.statesys_pause,
            rate: config.statesys_rate,
            sink: mirror.clone().map(|m| m as Arc<dyn crate::statesys::checkpoint::FrameSink>),
            nice: config.background_nice,
        };
        let (site, log, faults, paths) =
            (Arc::clone(&site), Arc::clone(&statesys_log), Arc::clone(&faults), paths.clone());
        tokio::task::spawn_blocking(move || StateSys::start(paths, site, log, clock, faults, options))
            .await
            .map_err(io::Error::other)??
    };
    let summarizer = Arc::new(Summarizer::new(statesys.store(), Arc::clone(&statesys_log)));
    let mirror_thread = match &mirror {
        Some(m) => Some(m.start(crate::sitedb::Sources {
            store: statesys.store(),
            statesys: statesys.counters(),
            site: Arc::clone(&site),
            summarizer: Arc::clone(&summarizer),
            log: Arc::clone(&statesys_log),
        })?),
        None => None,
    };
    let schedule = Schedule::start(
        Arc::clone(&summarizer),
        Arc::clone(&site),
        clock,
        config.summarize_at_start,
        config.background_nice,
    )?;
    let policy_provider = PolicyProvider::start(Arc::clone(&site), config.poll_every)?;

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
    commit_config.compression = config.inbox_compression;
    commit_config.compress_above = config.inbox_compress_above;
    commit_config.commit_delay = config.inbox_commit_delay;
    let relay_log = Arc::new(mp_log("MP_Relay.log", "MP_RelayEndpoint")?);
    commit_config.log = Some(Arc::clone(&relay_log));
    // Co-located, StateSys takes what the relay made durable in memory.
    commit_config.handoff = fdm.is_none().then(|| statesys.handoff());
    let notifier = statesys.notifier();
    let commit = GroupCommit::start(
        commit_config,
        Box::new(move |sealed, complete| match &fdm {
            Some((log, incoming)) => {
                let moved = mp::fdm::dispatch(sealed, incoming, log);
                if let Err(e) = &moved {
                    // The file stays in the outbox; the next start moves it.
                    log.log(Severity::Error, &format!("Cannot move {}: {e}", sealed.display()));
                }
                notifier.sealed(moved.ok(), false);
            }
            None => notifier.sealed(Some(sealed.to_path_buf()), complete),
        }),
    )?;
    let certificates =
        Arc::new(mp::certs::SiteCertificates::new(&config.data_dir, &site.read().code, "SUMSTORM-MP"));
    let shared = Arc::new(Shared {
        site,
        certificates,
        mirror,
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
        store: statesys.store(),
        http: counters::HttpCounters::default(),
        relay: RelayCounters::default(),
        statesys: statesys.counters(),
        relay_log: SampledLog::new(relay_log, Duration::from_secs(1)),
        location_log: SampledLog::new(
            mp_log("MP_Location.log", "MP_LocationManager")?,
            Duration::from_secs(1),
        ),
        framework_log: SampledLog::new(mp_log("MP_Framework.log", "MP_Framework")?, Duration::from_secs(1)),
        registration_log: SampledLog::new(
            mp_log("MP_RegistrationManager.log", "MP_RegistrationManager")?,
            Duration::from_secs(1),
        ),
        policy_log: SampledLog::new(mp_log("MP_Policy.log", "MP_PolicyManager")?, Duration::from_secs(1)),
        ddr_log: SampledLog::new(mp_log("MP_Ddr.log", "MP_DdrEndpoint")?, Duration::from_secs(1)),
        relay_dir,
        started: Instant::now(),
        next_id: AtomicU64::new(1),
        summarizer,
        schedule,
        faults: config.fault_injection.then_some(faults),
        keys: match config.require_signing {
            true => Some(Arc::new(ClientKeys::open(&config.data_dir)?)),
            false => None,
        },
        signing_refused: AtomicU64::new(0),
        client_certificates: tls::SeenCertificates::default(),
        request_memory: Arc::new(Semaphore::new((config.limits.max_request_memory >> 10).max(1))),
    });

    let acceptor = match &config.tls {
        Some(settings) => Some((tls::acceptor(settings)?, settings.client_ca.is_some())),
        None => None,
    };
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(config.limits.max_connections));
    tokio::pin!(shutdown);
    // A store that does not load stops the process (after the same orderly shutdown).
    let mut fatal = statesys.take_fatal();
    let mut failed = None;
    loop {
        tokio::select! {
            why = async { match fatal.as_mut() { Some(f) => f.await, None => std::future::pending().await } } => {
                match why {
                    Ok(why) => { failed = Some(why); break; }
                    Err(_) => fatal = None,
                }
            }
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    // Out of descriptors and the like: keep serving the connections we have.
                    Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue; }
                };
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    shared.http.busy.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(refuse(stream, shared.limits.retry_after_secs));
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                let stream = deadline::WriteDeadline::new(stream, shared.limits.write_timeout);
                let watcher = graceful.watcher();
                match &acceptor {
                    None => {
                        tokio::spawn(async move {
                            serve(stream, shared, peer, tls::Channel::Http, watcher).await;
                            drop(permit);
                        });
                    }
                    Some((acceptor, pki)) => {
                        let (acceptor, pki) = (acceptor.clone(), *pki);
                        tokio::spawn(async move {
                            // A handshake gets as long as a request head.
                            let handshake = tokio::time::timeout(shared.limits.header_timeout, acceptor.accept(stream));
                            if let Ok(Ok(stream)) = handshake.await {
                                let presented = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
                                let client_certificate = presented.is_some();
                                if let Some(cert) = presented {
                                    shared.client_certificates.saw(cert);
                                }
                                let channel = tls::Channel::Https { client_certificate, pki };
                                serve(stream, shared, peer, channel, watcher).await;
                            }
                            drop(permit);
                        });
                    }
                }
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
    // In-flight requests finish (bounded), then the stages wind down in the order data flows:
    // the inbox seals its open segment (StateSys is notified), the summarizer and the Policy
    // Provider stop, StateSys takes what is left and checkpoints.
    let _ = tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await;
    let _ = tokio::task::spawn_blocking(move || {
        shared.commit.shutdown();
        shared.schedule.stop();
        policy_provider.stop();
        statesys.stop();
        // The mirror applies StateSys's last frames, then stops.
        if let Some(m) = &shared.mirror {
            m.stop();
        }
        if let Some(t) = mirror_thread {
            let _ = t.join();
        }
    })
    .await;
    closing.abort();
    let _ = closing.await;
    drop(lock);
    match failed {
        Some(why) => Err(io::Error::other(why)),
        None => Ok(()),
    }
}

/// One connection, HTTP/1.1, within the limits, until it closes or the shutdown ends it.
async fn serve<S>(stream: S, shared: Arc<Shared>, peer: SocketAddr, channel: tls::Channel, watcher: Watcher)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_timeout)
        .max_buf_size(64 * 1024)
        // A client that half-closes after its request still gets its answer.
        .half_close(true)
        .serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| routes::handle(Arc::clone(&shared), peer, channel, req)),
        );
    let _ = watcher.watch(conn).await;
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

#[cfg(test)]
mod tests {
    use super::{served_address, serving_line};

    #[test]
    fn the_address_is_read_only_from_a_whole_line() {
        let line = serving_line(false, "127.0.0.1:36397".parse().unwrap(), std::path::Path::new("/tmp/d"));
        // Every prefix a reader can see while the line is written: no address until the end.
        for cut in 0..line.len() {
            assert_eq!(served_address(&line[..cut]), None, "{:?}", &line[..cut]);
        }
        assert_eq!(served_address(&line), Some("127.0.0.1:36397"));
        let restarted = format!("earlier output\n{line}backend: shutting down\n");
        assert_eq!(served_address(&restarted), Some("127.0.0.1:36397"));
    }
}
