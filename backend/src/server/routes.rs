//! Request routing: the MP (contract §2.3) and the site API (§2.4).

// Request data decides indexes and sizes here: no indexing or arithmetic that can panic.
#![warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use protocol::bodies::parse_policy_query;
use protocol::envelope::{self, CONTENT_TYPE as CCM_CONTENT_TYPE, MsgHeader, NO_REPLY, Request};
use protocol::{Guid, GuidStyle, statenames};
use serde_json::{Value, json};

use super::Shared;
use crate::inbox::commit::{Ack, Busy};
use crate::inbox::discovery::Discovery;
use crate::mp::{self, Dispatch};
use crate::site::catalog::{MAX_SYNC_UPDATES, MAX_UPDATES};
use crate::site::{Collection, Site, chain};
use crate::statesys::tasks::Task;

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    let mut line = body.into();
    line.push('\n');
    reply(status, "text/plain; charset=utf-8", line)
}

fn json_reply(status: StatusCode, value: &Value) -> Reply {
    reply(status, "application/json", serde_json::to_vec_pretty(value).unwrap_or_default())
}

fn busy(shared: &Shared, why: &str) -> Reply {
    shared.stats.busy.fetch_add(1, Ordering::Relaxed);
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, why);
    r.headers_mut().insert("retry-after", HeaderValue::from(shared.limits.retry_after_secs));
    r
}

/// The longest request line and headers taken.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One request. Never fails: every problem is an HTTP answer.
pub(super) async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: HttpRequest<Incoming>,
) -> Result<Reply, Infallible> {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let target = req.headers().get("x-target-endpoint").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    let ccm_path = matches!(
        path.as_str(),
        "/ccm_system/request" | "/ccm_system_windowsauth/request" | "/ccm_system_altauth/request"
    );
    let mut endpoint = match path.as_str() {
        _ if ccm_path => "ccm_other",
        "/SMS_MP/.sms_pol" => "policy_body",
        "/SMS_MP/.sms_aut" => "mplist",
        "/metrics" => "metrics",
        p if p.starts_with("/wsus/") => "wsus_catalog",
        p if p.starts_with("/api/") => "api",
        _ => "other",
    }
    .to_owned();
    let head_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len().saturating_add(v.len()).saturating_add(4))
        .fold(path.len().saturating_add(query.len()), usize::saturating_add);
    let answer = match (method.as_str(), path.as_str()) {
        // hyper bounds what it buffers (a little past its 64 KiB read buffer); this makes the
        // limit exact.
        _ if head_bytes > MAX_HEAD_BYTES => text(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("request heads are limited to {MAX_HEAD_BYTES} bytes"),
        ),
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
        _ if req.version() == hyper::Version::HTTP_11 && !req.headers().contains_key(hyper::header::HOST) => {
            text(StatusCode::BAD_REQUEST, "HTTP/1.1 requests need a Host header")
        }
        // RFC 9112 §6.1: a transfer coding the server does not understand is a 501; only chunked
        // is understood (hyper has already required it last).
        _ if !transfer_codings_understood(req.headers()) => {
            text(StatusCode::NOT_IMPLEMENTED, "only the chunked transfer coding is understood")
        }
        ("CCM_POST" | "POST", _) if ccm_path => {
            let (answer, target_endpoint) = ccm(&shared, req).await;
            if let Some(t) = target_endpoint.or(target) {
                endpoint = t;
            }
            answer
        }
        ("GET" | "HEAD", "/SMS_MP/.sms_aut") if query.eq_ignore_ascii_case("MPLIST") => {
            reply(StatusCode::OK, "text/xml", mp::mp_list(&shared.mp).to_xml())
        }
        ("GET" | "HEAD", "/SMS_MP/.sms_pol") => policy_body(&shared, &query, &req),
        ("GET", p) if let Some(sup) = p.strip_prefix("/wsus/").and_then(|p| p.strip_suffix("/catalog")) => {
            wsus_catalog(&shared, sup, &query)
        }
        ("GET", "/api/v1/site") => json_reply(StatusCode::OK, &site_json(&shared)),
        ("GET", "/api/v1/catalog") => {
            let site = shared.site.read().unwrap_or_else(|p| p.into_inner());
            json_reply(StatusCode::OK, &catalog_json(&site, site.content_version))
        }
        ("GET", "/api/v1/status") => json_reply(StatusCode::OK, &status_json(&shared)),
        ("GET", "/api/v1/statenames") => json_reply(StatusCode::OK, &statenames_json()),
        ("GET", p) if let Some(id) = p.strip_prefix("/api/v1/clients/") => client_json(&shared, id),
        ("POST", "/api/v1/sync" | "/api/v1/drain" | "/api/v1/summarize" | "/api/v1/faults")
            if !admin_allowed(shared.admin_token.as_deref(), peer, req.headers()) =>
        {
            text(StatusCode::FORBIDDEN, "admin calls need a loopback peer or the configured token")
        }
        ("POST", "/api/v1/sync") => sync(&shared, req).await,
        ("GET" | "POST", "/api/v1/faults") => faults(&shared, req).await,
        ("POST", "/api/v1/summarize") => summarize(&shared, &query).await,
        ("GET", "/api/v1/summary/updates") => {
            json_reply(StatusCode::OK, &json!(*shared.summarizer.views().updates))
        }
        ("GET", "/api/v1/summary/update-groups") => {
            json_reply(StatusCode::OK, &json!(*shared.summarizer.views().groups))
        }
        ("GET", "/api/v1/summary/deployments") => {
            json_reply(StatusCode::OK, &json!(*shared.summarizer.views().deployments))
        }
        ("POST", "/api/v1/drain") => drain(&shared, &query).await,
        ("GET", "/metrics") => reply(StatusCode::OK, "text/plain; version=0.0.4", metrics(&shared)),
        (_, _) if ccm_path => text(StatusCode::METHOD_NOT_ALLOWED, "use CCM_POST or POST"),
        _ => text(StatusCode::NOT_FOUND, format!("no route for {method} {path}")),
    };
    if answer.status() == StatusCode::BAD_REQUEST {
        shared.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
    }
    shared.stats.requests_by_endpoint.record(&endpoint, started.elapsed());
    Ok(answer)
}

