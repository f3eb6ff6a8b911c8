//! `loadgen search`: the largest load (clients, or an open model's Reports a second) at which the
//! target meets every SLO, found with trials that are real runs of the profile.
//!
//! The method follows RFC 9971 (MLRsearch) where it fits our domain:
//! - **Trials and SLOs.** A trial is `loadgen run` at a candidate load for a set real duration,
//!   on a fresh embedded backend (or against `--target`, with fresh client identities and the
//!   target drained between trials). It passes when every SLO holds: each of the profile's
//!   thresholds, an error rate under 1 % (unless a threshold names it), and the site keeping up
//!   (over the trial's last half the backlog of state messages accepted by the MP and not yet
//!   applied by StateSys grows by at most 1 % of the acceptance rate: the least-squares slope of
//!   the per-second samples less two standard errors; our backend's counters, so n/a against
//!   other targets). A trial in which
//!   the generator fell behind its schedule past the profile's bound is **void**: it says nothing
//!   of the target, and a void load caps the search as the generator's limit, never the target's.
//! - **Goals.** Two, named in the output: `no-failures` (exceed ratio 0: one failing trial of a
//!   load makes it an upper bound) and `exceed-ratio-0.5` (RFC 9971's recommendation: a load is an
//!   upper bound when more than half of its trials fail). A load is classified for a goal once its
//!   trials decide it, `repeats` trials at most.
//! - **Short trials first.** A bisection (geometric midpoints) with one short trial per load
//!   narrows the bracket from the bounds to the goal width; then, for each goal, full-length trials
//!   confirm its lower and upper bound (moving them when a full-length trial disagrees) and
//!   narrow again until the relative width `(upper - lower) / upper` is within the goal width.
//!   The looser goal starts from the stricter one's bracket.
//!
//! Files: `search.json` (every trial with each SLO's figure and verdict, the bracket after each
//! trial, the answer per goal with its precision; rewritten after every trial, so an interrupted
//! search keeps what it finished), `search-events.jsonl` (a line per trial as it ends),
//! `trials/<n>-<load>/` (each trial's run folder; of the embedded backend's data, only its logs
//! are kept) and `report.html`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::profile::{Arrivals, Plan};
use crate::report::{chart, esc, hgrm_points};
use crate::run::{Options, RunError, run};

/// What the search varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// The population (`population.clients`), living the profile's client life.
    Clients,
    /// The open model's rate (Reports per second).
    Rate,
}

impl std::str::FromStr for Over {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "clients" => Ok(Over::Clients),
            "rate" => Ok(Over::Rate),
            other => Err(format!("{other:?}: search over clients or rate")),
        }
    }
}

impl Over {
    fn name(self) -> &'static str {
        match self {
            Over::Clients => "clients",
            Over::Rate => "rate",
        }
    }
}

/// The search's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub over: Over,
    pub lower: f64,
    pub upper: f64,
    /// Relative width at which a goal's bracket is narrow enough (0.02 = 2 %).
    pub goal_width: f64,
    /// Real duration of the short trials and of the full-length ones.
    pub short: Duration,
    pub full: Duration,
    /// Most trials of one load at full length.
    pub repeats: usize,
    pub target: Option<String>,
    pub out: PathBuf,
    pub progress: bool,
    /// Arbiters per trial (default: one per core).
    pub arbiters: Option<usize>,
    /// Also run short trials at 10, 50 and 90 % of the answer for the report's latency spectra.
    pub spectra: bool,
}

/// A search goal: the share of a load's trials that may fail while it still counts as met.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goal {
    pub name: &'static str,
    pub exceed_ratio: f64,
}

/// The goals every search reports.
pub const GOALS: [Goal; 2] =
    [Goal { name: "no-failures", exceed_ratio: 0.0 }, Goal { name: "exceed-ratio-0.5", exceed_ratio: 0.5 }];

/// A trial's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// The generator fell behind: nothing is known of the target at this load.
    Void,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Void => "void",
        }
    }
}

