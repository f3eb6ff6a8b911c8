//! `loadgen`: see the crate documentation and `loadgen --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadgen::profile::Plan;
use loadgen::run::{EXIT_USAGE, Options, RunError, run};
use protocol::units::parse_span;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about = "Simulated ConfigMgr clients against an MP, measured honestly")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Trust this CA (PEM) for an https:// --target.
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// Present this client certificate (PEM) to an https:// --target (an MP in PKI mode); with
    /// --client-key and --ca. One per process: every connection presents it.
    #[arg(long, global = true, requires_all = ["client_key", "ca"])]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// A certificate per simulated client, from this folder of client-<i>.pem and
    /// client-<i>-key.pem (`backend pki init --clients N` writes them): client c presents
    /// certificate c mod N, on connections of its own certificate. With --ca.
    #[arg(long, global = true, requires = "ca", conflicts_with = "client_cert")]
    client_certs: Option<PathBuf>,
}

/// What a fleet's shards and its collector must agree on, when not the profile's.
#[derive(Debug, clap::Args)]
struct Overrides {
    /// Override the profile's population.clients.
    #[arg(long)]
    clients: Option<u64>,
    /// Override the profile's run.duration (simulated, e.g. "3h").
    #[arg(long)]
    duration: Option<String>,
    /// Override the profile's run.time_scale (simulated seconds per real second).
    #[arg(long)]
    time_scale: Option<f64>,
    /// Override the profile's population.seed.
    #[arg(long)]
    seed: Option<u64>,
}