/// Whether every `Transfer-Encoding` coding is `chunked`.
fn transfer_codings_understood(headers: &hyper::HeaderMap) -> bool {
    headers
        .get_all(hyper::header::TRANSFER_ENCODING)
        .iter()
        .all(|v| v.to_str().is_ok_and(|v| v.split(',').all(|c| c.trim().eq_ignore_ascii_case("chunked"))))
}

/// Admin calls: with a token configured, only with it (from anywhere); without, only from
/// loopback.
fn admin_allowed(want: Option<&str>, peer: SocketAddr, headers: &hyper::HeaderMap) -> bool {
    let token = headers.get("x-admin-token").and_then(|v| v.to_str().ok());
    match want {
        Some(want) => token == Some(want),
        None => peer.ip().is_loopback(),
    }
}

/// `GET|POST /api/v1/faults`: the disk faults in force; POST `{"inbox": "enospc"|"eio"|null,
/// "checkpoint": ...}` sets them (keys left out stay). 404 unless the backend runs with
/// `--fault-injection`.
async fn faults(shared: &Shared, req: HttpRequest<Incoming>) -> Reply {
    use crate::faults::{Disk, Fault};
    let Some(faults) = &shared.faults else {
        return text(
            StatusCode::NOT_FOUND,
            "fault injection is off; start the backend with --fault-injection",
        );
    };
    let post = req.method() == Method::POST;
    let (_, body) = match read_body(shared, req, &mut Charge::new(shared)).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if post {
        let args: Value = match serde_json::from_slice(&body) {
            Ok(Value::Object(o)) if o.keys().all(|k| k == "inbox" || k == "checkpoint") => Value::Object(o),
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "expected {\"inbox\": \"enospc\"|\"eio\"|null, \"checkpoint\": ...}",
                );
            }
        };
        for (key, disk) in [("inbox", Disk::Inbox), ("checkpoint", Disk::Checkpoint)] {
            match args.get(key).unwrap_or(&Value::Null) {
                Value::Null if args.get(key).is_some() => faults.set(disk, None),
                Value::Null => {}
                v => match v.as_str().and_then(Fault::parse) {
                    Some(f) => faults.set(disk, Some(f)),
                    None => {
                        return text(StatusCode::BAD_REQUEST, format!("{key}: \"enospc\", \"eio\" or null"));
                    }
                },
            }
        }
    }
    let name = |d| faults.get(d).map(Fault::name);
    json_reply(StatusCode::OK, &json!({ "Inbox": name(Disk::Inbox), "Checkpoint": name(Disk::Checkpoint) }))
}

/// The body length a request declares (`Content-Length`).
fn declared_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// The request-memory budget one request holds: it grows as bytes arrive and before anything is
/// decoded, never on a promise (a declared length), and is given back when the request is
/// answered.
struct Charge {
    budget: Arc<tokio::sync::Semaphore>,
    held: Option<tokio::sync::OwnedSemaphorePermit>,
    bytes: usize,
}

impl Charge {
    fn new(shared: &Shared) -> Charge {
        Charge { budget: Arc::clone(&shared.request_memory), held: None, bytes: 0 }
    }

    /// Takes `bytes` more of the budget, if that much is free now.
    fn take(&mut self, bytes: usize) -> bool {
        let held_kib = self.bytes.div_ceil(1024);
        let total = self.bytes.saturating_add(bytes);
        let more = total.div_ceil(1024).saturating_sub(held_kib);
        if more > 0 {
            let Ok(kib) = u32::try_from(more) else { return false };
            let Ok(permit) = Arc::clone(&self.budget).try_acquire_many_owned(kib) else { return false };
            match &mut self.held {
                Some(held) => held.merge(permit),
                None => self.held = Some(permit),
            }
        }
        self.bytes = total;
        true
    }

    /// Gives back what the request no longer needs, keeping `bytes` (once decoding is done, the
    /// bound it was charged for becomes what it took).
    fn shrink_to(&mut self, bytes: usize) {
        let give = self.bytes.div_ceil(1024).saturating_sub(bytes.div_ceil(1024));
        if let Some(held) = &mut self.held
            && give > 0
        {
            drop(held.split(give));
        }
        self.bytes = self.bytes.min(bytes);
    }
}

/// Why a body could not be read: the answer to give.
fn too_large(limit: usize) -> Reply {
    text(StatusCode::PAYLOAD_TOO_LARGE, format!("bodies are limited to {limit} bytes"))
}