/// One trial.
#[derive(Debug, Clone)]
pub struct Trial {
    pub load: f64,
    pub phase: &'static str,
    pub verdict: Verdict,
    /// Each SLO: `{ "slo", "figure", "condition", "verdict" }`.
    pub slos: Vec<Value>,
    pub dir: PathBuf,
    /// When it started and how long it took (seconds from the search's start).
    pub started: f64,
    pub wall: f64,
}

/// How a goal classifies a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Lower,
    Upper,
    Void,
}

/// A goal's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Bracket {
    pub goal: Goal,
    /// The largest load classified as meeting the goal, the smallest classified as not.
    pub lower: f64,
    pub upper: f64,
    /// The upper bound is where the generator fell behind, not where the target failed.
    pub generator_bound: bool,
    /// Even the search's upper bound met the goal: the answer is "at least `lower`".
    pub at_least: bool,
}

/// Why a search could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Bounds that cannot be searched (exit 2).
    #[error("{0}")]
    Unsearchable(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

struct Search<'a> {
    plan: &'a Plan,
    text: &'a str,
    cfg: &'a Config,
    trials: Vec<Trial>,
    /// After each trial: the short bracket or each goal's.
    brackets: Vec<Value>,
    started: Instant,
    events: std::fs::File,
}

/// Relative width of a bracket.
fn width(lower: f64, upper: f64) -> f64 {
    if upper <= 0.0 { 0.0 } else { (upper - lower) / upper }
}

