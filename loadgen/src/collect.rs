//! A fleet with one live verdict: `loadgen collect` and the shards that report to it
//! (`loadgen run --shard I/N --collector URL`).
//!
//! **Shards** wait until every shard has said hello (a barrier, so their clocks start together),
//! then send each second's interval figures (the same compressed V2 histograms as
//! `latency.hlog`, base64, and the counts) and, at the end, their whole-run figures with every
//! client's ground truth ([`Truth`]) and acknowledged scans ([`Ack`]). A post that fails is
//! tried again; the collector knows an interval by its sequence number, so nothing is counted
//! twice.
//!
//! **The collector** adds the intervals as they come into one fleet interval a second
//! (histograms added, never percentiles averaged): one progress line for the fleet, the
//! profile's windowed thresholds and aborts judged across every shard ([`crate::windows`]), and
//! an abort told to every shard in the answer to its next post (within about two seconds). It
//! fires the profile's syncs on the fleet's clock (once for the site, not once a shard). When
//! every shard has finished it lets the target drain and summarize, verifies its views against
//! every shard's truth and writes the same result files as one run ([`crate::run`]), with
//! `summary.json` `fleet` saying what each shard did.
//!
//! **Restarts**: a shard process has an attempt number of its own (random). When a shard's
//! index comes back with another attempt (Kubernetes retries an index), the earlier attempt's
//! intervals and end are dropped from the result and its posts are refused from then on; the new
//! attempt runs its clients' lives again and is counted once. What the earlier attempt sent did
//! reach the target, which the fleet's live view showed at the time.
//!
//! **Incomplete**: a shard that never joins, or joins and never finishes by the run's end plus
//! `--grace`, makes the run incomplete: exit 5 ([`EXIT_INCOMPLETE`]), result files for what
//! did arrive, no verification, never a pass.
//!
//! **Trust**: every post needs the fleet's token (`Authorization: Bearer`); without it `401`,
//! with another `403`; a body that does not decode `400`; a shard of another fleet (profile,
//! clients, seed, duration, time scale, shard count) `409`; an attempt that was superseded `409`
//! with `stop`. A refused post changes nothing. Bodies are limited (intervals 4 MiB, ends 1 GiB:
//! a million clients' truths are about 40 MB).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use base64::Engine as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::Truth;
use crate::convergence::Ack;
use crate::metrics::{self, Figures, KindStats};
use crate::profile::{Kind, Plan};
use crate::results::HlogWriter;
use crate::run::{self, Finished, Observed, Options, Settled, Shape};
use crate::sim::SimClock;
use crate::transport::{call_with, get_json};

/// The run is incomplete: a shard never joined or never finished (contract §3.1's statuses,
/// extended).
pub const EXIT_INCOMPLETE: u8 = 5;

/// Where shards and collector read the fleet's token when no file is given.
pub const TOKEN_ENV: &str = "SUMSTORM_COLLECTOR_TOKEN";

const INTERVAL_LIMIT: usize = 4 << 20;
const DONE_LIMIT: usize = 1 << 30;

// ---------------------------------------------------------------------------------------------
// The wire

/// What makes shards one fleet: the same profile, population, seed, duration and time scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanId {
    pub profile: String,
    pub clients: u64,
    pub seed: u64,
    pub duration_seconds: f64,
    pub time_scale: f64,
}