/// Reads a body within the size and time limits, charging `charge` for each piece as it arrives
/// (twice: the pieces, and the one buffer they end in).
async fn read_body(
    shared: &Shared,
    req: HttpRequest<Incoming>,
    charge: &mut Charge,
) -> Result<(hyper::http::request::Parts, Bytes), Reply> {
    let limit = shared.limits.max_body;
    if declared_length(req.headers()).is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let (parts, mut body) = req.into_parts();
    let read = async {
        let mut pieces: Vec<Bytes> = Vec::new();
        let mut len = 0usize;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| text(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}")))?;
            let Ok(data) = frame.into_data() else { continue };
            len = len.saturating_add(data.len());
            if len > limit {
                return Err(too_large(limit));
            }
            if !charge.take(data.len().saturating_mul(2)) {
                return Err(busy(shared, "too many request bytes in flight; retry later"));
            }
            pieces.push(data);
        }
        Ok(match pieces.len() {
            0 => Bytes::new(),
            1 => pieces.pop().unwrap_or_default(),
            _ => {
                let mut all = Vec::with_capacity(len);
                for p in &pieces {
                    all.extend_from_slice(p);
                }
                Bytes::from(all)
            }
        })
    };
    match tokio::time::timeout(shared.limits.body_timeout, read).await {
        Err(_) => Err(text(StatusCode::REQUEST_TIMEOUT, "the body took too long")),
        Ok(Err(answer)) => Err(answer),
        Ok(Ok(body)) => Ok((parts, body)),
    }
}

/// Location request bodies longer than this are logged as `<XML Body Truncated>`.
const LOGGED_BODY_BYTES: usize = 4096;

/// The tree a low-rate body is read into holds at most its text again and
/// [`protocol::xml::MAX_NODES`] small nodes.
const TREE_NODE_BYTES: usize = 256;

/// `CCM_POST /ccm_system/request`: the faithful multipart envelope, or plain XML with
/// `X-Target-Endpoint` for tools. Also returns the message's `TargetEndpoint`, for the metrics.
async fn ccm(shared: &Arc<Shared>, req: HttpRequest<Incoming>) -> (Reply, Option<String>) {
    // The request holds its charge until it is answered (a relayed Report waits in the inbox
    // queue meanwhile).
    let mut charge = Charge::new(shared);
    let (parts, body) = match read_body(shared, req, &mut charge).await {
        Ok(b) => b,
        Err(r) => return (r, None),
    };
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let plain = !content_type.to_ascii_lowercase().starts_with("multipart/");
    // What reading a low-rate body into a tree may add to its decoded text.
    let tree = |endpoint: &str, text: usize| {
        if endpoint == "MP_RelayEndpoint" {
            0
        } else {
            text.saturating_add(protocol::xml::MAX_NODES * TREE_NODE_BYTES)
        }
    };
    let request = if plain {
        let Some(endpoint) = parts.headers.get("x-target-endpoint").and_then(|v| v.to_str().ok()) else {
            return (
                text(StatusCode::BAD_REQUEST, "plain XML requests need an X-Target-Endpoint header"),
                None,
            );
        };
        if !charge.take(body.len().saturating_add(tree(endpoint, body.len()))) {
            return (busy(shared, "too many request bytes in flight; retry later"), None);
        }
        let Ok(text_body) = String::from_utf8(body.to_vec()) else {
            return (text(StatusCode::BAD_REQUEST, "plain XML requests are UTF-8"), None);
        };
        let header = MsgHeader {
            target_endpoint: endpoint.to_owned(),
            reply_to: "direct:tool:Reply".into(),
            reply_mode: if endpoint == "MP_RelayEndpoint" { "ASync".into() } else { "Sync".into() },
            ..MsgHeader::default()
        };
        Request { header, body: text_body, compressed: false }
    } else {
        let limits = envelope::Limits { max_inflated: shared.limits.max_inflated };
        let read = charge.bytes;
        let decoded = envelope::decode_request_charged(content_type, &body, &limits, |header, bytes| {
            charge.take(bytes.saturating_add(tree(&header.target_endpoint, bytes)))
        });
        match decoded {
            Ok(r) => {
                // The inflated buffer is gone; the text (and the tree it becomes) stay.
                let text = r.body.len();
                charge.shrink_to(
                    read.saturating_add(text).saturating_add(tree(&r.header.target_endpoint, text)),
                );
                r
            }
            Err(envelope::EnvelopeError::OverBudget(_)) => {
                return (busy(shared, "too many request bytes in flight; retry later"), None);
            }
            Err(e) => return (text(StatusCode::BAD_REQUEST, e.to_string()), None),
        }
    };
    drop(body);
    let target = Some(request.header.target_endpoint.clone());
    if request.header.target_endpoint == "MP_LocationManager" {
        shared.location_log.sample(|| {
            // The product logs short bodies whole and marks long ones.
            let body = if request.body.len() <= LOGGED_BODY_BYTES {
                request.body.as_str()
            } else {
                "<XML Body Truncated>"
            };
            [format!("MP LM: Message Body : {body}"), "MP LM: calling MP_GetWSUSServerLocations".to_owned()]
        });
    }
    let decision = {
        let site = shared.site.read().unwrap_or_else(|p| p.into_inner());
        mp::dispatch(&site, &shared.mp, &request, shared.clock.now(), shared.reply_id())
    };
    let answer = match decision {
        Dispatch::Reply { mut header, xml, discovered } => {
            if let Some(d) = discovered {
                let now = shared.clock.now().0;
                let learned = shared.store.discover(d.client, &d.netbios_name, d.location.clone(), now);
                // What the site learned is durable before the answer (a restart replays it).
                if learned {
                    let record = Discovery {
                        client: d.client,
                        netbios_name: d.netbios_name,
                        location: d.location,
                        time: now,
                    };
                    if let Err(e) = durable(shared, record.encode(), || {}).await {
                        return (e.answer(shared, shared.location_log.log(), "Discovery"), target);
                    }
                }
            }
            if plain {
                reply(StatusCode::OK, "text/xml; charset=utf-8", xml)
            } else {
                reply(StatusCode::OK, CCM_CONTENT_TYPE, envelope::build_sync_reply(&mut header, &xml))
            }
        }
        Dispatch::Relay { records } => relay(shared, request.body.into_bytes(), records, plain).await,
        Dispatch::BadRequest(why) => text(StatusCode::BAD_REQUEST, why),
        Dispatch::Unhandled => reply(StatusCode::OK, "text/plain", Bytes::new()),
    };
    drop(charge);
    (answer, target)
}

