//! `loadgen sink`: a null MP, to measure the generator alone. It answers every request a run
//! sends correctly and with the least work it can:
//!
//! - a relayed Report (`MP_RelayEndpoint`, read from the envelope's header part or from
//!   `X-Target-Endpoint`) gets `NoReply` without its body being inflated, read or kept;
//! - registration, policy, location and other CCM messages are answered as the backend's MP
//!   answers them (`backend::mp::dispatch` over the default site), nothing recorded;
//! - the policy body, the WSUS catalog and the site API calls a run makes (`site`, `catalog`,
//!   `status`, `drain`, `summarize`) get answers of the right shape; nothing is ever waiting.
//!
//! A run against it verifies nothing (run it with `--no-verify`): there is no StateSys. What it
//! shows is what the generator can deliver on this machine, beside `wrk` against the same sink.
//!
//! With a capacity (`--capacity N`), it is an MP whose capacity is known by construction: it
//! takes at most N relayed Reports a second (a token bucket holding 20 ms worth, at least 2) and
//! answers the rest `503` with `Retry-After: 1`, as an MP past its inbox's high-water mark does.
//! `loadgen search` is tested against it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use protocol::envelope::{self, CONTENT_TYPE as CCM_CONTENT_TYPE, Limits, MsgHeader, NO_REPLY, multipart};
use protocol::{Guid, GuidStyle, Timestamp, utf16};
use serde_json::json;

use backend::mp::{self, Dispatch, MpIdentity};
use backend::site::Site;

/// What the sink answers from.
struct Sink {
    site: Site,
    mp: MpIdentity,
    reports: AtomicU64,
    requests: AtomicU64,
    /// Relayed Reports a second it takes, and its bucket: (tokens, when last filled).
    capacity: Option<(f64, std::sync::Mutex<(f64, std::time::Instant)>)>,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json_reply(value: &serde_json::Value) -> Reply {
    reply(StatusCode::OK, "application/json", serde_json::to_vec(value).unwrap_or_default())
}

/// The `TargetEndpoint` of a faithful envelope, from its header part alone.
fn target_endpoint(content_type: &str, body: &[u8]) -> Option<String> {
    let boundary = multipart::boundary(content_type).ok()?;
    let parts = multipart::split(body, boundary).ok()?;
    let head = utf16::decode(parts.first()?.body).ok()?;
    Some(MsgHeader::parse(&head).ok()?.target_endpoint)
}

impl Sink {
    fn catalog(&self) -> serde_json::Value {
        self.site.catalog.to_json(self.site.content_version)
    }

