//! Profiles (contract §3.3): TOML as written, validated into a [`Plan`] with errors that name the
//! key. Unknown keys are errors.
//!
//! ```toml
//! [population]
//! clients = 200
//! seed = 42
//! ad_sites = ["CM12-R2-PS1"]             # each client gets one, round robin by hash
//! subnets = ["192.168.2.0/24"]           # each client gets an address in one
//! internet_fraction = 0.0                # share of clients on the internet
//!
//! [client]                               # simulated time; s, m, h or d
//! policy_poll = "60m"
//! reporting_cycle = "15m"
//! scan_window = "2h"                     # first scan: a random moment in this window
//! scan_spread = "random"                # or "even": the population's moments spread evenly
//! scan_duration = "5m"
//!
//! [scan]                                 # per-update outcome probabilities (sum to 1)
//! installed = 0.6
//! not_required = 0.25
//! required = 0.1
//! unknown = 0.05
//!
//! [run]
//! time_scale = 240                       # simulated seconds per real second
//! duration = "3h"                        # simulated
//! ramp_up = "10m"                        # clients start spread over this (may exceed duration)
//! max_lateness_p99_ms = 10               # past this, the generator bounded the run: exit 4
//!
//! [[event]]                              # site events on the simulated clock
//! at = "20m"
//! sync = { new_updates = 20, superseded = 5 }
//!
//! [transport]
//! wire = "ccm"                           # or "plain"
//! connections = 32                       # keep-alive connections, all arbiters together
//! zlib_level = 1                         # CCM bodies' deflate level, 0-9 (see below)
//!
//! [[mp]]                                 # optional: the site's MPs (default: --target alone)
//! url = "http://mp1.lab:80"
//! boundary_groups = ["HQ"]               # clients in these boundary groups choose among these
//! [[mp]]                                 # an MP without boundary groups serves the rest
//! url = "http://mp2.lab:80"
//!
//! [open_model]                           # optional: a fixed arrival rate of state reports
//! rate = 2000                            # Reports per real second
//! messages_per_report = 150
//!
//! [closed_model]                         # optional, instead: Reports back to back (saturation)
//! reports_in_flight = 64                 # each sent when another is answered; default: connections
//! messages_per_report = 150
//!
//! [signing]                             # clients sign as a real MP requires (wire.md §6)
//! enabled = true                         # default: on against --target, off in-process
//! padding = "digest-info"                # or "bare": no DigestInfo, as some clients sign
//! keys = 16                              # the key pool, drawn from the seed (shards agree)
//! key_bits = 2048
//!
//! [backend]                             # optional: the embedded backend (not --target)
//! statesys_rate = 20000                  # StateSys's pace, state messages/s (a site DB's)
//! high_water_files = 20000               # inbox files waiting past which the relay says 503
//! retry_after = 5                        # seconds, in those 503s
//! statesys_pause = 10                    # site seconds StateSys waits when woken from idle
//! update_status = "1h"                   # the SUM Update Status summarizer's schedule (site time)
//!
//! [thresholds]                           # over the whole run, or over windows; may abort the run
//! "state_report.p99" = "< 500ms"
//! "wsus_location.p99" = "< 1s in 99% of 10s windows after ramp-up, abort after 30s"
//! "error_rate" = "< 1%"
//! "convergence.t95" = "< 4h"             # site time from a sync to 95 % visible (one per run)
//! ```
//!
//! `transport.zlib_level`: every level is valid zlib and the MP reads them all alike; the level
//! changes only the bytes on the wire and what building a request costs the generator. Building
//! a faithful 150-message Report request (XML, UTF-16, zlib, envelope) here: level 1 71 µs and
//! 5.1 KB, level 6 (zlib's default, and what this tool used before) 172 µs and 3.7 KB, level 9
//! 346 µs and 3.3 KB (`results/bench/generator-2026-12-02.md`). The default is 1, so the
//! generator is not the bottleneck it measures; raise it to study bandwidth.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use protocol::units::parse_span;
use serde::Deserialize;

/// A profile that cannot be run, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("profile: {0}")]
    Toml(String),
    #[error("profile: `{key}`: {why}")]
    Invalid { key: String, why: String },
}

fn invalid(key: impl Into<String>, why: impl Into<String>) -> ProfileError {
    ProfileError::Invalid { key: key.into(), why: why.into() }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    population: PopulationFile,
    #[serde(default)]
    client: ClientFile,
    #[serde(default)]
    scan: ScanFile,
    run: RunFile,
    #[serde(default)]
    event: Vec<EventFile>,
    #[serde(default)]
    transport: TransportFile,
    #[serde(default)]
    mp: Vec<MpFile>,
    open_model: Option<OpenModelFile>,
    closed_model: Option<ClosedModelFile>,
    #[serde(default)]
    signing: SigningFile,
    #[serde(default)]
    backend: BackendFile,
    #[serde(default)]
    thresholds: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningFile {
    enabled: Option<bool>,
    padding: Option<String>,
    keys: Option<usize>,
    key_bits: Option<u32>,
}

/// How clients sign (`[signing]`, `crate::signing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signing {
    /// `None`: on against `--target`, off against the embedded backend. Signing needs the
    /// client lifecycle and the CCM wire; the embedded backend requires it when it is on.
    pub enabled: Option<bool>,
    pub padding: protocol::signing::Padding,
    pub keys: usize,
    pub key_bits: u32,
}