/// Why a record is not on disk.
enum NotDurable {
    /// The writer's queue is full: back-pressure.
    Busy,
    /// Writing failed (no space, I/O error) or the writer stopped.
    Failed(String),
}

impl NotDurable {
    /// The 503 it gets; a failed write is also logged (`log`: the component's log).
    fn answer(self, shared: &Shared, log: &crate::logs::ComponentLog, what: &str) -> Reply {
        match self {
            NotDurable::Busy => busy(shared, "the inbox writer is busy; retry later"),
            NotDurable::Failed(why) => {
                log.log(crate::logs::Severity::Error, &format!("{what}: cannot write the inbox: {why}"));
                busy(shared, &why)
            }
        }
    }
}

/// Writes `record` to the inbox and waits until it is on disk. `on_durable` runs when the
/// record is on disk, in the writer's thread, whether or not this request is still waiting (a
/// client that hung up has still had its record made durable, and StateSys will apply it).
async fn durable(
    shared: &Shared,
    record: Vec<u8>,
    on_durable: impl FnOnce() + Send + 'static,
) -> Result<(), NotDurable> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let ack: Ack = Box::new(move |r| {
        if r.is_ok() {
            on_durable();
        }
        let _ = tx.send(r);
    });
    if let Err(Busy { .. }) = shared.commit.submit(record, ack) {
        return Err(NotDurable::Busy);
    }
    match rx.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(NotDurable::Failed(e.to_string())),
        Err(_) => Err(NotDurable::Failed("the inbox writer stopped".into())),
    }
}

/// Makes the Report durable and only then answers `NoReply`.
async fn relay(shared: &Arc<Shared>, report: Vec<u8>, records: u64, plain: bool) -> Reply {
    let waiting = shared.stats.files_waiting.load(Ordering::Relaxed);
    if waiting as usize > shared.limits.high_water_files {
        return busy(shared, "the inbox is past its high-water mark; retry later");
    }
    if shared.stats.checkpoint_failing.load(Ordering::Acquire) {
        return busy(shared, "StateSys cannot write its checkpoint (disk trouble); retry later");
    }
    // Counted where it becomes durable: drain waits for every Report StateSys will apply.
    let counted = Arc::clone(shared);
    let accepted = move || {
        counted.stats.messages_accepted.fetch_add(records, Ordering::Relaxed);
        counted.stats.reports_accepted.fetch_add(1, Ordering::Release);
    };
    match durable(shared, report, accepted).await {
        Ok(()) => {
            shared.relay_log.sample(|| {
                let dir = shared.relay_dir.display();
                [
                    "Mp Message Handler: start message processing for Relay-----------------------"
                        .to_owned(),
                    "Mp Message Handler: FileType=SMX".to_owned(),
                    "Message Body : <XML Body Truncated>".to_owned(),
                    format!("Relay: Outbox dir: {dir}"),
                    "Priority in the message = 5".to_owned(),
                    format!("State Priority Directory = {dir}"),
                    format!("Inv-Relay: Task completed successfully ({records} state messages)"),
                ]
            });
            if plain {
                text(StatusCode::OK, "NoReply")
            } else {
                reply(StatusCode::OK, CCM_CONTENT_TYPE, NO_REPLY)
            }
        }
        Err(e) => e.answer(shared, shared.relay_log.log(), "Relay"),
    }
}