impl Search<'_> {
    fn round(&self, load: f64) -> f64 {
        match self.cfg.over {
            Over::Clients => load.round().max(1.0),
            Over::Rate => (load * 10.0).round() / 10.0,
        }
    }

    /// Full-length trials are `full`; the others short (full when there are no short trials).
    fn duration(&self, phase: &str) -> Duration {
        if phase == "full" || self.cfg.short.is_zero() { self.cfg.full } else { self.cfg.short }
    }

    /// Runs one trial at `load`.
    fn trial(&mut self, load: f64, phase: &'static str) -> Result<Verdict, SearchError> {
        let n = self.trials.len();
        let mut plan = self.plan.clone();
        match self.cfg.over {
            Over::Clients => plan.clients = load as u64,
            Over::Rate => {
                if let Some((Arrivals::Open { rate }, _)) = &mut plan.open_model {
                    *rate = load;
                }
            }
        }
        plan.duration = self.duration(phase).mul_f64(plan.time_scale);
        if self.cfg.target.is_some() {
            // Fresh client identities against a target that keeps what it was sent.
            plan.seed = plan.seed.wrapping_add(n as u64 + 1);
        }
        let dir = self.cfg.out.join("trials").join(format!("{n:03}-{load}"));
        let opts = Options {
            target: self.cfg.target.clone(),
            out: Some(dir.clone()),
            verify: false,
            arbiters: self.cfg.arbiters,
            // Lateness makes a trial void here; the run itself need not say so by its exit.
            allow_late: true,
            // A target is drained before the next trial; an embedded backend is thrown away.
            settle: self.cfg.target.is_some(),
            ..Options::default()
        };
        let started = self.started.elapsed().as_secs_f64();
        let outcome = match run(plan, self.text, &opts) {
            Ok(o) => o,
            Err(RunError::Target { base, why }) => {
                return Err(SearchError::Unsearchable(format!("{base} does not answer as an MP ({why:#})")));
            }
            Err(RunError::Failed(e)) => {
                return Err(SearchError::Failed(e.context(format!("trial {n} at {load}"))));
            }
        };
        if self.cfg.target.is_none() {
            // The embedded backend's store and inboxes are of no further use (a search of large
            // populations would fill the disk); its logs stay for reading.
            for d in ["state", "inboxes", "mp"] {
                let _ = std::fs::remove_dir_all(dir.join("backend-data").join(d));
            }
        }
        let timeline: Value = std::fs::read(dir.join("timeline.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let (verdict, slos) = judge(&outcome.summary, &timeline);
        let trial = Trial {
            load,
            phase,
            verdict,
            slos,
            dir,
            started,
            wall: self.started.elapsed().as_secs_f64() - started,
        };
        let line = trial_json(n, &trial);
        use std::io::Write as _;
        let _ = writeln!(self.events, "{line}");
        if self.cfg.progress {
            let failed: Vec<String> = trial
                .slos
                .iter()
                .filter(|s| s["verdict"] == "fail")
                .map(|s| format!("{} {}", s["slo"].as_str().unwrap_or("?"), figure(&s["figure"])))
                .collect();
            eprintln!(
                "[search {:>6.0}s] trial {n:>3} {phase:<5} {} {load}: {}{}",
                self.started.elapsed().as_secs_f64(),
                self.cfg.over.name(),
                verdict.word(),
                if failed.is_empty() { String::new() } else { format!(" ({})", failed.join(", ")) }
            );
        }
        self.trials.push(trial);
        self.save(None, None)?;
        Ok(verdict)
    }

    /// Writes `search.json`: every trial so far and the bracket as it narrowed; the answer once
    /// there is one (`complete`), or the error that ended the search.
    fn save(&self, answer: Option<&[Bracket]>, error: Option<String>) -> anyhow::Result<PathBuf> {
        let cfg = self.cfg;
        let doc = json!({
            "profile": self.plan.name,
            "over": cfg.over.name(),
            "bounds": { "lower": cfg.lower, "upper": cfg.upper },
            "goal_width": cfg.goal_width,
            "trial_seconds": { "short": cfg.short.as_secs_f64(), "full": cfg.full.as_secs_f64() },
            "repeats": cfg.repeats,
            "target": cfg.target.clone().unwrap_or_else(|| "embedded".into()),
            "wall_seconds": self.started.elapsed().as_secs_f64(),
            "complete": answer.is_some(),
            "error": error,
            "answer": answer.into_iter().flatten().map(|b| bracket_json(b, cfg.goal_width)).collect::<Vec<_>>(),
            "trials": self.trials.iter().enumerate().map(|(n, t)| trial_json(n, t)).collect::<Vec<_>>(),
            "brackets": self.brackets,
        });
        let path = cfg.out.join("search.json");
        // Written beside and renamed: an interrupted search never leaves half a file.
        let tmp = cfg.out.join("search.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?).with_context(|| tmp.display().to_string())?;
        std::fs::rename(&tmp, &path).with_context(|| path.display().to_string())?;
        Ok(path)
    }

    /// The trials of `load` in `phase`: (passed, failed, void).
    fn counts(&self, load: f64, phase: &str) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for t in self.trials.iter().filter(|t| t.load == load && t.phase == phase) {
            match t.verdict {
                Verdict::Pass => c.0 += 1,
                Verdict::Fail => c.1 += 1,
                Verdict::Void => c.2 += 1,
            }
        }
        c
    }

    /// Classifies `load` for `goal` with trials of `phase`, running more while undecided.
    fn classify(
        &mut self,
        load: f64,
        phase: &'static str,
        repeats: usize,
        goal: Goal,
    ) -> Result<Class, SearchError> {
        let allowed = (goal.exceed_ratio * repeats as f64 + 1e-9).floor() as usize;
        loop {
            let (passed, failed, void) = self.counts(load, phase);
            if void > 0 {
                return Ok(Class::Void);
            }
            if failed > allowed {
                return Ok(Class::Upper);
            }
            if passed >= repeats - allowed {
                return Ok(Class::Lower);
            }
            self.trial(load, phase)?;
        }
    }

    /// Narrows `goal`'s bracket with trials of `phase` until it is within the goal width; the
    /// bracket is noted as it starts and as it ends (and at every move between).
    fn narrow(
        &mut self,
        goal: Goal,
        phase: &'static str,
        repeats: usize,
        b: Bracket,
    ) -> Result<Bracket, SearchError> {
        self.note(phase, &[&b]);
        let b = self.narrowed(goal, phase, repeats, b)?;
        self.note(phase, &[&b]);
        Ok(b)
    }

    fn narrowed(
        &mut self,
        goal: Goal,
        phase: &'static str,
        repeats: usize,
        mut b: Bracket,
    ) -> Result<Bracket, SearchError> {
        let (floor, ceiling, w) = (self.cfg.lower, self.cfg.upper, self.cfg.goal_width);
        loop {
            match self.classify(b.lower, phase, repeats, goal)? {
                Class::Lower => {}
                class => {
                    // The lower bound does not hold at this length: step down by the goal width
                    // (short trials are a little pessimistic or optimistic; a step is usually
                    // enough, and then the bracket is already narrow).
                    (b.upper, b.generator_bound, b.at_least) = (b.lower, class == Class::Void, false);
                    if b.lower <= floor {
                        return Err(SearchError::Unsearchable(if class == Class::Void {
                            format!(
                                "the generator cannot drive the lower bound {floor} on schedule ({phase} trials): \
                                 lower it, or give the generator more cores or shards"
                            )
                        } else {
                            format!(
                                "the lower bound {floor} already fails ({phase} trials, goal {}): lower it",
                                goal.name
                            )
                        }));
                    }
                    b.lower = self.round((b.lower * (1.0 - w)).max(floor));
                    self.note(phase, &[&b]);
                    continue;
                }
            }
            if !b.at_least && !b.generator_bound {
                match self.classify(b.upper, phase, repeats, goal)? {
                    Class::Upper => {}
                    Class::Void => b.generator_bound = true,
                    Class::Lower => {
                        // The upper bound holds at this length: step up, or stop at the ceiling.
                        b.lower = b.upper;
                        if b.upper >= ceiling {
                            b.at_least = true;
                            return Ok(b);
                        }
                        b.upper = self.round((b.upper * (1.0 + w)).min(ceiling));
                        self.note(phase, &[&b]);
                        continue;
                    }
                }
            }
            if b.at_least || width(b.lower, b.upper) <= w {
                return Ok(b);
            }
            let mid = self.round((b.lower * b.upper).sqrt());
            if mid <= b.lower || mid >= b.upper {
                return Ok(b); // as narrow as whole loads go
            }
            match self.classify(mid, phase, repeats, goal)? {
                Class::Lower => b.lower = mid,
                Class::Upper => (b.upper, b.generator_bound) = (mid, false),
                Class::Void => (b.upper, b.generator_bound) = (mid, true),
            }
            self.note(phase, &[&b]);
        }
    }

    fn note(&mut self, phase: &str, brackets: &[&Bracket]) {
        self.brackets.push(json!({
            "after_trial": self.trials.len(),
            "phase": phase,
            "goals": brackets.iter().map(|b| bracket_json(b, self.cfg.goal_width)).collect::<Vec<_>>(),
        }));
    }
}

fn bracket_json(b: &Bracket, goal_width: f64) -> Value {
    json!({
        "goal": b.goal.name,
        "exceed_ratio": b.goal.exceed_ratio,
        "lower": b.lower,
        "upper": b.upper,
        "relative_width": width(b.lower, b.upper),
        "within_goal_width": b.at_least || width(b.lower, b.upper) <= goal_width,
        "generator_bound": b.generator_bound,
        "at_least": b.at_least,
    })
}

fn trial_json(n: usize, t: &Trial) -> Value {
    json!({
        "trial": n, "load": t.load, "phase": t.phase, "verdict": t.verdict.word(),
        "started_seconds": t.started, "wall_seconds": t.wall, "slos": t.slos,
        "dir": t.dir.display().to_string(),
    })
}

/// A figure as the console and the page print it: four significant digits.
fn figure(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x != 0.0 && x.is_finite() => {
            let digits = (3 - x.abs().log10().floor() as i32).max(0) as usize;
            format!("{x:.digits$}")
        }
        Some(x) => format!("{x}"),
        None => "-".to_owned(),
    }
}