    async fn handle(self: Arc<Sink>, req: Request<Incoming>) -> Result<Reply, Infallible> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let path = req.uri().path().to_owned();
        let content_type = req
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let plain_target =
            req.headers().get("x-target-endpoint").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let query = req.uri().query().unwrap_or("").to_owned();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, "text/plain", "unreadable body")),
        };
        let answer = match path.as_str() {
            "/ccm_system/request" => self.ccm(&content_type, plain_target, &body),
            "/SMS_MP/.sms_pol" => {
                reply(StatusCode::OK, "text/xml; charset=UTF-16", mp::policy_body(&self.site))
            }
            "/api/v1/site" => json_reply(&json!({
                "SiteCode": self.site.code,
                "UpdateSourceID": self.site.update_source_id.styled(GuidStyle::UpperBraced).to_string(),
                "ContentVersion": self.site.content_version,
            })),
            "/api/v1/catalog" => json_reply(&self.catalog()),
            p if p.starts_with("/wsus/") => json_reply(&self.catalog()),
            "/api/v1/status" | "/api/v1/drain" => json_reply(&json!({
                "ReportsAccepted": self.reports.load(Ordering::Relaxed),
                "Requests": self.requests.load(Ordering::Relaxed),
                "FilesWaiting": { "statesys.box/incoming": 0 },
            })),
            "/api/v1/summarize" => json_reply(&json!({ "Tasks": [] })),
            "/api/v1/sync" => json_reply(&json!({ "ContentVersion": self.site.content_version })),
            _ => reply(StatusCode::NOT_FOUND, "text/plain", format!("the sink has no {path}?{query}")),
        };
        Ok(answer)
    }

    fn ccm(&self, content_type: &str, plain_target: Option<String>, body: &[u8]) -> Reply {
        let plain = !content_type.to_ascii_lowercase().starts_with("multipart/");
        let target = if plain { plain_target } else { target_endpoint(content_type, body) };
        if target.as_deref() == Some("MP_RelayEndpoint") {
            if let Some((rate, bucket)) = &self.capacity {
                let mut b = bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = std::time::Instant::now();
                b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * rate).min(burst(*rate));
                b.1 = now;
                if b.0 < 1.0 {
                    let mut r = reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "over capacity");
                    r.headers_mut()
                        .insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
                    return r;
                }
                b.0 -= 1.0;
            }
            self.reports.fetch_add(1, Ordering::Relaxed);
            return if plain {
                reply(StatusCode::OK, "text/plain", "NoReply\n")
            } else {
                reply(StatusCode::OK, CCM_CONTENT_TYPE, NO_REPLY)
            };
        }
        let request = if plain {
            let Some(endpoint) = target else {
                return reply(StatusCode::BAD_REQUEST, "text/plain", "no X-Target-Endpoint");
            };
            let header = MsgHeader { target_endpoint: endpoint, ..MsgHeader::default() };
            envelope::Request {
                header,
                body: String::from_utf8_lossy(body).into_owned(),
                compressed: false,
                payload: 0..0,
            }
        } else {
            match envelope::decode_request(content_type, body, &Limits::default()) {
                Ok(r) => r,
                Err(e) => return reply(StatusCode::BAD_REQUEST, "text/plain", e.to_string()),
            }
        };
        let now = Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64),
        );
        let id = Guid(u128::from(self.requests.load(Ordering::Relaxed)) | 0x5151 << 64);
        match mp::dispatch(&self.site, &self.mp, &request, now, id) {
            Dispatch::Reply { mut header, xml, .. } => {
                if plain {
                    reply(StatusCode::OK, "text/xml; charset=utf-8", xml)
                } else {
                    reply(StatusCode::OK, CCM_CONTENT_TYPE, envelope::build_sync_reply(&mut header, &xml))
                }
            }
            Dispatch::Relay { .. } | Dispatch::Discovery(_) => {
                reply(StatusCode::OK, CCM_CONTENT_TYPE, NO_REPLY)
            }
            Dispatch::BadRequest(why) => reply(StatusCode::BAD_REQUEST, "text/plain", why),
            Dispatch::Unhandled => reply(StatusCode::OK, "text/plain", Bytes::new()),
        }
    }
}

/// The capacity's bucket: 20 ms of Reports at `rate`, at least 2 (evenly paced arrivals below
/// the rate always find a token; a burst above it does not last).
fn burst(rate: f64) -> f64 {
    (rate * 0.02).max(2.0)
}

/// Serves the sink on `listen` until the process ends, on `threads` runtime threads, taking at
/// most `capacity` relayed Reports a second when given.
pub fn serve(listen: SocketAddr, threads: usize, capacity: Option<f64>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("the sink's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!("loadgen sink: a null MP on http://{} (answers, keeps nothing)", listener.local_addr()?);
        serve_on_with(listener, capacity).await
    })
}

/// Serves the sink on `listener` until the runtime ends.
pub async fn serve_on(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    serve_on_with(listener, None).await
}

/// Serves the sink on `listener` until the runtime ends, taking at most `capacity` relayed
/// Reports a second when given (the rest: 503, `Retry-After: 1`).
pub async fn serve_on_with(listener: tokio::net::TcpListener, capacity: Option<f64>) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let sink = Arc::new(Sink {
        site: Site::default_site(),
        mp: MpIdentity {
            name: "SUMSTORM-SINK".into(),
            fqdn: local.ip().to_string(),
            base_url: format!("http://{local}"),
            version: 9128,
        },
        reports: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        capacity: capacity
            .filter(|c| c.is_finite() && *c > 0.0)
            .map(|c| (c, std::sync::Mutex::new((burst(c), std::time::Instant::now())))),
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        let sink = Arc::clone(&sink);
        tokio::spawn(async move {
            let service = service_fn(move |req| Arc::clone(&sink).handle(req));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