impl PlanId {
    pub fn of(plan: &Plan) -> PlanId {
        PlanId {
            profile: plan.name.clone(),
            clients: plan.clients,
            seed: plan.seed,
            duration_seconds: plan.duration.as_secs_f64(),
            time_scale: plan.time_scale,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    shard: u64,
    shards: u64,
    attempt: u64,
    plan: PlanId,
}

/// The collector's answer to every post: start (after a hello), or stop (the fleet aborted, or
/// this attempt was superseded).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Answer {
    go: bool,
    stop: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct IntervalPost {
    shard: u64,
    attempt: u64,
    /// 0, 1, 2 ... within the attempt.
    seq: u64,
    /// The interval's length, seconds (it ended when it was sent: the collector places it by
    /// its own clock, so the machines' clocks need not agree).
    length: f64,
    figures: WireFigures,
}

#[derive(Debug, Serialize, Deserialize)]
struct DonePost {
    shard: u64,
    attempt: u64,
    /// Intervals the attempt sent (the collector says how many it has).
    intervals: u64,
    /// The shard's own `summary.json`.
    summary: Value,
    totals: WireFigures,
    truths: Vec<Truth>,
    acks: Vec<Ack>,
}

/// [`Figures`] on the wire: each histogram as a compressed V2 payload in base64 (an interval
/// log's encoding), the counts as numbers.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WireFigures {
    kinds: BTreeMap<String, WireKind>,
    lateness: String,
    messages_sent: u64,
    messages_acked: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireKind {
    corrected: String,
    uncorrected: String,
    ok: u64,
    errors: u64,
    built: u64,
    build_nanos: u64,
}

fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut raw = Vec::new();
    // Serializing into memory cannot fail for a histogram we made.
    let _ = V2DeflateSerializer::new().serialize(h, &mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// A histogram a shard sent, into one of ours (3 significant digits, µs).
fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    let raw = base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("base64: {e}"))?;
    let h: Histogram<u64> =
        Deserializer::new().deserialize(&mut raw.as_slice()).map_err(|e| format!("histogram: {e:?}"))?;
    if h.sigfig() != 3 || h.low() != 1 {
        return Err(format!(
            "histogram of {} significant digits from {}: not a loadgen one",
            h.sigfig(),
            h.low()
        ));
    }
    let mut ours = metrics::histogram();
    ours.add(&h).map_err(|e| format!("histogram: {e:?}"))?;
    Ok(ours)
}

/// `f` for the wire (kinds that saw nothing are left out).
pub fn encode(f: &Figures) -> WireFigures {
    let kinds = Kind::ALL
        .iter()
        .filter(|k| f.kind(**k).requests() > 0 || f.kind(**k).built > 0)
        .map(|k| {
            let s = f.kind(*k);
            let w = WireKind {
                corrected: encode_histogram(&s.corrected),
                uncorrected: encode_histogram(&s.uncorrected),
                ok: s.ok,
                errors: s.errors,
                built: s.built,
                build_nanos: s.build_nanos,
            };
            (k.name().to_owned(), w)
        })
        .collect();
    WireFigures {
        kinds,
        lateness: encode_histogram(&f.lateness),
        messages_sent: f.messages_sent,
        messages_acked: f.messages_acked,
    }
}

/// Figures from the wire; an unknown kind or a histogram that does not decode is an error.
pub fn decode(w: &WireFigures) -> Result<Figures, String> {
    let mut f = Figures::default();
    for (name, k) in &w.kinds {
        let kind = Kind::from_name(name).ok_or_else(|| format!("no request kind {name:?}"))?;
        f.kinds[kind.index()] = KindStats {
            corrected: decode_histogram(&k.corrected)?,
            uncorrected: decode_histogram(&k.uncorrected)?,
            ok: k.ok,
            errors: k.errors,
            built: k.built,
            build_nanos: k.build_nanos,
        };
    }
    f.lateness = decode_histogram(&w.lateness)?;
    (f.messages_sent, f.messages_acked) = (w.messages_sent, w.messages_acked);
    Ok(f)
}

/// The fleet's token: the file's first line, else [`TOKEN_ENV`]; an empty one is none.
pub fn read_token(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let token = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| f.display().to_string())?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned(),
        None => std::env::var(TOKEN_ENV).unwrap_or_default().trim().to_owned(),
    };
    if token.is_empty() {
        anyhow::bail!("the fleet needs a token: --token-file FILE or {TOKEN_ENV}");
    }
    Ok(token)
}

// ---------------------------------------------------------------------------------------------
// The shard's side

/// Where a shard reports (`--collector URL`, with the fleet's token).
#[derive(Debug, Clone)]
pub struct Uplink {
    pub url: String,
    pub token: String,
    /// How long a shard waits for the collector and the other shards before it gives up.
    pub patience: Duration,
}

