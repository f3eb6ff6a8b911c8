//! Routing: which audience a request is for, and the file that answers it.
//!
//! | file | audience | paths |
//! |---|---|---|
//! | [`mp`] | clients (contract §2.3) | `/ccm_system*/request` (CCM; `_windowsauth` answers 401), `/SMS_MP/.sms_pol`, `/SMS_MP/.sms_aut?MPLIST`, `/wsus/<SUP>/catalog` |
//! | [`site_api`] | people and tools, read-only (§2.4) | `GET /api/v1/{site,catalog,status,statenames,convergence,clients/<id>,summary/<view>}` |
//! | [`admin`] | operators (loopback or the token) | `POST /api/v1/{sync,drain,summarize}`, `/api/v1/faults` |
//! | [`metrics`] | Prometheus | `GET /metrics` |
//!
//! [`handle`] checks what every request must get right (head size, `Host`, transfer codings),
//! picks the route, and counts the request under its endpoint.

// Request data decides indexes and sizes here and in every route file below: no indexing or
// arithmetic that can panic.
#![warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod admin;
mod metrics;
mod mp;
mod site_api;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request as HttpRequest, StatusCode};
use sha2::{Digest, Sha256};

use super::Shared;
use super::http::{Reply, json_reply, reply, text, transfer_codings_understood};

/// Windows authentication, as far as this MP takes it (`crate::mp::ntlm`): no credentials get
/// `401` with `WWW-Authenticate: Negotiate` and `NTLM`; an NTLM NEGOTIATE_MESSAGE (under either
/// scheme) gets `401` with a CHALLENGE_MESSAGE; anything else, an AUTHENTICATE_MESSAGE included,
/// `401` again, logged: there is no domain here to check an account against.
fn windows_auth(shared: &Shared, peer: SocketAddr, headers: &hyper::HeaderMap) -> Reply {
    use base64::Engine as _;
    use hyper::header::{HeaderValue, WWW_AUTHENTICATE};
    let b64 = base64::engine::general_purpose::STANDARD;
    let offered = headers.get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        let scheme = ["NTLM", "Negotiate"].into_iter().find(|s| s.eq_ignore_ascii_case(scheme))?;
        Some((scheme, b64.decode(token.trim()).ok()?))
    });
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "Windows authentication is not available here; use /ccm_system/request",
    );
    match offered.as_ref().map(|(scheme, blob)| (*scheme, crate::mp::ntlm::message_type(blob))) {
        Some((scheme, Some(crate::mp::ntlm::Message::Negotiate))) => {
            let now = shared.clock.now();
            let seed = Sha256::digest(format!(
                "{}:{}:{peer}",
                now.0,
                shared.next_id.fetch_add(1, Ordering::Relaxed)
            ));
            let mut server_challenge = [0u8; 8];
            server_challenge.copy_from_slice(seed.get(..8).unwrap_or(&[0; 8]));
            // FILETIME: 100 ns since 1601.
            let filetime = (now.0.max(0) as u64).saturating_add(11_644_473_600_000_000).saturating_mul(10);
            let blob = crate::mp::ntlm::challenge("SUMSTORM", &shared.mp.name, server_challenge, filetime);
            if let Ok(v) = HeaderValue::from_str(&format!("{scheme} {}", b64.encode(blob))) {
                r.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
        }
        offered => {
            let what = match offered {
                Some((_, Some(crate::mp::ntlm::Message::Authenticate))) => {
                    "an NTLM AUTHENTICATE_MESSAGE (no domain here to check it)"
                }
                Some(_) => "credentials this MP does not read",
                None => "no credentials",
            };
            shared
                .framework_log
                .sample(|| [format!("Windows authentication from {peer}: {what}; refused (401)")]);
            for scheme in ["Negotiate", "NTLM"] {
                r.headers_mut().append(WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
            }
        }
    }
    r
}

/// The longest request line and headers taken.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One request. Never fails: every problem is an HTTP answer.
pub(super) async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    channel: super::tls::Channel,
    req: HttpRequest<Incoming>,
) -> Result<Reply, Infallible> {
    shared.http.requests.fetch_add(1, Ordering::Relaxed);
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
        "/SMS_MP/.sms_aut" => "sms_aut",
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
        // PKI mode: the client paths need a certificate from the client CA (IIS's answer).
        _ if channel.needs_certificate(&path) => {
            shared
                .framework_log
                .sample(|| [format!("{method} {path} from {peer} refused (403): no client certificate")]);
            text(StatusCode::FORBIDDEN, "Client certificate required")
        }
        // Windows authentication is offered as IIS offers it, and never granted: there is no
        // domain here to check an account against (clients use `/ccm_system/request`).
        ("CCM_POST" | "POST", "/ccm_system_windowsauth/request") => {
            windows_auth(&shared, peer, req.headers())
        }
        ("CCM_POST" | "POST", _) if ccm_path => {
            let (answer, target_endpoint) = mp::ccm(&shared, req).await;
            if let Some(t) = target_endpoint.or(target) {
                endpoint = t;
            }
            answer
        }
        ("GET" | "HEAD", "/SMS_MP/.sms_aut") => mp::sms_aut(&shared, &query).await,
        ("GET" | "HEAD", "/SMS_MP/.sms_pol") => mp::policy_body(&shared, &query, &req),
        ("GET", p) if let Some(sup) = p.strip_prefix("/wsus/").and_then(|p| p.strip_suffix("/catalog")) => {
            mp::wsus_catalog(&shared, sup, &query)
        }
        ("GET", "/api/v1/site") => json_reply(StatusCode::OK, &site_api::site_json(&shared)),
        ("GET", "/api/v1/catalog") => {
            let site = shared.site.read();
            json_reply(StatusCode::OK, &site.catalog.to_json(site.content_version))
        }
        ("GET", "/api/v1/status") => json_reply(StatusCode::OK, &site_api::status_json(&shared)),
        ("GET", "/api/v1/statenames") => json_reply(StatusCode::OK, &site_api::statenames_json()),
        ("GET", "/api/v1/convergence") => json_reply(StatusCode::OK, &site_api::convergence_json(&shared)),
        ("GET", p) if let Some(id) = p.strip_prefix("/api/v1/clients/") => site_api::client_json(&shared, id),
        ("POST", "/api/v1/sync" | "/api/v1/drain" | "/api/v1/summarize" | "/api/v1/faults")
            if !admin::allowed(shared.admin_token.as_deref(), peer, req.headers()) =>
        {
            text(StatusCode::FORBIDDEN, "admin calls need a loopback peer or the configured token")
        }
        ("POST", "/api/v1/sync") => admin::sync(&shared, req).await,
        ("GET" | "POST", "/api/v1/faults") => admin::faults(&shared, req).await,
        ("POST", "/api/v1/summarize") => admin::summarize(&shared, &query).await,
        ("GET", p) if let Some(view) = p.strip_prefix("/api/v1/summary/") => site_api::summary(&shared, view),
        ("POST", "/api/v1/drain") => admin::drain(&shared, &query).await,
        ("GET", "/metrics") => reply(StatusCode::OK, "text/plain; version=0.0.4", metrics::text(&shared)),
        (_, _) if ccm_path => text(StatusCode::METHOD_NOT_ALLOWED, "use CCM_POST or POST"),
        _ => text(StatusCode::NOT_FOUND, format!("no route for {method} {path}")),
    };
    if answer.status() == StatusCode::BAD_REQUEST {
        shared.http.bad_requests.fetch_add(1, Ordering::Relaxed);
    }
    shared.http.by_endpoint.record(&endpoint, started.elapsed());
    Ok(answer)
}