/// `GET|HEAD /SMS_MP/.sms_pol?{PolicyID}.40_00`: the UpdateSource policy body, with ranges.
fn policy_body<B>(shared: &Shared, query: &str, req: &HttpRequest<B>) -> Reply {
    let site = shared.site.read().unwrap_or_else(|p| p.into_inner());
    let Some((id, version)) = parse_policy_query(query) else {
        return text(StatusCode::BAD_REQUEST, "expected .sms_pol?{PolicyID}.<version>");
    };
    let body = mp::policy_body(&site);
    let current = version == site.policy_version() || version == mp::policy_hash(&body);
    if !id.eq_ignore_ascii_case(&site.policy_id) || !current {
        return text(StatusCode::NOT_FOUND, "no such policy version");
    }
    let total = body.len();
    let range = req.headers().get("range").and_then(|v| v.to_str().ok()).and_then(|r| byte_range(r, total));
    let (status, slice) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, body.get(a..=b).unwrap_or_default().to_vec()),
        None => (StatusCode::OK, body),
    };
    let len = slice.len();
    let mut r = reply(
        status,
        "text/xml; charset=UTF-16",
        if req.method() == Method::HEAD { Vec::new() } else { slice },
    );
    r.headers_mut().insert("accept-ranges", HeaderValue::from_static("bytes"));
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(len));
    if let Some((a, b)) = range
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{total}"))
    {
        r.headers_mut().insert("content-range", v);
    }
    r
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` within `total`.
fn byte_range(spec: &str, total: usize) -> Option<(usize, usize)> {
    let (a, b) = spec.strip_prefix("bytes=")?.split_once('-')?;
    let (a, b) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: usize = n.parse().ok()?;
            (total.checked_sub(n.min(total))?, total.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, total.checked_sub(1)?),
        (a, b) => (a.parse().ok()?, b.parse::<usize>().ok()?.min(total.checked_sub(1)?)),
    };
    (a <= b && b < total).then_some((a, b))
}

/// `GET /wsus/<SUP>/catalog?version=N`: the catalog a scan against that SUP sees.
fn wsus_catalog(shared: &Shared, name: &str, query: &str) -> Reply {
    let site = shared.site.read().unwrap_or_else(|p| p.into_inner());
    let Some(sup) = site.sups.iter().find(|s| s.name.eq_ignore_ascii_case(name)) else {
        return text(StatusCode::NOT_FOUND, format!("no SUP named {name}"));
    };
    let synced = site.synced_version(sup);
    let asked =
        query.split('&').find_map(|kv| kv.strip_prefix("version=")).and_then(|v| v.parse::<u32>().ok());
    let version = asked.unwrap_or(synced);
    if version > synced {
        return text(StatusCode::NOT_FOUND, format!("{name} has synchronized content version {synced}"));
    }
    // Checked and answered from the same look at the site, so a sync cannot slip between.
    json_reply(StatusCode::OK, &catalog_json(&site, version))
}

fn catalog_json(site: &Site, version: u32) -> Value {
    let updates: Vec<Value> = site
        .catalog
        .as_of(version)
        .map(|(i, u)| {
            json!({
                "Index": i,
                "UpdateID": u.id.styled(GuidStyle::Lower).to_string(),
                "RevisionNumber": u.revision,
                "ArticleID": u.article,
                "Title": u.title,
                "ContentVersion": u.added_in,
                "SupersededBy": u.superseded_by.map(|(g, _)| g.styled(GuidStyle::Lower).to_string()),
            })
        })
        .collect();
    json!({ "ContentVersion": version, "Updates": updates })
}

fn site_json(shared: &Shared) -> Value {
    let site = shared.site.read().unwrap_or_else(|p| p.into_inner());
    json!({
        "SiteCode": site.code,
        "UpdateSourceID": site.update_source_id.styled(GuidStyle::UpperBraced).to_string(),
        "ContentVersion": site.content_version,
        "PolicyID": site.policy_id,
        "PolicyVersion": site.policy_version(),
        "Updates": site.catalog.len(),
        "SUPs": site.sups.iter().map(|s| json!({
            "Name": s.name,
            "URL": format!("{}/wsus/{}", shared.mp.base_url, s.name),
            "Intranet": s.intranet,
            "Internet": s.internet,
            "SyncedContentVersion": site.synced_version(s),
            "BoundaryGroups": s.boundary_groups.iter().filter_map(|&g| site.boundary_groups.get(g).map(|b| b.name.clone())).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "BoundaryGroups": site.boundary_groups.iter().map(|g| json!({
            "Name": g.name,
            "Boundaries": g.boundaries.iter().map(|b| match b {
                crate::site::Boundary::Subnet(net) => json!({ "Subnet": net.to_string() }),
                crate::site::Boundary::Range(lo, hi) => json!({ "IPRange": [lo.to_string(), hi.to_string()] }),
                crate::site::Boundary::AdSite(site) => json!({ "ADSite": site }),
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "UpdateGroups": site.update_groups.iter().map(|g| json!({
            "GroupID": g.id,
            "Name": g.name,
            "Updates": g.updates.iter().filter_map(|&u| site.catalog.updates().get(u).map(|x| x.id.styled(GuidStyle::Lower).to_string())).collect::<Vec<_>>(),
            "TakesNewUpdates": g.takes_new_updates,
        })).collect::<Vec<_>>(),
        "Deployments": site.deployments.iter().map(|d| json!({
            "DeploymentID": d.id,
            "Name": d.name,
            "GroupID": site.update_groups.get(d.group).map(|g| g.id),
            "Collection": match &d.collection {
                Collection::AllClients => json!({ "AllClients": true }),
                Collection::AdSites(sites) => json!({ "ADSites": sites }),
                Collection::BoundaryGroups(groups) => json!({
                    "BoundaryGroups": groups.iter().filter_map(|&g| site.boundary_groups.get(g).map(|b| b.name.clone())).collect::<Vec<_>>(),
                }),
            },
        })).collect::<Vec<_>>(),
        "MigratedThroughContentVersion": site.migrated_through,
        "Summarization": Task::ALL.iter().map(|t| json!({
            "Task": t.name(),
            "EverySeconds": t.every(&site.schedules).as_secs_f64(),
        })).chain([json!({ "AgedAfterSeconds": site.schedules.aged_after.as_secs_f64() })]).collect::<Vec<_>>(),
    })
}

fn summarization_json(runs: impl Iterator<Item = crate::statesys::tasks::TaskRun>) -> Value {
    Value::Array(
        runs.map(|r| {
            json!({
                "Task": r.task.name(),
                "Time": r.at.to_rfc3339(),
                "Rows": r.rows,
                "Seconds": r.duration.as_secs_f64(),
            })
        })
        .collect(),
    )
}

/// `POST /api/v1/summarize[?task=<name>]`: runs the tasks now (all, or the one named).
async fn summarize(shared: &Shared, query: &str) -> Reply {
    let args = match query_args(query, &["task"]) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let tasks = match args.first().map(|(_, v)| *v) {
        None => Task::ALL.to_vec(),
        Some(name) => {
            let name = percent_decode(name);
            match Task::from_name(&name) {
                Some(t) => vec![t],
                None => {
                    let names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("no task named {name:?}; tasks: {}", names.join(", ")),
                    );
                }
            }
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sent = shared.summarize.lock().is_ok_and(|s| s.send(super::SummarizeRequest::Run(tasks, tx)).is_ok());
    match (sent, rx.await) {
        (true, Ok(runs)) => {
            json_reply(StatusCode::OK, &json!({ "Tasks": summarization_json(runs.into_iter()) }))
        }
        _ => text(StatusCode::SERVICE_UNAVAILABLE, "the summarizer is shutting down"),
    }
}

/// A query value with `%XX` and `+` decoded.
fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let [c, tail @ ..] = rest {
        let hex = tail
            .get(..2)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (c, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                rest = tail.get(2..).unwrap_or_default();
            }
            (c, _) => {
                out.push(if *c == b'+' { b' ' } else { *c });
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_json(shared: &Shared) -> Value {
    let s = &shared.stats;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let commit = shared.commit.stats();
    json!({
        "UptimeSeconds": shared.started.elapsed().as_secs(),
        "SiteTime": shared.clock.now().to_rfc3339(),
        "Requests": n(&s.requests),
        "BadRequests": n(&s.bad_requests),
        "Busy": n(&s.busy),
        "ReportsAccepted": n(&s.reports_accepted),
        "StateMessagesAccepted": n(&s.messages_accepted),
        "ReportsProcessed": n(&s.reports_processed),
        "ReportsRecovered": n(&s.reports_recovered),
        "InboxWriteErrors": n(&shared.commit.stats().errors),
        "CheckpointErrors": n(&s.checkpoint_errors),
        "CheckpointFailing": s.checkpoint_failing.load(Ordering::Relaxed),
        "RecordsProcessed": n(&s.records_processed),
        "InvalidRecords": n(&s.invalid_records),
        "FilesProcessed": n(&s.files_processed),
        "BadFiles": n(&s.bad_files),
        "FilesWaiting": { "statesys.box/incoming": n(&s.files_waiting) },
        "InboxSyncs": n(&commit.syncs),
        "SegmentsSealed": n(&commit.segments_sealed),
        "Checkpoints": n(&s.checkpoints),
        "Clients": shared.store.clients(),
        "LastSummarization": summarization_json(shared.summarizer.views().last_runs.iter().flatten().copied()),
    })
}

fn statenames_json() -> Value {
    Value::Array(
        statenames::all()
            .map(|r| json!({ "TopicType": r.topic_type, "StateID": r.state_id, "StateName": r.name }))
            .collect(),
    )
}

fn client_json(shared: &Shared, id: &str) -> Reply {
    let Ok(id) = Guid::parse_sms_id(id) else {
        return text(StatusCode::BAD_REQUEST, "expected a client GUID");
    };
    let Some((client, row)) = shared.store.client(id) else {
        return text(StatusCode::NOT_FOUND, "no such client");
    };
    let site = shared.site.read().unwrap_or_else(|p| p.into_inner());
    let time = |t: i64| protocol::Timestamp(t).to_rfc3339();
    let updates: Vec<Value> = row
        .iter()
        .enumerate()
        .filter(|(_, u)| u.is_known())
        .map(|(i, u)| {
            json!({
                "UpdateID": site.catalog.updates().get(i).map(|x| x.id.styled(GuidStyle::Lower).to_string()),
                "Status": u.state,
                "StatusName": statenames::state_name(statenames::TOPIC_UPDATE_DETECTION, u32::from(u.state)),
                "LastStatusCheckTime": time(u.time),
                "LastStatusChangeTime": time(u.changed),
                "SerialNumber": u.serial,
            })
        })
        .collect();
    json_reply(
        StatusCode::OK,
        &json!({
            "ClientID": format!("GUID:{}", client.id),
            "NetBIOSName": client.netbios_name,
            "LastScan": client.scan.map(|s| json!({
                "State": s.state,
                "StateName": statenames::state_name(statenames::TOPIC_SCAN, u32::from(s.state)),
                "Time": time(s.time),
                "ContentVersion": s.content_version,
            })),
            "Location": client.location.as_ref().map(|l| json!({
                "ADSite": &*l.ad_site,
                "BoundaryGroups": (0..64).filter(|g| l.boundary_groups >> g & 1 == 1)
                    .filter_map(|g| site.boundary_groups.get(g).map(|b| b.name.clone()))
                    .collect::<Vec<_>>(),
            })),
            "LastSerialNumber": client.serials.last(),
            "MissingSerialRanges": client.serials.missing(),
            "Updates": updates,
        }),
    )
}

/// A sync's body: empty (20 new, 5 superseded), or a JSON object with only `new_updates` and
/// `superseded`, each a whole number up to [`MAX_SYNC_UPDATES`].
fn sync_args(body: &[u8]) -> Result<(usize, usize), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((20, 5));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(args) = value else {
        return Err("expected a JSON object such as {\"new_updates\": 20, \"superseded\": 5}".into());
    };
    let (mut new, mut superseded) = (20u64, 5u64);
    for (key, v) in &args {
        let slot = match key.as_str() {
            "new_updates" => &mut new,
            "superseded" => &mut superseded,
            other => return Err(format!("unknown key {other:?}; keys: new_updates, superseded")),
        };
        *slot = v
            .as_u64()
            .filter(|&n| n <= MAX_SYNC_UPDATES as u64)
            .ok_or_else(|| format!("{key}: a whole number from 0 to {MAX_SYNC_UPDATES}, not {v}"))?;
    }
    Ok((new as usize, superseded as usize))
}

/// `POST /api/v1/sync`: WSyncMgr, then SMSDBMON's `.STN`, then the Policy Provider.
async fn sync(shared: &Arc<Shared>, req: HttpRequest<Incoming>) -> Reply {
    let (_, body) = match read_body(shared, req, &mut Charge::new(shared)).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (new, superseded) = match sync_args(&body) {
        Ok(counts) => counts,
        Err(why) => return text(StatusCode::BAD_REQUEST, format!("sync body: {why}")),
    };
    let shared = Arc::clone(shared);
    let result = tokio::task::spawn_blocking(move || {
        let mut site = shared.site.write().unwrap_or_else(|p| p.into_inner());
        let after = site.catalog.len().saturating_add(new);
        if after > MAX_UPDATES {
            return Ok(Err(format!(
                "the catalog would hold {after} updates, past the limit of {MAX_UPDATES}"
            )));
        }
        let content_version = chain::wsync(&mut site, new, superseded, &shared.chain);
        chain::smsdbmon_drop(&site, &shared.policypv_box, &shared.chain)?;
        chain::policy_provider(&mut site, &shared.policypv_box, &shared.chain)?;
        crate::site::persist::save(&site, &shared.site_state)?;
        shared.site_version.fetch_add(1, Ordering::Release);
        Ok::<_, std::io::Error>(Ok(json!({
            "ContentVersion": content_version,
            "PolicyVersion": site.policy_version(),
            "Updates": site.catalog.len(),
        })))
    })
    .await;
    match result {
        Ok(Ok(Ok(v))) => json_reply(StatusCode::OK, &v),
        Ok(Ok(Err(why))) => text(StatusCode::CONFLICT, why),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("sync failed: {e}")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("sync failed: {e}")),
    }
}

/// The longest drain a caller may ask for.
const MAX_DRAIN: Duration = Duration::from_secs(24 * 3600);

/// The query's `key=value` pairs, refusing any key not in `known` and any key given twice.
fn query_args<'q>(query: &'q str, known: &[&str]) -> Result<Vec<(&'q str, &'q str)>, Box<Reply>> {
    let mut args: Vec<(&str, &str)> = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if !known.contains(&k) {
            return Err(Box::new(text(
                StatusCode::BAD_REQUEST,
                format!("unknown query parameter {k:?}; known: {}", known.join(", ")),
            )));
        }
        if args.iter().any(|(seen, _)| *seen == k) {
            return Err(Box::new(text(
                StatusCode::BAD_REQUEST,
                format!("query parameter {k:?} given twice"),
            )));
        }
        args.push((k, v));
    }
    Ok(args)
}

/// `60`, `60s`: whole seconds, at most [`MAX_DRAIN`].
fn drain_timeout(value: &str) -> Option<Duration> {
    let digits = value.strip_suffix('s').unwrap_or(value);
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = Duration::from_secs(digits.parse().ok()?);
    (secs <= MAX_DRAIN).then_some(secs)
}

/// `POST /api/v1/drain?timeout=60s`: 200 once every accepted Report has been applied.
async fn drain(shared: &Shared, query: &str) -> Reply {
    let args = match query_args(query, &["timeout"]) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let timeout = match args.first() {
        None => Duration::from_secs(60),
        Some((_, v)) => match drain_timeout(v) {
            Some(t) => t,
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("timeout: whole seconds up to {} (\"60\" or \"60s\")", MAX_DRAIN.as_secs()),
                );
            }
        },
    };
    // `timeout` is at most a day: this cannot overflow (checked anyway).
    let deadline = Instant::now().checked_add(timeout).unwrap_or_else(Instant::now);
    loop {
        // Every relayed Report applied, and nothing else waiting in the inboxes. Accepted is
        // counted as each Report becomes durable, so this waits for Reports whose clients hung
        // up before their answer too.
        let accepted = shared.stats.reports_accepted.load(Ordering::Acquire);
        let relayed = shared.stats.reports_relayed.load(Ordering::Acquire);
        let waiting = shared.stats.files_waiting.load(Ordering::Acquire);
        if relayed >= accepted && waiting == 0 {
            return json_reply(StatusCode::OK, &status_json(shared));
        }
        if Instant::now() >= deadline {
            return json_reply(StatusCode::GATEWAY_TIMEOUT, &status_json(shared));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn metrics(shared: &Shared) -> String {
    let s = &shared.stats;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let commit = shared.commit.stats();
    let rows = [
        ("sumstorm_mp_requests_total", "counter", n(&s.requests)),
        ("sumstorm_mp_bad_requests_total", "counter", n(&s.bad_requests)),
        ("sumstorm_mp_busy_total", "counter", n(&s.busy)),
        ("sumstorm_relay_reports_total", "counter", n(&s.reports_accepted)),
        ("sumstorm_relay_state_messages_total", "counter", n(&s.messages_accepted)),
        ("sumstorm_inbox_syncs_total", "counter", n(&commit.syncs)),
        ("sumstorm_inbox_segments_sealed_total", "counter", n(&commit.segments_sealed)),
        ("sumstorm_statesys_reports_total", "counter", n(&s.reports_processed)),
        ("sumstorm_statesys_records_total", "counter", n(&s.records_processed)),
        ("sumstorm_statesys_invalid_records_total", "counter", n(&s.invalid_records)),
        ("sumstorm_statesys_files_total", "counter", n(&s.files_processed)),
        ("sumstorm_statesys_bad_files_total", "counter", n(&s.bad_files)),
        ("sumstorm_statesys_checkpoints_total", "counter", n(&s.checkpoints)),
        ("sumstorm_statesys_checkpoint_errors_total", "counter", n(&s.checkpoint_errors)),
        ("sumstorm_inbox_write_errors_total", "counter", n(&commit.errors)),
        ("sumstorm_statesys_files_waiting", "gauge", n(&s.files_waiting)),
        ("sumstorm_store_clients", "gauge", shared.store.clients() as u64),
    ];
    let mut out = String::new();
    for (name, kind, value) in rows {
        out.push_str(&format!("# TYPE {name} {kind}\n{name} {value}\n"));
    }
    let views = shared.summarizer.views();
    out.push_str("# TYPE sumstorm_summarization_seconds gauge\n# TYPE sumstorm_summarization_rows gauge\n");
    for run in views.last_runs.iter().flatten() {
        let task = run.task.name();
        out.push_str(&format!(
            "sumstorm_summarization_seconds{{task=\"{task}\"}} {}\nsumstorm_summarization_rows{{task=\"{task}\"}} {}\n",
            run.duration.as_secs_f64(),
            run.rows
        ));
    }
    s.requests_by_endpoint.render(&mut out);
    out
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::{HeaderValue, SocketAddr, admin_allowed, byte_range};

    /// A request's charge grows by the KiB as bytes come, shrinks to what decoding took, and is
    /// all given back with the request.
    #[test]
    fn charges_grow_shrink_and_return() {
        let budget = std::sync::Arc::new(tokio::sync::Semaphore::new(100));
        let mut c = super::Charge { budget: std::sync::Arc::clone(&budget), held: None, bytes: 0 };
        assert!(c.take(1));
        assert_eq!(budget.available_permits(), 99);
        assert!(c.take(50 * 1024 - 1));
        assert_eq!(budget.available_permits(), 50);
        assert!(!c.take(51 * 1024), "past the budget: refused, nothing taken");
        assert_eq!(budget.available_permits(), 50);
        c.shrink_to(10 * 1024);
        assert_eq!(budget.available_permits(), 90);
        c.shrink_to(20 * 1024);
        assert_eq!(budget.available_permits(), 90, "shrinking never takes more");
        drop(c);
        assert_eq!(budget.available_permits(), 100);
    }

    #[test]
    fn query_values_decode() {
        assert_eq!(super::percent_decode("SUM%20Update+Status%2"), "SUM Update Status%2");
        assert_eq!(super::percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(byte_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(byte_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(byte_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(byte_range("bytes=100-", 100), None);
        assert_eq!(byte_range("bytes=9-3", 100), None);
        assert_eq!(byte_range("items=0-1", 100), None);
        assert_eq!(byte_range("bytes=0-0", 0), None);
    }

    /// Sync, summarize, drain and faults from a peer that is not loopback: refused without the
    /// token, allowed with it; loopback needs nothing unless a token is configured. (The tests
    /// over sockets can only come from loopback; this is the rule for everyone else.)
    #[test]
    fn admin_calls_from_other_peers_need_the_token() {
        let remote: SocketAddr = "10.20.30.40:50000".parse().unwrap();
        let remote6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let local6: SocketAddr = "[::1]:50000".parse().unwrap();
        let none = hyper::HeaderMap::new();
        let mut good = hyper::HeaderMap::new();
        good.insert("x-admin-token", HeaderValue::from_static("s3cret"));
        let mut bad = hyper::HeaderMap::new();
        bad.insert("x-admin-token", HeaderValue::from_static("guess"));
        // No token configured: loopback only.
        assert!(!admin_allowed(None, remote, &none));
        assert!(!admin_allowed(None, remote6, &good));
        assert!(admin_allowed(None, local, &none));
        assert!(admin_allowed(None, local6, &none));
        // A token configured: the token, from anywhere; nothing else.
        assert!(admin_allowed(Some("s3cret"), remote, &good));
        assert!(!admin_allowed(Some("s3cret"), remote, &bad));
        assert!(!admin_allowed(Some("s3cret"), remote, &none));
        assert!(!admin_allowed(Some("s3cret"), local, &none));
    }
}