impl Overrides {
    /// Applies the overrides to `plan`; a bad one is a usage error.
    fn apply(&self, plan: &mut Plan) -> Result<(), ExitCode> {
        if let Some(n) = self.clients {
            if n == 0 {
                return Err(usage("--clients: must be at least 1"));
            }
            plan.clients = n;
        }
        if let Some(d) = &self.duration {
            match parse_span(d) {
                Some(d) => plan.duration = d,
                _ => return Err(usage(format!("--duration: {d:?} is not a span like \"3h\""))),
            }
        }
        if let Some(x) = self.time_scale {
            if !(x.is_finite() && x > 0.0) {
                return Err(usage("--time-scale: must be above 0"));
            }
            plan.time_scale = x;
        }
        if let Some(s) = self.seed {
            plan.seed = s;
        }
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a profile: simulated clients against the embedded backend (or --target), then drain,
    /// summarize, verify and write the results. Exit 0 all good, 1 a threshold failed, 2 bad
    /// arguments or profile, 3 verification failed, 4 the generator fell behind its schedule
    /// past the profile's bound (run.max_lateness_p99_ms), so the figures describe it.
    Run {
        /// The profile (TOML), e.g. profiles/quickstart.toml.
        profile: PathBuf,
        /// An MP to test instead of the embedded backend (http://host:port).
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        overrides: Overrides,
        /// Run folder (default results/runs/<profile>/<UTC timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run only shard I of N of the population (clients whose index is I modulo N).
        #[arg(long)]
        shard: Option<String>,
        /// Skip the verification against the backend's summaries.
        #[arg(long)]
        no_verify: bool,
        /// Exit as the thresholds say even when the generator fell behind its schedule.
        #[arg(long)]
        allow_late: bool,
        /// A PostgreSQL site database (`postgres://user@host/db`): the embedded backend keeps
        /// it current; with --target, the target's database (for --verify-sql).
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// Verification also compares the site database's views with the clients' truth.
        #[arg(long, requires = "database")]
        verify_sql: bool,
        /// A shard of a fleet: report to this collector (`loadgen collect`, http://host:port),
        /// which starts the shards together, judges the fleet and verifies at the end. With
        /// --shard and --target; the token from --token-file or SUMSTORM_COLLECTOR_TOKEN. Exit 0
        /// once the collector has this shard's figures (the collector's exit is the verdict).
        #[arg(long, requires_all = ["shard", "target"], conflicts_with = "verify_sql")]
        collector: Option<String>,
        /// The fleet's token (its first line).
        #[arg(long, requires = "collector")]
        token_file: Option<PathBuf>,
    },
    /// The live verdict of a fleet of shards (`loadgen run --shard I/N --collector URL`): waits
    /// for every shard, starts them together, adds their interval histograms as they come (one
    /// progress line, windowed thresholds and aborts across the fleet; an abort stops every
    /// shard), fires the profile's syncs, and at the end drains, summarizes and verifies --target
    /// with every shard's truth and writes one run's result files. Exit as `run`, or 5 when a
    /// shard never joined or never finished.
    Collect {
        /// The profile the shards run (or --profile, as the contract writes it).
        #[arg(required_unless_present = "profile_flag", conflicts_with = "profile_flag")]
        profile: Option<PathBuf>,
        #[arg(long = "profile", value_name = "PROFILE")]
        profile_flag: Option<PathBuf>,
        #[arg(long)]
        shards: u64,
        #[arg(long, default_value = "0.0.0.0:8099")]
        listen: std::net::SocketAddr,
        /// Run folder (default results/runs/<profile>/<UTC timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The MP the fleet drives.
        #[arg(long)]
        target: String,
        /// The fleet's token (its first line; default SUMSTORM_COLLECTOR_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// How long the shards have to join.
        #[arg(long, default_value = "10m")]
        join_within: String,
        /// How long after the run's end the shards have to finish.
        #[arg(long, default_value = "5m")]
        grace: String,
        /// Stay up this long after writing the results (on Kubernetes, so they can be copied
        /// out of the pod), then exit with the verdict.
        #[arg(long)]
        linger: Option<String>,
        #[arg(long)]
        no_verify: bool,
        #[arg(long)]
        allow_late: bool,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Compare a run with a baseline (a baseline file holding several runs, or a run folder):
    /// key figures with the change and a verdict each; exit 1 on a regression beyond the
    /// tolerance and outside the baseline's own spread.
    Compare {
        run: PathBuf,
        baseline: PathBuf,
        /// Tolerance beyond the baseline's spread, e.g. 10%.
        #[arg(long, default_value = "10%")]
        max_regression: String,
        /// text (a table on stderr), markdown (GitHub-flavoured, with a Mermaid chart, on
        /// stdout, for $GITHUB_STEP_SUMMARY or a pull request comment) or junit (XML on stdout:
        /// each threshold, the verification and each compared figure a test case).
        #[arg(long, default_value = "text")]
        format: loadgen::compare::Format,
    },
    /// Key figures across commits from the run history: trends.html (self-contained) and
    /// trends.json, with the commits where a figure changed (E-divisive means with a permutation
    /// test), compared within one profile, machine description and target kind only.
    Trends {
        /// The history, a JSON line per run.
        #[arg(long, default_value = "results/history.jsonl")]
        history: PathBuf,
        /// Where trends.html and trends.json go.
        #[arg(long, default_value = "results/trends")]
        out: PathBuf,
        /// Link each change to its commit: a URL with {commit} in it, e.g.
        /// https://github.com/OWNER/REPO/commit/{commit} (default: the page's commit list).
        #[arg(long)]
        commit_url: Option<String>,
        /// Smallest change of a figure's median worth reporting, e.g. 5%.
        #[arg(long, default_value = "5%")]
        min_change: String,
    },
    /// The largest load at which the target meets every SLO (the profile's thresholds, error
    /// rate, the site keeping up; a trial where the generator fell behind is void): trials are
    /// runs of the profile, short ones bisecting the bounds, then full-length ones confirming each
    /// goal (no failures; exceed ratio 0.5). Writes search.json, search-events.jsonl and
    /// report.html. Exit 0 answered, 2 bounds that cannot be searched or a bad profile.
    Search {
        profile: PathBuf,
        /// clients (the population, living the profile's client life) or rate (the open model's
        /// Reports per second).
        #[arg(long)]
        over: loadgen::search::Over,
        /// Smallest load to try (default: an eighth of the profile's).
        #[arg(long)]
        lower: Option<f64>,
        /// Largest load to try (default: twice the profile's).
        #[arg(long)]
        upper: Option<f64>,
        /// Stop when (upper - lower) / upper is within this.
        #[arg(long, default_value = "2%")]
        goal_width: String,
        /// Real duration of the short trials ("0s": none).
        #[arg(long, default_value = "20s")]
        trial: String,
        /// Real duration of the full-length trials.
        #[arg(long, default_value = "60s")]
        r#final: String,
        /// Most full-length trials of one load (no-failures needs this many passes to call a load
        /// a lower bound; exceed-ratio-0.5 needs more than half of them to fail to call it upper).
        #[arg(long, default_value_t = 2)]
        repeats: usize,
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        target: Option<String>,
        /// Search folder (default results/search/<profile>/<UTC timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Skip the short trials at 10, 50 and 90 % of the answer (the report's latency spectra).
        #[arg(long)]
        no_spectra: bool,
    },
    /// Write report.html (self-contained, inline SVG plots) for a run folder.
    Report { run: PathBuf },
    /// Merge sharded runs (--shard I/N) into one: histograms added, counts summed, thresholds
    /// evaluated again.
    Merge {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Crash safety: SIGKILL a `backend` child at random moments (and while it fsyncs,
    /// checkpoints, applies batches, summarizes) under a relay load, restart it each time, then
    /// verify every acknowledged state message was applied exactly once. Exit 0 exact, 2 bad
    /// arguments or the backend would not run, 3 verification failed.
    Crash {
        /// Kill-restart cycles.
        #[arg(long, default_value_t = 100)]
        cycles: usize,
        /// The backend binary (default: `backend` beside this loadgen).
        #[arg(long)]
        backend: Option<PathBuf>,
        /// Concurrent clients, each with one Report in flight.
        #[arg(long, default_value_t = 2000)]
        clients: usize,
        /// State messages per Report.
        #[arg(long, default_value_t = 20)]
        messages: usize,
        /// Requests in flight at most.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// "ccm" (the faithful envelope) or "plain".
        #[arg(long, default_value = "ccm")]
        wire: String,
        /// Longest random wait between a restart and the next kill, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        max_gap_ms: u64,
        /// The backend's checkpoint interval, in milliseconds.
        #[arg(long, default_value_t = 250)]
        checkpoint_ms: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Result folder (default results/runs/crash/<UTC timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Keep the backend's data folder even when verification passes.
        #[arg(long)]
        keep_data: bool,
    },
    /// A null MP for measuring the generator alone: answers every request a run sends correctly
    /// with the least work (relayed Reports: NoReply, unread) and keeps nothing. Run against it
    /// with --no-verify.
    Sink {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        /// Runtime threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Take at most this many relayed Reports a second and answer the rest 503: an MP whose
        /// capacity is known by construction.
        #[arg(long)]
        capacity: Option<f64>,
    },
    /// Add a run to results/baselines/<profile>.json (keeping the newest --keep runs).
    Promote {
        run: PathBuf,
        /// The baseline file (default results/baselines/<profile>.json).
        #[arg(long)]
        baseline: Option<PathBuf>,
        #[arg(long, default_value_t = 5)]
        keep: usize,
    },
    /// Kubernetes manifests that run PROFILE as N shards (an Indexed Job: pod I runs `loadgen
    /// run --shard I/N` against --target, its run folder on a shared volume), and a merge Job that
    /// adds them into one result. Printed, or written to --out with a kustomization.yaml.
    K8s {
        profile: PathBuf,
        #[arg(long)]
        shards: u64,
        /// The image with loadgen as its entrypoint (the repository's Dockerfile).
        #[arg(long)]
        image: String,
        /// The MP every shard drives.
        #[arg(long)]
        target: String,
        #[arg(long)]
        namespace: Option<String>,
        /// The Job's name (default: the profile's, as a DNS label).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A profile file's text and its plan (named after the file's stem); a usage error (exit 2)
/// naming the file or the key when it cannot be read or is not a valid profile.
fn load_profile(path: &std::path::Path) -> Result<(String, Plan), ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let name = path.file_stem().map_or("profile".into(), |s| s.to_string_lossy().into_owned());
    let plan = Plan::parse(&name, &text).map_err(usage)?;
    Ok((text, plan))
}

/// "10%" (or "10") as 0.10; `None` unless a number at least 0.
fn percent(text: &str) -> Option<f64> {
    text.trim()
        .trim_end_matches('%')
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(|t| t / 100.0)
}

/// A command's output proper (Markdown, XML), on stdout; the console's tables go to stderr.
#[allow(clippy::print_stdout, reason = "this is the command's output, meant for a pipe or a file")]
fn output(text: &str) {
    print!("{text}");
}

/// Bad arguments, a bad profile or input file: the message (with its causes), exit 2.
fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("loadgen: {message:#}");
    ExitCode::from(EXIT_USAGE)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(ca) = &cli.ca {
        use loadgen::transport::ClientCertificates;
        let client = match (&cli.client_cert, &cli.client_key, &cli.client_certs) {
            (Some(cert), Some(key), _) => ClientCertificates::One(cert, key),
            (_, _, Some(dir)) => ClientCertificates::PerClient(dir),
            _ => ClientCertificates::None,
        };
        if let Err(e) = loadgen::transport::use_tls(ca, client) {
            return usage(e);
        }
    }
    match cli.command {
        Command::Run {
            profile,
            target,
            overrides,
            out,
            shard,
            no_verify,
            allow_late,
            database,
            verify_sql,
            collector,
            token_file,
        } => run_command(
            profile,
            target,
            &overrides,
            out,
            shard,
            (no_verify, allow_late),
            (database, verify_sql),
            collector.map(|c| (c, token_file)),
        ),
        Command::Collect {
            profile,
            profile_flag,
            shards,
            listen,
            out,
            target,
            token_file,
            join_within,
            grace,
            linger,
            no_verify,
            allow_late,
            overrides,
        } => {
            let Some(profile) = profile.or(profile_flag) else { return usage("collect: which profile?") };
            let (text, mut plan) = match load_profile(&profile) {
                Ok(loaded) => loaded,
                Err(exit) => return exit,
            };
            if let Err(exit) = overrides.apply(&mut plan) {
                return exit;
            }
            if !(1..=1000).contains(&shards) {
                return usage("--shards: 1 to 1000");
            }
            let linger = match linger.as_deref().map(parse_span) {
                None => Some(Duration::ZERO),
                Some(span) => span,
            };
            let (Some(join_within), Some(grace), Some(linger)) =
                (parse_span(&join_within), parse_span(&grace), linger)
            else {
                return usage("--join-within, --grace, --linger: spans such as \"10m\" or \"30s\"");
            };
            let token = match loadgen::collect::read_token(token_file.as_deref()) {
                Ok(t) => t,
                Err(e) => return usage(e),
            };
            let cfg = loadgen::collect::Config {
                shards,
                listen,
                out: out.unwrap_or_else(|| {
                    PathBuf::from("results/runs").join(&plan.name).join(loadgen::run::utc_stamp())
                }),
                target,
                token,
                join_within,
                grace,
                verify: !no_verify,
                allow_late,
                progress: true,
            };
            match loadgen::collect::collect(plan, &text, &cfg, None) {
                Ok(c) => {
                    eprintln!("{}", loadgen::results::console_summary(&c.summary));
                    eprintln!("results: {} (report.html inside)", cfg.out.display());
                    if !linger.is_zero() {
                        eprintln!("loadgen collect: exit {} in {linger:?}", c.exit);
                        std::thread::sleep(linger);
                    }
                    ExitCode::from(c.exit)
                }
                Err(e) => {
                    eprintln!("loadgen: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Compare { run, baseline, max_regression, format } => {
            let Some(tolerance) = percent(&max_regression) else {
                return usage("--max-regression: write a percentage such as 10%");
            };
            let summary = match std::fs::read(run.join("summary.json")) {
                Ok(b) => serde_json::from_slice::<serde_json::Value>(&b).unwrap_or_default(),
                Err(e) => return usage(format!("{}: {e}", run.display())),
            };
            let (_, baseline_runs) = match loadgen::compare::load_baseline(&baseline) {
                Ok(b) => b,
                Err(e) => return usage(e),
            };
            let rows = loadgen::compare::compare(
                &loadgen::compare::key_figures(&summary),
                &baseline_runs,
                tolerance,
            );
            let regressions =
                rows.iter().filter(|r| r.verdict == loadgen::compare::Verdict::Regression).count();
            match format {
                loadgen::compare::Format::Markdown => {
                    output(&loadgen::compare::markdown(&summary, &rows, baseline_runs.len(), tolerance));
                    return ExitCode::from(u8::from(regressions > 0));
                }
                loadgen::compare::Format::Junit => {
                    output(&loadgen::compare::junit(&summary, &rows, baseline_runs.len(), tolerance));
                    return ExitCode::from(u8::from(regressions > 0));
                }
                loadgen::compare::Format::Text => {}
            }
            eprint!("{}", loadgen::compare::table(&rows, baseline_runs.len(), tolerance));
            eprintln!(
                "verdict: {}",
                if regressions == 0 {
                    "no regression".to_owned()
                } else {
                    format!("{regressions} regression(s)")
                }
            );
            ExitCode::from(u8::from(regressions > 0))
        }
        Command::Crash {
            cycles,
            backend,
            clients,
            messages,
            connections,
            wire,
            max_gap_ms,
            checkpoint_ms,
            seed,
            out,
            keep_data,
        } => {
            let wire = match wire.as_str() {
                "ccm" => loadgen::profile::Wire::Ccm,
                "plain" => loadgen::profile::Wire::Plain,
                other => return usage(format!("--wire: {other:?} is neither \"ccm\" nor \"plain\"")),
            };
            let backend = backend.unwrap_or_else(|| {
                let me = std::env::current_exe().unwrap_or_default();
                me.with_file_name(format!("backend{}", std::env::consts::EXE_SUFFIX))
            });
            let opts = loadgen::crash::Options {
                backend,
                cycles,
                clients: clients.max(1),
                messages: messages.clamp(1, 10_000),
                connections: connections.max(1),
                seed,
                wire,
                max_gap: std::time::Duration::from_millis(max_gap_ms),
                checkpoint_ms,
                out: out.unwrap_or_else(|| {
                    PathBuf::from(format!("results/runs/crash/{}", loadgen::run::utc_stamp()))
                }),
                keep_data,
            };
            match loadgen::crash::run(&opts) {
                Ok(outcome) => {
                    eprint!("{}", loadgen::crash::summary(&outcome));
                    eprintln!("results: {}", opts.out.join("crash.json").display());
                    ExitCode::from(if outcome.exact { 0 } else { loadgen::run::EXIT_VERIFY })
                }
                Err(e) => usage(e),
            }
        }
        Command::Trends { history, out, commit_url, min_change } => {
            let Some(min_change) = percent(&min_change) else {
                return usage("--min-change: write a percentage such as 5%");
            };
            if commit_url.as_deref().is_some_and(|u| !u.contains("{commit}")) {
                return usage("--commit-url: the URL needs {commit} where the commit goes");
            }
            let detect = loadgen::trends::Detect { min_change, ..loadgen::trends::Detect::default() };
            match loadgen::trends::write(&history, &out, commit_url.as_deref(), &detect) {
                Ok(w) => {
                    for warning in &w.warnings {
                        eprintln!("loadgen: {}: {warning}", history.display());
                    }
                    for change in &w.changes {
                        eprintln!("{change}");
                    }
                    eprintln!(
                        "{} runs in {} group(s), {} change(s): {} and {}",
                        w.runs,
                        w.groups,
                        w.changes.len(),
                        w.html.display(),
                        w.json.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => usage(e),
            }
        }
        Command::Search {
            profile,
            over,
            lower,
            upper,
            goal_width,
            trial,
            r#final,
            repeats,
            seed,
            target,
            out,
            no_spectra,
        } => {
            let (text, mut plan) = match load_profile(&profile) {
                Ok(loaded) => loaded,
                Err(exit) => return exit,
            };
            let name = plan.name.clone();
            if let Some(s) = seed {
                plan.seed = s;
            }
            let Some(goal_width) = percent(&goal_width).filter(|w| *w > 0.0 && *w < 1.0) else {
                return usage("--goal-width: a percentage above 0 and below 100, such as 2%");
            };
            let (Some(short), Some(full)) = (parse_span(&trial), parse_span(&r#final)) else {
                return usage("--trial, --final: spans such as \"20s\" or \"2m\"");
            };
            if full.is_zero() {
                return usage("--final: full-length trials need a duration");
            }
            let load = match (over, plan.open_model) {
                (loadgen::search::Over::Rate, Some((loadgen::profile::Arrivals::Open { rate }, _))) => rate,
                _ => plan.clients as f64,
            };
            let cfg = loadgen::search::Config {
                over,
                lower: lower.unwrap_or(load / 8.0),
                upper: upper.unwrap_or(load * 2.0),
                goal_width,
                short,
                full,
                repeats: repeats.clamp(1, 20),
                target,
                out: out.unwrap_or_else(|| {
                    PathBuf::from(format!("results/search/{name}/{}", loadgen::run::utc_stamp()))
                }),
                progress: true,
                arbiters: None,
                spectra: !no_spectra,
            };
            match loadgen::search::search(&plan, &text, &cfg) {
                Ok(found) => {
                    eprint!("{}", loadgen::search::console(&found, over));
                    eprintln!("results: {} and {}", found.json.display(), found.html.display());
                    ExitCode::SUCCESS
                }
                Err(e @ loadgen::search::SearchError::Unsearchable(_)) => {
                    eprintln!("results so far: {}", cfg.out.join("search.json").display());
                    usage(e)
                }
                Err(e) => {
                    eprintln!("loadgen: {e:#}");
                    eprintln!("results so far: {}", cfg.out.join("search.json").display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Report { run } => match loadgen::report::write(&run) {
            Ok(path) => {
                eprintln!("{}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => usage(e),
        },
        Command::K8s { profile, shards, image, target, namespace, name, out } => {
            let (text, plan) = match load_profile(&profile) {
                Ok(p) => p,
                Err(code) => return code,
            };
            if !(1..=1000).contains(&shards) {
                return usage("--shards: 1 to 1000");
            }
            let name = name
                .unwrap_or_else(|| plan.name.clone())
                .to_ascii_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
            if name.is_empty() || name.len() > 52 || name.starts_with('-') || name.ends_with('-') {
                return usage(format!("--name: {name:?} is not a DNS label of at most 52 characters"));
            }
            let fleet = loadgen::k8s::Fleet {
                name,
                namespace: namespace.clone(),
                image,
                shards,
                signing: loadgen::run::signs(&plan, true),
                target,
            };
            let manifests = loadgen::k8s::manifests(&plan, &text, &fleet, &loadgen::k8s::new_token());
            match out {
                None => {
                    output(&loadgen::k8s::render_all(&manifests));
                    ExitCode::SUCCESS
                }
                Some(dir) => {
                    let write = || -> std::io::Result<()> {
                        std::fs::create_dir_all(&dir)?;
                        for m in &manifests {
                            std::fs::write(dir.join(m.file), loadgen::k8s::render(m))?;
                        }
                        std::fs::write(
                            dir.join("kustomization.yaml"),
                            loadgen::k8s::kustomization(&manifests, namespace.as_deref()),
                        )
                    };
                    match write() {
                        Ok(()) => {
                            eprintln!(
                                "manifests: {} (kubectl apply -k; the collector Job's exit is the verdict)",
                                dir.display()
                            );
                            ExitCode::SUCCESS
                        }
                        Err(e) => usage(format!("{}: {e}", dir.display())),
                    }
                }
            }
        }
        Command::Merge { runs, out } => match loadgen::merge::merge(&runs, &out) {
            Ok((summary, exit)) => {
                let _ = loadgen::report::write(&out);
                eprintln!("{}", loadgen::results::console_summary(&summary));
                eprintln!("merged: {}", out.display());
                ExitCode::from(exit)
            }
            Err(e) => usage(e),
        },
        Command::Sink { listen, threads, capacity } => {
            match loadgen::sink::serve(listen, threads, capacity) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("loadgen: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Promote { run, baseline, keep } => {
            let name = std::fs::read(run.join("summary.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|s| s["profile"]["name"].as_str().map(str::to_owned));
            let Some(name) = name else { return usage(format!("{}: no summary.json", run.display())) };
            let path = baseline.unwrap_or_else(|| PathBuf::from(format!("results/baselines/{name}.json")));
            match loadgen::compare::promote(&run, &path, keep) {
                Ok(n) => {
                    eprintln!("{}: {n} runs", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => usage(e),
            }
        }
    }
}

fn run_command(
    profile: PathBuf,
    target: Option<String>,
    overrides: &Overrides,
    out: Option<PathBuf>,
    shard: Option<String>,
    (no_verify, allow_late): (bool, bool),
    (database, verify_sql): (Option<String>, bool),
    collector: Option<(String, Option<PathBuf>)>,
) -> ExitCode {
    if verify_sql && no_verify {
        return usage("--verify-sql is part of the verification: drop --no-verify");
    }
    let (text, mut plan) = match load_profile(&profile) {
        Ok(loaded) => loaded,
        Err(exit) => return exit,
    };
    if let Err(exit) = overrides.apply(&mut plan) {
        return exit;
    }
    let shard = match shard
        .as_deref()
        .map(|s| s.split_once('/').map(|(i, n)| (i.parse::<u64>(), n.parse::<u64>())))
    {
        None => None,
        Some(Some((Ok(i), Ok(n)))) if n > 0 && i < n => Some((i, n)),
        Some(_) => return usage("--shard: write I/N with 0 <= I < N, e.g. 0/4"),
    };
    let collector = match collector {
        None => None,
        Some((url, token_file)) => match loadgen::collect::read_token(token_file.as_deref()) {
            Ok(token) => Some(loadgen::collect::Uplink { url, token, patience: Duration::from_secs(600) }),
            Err(e) => return usage(e),
        },
    };
    // A fleet's shard: the collector settles, verifies and keeps the history.
    let fleet = collector.is_some();
    let opts = Options {
        target,
        out,
        shard,
        verify: !no_verify && !fleet,
        progress: true,
        history: (!fleet).then(|| PathBuf::from("results/history.jsonl")),
        arbiters: None,
        allow_late,
        settle: !fleet,
        database,
        verify_sql,
        collector,
    };
    match run(plan, &text, &opts) {
        Ok(outcome) => {
            eprintln!("{}", loadgen::results::console_summary(&outcome.summary));
            eprintln!("results: {} (report.html inside)", outcome.dir.display());
            if fleet {
                eprintln!("loadgen: the collector has this shard's figures; the fleet's verdict is its exit");
            }
            ExitCode::from(outcome.exit)
        }
        // A --target that is not an MP with the site API: a bad argument.
        Err(e @ RunError::Target { .. }) => usage(e),
        Err(RunError::Failed(e)) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