/// The least-squares slope of `(t, y)` points and its standard error.
fn slope(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if n < 3.0 {
        return (0.0, 0.0);
    }
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let var_t: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    if var_t <= 0.0 {
        return (0.0, 0.0);
    }
    let b = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_y)).sum::<f64>() / var_t;
    let residuals: f64 = points.iter().map(|p| (p.1 - mean_y - b * (p.0 - mean_t)).powi(2)).sum();
    (b, (residuals / (n - 2.0) / var_t).sqrt())
}

/// A trial's SLOs from its summary and timeline, and its verdict.
pub fn judge(summary: &Value, timeline: &Value) -> (Verdict, Vec<Value>) {
    let mut slos = Vec::new();
    let mut named_error_rate = false;
    for t in summary["thresholds"].as_array().into_iter().flatten() {
        named_error_rate |= t["metric"] == "error_rate";
        slos.push(json!({
            "slo": format!("threshold {}", t["metric"].as_str().unwrap_or("?")),
            "figure": t["actual"], "condition": t["condition"],
            "verdict": if t["passed"] == true { "pass" } else { "fail" },
        }));
    }
    if !named_error_rate {
        let (mut errors, mut count) = (0u64, 0u64);
        for k in summary["requests"].as_object().into_iter().flatten().map(|(_, k)| k) {
            errors += k["errors"].as_u64().unwrap_or(0);
            count += k["count"].as_u64().unwrap_or(0);
        }
        let rate = errors as f64 / count.max(1) as f64;
        slos.push(json!({
            "slo": "error_rate", "figure": rate, "condition": "< 1%",
            "verdict": if rate < 0.01 { "pass" } else { "fail" },
        }));
    }
    // The site keeps up: over the last half, the backlog (accepted, not yet applied) does not
    // grow by more than 1 % of the acceptance rate. The growth is the least-squares slope of the
    // per-second samples less two standard errors: StateSys applies in batches and Reports of a
    // few hundred messages are in flight at any sample, so a growth the samples cannot tell from
    // that noise is no evidence of a site falling behind.
    let points: Vec<(f64, f64, f64)> = timeline
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["t"].as_f64()?, p["accepted"].as_f64()?, p["applied"].as_f64()?)))
        .collect();
    let name = "site keeps up (backlog growth / acceptance rate, last half)";
    match (points.first(), points.last()) {
        (Some(first), Some(last)) if points.len() >= 6 => {
            let half = (first.0 + last.0) / 2.0;
            let tail: Vec<(f64, f64)> =
                points.iter().filter(|p| p.0 >= half).map(|p| (p.0, p.1 - p.2)).collect();
            let (slope, se) = slope(&tail);
            let (a, b) = (points.iter().find(|p| p.0 >= half).unwrap_or(first), last);
            let rate = if b.0 > a.0 { (b.1 - a.1) / (b.0 - a.0) } else { 0.0 };
            let share = if rate > 0.0 { (slope - 2.0 * se).max(0.0) / rate } else { 0.0 };
            slos.push(json!({
                "slo": name, "figure": share, "condition": "<= 0.01",
                "backlog_growth_per_second": slope, "standard_error": se, "accepted_per_second": rate,
                "backlog_messages": { "middle": a.1 - a.2, "end": b.1 - b.2 },
                "verdict": if share <= 0.01 { "pass" } else { "fail" },
            }));
        }
        _ => slos.push(json!({
            "slo": name, "figure": null, "condition": "<= 0.01",
            "verdict": "n/a (the target has no StateSys counters)",
        })),
    }
    let behind = summary["generator"]["behind"] == true;
    slos.push(json!({
        "slo": "generator on schedule (lateness p99 ms)",
        "figure": summary["generator"]["lateness_ms"]["p99"],
        "condition": format!("<= {}", summary["generator"]["max_lateness_p99_ms"]),
        "verdict": if behind { "void" } else { "pass" },
    }));
    let verdict = if behind {
        Verdict::Void
    } else if slos.iter().any(|s| s["verdict"] == "fail") {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    (verdict, slos)
}