/// The key pool's size unless a profile says otherwise (see `crate::signing`).
pub const DEFAULT_SIGNING_KEYS: usize = 16;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PopulationFile {
    clients: u64,
    #[serde(default)]
    seed: u64,
    #[serde(default = "default_ad_sites")]
    ad_sites: Vec<String>,
    #[serde(default = "default_subnets")]
    subnets: Vec<String>,
    #[serde(default)]
    internet_fraction: f64,
}

fn default_ad_sites() -> Vec<String> {
    vec!["CM12-R2-PS1".into()]
}
fn default_subnets() -> Vec<String> {
    vec!["192.168.0.0/16".into()]
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    policy_poll: Option<String>,
    reporting_cycle: Option<String>,
    scan_window: Option<String>,
    scan_spread: Option<String>,
    scan_duration: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanFile {
    installed: f64,
    not_required: f64,
    required: f64,
    unknown: f64,
}

impl Default for ScanFile {
    fn default() -> Self {
        ScanFile { installed: 0.6, not_required: 0.25, required: 0.1, unknown: 0.05 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    #[serde(default = "one")]
    time_scale: f64,
    duration: String,
    ramp_up: Option<String>,
    #[serde(default = "ten")]
    max_lateness_p99_ms: f64,
}

fn ten() -> f64 {
    10.0
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    at: String,
    sync: SyncFile,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncFile {
    #[serde(default = "twenty")]
    new_updates: u32,
    #[serde(default)]
    superseded: u32,
}

fn twenty() -> u32 {
    20
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransportFile {
    #[serde(default = "ccm")]
    wire: String,
    #[serde(default = "sixty_four")]
    connections: usize,
    #[serde(default = "default_zlib_level")]
    zlib_level: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MpFile {
    url: String,
    #[serde(default)]
    boundary_groups: Vec<String>,
}

/// One of the site's MPs (`[[mp]]`): clients in its boundary groups (by the site's boundaries)
/// choose among the MPs that list one of their groups, the rest among the MPs that list none
/// (or all, where every MP lists some), each client one MP for its life, drawn from the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp {
    /// `http://host:port`, no trailing slash.
    pub url: String,
    pub boundary_groups: Vec<String>,
}

impl Default for TransportFile {
    fn default() -> Self {
        TransportFile { wire: ccm(), connections: sixty_four(), zlib_level: default_zlib_level() }
    }
}

/// The CCM bodies' deflate level unless a profile says otherwise (see the module documentation).
pub const DEFAULT_ZLIB_LEVEL: u32 = 1;

fn default_zlib_level() -> u32 {
    DEFAULT_ZLIB_LEVEL
}

fn ccm() -> String {
    "ccm".into()
}
fn sixty_four() -> usize {
    64
}

/// The embedded backend's settings (`[backend]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendFile {
    pub statesys_rate: Option<u64>,
    pub high_water_files: Option<usize>,
    pub retry_after: Option<u32>,
    /// StateSys's pause after a notification finds it idle, site seconds (the product's 10).
    pub statesys_pause: Option<u32>,
    /// How often the SUM Update Status summarizer runs, a span of site time (the product's 1h).
    pub update_status: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenModelFile {
    rate: f64,
    #[serde(default = "one_fifty")]
    messages_per_report: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosedModelFile {
    reports_in_flight: Option<usize>,
    #[serde(default = "one_fifty")]
    messages_per_report: usize,
}

fn one_fifty() -> usize {
    150
}

/// How the pacer's Reports arrive (`[open_model]` or `[closed_model]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrivals {
    /// A fixed rate of Reports per real second, whatever the answers: a slow server shows as
    /// latency from each Report's intended time.
    Open { rate: f64 },
    /// A fixed number of Reports in flight, each sent when another is answered: the target's
    /// saturation throughput. Latency is each request's own service time (there is no schedule
    /// to fall behind).
    Closed { in_flight: usize },
}

/// How the population's scan moments fall in the scan window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanSpread {
    /// Each client at its own random moment, as real clients: the offered load has the
    /// sampling noise of a random sample (about `1/sqrt(n)` for `n` scans in a stretch).
    #[default]
    Random,
    /// The window cut into one slice per client (in a seeded order), each client at a random
    /// moment of its slice: the same mean load without the sampling noise, so a capacity search
    /// measures the site and not which clients the seed drew.
    Even,
}

/// The wire the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// The faithful CCM envelope: multipart, UTF-16LE, zlib.
    Ccm,
    /// Plain UTF-8 XML with `X-Target-Endpoint`.
    Plain,
}

/// A request kind (contract §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Registration,
    PolicyAssignments,
    PolicyBody,
    WsusLocation,
    Catalog,
    StateReport,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Registration,
        Kind::PolicyAssignments,
        Kind::PolicyBody,
        Kind::WsusLocation,
        Kind::Catalog,
        Kind::StateReport,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Registration => "registration",
            Kind::PolicyAssignments => "policy_assignments",
            Kind::PolicyBody => "policy_body",
            Kind::WsusLocation => "wsus_location",
            Kind::Catalog => "catalog",
            Kind::StateReport => "state_report",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A latency statistic a threshold can name.
pub const STATS: [&str; 7] = ["p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"];

/// What a threshold bounds.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// Corrected latency of a kind, in ms (`state_report.p99`); `uncorrected` for service time
    /// (`state_report.p99.uncorrected`).
    Latency { kind: Kind, stat: &'static str, uncorrected: bool },
    /// Errors over requests, all kinds (`error_rate`) or one (`state_report.error_rate`).
    ErrorRate(Option<Kind>),
    /// State messages acknowledged per (real) second.
    StateMessagesPerSecond,
    /// Site seconds from a sync until `percent` % of the clients that scanned after it reached
    /// `stage` (`convergence.t95` is `visible`; `convergence.applied.t99`), the worst over the
    /// run's syncs ([`crate::convergence`]).
    Convergence { stage: &'static str, percent: u32 },
}

/// One threshold: `metric < value` or `metric > value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub name: String,
    pub metric: Metric,
    pub less_than: bool,
    pub value: f64,
    /// The condition as written (`< 200ms`).
    pub text: String,
    /// Held over windows instead of the whole run (`< 2s in 99% of 10s windows`).
    pub window: Option<Window>,
    /// Windows (and abort checks) before the ramp-up's end do not count (`... after ramp-up`).
    pub after_ramp: bool,
    /// Stop the run once the condition has failed this long without a break (`..., abort after
    /// 30s`), judged each second over the threshold's window (10 s when it has none).
    pub abort_after: Option<Duration>,
}

/// A threshold's windows: consecutive, `length` of real time each, and the share of them that
/// must meet the condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub length: Duration,
    pub share: f64,
}

impl Threshold {
    /// The window an abort is judged over: the threshold's own, or 10 s.
    pub fn abort_window(&self) -> Duration {
        self.window.map_or(Duration::from_secs(10), |w| w.length)
    }
}

/// A simulated site event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncEvent {
    /// Simulated time after the start.
    pub at: Duration,
    pub new_updates: u32,
    pub superseded: u32,
}

/// An IPv4 subnet clients take addresses in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// The `n`th host address (wrapping within the subnet, skipping network and broadcast).
    pub fn host(&self, n: u64) -> Ipv4Addr {
        let size = 1u64 << (32 - u32::from(self.prefix));
        let hosts = size.saturating_sub(2).max(1);
        Ipv4Addr::from(u32::from(self.network) + 1 + (n % hosts) as u32)
    }
}

