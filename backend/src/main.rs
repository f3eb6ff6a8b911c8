//! `backend serve`: the MP and site server. Thin: parse flags, build the config, run
//! [`backend::server::run`] until SIGINT or SIGTERM. `backend inbox dump FILE`: an inbox file's
//! Reports as the XML their clients sent ([`backend::inbox::dump`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use backend::server::{Config, run};
use backend::site::Site;
use backend::site::file::SiteFile;
use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "backend", version, about = "sumstorm's ConfigMgr management point and site server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve the MP (CCM messaging), the site API and StateSys until SIGINT or SIGTERM.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Inboxes, state, and component logs live here.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Site file (TOML); without it, the default site (PS1, two SUPs, 200 updates).
        #[arg(long)]
        site: Option<PathBuf>,
        /// Site seconds per real second for every product interval.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Token that admin calls (sync, summarize, drain) from non-loopback peers must present in
        /// X-Admin-Token; with a token set, loopback peers must present it too.
        #[arg(long)]
        admin_token: Option<String>,
        /// Largest request body, in bytes (413 past it).
        #[arg(long, default_value_t = 8 << 20)]
        max_body: usize,
        /// Most connections open at once (503 past it).
        #[arg(long, default_value_t = 4096)]
        max_connections: usize,
        /// Inbox files waiting for StateSys past which the relay answers 503.
        #[arg(long, default_value_t = 20_000)]
        high_water_files: usize,
        /// MiB that CCM requests may hold at once, read and decoded (503 past it).
        #[arg(long, default_value_t = 1024)]
        max_request_mib: usize,
        /// Seconds a write to a client may make no progress (a client that does not read its
        /// answers) before its connection is closed.
        #[arg(long, default_value_t = 30.0)]
        write_timeout: f64,
        /// Seconds the relay's 503s ask clients to wait (Retry-After).
        #[arg(long, default_value_t = 5)]
        retry_after: u32,
        /// How often StateSys checkpoints its store, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        checkpoint_ms: u64,
        /// StateSys's pause after a notification finds it idle, in site seconds (the product's 10).
        #[arg(long, default_value_t = 10.0)]
        statesys_pause: f64,
        /// StateSys processing threads (default: one per core).
        #[arg(long)]
        statesys_threads: Option<usize>,
        /// The nice value of the site server's threads (StateSys, its compactor, the
        /// summarizer), so the MP answers first; 0 keeps them at the MP's priority.
        #[arg(long, default_value_t = backend::priority::BACKGROUND_NICE, value_parser = clap::value_parser!(i32).range(0..=19))]
        background_nice: i32,
        /// Act as an MP remote from the site server: relay into mp/outboxes/StateMsg.box and let
        /// MPFDM move files into the site's inbox.
        #[arg(long)]
        remote_mp: bool,
        /// StateSys applies at most this many state messages a second (a site database's pace;
        /// for capacity planning and overload tests). Default: as fast as it can.
        #[arg(long)]
        statesys_rate: Option<u64>,
        /// Serve POST /api/v1/faults, which makes inbox or checkpoint syncs fail on demand
        /// (ENOSPC, EIO): for reliability tests, never in production.
        #[arg(long)]
        fault_injection: bool,
        /// Serve HTTPS with this certificate (PEM, then any intermediates), instead of HTTP.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// PKI mode: client certificates from this CA (PEM) are required on the client paths
        /// (403 without one), except /ccm_system_altauth/request.
        #[arg(long, requires = "tls_cert")]
        client_ca: Option<PathBuf>,
        /// Require signed messages, as a real MP requires of HTTP clients: registrations signed
        /// with their certificate's key, and a valid clientauth hook on policy, relay, DDR,
        /// inventory and status messages (403 otherwise, logged in MP_Framework.log).
        #[arg(long)]
        require_signing: bool,
        /// Keep a PostgreSQL site database current, with views named and shaped as the
        /// product's (`postgres://user:password@host/dbname`); checked at start.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// How the relay stores Reports in its inbox segments: `auto` compresses them with LZ4
        /// (a tenth of the bytes for CPU on the request's thread) only while Reports arrive
        /// faster than `--inbox-compress-above`; `lz4` always, `none` never.
        #[arg(long, value_enum, default_value = "auto")]
        inbox_compression: backend::inbox::adaptive::Compression,
        /// With `auto`: compress while more than this many MB/s (10^6 bytes) of Reports arrive
        /// for two seconds running; stop under two thirds of it. Lower it for a slow disk.
        #[arg(long, default_value_t = 300, value_name = "MB_PER_S")]
        inbox_compress_above: u64,
        /// Microseconds a Report may wait for others to share its inbox commit (one write, one
        /// fdatasync), only while Reports arrive faster than one per commit and other requests
        /// are on their way to the inbox; 0 commits what is queued at once. At most 100,000.
        #[arg(long, default_value_t = 1000, value_name = "MICROS", value_parser = clap::value_parser!(u64).range(0..=100_000))]
        inbox_commit_delay_us: u64,
    },
    /// Read the inbox's files.
    Inbox {
        #[command(subcommand)]
        command: InboxCommand,
    },
    /// Certificates for HTTPS and PKI mode.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Write a test CA, a server certificate and client certificates (PEM, keys unencrypted:
    /// for labs and tests).
    Init {
        /// Where the files go.
        #[arg(long, default_value = "./pki")]
        out: PathBuf,
        /// Names the server certificate holds besides localhost and 127.0.0.1.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Client certificates to make.
        #[arg(long, default_value_t = 1)]
        clients: usize,
    },
}