/// What a search found.
#[derive(Debug)]
pub struct Found {
    pub brackets: Vec<Bracket>,
    pub trials: usize,
    pub wall: Duration,
    pub json: PathBuf,
    pub html: PathBuf,
}

/// Searches `plan` as `cfg` says.
pub fn search(plan: &Plan, text: &str, cfg: &Config) -> Result<Found, SearchError> {
    if !(cfg.lower > 0.0 && cfg.lower < cfg.upper) {
        return Err(SearchError::Unsearchable(format!(
            "bounds: the lower ({}) must be above 0 and below the upper ({})",
            cfg.lower, cfg.upper
        )));
    }
    if cfg.over == Over::Rate && !matches!(plan.open_model, Some((Arrivals::Open { .. }, _))) {
        return Err(SearchError::Unsearchable(
            "--over rate needs a profile with [open_model] (its rate is what varies)".into(),
        ));
    }
    if cfg.over == Over::Clients && plan.open_model.is_some() {
        return Err(SearchError::Unsearchable(
            "--over clients searches the clients' own lives: remove [open_model]/[closed_model], or search --over rate"
                .into(),
        ));
    }
    std::fs::create_dir_all(&cfg.out).with_context(|| cfg.out.display().to_string())?;
    let events = std::fs::File::create(cfg.out.join("search-events.jsonl")).context("search-events.jsonl")?;
    let mut s =
        Search { plan, text, cfg, trials: Vec::new(), brackets: Vec::new(), started: Instant::now(), events };
    let outcome = find(&mut s);
    // Whatever happened, what was measured is written.
    let error = outcome.as_ref().err().map(|e| format!("{e:#}"));
    let json_path = s.save(outcome.as_deref().ok(), error)?;
    let brackets = outcome?;
    let html = cfg.out.join("report.html");
    std::fs::write(&html, page(&s, &brackets)).with_context(|| html.display().to_string())?;
    Ok(Found { brackets, trials: s.trials.len(), wall: s.started.elapsed(), json: json_path, html })
}