/// A joined shard: its attempt, the intervals' sender, and whether the collector said stop.
#[derive(Debug)]
pub struct Link {
    uplink: Uplink,
    shard: u64,
    attempt: u64,
    seq: std::cell::Cell<u64>,
    tx: tokio::sync::mpsc::UnboundedSender<IntervalPost>,
    sender: tokio::task::JoinHandle<()>,
    stop: Arc<Mutex<Option<String>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Uplink {
    /// Posts `body` to the collector: its status and answer (an answer that is not one of
    /// ours: the default, with the text as `stop`), or the transport's error.
    async fn post(&self, path: &str, body: &[u8], limit: Duration) -> anyhow::Result<(StatusCode, Answer)> {
        let auth = format!("Bearer {}", self.token);
        let (status, reply) =
            call_with(&self.url, Method::POST, path, body, &[("authorization", &auth)], limit).await?;
        let answer = serde_json::from_slice(&reply).unwrap_or_else(|_| Answer {
            go: false,
            stop: Some(String::from_utf8_lossy(&reply).trim().to_owned()),
        });
        Ok((status, answer))
    }

    /// Says hello as shard `i` of `n` of `plan`'s fleet and waits until the collector says
    /// go (every shard is there): refused (another fleet, a bad token) or not there within
    /// `patience`: an error.
    pub async fn join(&self, plan: &Plan, (i, n): (u64, u64), progress: bool) -> anyhow::Result<Link> {
        let attempt = rand::random::<u64>() >> 11;
        let hello = serde_json::to_vec(&Hello { shard: i, shards: n, attempt, plan: PlanId::of(plan) })?;
        let until = Instant::now() + self.patience;
        let mut said = false;
        let stopped = loop {
            match self.post("/v1/hello", &hello, Duration::from_secs(10)).await {
                // Go; stopped already when the fleet aborted before this attempt joined.
                Ok((StatusCode::OK, Answer { go: true, stop })) => break stop,
                Ok((StatusCode::OK, _)) => {}
                // Refused: another fleet, a bad token. Waiting will not mend it.
                Ok((status, answer)) if status.is_client_error() => anyhow::bail!(
                    "the collector refused shard {i}/{n}: {status} {}",
                    answer.stop.unwrap_or_default()
                ),
                // Not there yet, or not answering well yet: wait.
                Ok(_) | Err(_) => {}
            }
            if progress && !said {
                eprintln!(
                    "loadgen: shard {i}/{n} waits for the collector at {} and the other shards",
                    self.url
                );
                said = true;
            }
            if Instant::now() >= until {
                anyhow::bail!(
                    "the collector at {} did not start the fleet within {:?}",
                    self.url,
                    self.patience
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let stop = Arc::new(Mutex::new(stopped));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<IntervalPost>();
        let sender = {
            let (uplink, stop) = (self.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                while let Some(post) = rx.recv().await {
                    let Ok(body) = serde_json::to_vec(&post) else { continue };
                    // Three tries a second apart; an interval that never arrives is a gap in the
                    // fleet's live view (the end's totals carry it).
                    for _ in 0..3 {
                        match uplink.post("/v1/interval", &body, Duration::from_secs(5)).await {
                            Ok((_, Answer { stop: Some(why), .. })) => {
                                *lock(&stop) = Some(why);
                                break;
                            }
                            Ok((status, _)) if status.is_success() => break,
                            _ => tokio::time::sleep(Duration::from_secs(1)).await,
                        }
                    }
                }
            })
        };
        Ok(Link { uplink: self.clone(), shard: i, attempt, seq: std::cell::Cell::new(0), tx, sender, stop })
    }
}

impl Link {
    /// Queues the interval that just ended, `length` long.
    pub fn send(&self, length: Duration, figures: &Figures) {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        let _ = self.tx.send(IntervalPost {
            shard: self.shard,
            attempt: self.attempt,
            seq,
            length: length.as_secs_f64(),
            figures: encode(figures),
        });
    }

    /// Why the collector stopped the fleet, once it has.
    pub fn stopped(&self) -> Option<String> {
        lock(&self.stop).clone()
    }

    /// The end: the queued intervals sent, then the shard's summary, whole-run figures, truths
    /// and acknowledged scans, tried until the collector has them (up to the uplink's patience).
    pub async fn done(
        self,
        summary: &Value,
        totals: &Figures,
        truths: &[Truth],
        acks: &[Ack],
    ) -> anyhow::Result<()> {
        let Link { uplink, shard, attempt, seq, tx, sender, .. } = self;
        drop(tx);
        let _ = tokio::time::timeout(Duration::from_secs(30), sender).await;
        let body = serde_json::to_vec(&DonePost {
            shard,
            attempt,
            intervals: seq.get(),
            summary: summary.clone(),
            totals: encode(totals),
            truths: truths.to_vec(),
            acks: acks.to_vec(),
        })?;
        let until = Instant::now() + uplink.patience;
        loop {
            match uplink.post("/v1/done", &body, Duration::from_secs(120)).await {
                Ok((status, _)) if status.is_success() => return Ok(()),
                Ok((status, answer)) => anyhow::bail!(
                    "the collector refused shard {shard}'s end: {status} {}",
                    answer.stop.unwrap_or_default()
                ),
                Err(e) if Instant::now() >= until => {
                    return Err(e.context(format!("the collector at {} never took the end", uplink.url)));
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The collector

/// What `loadgen collect` was asked.
#[derive(Debug, Clone)]
pub struct Config {
    pub shards: u64,
    pub listen: SocketAddr,
    pub out: PathBuf,
    /// The MP the fleet drives: the collector fires the syncs there, and drains, summarizes and
    /// verifies it at the end.
    pub target: String,
    pub token: String,
    /// How long the shards have to join (from the collector's start).
    pub join_within: Duration,
    /// How long after the run's real end the shards have to finish.
    pub grace: Duration,
    pub verify: bool,
    pub allow_late: bool,
    pub progress: bool,
}

/// What a collection produced.
#[derive(Debug)]
pub struct Collected {
    pub exit: u8,
    pub summary: Value,
    /// Where the collector listened (its port, when asked for port 0).
    pub addr: SocketAddr,
}

/// A shard's end, as its attempt sent it.
#[derive(Debug)]
struct Ended {
    summary: Value,
    totals: Figures,
    truths: Vec<Truth>,
    acks: Vec<Ack>,
    intervals_sent: u64,
}

/// One attempt of one shard index.
#[derive(Debug)]
struct Attempt {
    id: u64,
    /// Where its hello came from, and when.
    address: std::net::IpAddr,
    joined: Instant,
    seen: std::collections::HashSet<u64>,
    /// Its intervals as interval-log lines (corrected, service time), by their start after the
    /// fleet's start.
    hlog: Vec<(f64, Vec<u8>)>,
    service: Vec<(f64, Vec<u8>)>,
    /// When its last interval arrived.
    last_interval: Option<Instant>,
    ended: Option<Ended>,
}

impl Attempt {
    fn new(id: u64, address: std::net::IpAddr) -> Attempt {
        Attempt {
            id,
            address,
            joined: Instant::now(),
            seen: Default::default(),
            hlog: Vec::new(),
            service: Vec::new(),
            last_interval: None,
            ended: None,
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    current: Option<Attempt>,
    attempts: u32,
}

#[derive(Debug)]
struct State {
    id: PlanId,
    n: u64,
    token: String,
    slots: Vec<Slot>,
    /// When the last shard joined: the fleet's clock starts.
    started: Option<Instant>,
    /// The fleet's interval being filled.
    pending: Figures,
    /// Why the fleet stops (an abort), and when.
    stop: Option<(String, Instant)>,
    /// Results are being written: no more posts.
    over: bool,
    refused: BTreeMap<u16, u64>,
    bytes: u64,
}

type Reply = Response<Full<Bytes>>;

fn answer(status: StatusCode, a: &Answer) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec(a).unwrap_or_default())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn refuse(state: &Mutex<State>, status: StatusCode, why: impl Into<String>) -> Reply {
    *lock(state).refused.entry(status.as_u16()).or_default() += 1;
    answer(status, &Answer { go: false, stop: Some(why.into()) })
}

/// Constant-time comparison of the presented token with the fleet's.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(
    state: Arc<Mutex<State>>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET && path == "/v1/status" {
        return Ok(status_reply(&state));
    }
    let limit = match (req.method(), path.as_str()) {
        (&Method::POST, "/v1/hello" | "/v1/interval") => INTERVAL_LIMIT,
        (&Method::POST, "/v1/done") => DONE_LIMIT,
        _ => return Ok(refuse(&state, StatusCode::NOT_FOUND, format!("the collector has no {path}"))),
    };
    let presented = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(presented) = presented else {
        let mut r =
            refuse(&state, StatusCode::UNAUTHORIZED, "the fleet's token is needed (Authorization: Bearer)");
        r.headers_mut()
            .insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
        return Ok(r);
    };
    let token = lock(&state).token.clone();
    if !same(presented.as_bytes(), token.as_bytes()) {
        return Ok(refuse(&state, StatusCode::FORBIDDEN, "not this fleet's token"));
    }
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let status = if e.is::<http_body_util::LengthLimitError>() {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return Ok(refuse(&state, status, format!("{path}: {e}")));
        }
    };
    lock(&state).bytes += body.len() as u64;
    let reply = match path.as_str() {
        "/v1/hello" => match serde_json::from_slice::<Hello>(&body) {
            Ok(h) => hello(&state, &h, peer),
            Err(e) => Err((StatusCode::BAD_REQUEST, format!("hello: {e}"))),
        },
        "/v1/interval" => match serde_json::from_slice::<IntervalPost>(&body) {
            Ok(i) => interval(&state, i),
            Err(e) => Err((StatusCode::BAD_REQUEST, format!("interval: {e}"))),
        },
        _ => match serde_json::from_slice::<DonePost>(&body) {
            Ok(d) => done(&state, d),
            Err(e) => Err((StatusCode::BAD_REQUEST, format!("done: {e}"))),
        },
    };
    Ok(match reply {
        Ok(a) => answer(StatusCode::OK, &a),
        Err((status, why)) => refuse(&state, status, why),
    })
}

type Handled = Result<Answer, (StatusCode, String)>;

fn stop_now(s: &State) -> Option<String> {
    s.stop.as_ref().map(|(why, _)| why.clone())
}

fn hello(state: &Mutex<State>, h: &Hello, peer: SocketAddr) -> Handled {
    let mut s = lock(state);
    if s.over {
        return Err((StatusCode::CONFLICT, "the run is over".into()));
    }
    if h.shards != s.n || h.shard >= s.n {
        return Err((
            StatusCode::CONFLICT,
            format!("shard {}/{}: this fleet has {} shards", h.shard, h.shards, s.n),
        ));
    }
    if h.plan != s.id {
        return Err((
            StatusCode::CONFLICT,
            format!("another fleet's shard: it runs {:?}, this fleet {:?}", h.plan, s.id),
        ));
    }
    let slot = &mut s.slots[h.shard as usize];
    match &slot.current {
        Some(a) if a.id == h.attempt => {}
        previous => {
            if previous.is_some() {
                eprintln!(
                    "\nloadgen collect: shard {} came back (attempt {}): its earlier attempt's figures are dropped",
                    h.shard,
                    slot.attempts + 1
                );
            }
            slot.current = Some(Attempt::new(h.attempt, peer.ip()));
            slot.attempts += 1;
        }
    }
    if s.started.is_none() && s.slots.iter().all(|x| x.current.is_some()) {
        s.started = Some(Instant::now());
    }
    Ok(Answer { go: s.started.is_some(), stop: stop_now(&s) })
}

/// The shard's current attempt, or why this post is not one.
fn current(s: &mut State, shard: u64, attempt: u64) -> Result<&mut Attempt, (StatusCode, String)> {
    if s.over {
        return Err((StatusCode::CONFLICT, "the run is over".into()));
    }
    let slot = s.slots.get_mut(shard as usize).ok_or((StatusCode::CONFLICT, format!("no shard {shard}")))?;
    match &mut slot.current {
        Some(a) if a.id == attempt => Ok(a),
        _ => Err((
            StatusCode::CONFLICT,
            format!("shard {shard}: attempt {attempt} was superseded or never joined"),
        )),
    }
}

fn interval(state: &Mutex<State>, post: IntervalPost) -> Handled {
    let figures = decode(&post.figures).map_err(|e| (StatusCode::BAD_REQUEST, format!("interval: {e}")))?;
    if !(post.length.is_finite() && (0.0..=3600.0).contains(&post.length)) {
        return Err((StatusCode::BAD_REQUEST, format!("interval: a length of {} s", post.length)));
    }
    let mut s = lock(state);
    let started = s.started.ok_or((StatusCode::CONFLICT, "the fleet has not started".to_owned()))?;
    let a = current(&mut s, post.shard, post.attempt)?;
    if a.seen.insert(post.seq) {
        // Placed by the collector's clock: it ended now.
        let now = Instant::now();
        let end = now.saturating_duration_since(started).as_secs_f64();
        let (start, length) = ((end - post.length).max(0.0), Duration::from_secs_f64(post.length));
        let mut lines = HlogWriter::default();
        lines.interval(Duration::from_secs_f64(start), length, &figures);
        a.hlog.push((start, lines.bytes));
        let mut lines = HlogWriter::default();
        lines.interval_of(Duration::from_secs_f64(start), length, &figures, true);
        a.service.push((start, lines.bytes));
        a.last_interval = Some(now);
        s.pending.add(&figures);
    }
    Ok(Answer { go: true, stop: stop_now(&s) })
}

fn done(state: &Mutex<State>, post: DonePost) -> Handled {
    let totals = decode(&post.totals).map_err(|e| (StatusCode::BAD_REQUEST, format!("done: {e}")))?;
    let mut s = lock(state);
    let (n, clients) = (s.n, s.id.clients);
    if let Some(t) = post.truths.iter().find(|t| t.index >= clients || t.index % n != post.shard) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("done: client {} is not shard {}'s", t.index, post.shard),
        ));
    }
    let a = current(&mut s, post.shard, post.attempt)?;
    a.ended = Some(Ended {
        summary: post.summary,
        totals,
        truths: post.truths,
        acks: post.acks,
        intervals_sent: post.intervals,
    });
    Ok(Answer::default())
}

fn status_reply(state: &Mutex<State>) -> Reply {
    let s = lock(state);
    let shards: Vec<Value> = s
        .slots
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            json!({
                "shard": i,
                "attempts": slot.attempts,
                "intervals": slot.current.as_ref().map_or(0, |a| a.seen.len()),
                "finished": slot.current.as_ref().is_some_and(|a| a.ended.is_some()),
            })
        })
        .collect();
    let body = json!({
        "started": s.started.is_some(),
        "stop": stop_now(&s),
        "shards": shards,
        "refused": s.refused,
    });
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    r.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}

/// Serves the collector on `listener` until the runtime ends.
async fn serve(listener: tokio::net::TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(Arc::clone(&state), peer, req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Collects a fleet's run of `plan` (its text `profile_text`) as `cfg` says, on a runtime of
/// its own; `ready` gets the address it listens on.
pub fn collect(
    plan: Plan,
    profile_text: &str,
    cfg: &Config,
    ready: Option<std::sync::mpsc::Sender<SocketAddr>>,
) -> anyhow::Result<Collected> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("the collector's runtime")?;
    runtime.block_on(collect_on(plan, profile_text, cfg, ready))
}

async fn collect_on(
    plan: Plan,
    profile_text: &str,
    cfg: &Config,
    ready: Option<std::sync::mpsc::Sender<SocketAddr>>,
) -> anyhow::Result<Collected> {
    let dir = &cfg.out;
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    std::fs::write(dir.join("profile.toml"), profile_text).context("profile.toml")?;
    let base = cfg.target.trim_end_matches('/').to_owned();
    get_json(&base, "/api/v1/site")
        .await
        .map_err(|e| anyhow!("target: {base} does not answer as an MP with the site API ({e:#})"))?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let n = cfg.shards.max(1);
    let state = Arc::new(Mutex::new(State {
        id: PlanId::of(&plan),
        n,
        token: cfg.token.clone(),
        slots: (0..n).map(|_| Slot::default()).collect(),
        started: None,
        pending: Figures::default(),
        stop: None,
        over: false,
        refused: BTreeMap::new(),
        bytes: 0,
    }));
    let server = tokio::spawn(serve(listener, Arc::clone(&state)));
    if let Some(tx) = ready {
        let _ = tx.send(addr);
    }
    eprintln!(
        "loadgen collect: http://{addr}: waiting for {n} shards of {} ({} clients)",
        plan.name, plan.clients
    );

    // The barrier: every shard has said hello.
    let waited = Instant::now();
    let started = loop {
        if let Some(t) = lock(&state).started {
            break Some(t);
        }
        if waited.elapsed() >= cfg.join_within {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let collector_cpu = metrics::process_cpu_seconds();
    let outcome = match started {
        Some(t0) => run_fleet(&plan, cfg, &base, &state, t0).await,
        None => Ran::default(),
    };
    lock(&state).over = true;
    server.abort();
    finish(plan, cfg, &base, &state, outcome, addr, collector_cpu).await
}

/// What the fleet's run recorded live.
#[derive(Debug, Default)]
struct Ran {
    timeline: Vec<Value>,
    syncs: Vec<Value>,
    fired: Vec<crate::convergence::Sync>,
    peak_backlog: u64,
    windows: Option<crate::windows::Windows>,
    aborted: Option<crate::windows::Abort>,
    /// When the fleet stopped for an abort.
    stopped: Option<Instant>,
    /// The fleet's start, Unix seconds (the interval logs' base).
    start_unix: f64,
}

/// The run, once a second until every shard's current attempt ended (or the run's end plus the
/// grace passed, counted from the latest attempt's start: a shard that came back runs its whole
/// life again): the fleet's interval, windows and abort, syncs, the target's backlog, progress.
async fn run_fleet(plan: &Plan, cfg: &Config, base: &str, state: &Mutex<State>, t0: Instant) -> Ran {
    let sim_start = protocol::Timestamp(
        std::time::SystemTime::now()
            .checked_sub(t0.elapsed())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_micros() as i64),
    );
    let clock = SimClock { real_start: t0, sim_start, scale: plan.time_scale };
    let start_unix = sim_start.0 as f64 / 1e6;
    let life = clock.real(plan.duration) + cfg.grace;
    let ramp_end = clock.real(plan.ramp_up).as_secs_f64();
    let mut windows = crate::windows::Windows::new(&plan.thresholds, ramp_end);
    let mut ran = Ran { start_unix, ..Ran::default() };
    let mut events = plan.events.iter().peekable();
    let mut last = t0;
    let mut p99_so_far = metrics::histogram();
    eprintln!("loadgen collect: every shard is here; the fleet starts");
    loop {
        tokio::time::sleep((last + Duration::from_secs(1)).saturating_duration_since(Instant::now())).await;
        let now = Instant::now();
        let (interval, finished, reporting, deadline) = {
            let mut s = lock(state);
            let interval = std::mem::take(&mut s.pending);
            let current = || s.slots.iter().filter_map(|x| x.current.as_ref());
            let finished = current().filter(|a| a.ended.is_some()).count();
            let reporting = current()
                .filter(|a| a.last_interval.is_some_and(|t| now.duration_since(t) < Duration::from_secs(3)))
                .count();
            let latest = current().map(|a| a.joined).max().unwrap_or(t0).max(t0);
            (interval, finished, reporting, latest + life)
        };
        let length = now.saturating_duration_since(last);
        let since = last.saturating_duration_since(t0);
        last = now;
        if ran.aborted.is_none()
            && let Some(a) = windows.add(&interval, (since + length).as_secs_f64(), length.as_secs_f64())
        {
            eprintln!(
                "\nloadgen collect: aborted at {:.0} s: threshold {} failed for its abort stretch; every shard is told to stop",
                a.at, a.threshold
            );
            lock(state).stop = Some((a.threshold.clone(), now));
            ran.stopped = Some(now);
            ran.aborted = Some(a);
        }
        while let Some(e) = events.next_if(|e| ran.aborted.is_none() && clock.real_at(e.at) <= now) {
            run::sync(base, e, &clock, &mut ran.syncs, &mut ran.fired).await;
        }
        let status = get_json(base, "/api/v1/status").await.unwrap_or(Value::Null);
        let backlog = status["FilesWaiting"]["statesys.box/incoming"].as_u64().unwrap_or(0);
        ran.peak_backlog = ran.peak_backlog.max(backlog);
        let simulated = clock.sim_elapsed(now).min(plan.duration);
        let mut entry = run::timeline_entry(since + length, length, simulated, &interval, &status);
        entry["shards_reporting"] = json!(reporting);
        ran.timeline.push(entry);
        if cfg.progress {
            for k in Kind::ALL {
                let _ = p99_so_far.add(&interval.kind(k).corrected);
            }
            let secs = length.as_secs_f64().max(1e-9);
            eprint!(
                "\r[fleet {reporting}/{n} reporting, {finished} done | sim {} / {}] {:.0} req/s | {:.0} msg/s | p99 {:.1} ms | errors {} | backlog {backlog} files   ",
                run::hms(simulated),
                run::hms(plan.duration),
                interval.requests() as f64 / secs,
                interval.messages_acked as f64 / secs,
                p99_so_far.value_at_quantile(0.99) as f64 / 1000.0,
                interval.errors(),
                n = cfg.shards,
            );
        }
        if finished as u64 == cfg.shards || now >= deadline {
            break;
        }
    }
    if cfg.progress {
        eprintln!();
    }
    ran.windows = Some(windows);
    ran
}

/// What the shards' current attempts left: their ends added up, their interval-log lines,
/// and a row each for `summary.json` `fleet`.
#[derive(Debug, Default)]
struct Gathered {
    missing: Vec<u64>,
    totals: Figures,
    truths: Vec<Truth>,
    acks: Vec<Ack>,
    cpu: Vec<Option<f64>>,
    hlog_lines: Vec<(f64, Vec<u8>)>,
    service_lines: Vec<(f64, Vec<u8>)>,
    clients: usize,
    arbiters: usize,
    startup: f64,
    wall: f64,
    flush: f64,
    peak_rss: Option<f64>,
    signing: Value,
    per_shard: Vec<Value>,
    refused: BTreeMap<u16, u64>,
    bytes: u64,
    /// Per MP of the profile's: clients, requests, failures.
    mps: Vec<[u64; 3]>,
}

fn gather(state: &Mutex<State>, stopped: Option<Instant>) -> Gathered {
    let mut s = lock(state);
    let mut g = Gathered { refused: s.refused.clone(), bytes: s.bytes, ..Gathered::default() };
    for (i, slot) in s.slots.iter_mut().enumerate() {
        let Some(a) = slot.current.as_mut() else {
            g.missing.push(i as u64);
            g.per_shard.push(json!({ "shard": i, "attempts": 0, "finished": false }));
            continue;
        };
        g.hlog_lines.append(&mut a.hlog);
        g.service_lines.append(&mut a.service);
        let stop_lag = match (stopped, a.last_interval) {
            (Some(stop), Some(last)) => Some(last.saturating_duration_since(stop).as_secs_f64()),
            _ => None,
        };
        let mut row = json!({
            "shard": i,
            "attempts": slot.attempts,
            "address": a.address.to_string(),
            "finished": a.ended.is_some(),
            "intervals_received": a.seen.len(),
            "last_interval_after_abort_seconds": stop_lag,
        });
        let Some(e) = a.ended.take() else {
            g.missing.push(i as u64);
            g.per_shard.push(row);
            continue;
        };
        let sm = &e.summary;
        g.totals.add(&e.totals);
        g.truths.extend(e.truths);
        g.acks.extend(e.acks);
        g.cpu.push(sm["generator"]["cpu_seconds"].as_f64());
        g.clients += sm["clients"].as_u64().unwrap_or(0) as usize;
        g.arbiters += sm["arbiters"].as_u64().unwrap_or(0) as usize;
        g.startup = g.startup.max(sm["startup_seconds"].as_f64().unwrap_or(0.0));
        g.wall = g.wall.max(sm["wall_seconds"].as_f64().unwrap_or(0.0));
        g.flush = g.flush.max(sm["flush_seconds"].as_f64().unwrap_or(0.0));
        if let Some(rss) = sm["generator"]["peak_rss_mib"].as_f64() {
            g.peak_rss = Some(g.peak_rss.map_or(rss, |p| p.max(rss)));
        }
        if g.signing.is_null() {
            g.signing = sm["signing"].clone();
        }
        for (m, mp) in sm["mps"].as_array().into_iter().flatten().enumerate() {
            g.mps.resize(g.mps.len().max(m + 1), [0; 3]);
            for (k, key) in ["clients", "requests", "errors"].into_iter().enumerate() {
                g.mps[m][k] += mp[key].as_u64().unwrap_or(0);
            }
        }
        row["intervals_sent"] = json!(e.intervals_sent);
        row["clients"] = sm["clients"].clone();
        row["wall_seconds"] = sm["wall_seconds"].clone();
        row["cpu_seconds"] = sm["generator"]["cpu_seconds"].clone();
        row["peak_rss_mib"] = sm["generator"]["peak_rss_mib"].clone();
        row["requests"] = json!(e.totals.requests());
        g.per_shard.push(row);
    }
    g
}

/// The end: settle and verify when every shard finished, then the result files.
async fn finish(
    plan: Plan,
    cfg: &Config,
    base: &str,
    state: &Mutex<State>,
    ran: Ran,
    addr: SocketAddr,
    collector_cpu: Option<f64>,
) -> anyhow::Result<Collected> {
    let dir = &cfg.out;
    let Gathered {
        missing,
        totals,
        mut truths,
        mut acks,
        cpu,
        mut hlog_lines,
        mut service_lines,
        clients,
        arbiters,
        startup,
        wall,
        flush,
        peak_rss,
        signing,
        per_shard,
        refused,
        bytes,
        mps,
    } = gather(state, ran.stopped);
    truths.sort_by_key(|t| t.index);
    acks.sort_by(|a, b| a.at.total_cmp(&b.at));
    let (mut hlog, mut service_hlog) = (HlogWriter::begin(ran.start_unix), HlogWriter::begin(ran.start_unix));
    for (lines, into) in [(&mut hlog_lines, &mut hlog), (&mut service_lines, &mut service_hlog)] {
        lines.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, l) in lines.iter() {
            into.bytes.extend_from_slice(l);
        }
    }
    let complete = missing.is_empty();
    let opts = Options {
        target: Some(base.to_owned()),
        out: Some(dir.clone()),
        verify: cfg.verify && complete,
        allow_late: cfg.allow_late,
        ..Options::default()
    };
    let settled = if complete {
        run::settle(&plan, base, &truths, &opts, dir).await?
    } else {
        eprintln!("loadgen collect: incomplete: shard(s) {missing:?} never finished; nothing verified");
        Settled {
            status: get_json(base, "/api/v1/status").await.unwrap_or(Value::Null),
            drain: Duration::ZERO,
            convergence: None,
            tasks: Value::Null,
            summarize: Duration::ZERO,
            verification: None,
        }
    };
    let windows = ran.windows.unwrap_or_else(|| crate::windows::Windows::new(&plan.thresholds, 0.0));
    let observed = Observed {
        hlog,
        service_hlog,
        timeline: ran.timeline,
        syncs: ran.syncs,
        fired: ran.fired,
        peak_backlog: ran.peak_backlog,
        wall: Duration::from_secs_f64(wall),
        windows,
        aborted: ran.aborted,
    };
    let finished = Finished { totals, cpu, truths, acks, flush: Duration::from_secs_f64(flush), mps };
    let fleet = json!({
        "shards": cfg.shards,
        "per_shard": per_shard,
        "incomplete": (!complete).then_some(&missing),
        "collector": {
            "listen": addr.to_string(),
            "cpu_seconds": metrics::process_cpu_seconds().zip(collector_cpu).map(|(a, b)| a - b),
            "peak_rss_mib": metrics::peak_rss_mib(),
            "bytes_received": bytes,
            "refused": refused,
        },
    });
    let shape = Shape {
        clients,
        arbiters,
        startup: Duration::from_secs_f64(startup),
        signing,
        peak_rss_mib: peak_rss,
        fleet,
    };
    let (mut summary, mut exit) =
        run::write_results(&plan, base, dir, &opts, &shape, observed, finished, settled)?;
    if !complete {
        exit = EXIT_INCOMPLETE;
        summary["exit"] = json!(exit);
        std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(&summary)?)?;
    }
    Ok(Collected { exit, summary, addr })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn figures(values: &[(usize, u64)], lateness: &[u64], sent: u64) -> Figures {
        let mut f = Figures::default();
        for &(kind, v) in values {
            let k = &mut f.kinds[kind % Kind::ALL.len()];
            k.corrected.record(v.clamp(1, 3_600_000_000)).unwrap();
            k.uncorrected.record((v / 2).clamp(1, 3_600_000_000)).unwrap();
            k.ok += 1;
            k.built += 1;
            k.build_nanos += v;
        }
        for &v in lateness {
            f.lateness.record(v.clamp(1, 3_600_000_000)).unwrap();
        }
        (f.messages_sent, f.messages_acked) = (sent, sent / 2);
        f
    }

    fn same_figures(a: &Figures, b: &Figures) -> bool {
        a.kinds.iter().zip(&b.kinds).all(|(x, y)| {
            x.corrected == y.corrected
                && x.uncorrected == y.uncorrected
                && (x.ok, x.errors, x.built, x.build_nanos) == (y.ok, y.errors, y.built, y.build_nanos)
        }) && a.lateness == b.lateness
            && (a.messages_sent, a.messages_acked) == (b.messages_sent, b.messages_acked)
    }

    proptest! {
        /// What a shard encodes, the collector decodes to the same histograms and counts, also
        /// through JSON.
        #[test]
        fn figures_survive_the_wire(
            values in proptest::collection::vec((0usize..16, 1u64..10_000_000_000), 0..300),
            lateness in proptest::collection::vec(1u64..100_000_000, 0..50),
            sent in 0u64..1_000_000,
        ) {
            let f = figures(&values, &lateness, sent);
            let json = serde_json::to_vec(&encode(&f)).unwrap();
            let back = decode(&serde_json::from_slice(&json).unwrap()).unwrap();
            prop_assert!(same_figures(&f, &back));
        }

        /// Bytes that are not a histogram are an error, never a panic.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            let text = base64::engine::general_purpose::STANDARD.encode(&raw);
            let _ = decode_histogram(&text);
            let _ = decode_histogram(&String::from_utf8_lossy(&raw));
        }
    }

    #[test]
    fn foreign_histograms_and_kinds_are_refused() {
        // Another precision than ours.
        let mut h = Histogram::<u64>::new(2).unwrap();
        h.record(5).unwrap();
        let e = decode_histogram(&encode_histogram(&h)).unwrap_err();
        assert!(e.contains("significant digits"), "{e}");
        let mut w = encode(&figures(&[(0, 10)], &[1], 1));
        let k = w.kinds.pop_first().unwrap().1;
        w.kinds.insert("no_such_kind".into(), k);
        assert!(decode(&w).unwrap_err().contains("no_such_kind"));
    }
}
