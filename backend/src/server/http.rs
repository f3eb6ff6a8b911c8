//! HTTP plumbing every route shares: answers, reading a body within the limits (size, time,
//! and the request-memory budget it is charged to), and strict query strings.

// Request data decides indexes and sizes here: no indexing or arithmetic that can panic.
#![warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request as HttpRequest, Response, StatusCode};
use serde_json::Value;

use super::Shared;

pub(crate) type Reply = Response<Full<Bytes>>;

pub(crate) fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    let mut line = body.into();
    line.push('\n');
    reply(status, "text/plain; charset=utf-8", line)
}

pub(crate) fn json_reply(status: StatusCode, value: &Value) -> Reply {
    reply(status, "application/json", serde_json::to_vec_pretty(value).unwrap_or_default())
}

pub(crate) fn busy(shared: &Shared, why: &str) -> Reply {
    shared.http.busy.fetch_add(1, Ordering::Relaxed);
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, why);
    r.headers_mut().insert("retry-after", HeaderValue::from(shared.limits.retry_after_secs));
    r
}

/// Whether every `Transfer-Encoding` coding is `chunked`.
pub(crate) fn transfer_codings_understood(headers: &hyper::HeaderMap) -> bool {
    headers
        .get_all(hyper::header::TRANSFER_ENCODING)
        .iter()
        .all(|v| v.to_str().is_ok_and(|v| v.split(',').all(|c| c.trim().eq_ignore_ascii_case("chunked"))))
}

/// The body length a request declares (`Content-Length`).
fn declared_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// The request-memory budget one request holds: it grows as bytes arrive and before anything is
/// decoded, never on a promise (a declared length), and is given back when the request is
/// answered.
pub(crate) struct Charge {
    budget: Arc<tokio::sync::Semaphore>,
    held: Option<tokio::sync::OwnedSemaphorePermit>,
    pub(crate) bytes: usize,
}

impl Charge {
    pub(crate) fn new(shared: &Shared) -> Charge {
        Charge { budget: Arc::clone(&shared.request_memory), held: None, bytes: 0 }
    }

    /// Takes `bytes` more of the budget, if that much is free now.
    pub(crate) fn take(&mut self, bytes: usize) -> bool {
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
    pub(crate) fn shrink_to(&mut self, bytes: usize) {
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
pub(crate) async fn read_body(
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

/// The query's `key=value` pairs, refusing any key not in `known` and any key given twice.
pub(crate) fn query_args<'q>(query: &'q str, known: &[&str]) -> Result<Vec<(&'q str, &'q str)>, Box<Reply>> {
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

/// A query value with `%XX` and `+` decoded.
pub(crate) fn percent_decode(s: &str) -> String {
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

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
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
}