/// Short trials bisect the bounds; then full-length trials confirm and narrow each goal.
fn find(s: &mut Search) -> Result<Vec<Bracket>, SearchError> {
    let goal = GOALS[0];
    let start =
        Bracket { goal, lower: s.cfg.lower, upper: s.cfg.upper, generator_bound: false, at_least: false };
    // One short trial a load: both goals classify it alike.
    let short = if s.cfg.short.is_zero() { start } else { s.narrow(goal, "short", 1, start)? };
    let mut out: Vec<Bracket> = Vec::new();
    for goal in GOALS {
        // The goals go from strict to loose: a looser goal starts where the stricter one ended
        // (a load whose trials all passed meets it too), reusing the trials already run.
        let start = out.last().cloned().unwrap_or_else(|| short.clone());
        let b = s.narrow(goal, "full", s.cfg.repeats.max(1), Bracket { goal, ..start })?;
        out.push(b);
    }
    if s.cfg.spectra {
        let answer = out[0].lower;
        for share in [0.1, 0.5, 0.9] {
            let load = s.round(answer * share);
            s.trial(load, "spectrum")?;
        }
    }
    Ok(out)
}

/// The search's page: the answer, the loads tried and how the bracket narrowed, the latency
/// spectra at 10, 50 and 90 % of the answer, and every trial.
fn page(s: &Search, brackets: &[Bracket]) -> String {
    let over = s.cfg.over.name();
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>sumstorm search</title><style>\
         body{font-family:sans-serif;margin:24px;max-width:900px}table{border-collapse:collapse;margin:8px 0}\
         td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#f4f4f4}.fail{color:#d62728}\
         .void{color:#a60}</style></head><body>",
    );
    let _ = write!(
        html,
        "<h1>Search: {} over {over}</h1><p>{} trials in {:.0} s; goal width {:.1} %; short trials {} s, full-length {} s, \
         at most {} full-length trials a load.</p><table><tr><th>goal</th><th>answer</th><th>bracket</th><th>width</th><th>note</th></tr>",
        esc(&s.plan.name),
        s.trials.len(),
        s.started.elapsed().as_secs_f64(),
        s.cfg.goal_width * 100.0,
        s.cfg.short.as_secs_f64(),
        s.cfg.full.as_secs_f64(),
        s.cfg.repeats
    );
    for b in brackets {
        let note = if b.at_least {
            "met even at the search's upper bound: raise --upper"
        } else if b.generator_bound {
            "the upper bound is the generator's limit (void trials), not the target's"
        } else {
            ""
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td><b>{}{} {over}</b></td><td>{} &ndash; {}</td><td>{:.2} %</td><td>{note}</td></tr>",
            b.goal.name,
            if b.at_least { "&ge; " } else { "" },
            b.lower,
            b.lower,
            b.upper,
            width(b.lower, b.upper) * 100.0
        );
    }
    html.push_str("</table>");
    let loads: Vec<(f64, f64)> = s.trials.iter().enumerate().map(|(n, t)| (n as f64, t.load)).collect();
    let mut series = vec![("load tried".to_owned(), loads)];
    for goal in GOALS {
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        for b in &s.brackets {
            for g in b["goals"].as_array().into_iter().flatten().filter(|g| g["goal"] == goal.name) {
                let at = b["after_trial"].as_f64().unwrap_or(0.0) - 1.0;
                lo.push((at, g["lower"].as_f64().unwrap_or(0.0)));
                hi.push((at, g["upper"].as_f64().unwrap_or(0.0)));
            }
        }
        series.push((format!("{} lower", goal.name), lo));
        series.push((format!("{} upper", goal.name), hi));
    }
    html.push_str("<h2>Loads tried, and the bracket narrowing</h2>");
    html.push_str(&chart("Loads tried", "trial", over, &series, false));
    let spectra: Vec<(String, Vec<(f64, f64)>)> = s
        .trials
        .iter()
        .filter(|t| t.phase == "spectrum")
        .filter_map(|t| {
            let text = std::fs::read_to_string(t.dir.join("latency-state_report.hgrm")).ok()?;
            Some((format!("{} {over}", t.load), hgrm_points(&text)))
        })
        .collect();
    if !spectra.is_empty() {
        html.push_str("<h2>state_report latency at 10, 50 and 90 % of the answer</h2>");
        html.push_str(&chart("Latency percentile spectrum", "percentile", "ms", &spectra, true));
    }
    html.push_str(
        "<h2>Trials</h2><table><tr><th>#</th><th>phase</th><th>load</th><th>verdict</th><th>SLOs</th></tr>",
    );
    for (n, t) in s.trials.iter().enumerate() {
        let slos: Vec<String> = t
            .slos
            .iter()
            .map(|x| {
                format!(
                    "{} {} ({})",
                    esc(x["slo"].as_str().unwrap_or("?")),
                    esc(&figure(&x["figure"])),
                    esc(x["verdict"].as_str().unwrap_or("?"))
                )
            })
            .collect();
        let _ = write!(
            html,
            "<tr class=\"{}\"><td>{n}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.verdict.word(),
            t.phase,
            t.load,
            t.verdict.word(),
            slos.join("; ")
        );
    }
    html.push_str("</table>");
    html.push_str(crate::report::RENDER_CHECK);
    html.push_str("</body></html>");
    html
}

/// The console's summary of a search.
pub fn console(found: &Found, over: Over) -> String {
    let mut out = String::new();
    for b in &found.brackets {
        let _ = writeln!(
            out,
            "goal {:<17} {}{} {} (bracket {} - {}, width {:.2} %){}",
            b.goal.name,
            if b.at_least { ">= " } else { "" },
            b.lower,
            over.name(),
            b.lower,
            b.upper,
            width(b.lower, b.upper) * 100.0,
            if b.generator_bound {
                "; the upper bound is the generator's limit, not the target's"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out, "{} trials in {:.0} s", found.trials, found.wall.as_secs_f64());
    out
}