/// A validated profile: what `loadgen run` does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: String,
    pub clients: u64,
    pub seed: u64,
    pub ad_sites: Vec<String>,
    pub subnets: Vec<Subnet>,
    pub internet_fraction: f64,
    pub policy_poll: Duration,
    pub reporting_cycle: Duration,
    pub scan_window: Duration,
    pub scan_spread: ScanSpread,
    pub scan_duration: Duration,
    /// Probabilities of states 3 (installed), 1 (not required), 2 (required), 0 (unknown).
    pub installed: f64,
    pub not_required: f64,
    pub required: f64,
    pub unknown: f64,
    pub time_scale: f64,
    /// Simulated.
    pub duration: Duration,
    pub ramp_up: Duration,
    /// The generator's lateness p99 (ms) past which the figures describe the generator, not the
    /// target: the run exits 4 unless `--allow-late`.
    pub max_lateness_p99_ms: f64,
    pub events: Vec<SyncEvent>,
    pub wire: Wire,
    /// The site's MPs the clients spread over (empty: the target alone). Connections are per MP.
    pub mps: Vec<Mp>,
    pub connections: usize,
    /// The deflate level of CCM bodies, 0-9.
    pub zlib_level: u32,
    /// Reports sent by a pacer instead of simulated clients' lives: how they arrive, and
    /// messages per Report.
    pub open_model: Option<(Arrivals, usize)>,
    /// The embedded backend's settings.
    pub signing: Signing,
    pub backend: BackendFile,
    pub thresholds: Vec<Threshold>,
}

