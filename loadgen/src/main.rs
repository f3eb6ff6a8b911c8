//! `loadgen`: see the crate documentation and `loadgen --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use backend::site::file::parse_span;
use clap::{Parser, Subcommand};
use loadgen::profile::Plan;
use loadgen::run::{EXIT_USAGE, Options, run};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about = "Simulated ConfigMgr clients against an MP, measured honestly")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a profile: simulated clients against the embedded backend (or --target), then drain,
    /// summarize, verify and write the results. Exit 0 all good, 1 a threshold failed, 2 bad
    /// arguments or profile, 3 verification failed.
    Run {
        /// The profile (TOML), e.g. profiles/quickstart.toml.
        profile: PathBuf,
        /// An MP to test instead of the embedded backend (http://host:port).
        #[arg(long)]
        target: Option<String>,
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
        /// Run folder (default results/runs/<profile>/<UTC timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run only shard I of N of the population (clients whose index is I modulo N).
        #[arg(long)]
        shard: Option<String>,
        /// Skip the verification against the backend's summaries.
        #[arg(long)]
        no_verify: bool,
    },
}

fn usage(message: &str) -> ExitCode {
    eprintln!("loadgen: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Run { profile, target, clients, duration, time_scale, seed, out, shard, no_verify } =
        cli.command;
    let text = match std::fs::read_to_string(&profile) {
        Ok(t) => t,
        Err(e) => return usage(&format!("{}: {e}", profile.display())),
    };
    let name = profile.file_stem().map_or("profile".into(), |s| s.to_string_lossy().into_owned());
    let mut plan = match Plan::parse(&name, &text) {
        Ok(p) => p,
        Err(e) => return usage(&e.to_string()),
    };
    if let Some(n) = clients {
        if n == 0 {
            return usage("--clients: must be at least 1");
        }
        plan.clients = n;
    }
    if let Some(d) = duration {
        match parse_span(&d) {
            Some(d) => plan.duration = d,
            _ => return usage(&format!("--duration: {d:?} is not a span like \"3h\"")),
        }
    }
    if let Some(x) = time_scale {
        if !(x.is_finite() && x > 0.0) {
            return usage("--time-scale: must be above 0");
        }
        plan.time_scale = x;
    }
    if let Some(s) = seed {
        plan.seed = s;
    }
    let shard = match shard
        .as_deref()
        .map(|s| s.split_once('/').map(|(i, n)| (i.parse::<u64>(), n.parse::<u64>())))
    {
        None => None,
        Some(Some((Ok(i), Ok(n)))) if n > 0 && i < n => Some((i, n)),
        Some(_) => return usage("--shard: write I/N with 0 <= I < N, e.g. 0/4"),
    };
    let opts = Options {
        target,
        out,
        shard,
        verify: !no_verify,
        progress: true,
        history: Some(PathBuf::from("results/history.jsonl")),
        arbiters: None,
    };
    match run(plan, &text, &opts) {
        Ok(outcome) => {
            eprintln!("{}", loadgen::results::console_summary(&outcome.summary));
            eprintln!("results: {}", outcome.dir.display());
            ExitCode::from(outcome.exit)
        }
        Err(e) if e.starts_with("profile:") => usage(&e),
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