#[derive(Subcommand)]
enum InboxCommand {
    /// Print every Report in an inbox file (a segment, or a plain .SMX) as the XML its client
    /// sent, one after another; discovery records as XML comments.
    Dump {
        /// The file (e.g. data/inboxes/auth/statesys.box/incoming/<NAME>.SMX, or a .part).
        file: PathBuf,
    },
}

fn dump(file: &std::path::Path) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("backend: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = backend::inbox::dump::dump(&bytes, &mut out);
    let flushed = std::io::Write::flush(&mut out);
    match (result, flushed) {
        (Ok(d), Ok(())) => {
            eprintln!(
                "backend: {}: {} Reports, {} discovery records",
                file.display(),
                d.reports,
                d.discovery
            );
            ExitCode::SUCCESS
        }
        (Err(e), _) => {
            eprintln!("backend: {}: {e}", file.display());
            ExitCode::FAILURE
        }
        (_, Err(e)) => {
            eprintln!("backend: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let Command::Serve {
        listen,
        data_dir,
        site,
        time_scale,
        admin_token,
        max_body,
        max_connections,
        high_water_files,
        checkpoint_ms,
        remote_mp,
        statesys_pause,
        statesys_threads,
        background_nice,
        fault_injection,
        statesys_rate,
        retry_after,
        max_request_mib,
        write_timeout,
        tls_cert,
        tls_key,
        client_ca,
        require_signing,
        database,
        inbox_compression,
        inbox_compress_above,
        inbox_commit_delay_us,
    } = command
    else {
        return match command {
            Command::Inbox { command: InboxCommand::Dump { file } } => dump(&file),
            Command::Pki { command: PkiCommand::Init { out, hosts, clients } } => {
                match backend::pki::init(&out, &hosts, clients.min(100_000)) {
                    Ok(pki) => {
                        eprintln!(
                            "backend: wrote {}, {} and {} client certificates under {}",
                            pki.ca.display(),
                            pki.server_cert.display(),
                            pki.clients.len(),
                            out.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("backend: {}: {e}", out.display());
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Serve { .. } => unreachable!("handled above"),
        };
    };
    if !(write_timeout.is_finite() && write_timeout > 0.0 && write_timeout <= 3600.0) {
        eprintln!("backend: --write-timeout must be a number of seconds from 0 to 3600");
        return ExitCode::from(2);
    }
    if !(time_scale.is_finite() && time_scale > 0.0) {
        eprintln!("backend: --time-scale must be a positive number");
        return ExitCode::from(2);
    }
    let site = match site {
        None => Site::default_site(),
        Some(path) => match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| SiteFile::parse(&text).and_then(SiteFile::into_site).map_err(|e| e.to_string()))
        {
            Ok(site) => site,
            Err(e) => {
                eprintln!("backend: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let mut config = Config::new(data_dir);
    config.site = site;
    config.time_scale = time_scale;
    config.admin_token = admin_token;
    config.limits.max_body = max_body;
    config.limits.max_connections = max_connections.max(1);
    config.limits.high_water_files = high_water_files;
    config.limits.retry_after_secs = retry_after.clamp(1, 3600);
    config.limits.write_timeout = Duration::from_secs_f64(write_timeout);
    config.limits.max_request_memory = max_request_mib.clamp(16, 1 << 20) << 20;
    config.checkpoint_every = Duration::from_millis(checkpoint_ms);
    config.remote_mp = remote_mp;
    config.fault_injection = fault_injection;
    config.require_signing = require_signing;
    config.database = database;
    config.inbox_compression = inbox_compression;
    config.inbox_compress_above = inbox_compress_above.saturating_mul(1_000_000);
    config.inbox_commit_delay = Duration::from_micros(inbox_commit_delay_us);
    config.statesys_rate = statesys_rate;
    config.statesys_pause = Duration::from_secs_f64(statesys_pause.clamp(0.0, 3600.0));
    if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
        config.tls = Some(backend::server::tls::TlsSettings { cert, key, client_ca });
    }
    config.background_nice = background_nice;
    if let Some(n) = statesys_threads {
        config.statesys_threads = n.clamp(1, 64);
    }
    // Fresh heap pages a page at a time, not 2 MiB at once: mimalloc advises transparent huge
    // pages on its arenas, and under a relay load the kernel then zeroed a whole huge page on the
    // request path each time freed heap was touched again (18 % of the backend's CPU at 80 % of a
    // core; 1 % with them off, and tail latency lower: results/bench/session16-2026-12-04.md).
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("backend: transparent huge pages stay on (prctl refused: {e})");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("backend: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One process owns a data directory: say so before taking a port (`run` holds the lock).
    if let Err(e) = backend::server::lock_data_dir(&config.data_dir) {
        eprintln!("backend: {e}");
        return ExitCode::FAILURE;
    }
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        // In one write: see `serving_line`.
        let line =
            backend::server::serving_line(config.tls.is_some(), listener.local_addr()?, &config.data_dir);
        std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes())?;
        run(listener, config, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backend: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    eprintln!("backend: shutting down");
}