fn span(key: &str, value: &Option<String>, default: Duration) -> Result<Duration, ProfileError> {
    match value {
        None => Ok(default),
        Some(text) => parse_span(text)
            .ok_or_else(|| invalid(key, format!("{text:?} is not a span like \"15m\" or \"2h\""))),
    }
}

fn threshold(name: &str, text: &str) -> Result<Threshold, ProfileError> {
    let key = format!("thresholds.{name:?}");
    let metric = match name.split_once('.') {
        Some(("convergence", rest)) => {
            let (stage, t) = rest.split_once('.').unwrap_or(("visible", rest));
            let stage = crate::convergence::STAGES.into_iter().find(|s| *s == stage);
            let percent = t
                .strip_prefix('t')
                .and_then(|p| p.parse().ok())
                .filter(|p| crate::convergence::PERCENTS.contains(p));
            match (stage, percent) {
                (Some(stage), Some(percent)) => Metric::Convergence { stage, percent },
                _ => {
                    return Err(invalid(
                        key,
                        "write convergence.t95 (visible) or convergence.<acknowledged|applied|visible>.t<50|90|95|99|100>",
                    ));
                }
            }
        }
        None if name == "error_rate" => Metric::ErrorRate(None),
        None if name == "state_messages_per_second" => Metric::StateMessagesPerSecond,
        None => return Err(invalid(key, "unknown metric")),
        Some((kind, rest)) => {
            let kind = Kind::from_name(kind).ok_or_else(|| {
                let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                invalid(&key, format!("unknown request kind; kinds: {}", kinds.join(", ")))
            })?;
            if rest == "error_rate" {
                Metric::ErrorRate(Some(kind))
            } else {
                let (stat, uncorrected) = match rest.strip_suffix(".uncorrected") {
                    Some(s) => (s, true),
                    None => (rest, false),
                };
                let stat = STATS.into_iter().find(|s| *s == stat).ok_or_else(|| {
                    invalid(&key, format!("unknown statistic; statistics: {}", STATS.join(", ")))
                })?;
                Metric::Latency { kind, stat, uncorrected }
            }
        }
    };
    let written = text.trim();
    // `<condition>[ in <share>% of <span> windows][ after ramp-up][, abort after <span>]`
    let (t, abort_after) = match written.rsplit_once(", abort after ") {
        Some((t, span)) => match parse_span(span.trim()).filter(|d| !d.is_zero()) {
            Some(d) => (t.trim(), Some(d)),
            None => return Err(invalid(&key, format!("{span:?}: abort after a span such as \"30s\""))),
        },
        None => (written, None),
    };
    let (t, after_ramp) = match t.strip_suffix("after ramp-up") {
        Some(t) => (t.trim(), true),
        None => (t, false),
    };
    let (t, window) = match t.split_once(" in ") {
        Some((t, w)) => {
            let bad = || invalid(&key, format!("{w:?}: write windows as \"in 99% of 10s windows\""));
            let (share, rest) = w.split_once("% of ").ok_or_else(bad)?;
            let share: f64 = share.trim().parse().map_err(|_| bad())?;
            let length =
                rest.trim().strip_suffix("windows").and_then(|l| parse_span(l.trim())).ok_or_else(bad)?;
            if !(share > 0.0 && share <= 100.0) || length < Duration::from_secs(1) {
                return Err(invalid(
                    &key,
                    "windows: a share above 0 and at most 100 %, windows of at least 1s",
                ));
            }
            (t.trim(), Some(Window { length, share: share / 100.0 }))
        }
        None => (t, None),
    };
    let (less_than, rest) = match (t.strip_prefix('<'), t.strip_prefix('>')) {
        (Some(r), _) => (true, r.trim()),
        (_, Some(r)) => (false, r.trim()),
        _ => return Err(invalid(&key, format!("{text:?}: write \"< 200ms\" or \"> 1000\""))),
    };
    let (number, unit) =
        rest.split_at(rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len()));
    let n: f64 = number.parse().map_err(|_| invalid(&key, format!("{text:?}: no number")))?;
    let value = match (&metric, unit.trim()) {
        (Metric::Latency { .. }, "ms") => n,
        (Metric::Latency { .. }, "s") => n * 1000.0,
        (Metric::Latency { .. }, "us" | "µs") => n / 1000.0,
        (Metric::ErrorRate(_), "%") => n / 100.0,
        (Metric::ErrorRate(_), "") => n,
        (Metric::StateMessagesPerSecond, "") => n,
        // Site seconds, written with a span's unit (`4h`).
        (Metric::Convergence { .. }, unit) if let Some(one) = parse_span(&format!("1{unit}")) => {
            n * one.as_secs_f64()
        }
        (_, unit) => return Err(invalid(&key, format!("{text:?}: unit {unit:?} does not fit this metric"))),
    };
    if matches!(metric, Metric::Convergence { .. })
        && (window.is_some() || after_ramp || abort_after.is_some())
    {
        return Err(invalid(&key, "convergence is one figure per run: no windows, ramp-up or abort"));
    }
    Ok(Threshold {
        name: name.to_owned(),
        metric,
        less_than,
        value,
        text: written.to_owned(),
        window,
        after_ramp,
        abort_after,
    })
}

impl Plan {
    /// Reads and validates a profile's text; `name` is the profile's name (its file stem).
    pub fn parse(name: &str, text: &str) -> Result<Plan, ProfileError> {
        let f: ProfileFile = toml::from_str(text).map_err(|e| ProfileError::Toml(e.to_string()))?;
        let p = &f.population;
        if p.clients == 0 || p.clients > 10_000_000 {
            return Err(invalid("population.clients", "must be 1 to 10000000"));
        }
        if p.ad_sites.is_empty() || p.ad_sites.iter().any(|s| s.trim().is_empty()) {
            return Err(invalid("population.ad_sites", "needs at least one non-empty AD site"));
        }
        // What an MP takes (it refuses longer names with 400).
        if p.ad_sites.iter().any(|s| !protocol::names::fits(s.trim(), protocol::names::MAX_AD_SITE)) {
            return Err(invalid(
                "population.ad_sites",
                format!("AD site names are at most {} characters", protocol::names::MAX_AD_SITE),
            ));
        }
        let mut subnets = Vec::new();
        for s in &p.subnets {
            let parsed = s.split_once('/').and_then(|(net, bits)| {
                let network: Ipv4Addr = net.trim().parse().ok()?;
                let prefix: u8 = bits.trim().parse().ok().filter(|b| (8..=30).contains(b))?;
                let mask = u32::MAX << (32 - u32::from(prefix));
                (u32::from(network) & !mask == 0).then_some(Subnet { network, prefix })
            });
            subnets.push(parsed.ok_or_else(|| {
                invalid(
                    "population.subnets",
                    format!("{s:?} is not a network like \"10.1.0.0/16\" (/8 to /30)"),
                )
            })?);
        }
        if subnets.is_empty() {
            return Err(invalid("population.subnets", "needs at least one subnet"));
        }
        if !(0.0..=1.0).contains(&p.internet_fraction) {
            return Err(invalid("population.internet_fraction", "must be 0 to 1"));
        }
        let c = &f.client;
        let policy_poll = span("client.policy_poll", &c.policy_poll, Duration::from_secs(3600))?;
        let reporting_cycle = span("client.reporting_cycle", &c.reporting_cycle, Duration::from_secs(900))?;
        let scan_window = span("client.scan_window", &c.scan_window, Duration::from_secs(7200))?;
        let scan_duration = span("client.scan_duration", &c.scan_duration, Duration::from_secs(300))?;
        let scan_spread = match c.scan_spread.as_deref() {
            None | Some("random") => ScanSpread::Random,
            Some("even") => ScanSpread::Even,
            Some(_) => return Err(invalid("client.scan_spread", "\"random\" or \"even\"")),
        };
        let s = &f.scan;
        for (key, v) in [
            ("scan.installed", s.installed),
            ("scan.not_required", s.not_required),
            ("scan.required", s.required),
            ("scan.unknown", s.unknown),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(key, "a probability is 0 to 1"));
            }
        }
        if ((s.installed + s.not_required + s.required + s.unknown) - 1.0).abs() > 1e-6 {
            return Err(invalid("scan", "installed + not_required + required + unknown must be 1"));
        }
        let r = &f.run;
        if !(r.time_scale.is_finite() && r.time_scale > 0.0 && r.time_scale <= 1e6) {
            return Err(invalid("run.time_scale", "must be a number above 0 (at most 1000000)"));
        }
        let duration = span("run.duration", &Some(r.duration.clone()), Duration::ZERO)?;
        if !(r.max_lateness_p99_ms.is_finite() && r.max_lateness_p99_ms > 0.0) {
            return Err(invalid("run.max_lateness_p99_ms", "milliseconds, above 0"));
        }
        let ramp_up = span("run.ramp_up", &r.ramp_up, Duration::ZERO).or_else(|e| match &r.ramp_up {
            Some(t) if t.trim() == "0s" || t.trim() == "0" => Ok(Duration::ZERO),
            _ => Err(e),
        })?;
        // A ramp-up longer than the run is allowed: the run is its first part (clients due to
        // start later exist, with their start timer, but never start).
        let mut events = Vec::new();
        for (i, e) in f.event.iter().enumerate() {
            let at = span(&format!("event[{i}].at"), &Some(e.at.clone()), Duration::ZERO)?;
            if at >= duration {
                return Err(invalid(format!("event[{i}].at"), "is past run.duration"));
            }
            if e.sync.new_updates > 10_000 || e.sync.superseded > 10_000 {
                return Err(invalid(format!("event[{i}].sync"), "at most 10000 updates per sync"));
            }
            events.push(SyncEvent { at, new_updates: e.sync.new_updates, superseded: e.sync.superseded });
        }
        events.sort_by_key(|e| e.at);
        let t = &f.transport;
        let wire = match t.wire.as_str() {
            "ccm" => Wire::Ccm,
            "plain" => Wire::Plain,
            other => return Err(invalid("transport.wire", format!("{other:?}: \"ccm\" or \"plain\""))),
        };
        if t.connections == 0 || t.connections > 65_536 {
            return Err(invalid("transport.connections", "must be 1 to 65536"));
        }
        if t.zlib_level > 9 {
            return Err(invalid("transport.zlib_level", "a zlib level, 0 to 9"));
        }
        if (f.open_model.is_some() || f.closed_model.is_some()) && !f.event.is_empty() {
            let key = if f.open_model.is_some() { "open_model" } else { "closed_model" };
            return Err(invalid(key, "the pacer runs without site events (remove [[event]])"));
        }
        let messages_ok = |m: usize| (1..=10_000).contains(&m);
        let open_model = match (&f.open_model, &f.closed_model) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(invalid("closed_model", "a profile has an open model or a closed one, not both"));
            }
            (Some(o), None) => {
                if !(o.rate.is_finite() && o.rate > 0.0 && o.rate <= 1e6) {
                    return Err(invalid("open_model.rate", "Reports per second, above 0"));
                }
                if !messages_ok(o.messages_per_report) {
                    return Err(invalid("open_model.messages_per_report", "must be 1 to 10000"));
                }
                Some((Arrivals::Open { rate: o.rate }, o.messages_per_report))
            }
            (None, Some(c)) => {
                let in_flight = c.reports_in_flight.unwrap_or(t.connections);
                if !(1..=65_536).contains(&in_flight) {
                    return Err(invalid("closed_model.reports_in_flight", "must be 1 to 65536"));
                }
                if !messages_ok(c.messages_per_report) {
                    return Err(invalid("closed_model.messages_per_report", "must be 1 to 10000"));
                }
                Some((Arrivals::Closed { in_flight }, c.messages_per_report))
            }
        };
        if f.backend.statesys_rate == Some(0) {
            return Err(invalid("backend.statesys_rate", "state messages a second, above 0"));
        }
        if f.backend
            .update_status
            .as_deref()
            .is_some_and(|s| parse_span(s).is_none_or(|d| d < Duration::from_secs(60)))
        {
            return Err(invalid(
                "backend.update_status",
                "a span of site time of at least 1m, such as \"15m\"",
            ));
        }
        if f.backend.retry_after.is_some_and(|s| s == 0 || s > 3600) {
            return Err(invalid("backend.retry_after", "seconds, 1 to 3600"));
        }
        let thresholds = f.thresholds.iter().map(|(k, v)| threshold(k, v)).collect::<Result<Vec<_>, _>>()?;
        let g = &f.signing;
        let signing = Signing {
            enabled: g.enabled,
            padding: match g.padding.as_deref() {
                None | Some("digest-info") => protocol::signing::Padding::DigestInfo,
                Some("bare") => protocol::signing::Padding::Bare,
                Some(_) => return Err(invalid("signing.padding", "\"digest-info\" or \"bare\"")),
            },
            keys: g.keys.unwrap_or(DEFAULT_SIGNING_KEYS),
            key_bits: g.key_bits.unwrap_or(2048),
        };
        if !(1..=4096).contains(&signing.keys) {
            return Err(invalid("signing.keys", "1 to 4096 keys"));
        }
        if !matches!(signing.key_bits, 2048 | 3072 | 4096) {
            return Err(invalid("signing.key_bits", "2048, 3072 or 4096"));
        }
        let mut mps: Vec<Mp> = Vec::new();
        for (i, m) in f.mp.iter().enumerate() {
            let url = m.url.trim().trim_end_matches('/').to_owned();
            let key = format!("mp[{i}].url");
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.parse::<hyper::Uri>().is_err()
            {
                return Err(invalid(
                    key,
                    format!("{:?} is not an MP's URL like \"http://mp1.lab:80\"", m.url),
                ));
            }
            if mps.iter().any(|o| o.url.eq_ignore_ascii_case(&url)) {
                return Err(invalid(key, format!("{url} is listed twice")));
            }
            if m.boundary_groups.iter().any(|g| g.trim().is_empty()) {
                return Err(invalid(format!("mp[{i}].boundary_groups"), "a boundary group's name is empty"));
            }
            mps.push(Mp {
                url,
                boundary_groups: m.boundary_groups.iter().map(|g| g.trim().to_owned()).collect(),
            });
        }
        if mps.len() > 64 {
            return Err(invalid("mp", "at most 64 MPs"));
        }
        if !mps.is_empty() && open_model.is_some() {
            return Err(invalid(
                "mp",
                "the open and closed models send to --target; MPs are for clients' lives",
            ));
        }
        if signing.enabled == Some(true) && (wire != Wire::Ccm || open_model.is_some()) {
            return Err(invalid(
                "signing.enabled",
                "signing needs wire = \"ccm\" and the client lifecycle (no open or closed model: their senders do not register)",
            ));
        }
        Ok(Plan {
            name: name.to_owned(),
            clients: p.clients,
            seed: p.seed,
            ad_sites: p.ad_sites.iter().map(|s| s.trim().to_owned()).collect(),
            subnets,
            internet_fraction: p.internet_fraction,
            policy_poll,
            reporting_cycle,
            scan_window,
            scan_spread,
            scan_duration,
            installed: s.installed,
            not_required: s.not_required,
            required: s.required,
            unknown: s.unknown,
            time_scale: r.time_scale,
            duration,
            ramp_up,
            max_lateness_p99_ms: r.max_lateness_p99_ms,
            events,
            wire,
            mps,
            connections: t.connections,
            zlib_level: t.zlib_level,
            open_model,
            signing,
            backend: f.backend.clone(),
            thresholds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [population]
        clients = 10
        [run]
        duration = "1h"
    "#;

    #[test]
    fn the_sites_mps() {
        let text = format!(
            "{BASE}\n[[mp]]\nurl = \"http://mp1.lab:80/\"\nboundary_groups = [\"HQ\"]\n[[mp]]\nurl = \"https://mp2.lab\"\n"
        );
        let p = Plan::parse("t", &text).unwrap();
        assert_eq!(
            p.mps,
            [
                Mp { url: "http://mp1.lab:80".into(), boundary_groups: vec!["HQ".into()] },
                Mp { url: "https://mp2.lab".into(), boundary_groups: vec![] },
            ]
        );
        assert!(Plan::parse("t", BASE).unwrap().mps.is_empty(), "none: --target alone");
        for (bad, key) in [
            ("[[mp]]\nurl = \"mp1.lab\"\n", "mp[0].url"),
            ("[[mp]]\nurl = \"http://a\"\n[[mp]]\nurl = \"http://A/\"\n", "mp[1].url"),
            ("[[mp]]\nurl = \"http://a\"\nboundary_groups = [\" \"]\n", "mp[0].boundary_groups"),
            ("[[mp]]\nurl = \"http://a\"\n[open_model]\nrate = 10\nmessages_per_report = 5\n", "mp"),
        ] {
            let e = Plan::parse("t", &format!("{BASE}\n{bad}")).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn defaults_and_thresholds() {
        let p = Plan::parse("t", BASE).unwrap();
        assert_eq!((p.policy_poll, p.reporting_cycle), (Duration::from_secs(3600), Duration::from_secs(900)));
        assert_eq!(p.wire, Wire::Ccm);
        let text = format!(
            "{BASE}\n[thresholds]\n\"state_report.p99\" = \"< 1.5s\"\n\"error_rate\" = \"< 1%\"\n\"catalog.p50.uncorrected\" = \"< 900us\"\n\"state_messages_per_second\" = \"> 1000\""
        );
        let p = Plan::parse("t", &text).unwrap();
        let by = |n: &str| p.thresholds.iter().find(|t| t.name == n).unwrap().clone();
        assert_eq!(by("state_report.p99").value, 1500.0);
        assert_eq!(by("error_rate").value, 0.01);
        assert_eq!(
            by("catalog.p50.uncorrected").metric,
            Metric::Latency { kind: Kind::Catalog, stat: "p50", uncorrected: true }
        );
        assert!(!by("state_messages_per_second").less_than);
        let text = format!(
            "{BASE}\n[backend]\nupdate_status = \"15m\"\n[thresholds]\n\"convergence.t95\" = \"< 4h\"\n\"convergence.applied.t100\" = \"< 90m\""
        );
        let p = Plan::parse("t", &text).unwrap();
        let by = |n: &str| p.thresholds.iter().find(|t| t.name == n).unwrap().clone();
        assert_eq!(by("convergence.t95").metric, Metric::Convergence { stage: "visible", percent: 95 });
        assert_eq!(by("convergence.t95").value, 4.0 * 3600.0);
        assert_eq!(
            by("convergence.applied.t100").metric,
            Metric::Convergence { stage: "applied", percent: 100 }
        );
        assert_eq!(by("convergence.applied.t100").value, 5400.0);
        assert_eq!(
            Subnet { network: Ipv4Addr::new(10, 0, 0, 0), prefix: 30 }.host(5),
            Ipv4Addr::new(10, 0, 0, 2)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (BASE.replace("clients = 10", "clients = 0"), "population.clients"),
            (BASE.replace("\"1h\"", "\"forever\""), "run.duration"),
            (
                format!("{BASE}\n[scan]\ninstalled = 0.5\nnot_required = 0.5\nrequired = 0.5\nunknown = 0"),
                "scan",
            ),
            (format!("{BASE}\n[transport]\nwire = \"smoke\""), "transport.wire"),
            (format!("{BASE}\n[[event]]\nat = \"2h\"\nsync = {{}}"), "event[0].at"),
            (BASE.replace("clients = 10", "clients = 10\nsubnets = [\"10.0.0.1/8\"]"), "population.subnets"),
            (
                format!("{BASE}\n[thresholds]\n\"state_report.p42\" = \"< 1ms\""),
                "thresholds.\"state_report.p42\"",
            ),
            (format!("{BASE}\n[thresholds]\n\"bogus\" = \"< 1ms\""), "thresholds.\"bogus\""),
            (format!("{BASE}\n[thresholds]\n\"error_rate\" = \"< 1ms\""), "thresholds.\"error_rate\""),
            (
                format!("{BASE}\n[thresholds]\n\"convergence.t97\" = \"< 1h\""),
                "thresholds.\"convergence.t97\"",
            ),
            (
                format!("{BASE}\n[thresholds]\n\"convergence.seen.t50\" = \"< 1h\""),
                "thresholds.\"convergence.seen.t50\"",
            ),
            (
                format!("{BASE}\n[thresholds]\n\"convergence.t50\" = \"< 5%\""),
                "thresholds.\"convergence.t50\"",
            ),
            (
                format!("{BASE}\n[thresholds]\n\"convergence.t50\" = \"< 1h in 99% of 10s windows\""),
                "thresholds.\"convergence.t50\"",
            ),
            (format!("{BASE}\n[backend]\nupdate_status = \"10s\""), "backend.update_status"),
        ];
        for (text, key) in cases {
            let err = Plan::parse("t", &text).unwrap_err();
            assert!(matches!(&err, ProfileError::Invalid { key: k, .. } if k == key), "{key}: {err}");
        }
        let unknown = Plan::parse("t", &format!("{BASE}\n[client]\npoll = \"1m\"")).unwrap_err();
        assert!(unknown.to_string().contains("poll"), "{unknown}");
    }

    /// Profiles with arbitrary values where values go: used within the documented bounds, or
    /// refused with the key named; never a panic.
    mod arbitrary {
        use super::*;
        use proptest::prelude::*;

        /// Usually `valid`, sometimes anything a TOML value can be.
        fn value(valid: &'static str) -> impl Strategy<Value = String> {
            prop_oneof![
                6 => Just(valid.to_owned()),
                1 => any::<i64>().prop_map(|n| n.to_string()),
                1 => any::<f64>()
                    .prop_map(|f| format!("{f:?}"))
                    .prop_filter("TOML float", |f| !f.contains("inf") && !f.contains("NaN")),
                1 => "[0-9]{1,22}(\\.[0-9]{0,3})?[smhdx]?".prop_map(|t| format!("{t:?}")),
                1 => "[ -~]{0,12}".prop_map(|t| format!("{t:?}")),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
            #[test]
            fn used_within_bounds_or_refused_by_key(
                clients in value("40"), time_scale in value("60.0"), duration in value("\"1h\""),
                connections in value("8"), rate in value("100.0"), messages in value("20"),
                fraction in value("0.25"), at in value("\"10m\""), threshold in value("\"< 500ms\""),
                pacer in 0..3u8,
            ) {
                let open_model = if pacer == 1 {
                    format!("[open_model]\nrate = {rate}\nmessages_per_report = {messages}\n")
                } else if pacer == 2 {
                    format!("[closed_model]\nreports_in_flight = {connections}\nmessages_per_report = {messages}\n")
                } else {
                    format!("[[event]]\nat = {at}\nsync = {{ new_updates = 3, superseded = 1 }}\n")
                };
                let text = format!("[population]\nclients = {clients}\ninternet_fraction = {fraction}\n\
                    [run]\ntime_scale = {time_scale}\nduration = {duration}\n\
                    [transport]\nconnections = {connections}\n{open_model}\
                    [thresholds]\n\"state_report.p99\" = {threshold}\n");
                match Plan::parse("arbitrary", &text) {
                    Ok(p) => {
                        prop_assert!((1..=10_000_000).contains(&p.clients));
                        prop_assert!((1..=65_536).contains(&p.connections));
                        prop_assert!(p.time_scale.is_finite() && p.time_scale > 0.0);
                        prop_assert!((0.0..=1.0).contains(&p.internet_fraction));
                        match p.open_model {
                            Some((Arrivals::Open { rate }, m)) => {
                                prop_assert!(rate.is_finite() && rate > 0.0 && (1..=10_000).contains(&m));
                            }
                            Some((Arrivals::Closed { in_flight }, m)) => {
                                prop_assert!((1..=65_536).contains(&in_flight) && (1..=10_000).contains(&m));
                            }
                            None => {}
                        }
                    }
                    Err(ProfileError::Invalid { key, why }) => prop_assert!(!key.is_empty() && !why.is_empty()),
                    Err(ProfileError::Toml(why)) => prop_assert!(!why.is_empty()),
                }
            }
        }
    }
}
