//! Admin calls: a SUP sync, a drain (wait until every accepted Report is applied), summarization
//! on demand, and disk faults for tests. From loopback, or with the configured token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Method, Request as HttpRequest, StatusCode};
use serde_json::{Value, json};

use super::site_api::summarization_json;
use crate::server::Shared;
use crate::server::http::{Charge, Reply, json_reply, percent_decode, query_args, read_body, text};
use crate::site::catalog::MAX_SYNC_UPDATES;
use crate::site::live::SyncError;
use crate::statesys::tasks::Task;

/// Admin calls: with a token configured, only with it (from anywhere); without, only from
/// loopback.
pub(super) fn allowed(want: Option<&str>, peer: SocketAddr, headers: &hyper::HeaderMap) -> bool {
    let token = headers.get("x-admin-token").and_then(|v| v.to_str().ok());
    match want {
        Some(want) => token == Some(want),
        None => peer.ip().is_loopback(),
    }
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
pub(super) async fn sync(shared: &Arc<Shared>, req: HttpRequest<Incoming>) -> Reply {
    let (_, body) = match read_body(shared, req, &mut Charge::new(shared)).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (new, superseded) = match sync_args(&body) {
        Ok(counts) => counts,
        Err(why) => return text(StatusCode::BAD_REQUEST, format!("sync body: {why}")),
    };
    let site = Arc::clone(&shared.site);
    let synced = tokio::task::spawn_blocking(move || site.sync(new, superseded)).await;
    match synced {
        Ok(Ok(synced)) => json_reply(
            StatusCode::OK,
            &json!({
                // Convergence is measured from here: the new policy is out.
                "SyncTime": shared.store.convergence().synced(synced.content_version).to_rfc3339(),
                "ContentVersion": synced.content_version,
                "PolicyVersion": synced.policy_version,
                "Updates": synced.updates,
            }),
        ),
        Ok(Err(e @ SyncError::TooManyUpdates { .. })) => text(StatusCode::CONFLICT, e.to_string()),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("sync failed: {e}")),
    }
}

/// `POST /api/v1/summarize[?task=<name>]`: runs the tasks now (all, or the one named).
pub(super) async fn summarize(shared: &Shared, query: &str) -> Reply {
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
    match shared.schedule.run_now(tasks).await {
        Some(runs) => json_reply(StatusCode::OK, &json!({ "Tasks": summarization_json(runs.into_iter()) })),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "the summarizer is shutting down"),
    }
}

/// The longest drain a caller may ask for.
const MAX_DRAIN: Duration = Duration::from_secs(24 * 3600);

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
pub(super) async fn drain(shared: &Shared, query: &str) -> Reply {
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
        let accepted = shared.relay.reports_accepted.load(Ordering::Acquire);
        let relayed = shared.statesys.reports_relayed.load(Ordering::Acquire);
        let waiting = shared.statesys.files_waiting.load(Ordering::Acquire);
        let recovering = shared.statesys.loading.load(Ordering::Acquire)
            || shared.statesys.recovering.load(Ordering::Acquire);
        if relayed >= accepted && waiting == 0 && !recovering {
            return json_reply(StatusCode::OK, &super::site_api::status_json(shared));
        }
        if Instant::now() >= deadline {
            return json_reply(StatusCode::GATEWAY_TIMEOUT, &super::site_api::status_json(shared));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET|POST /api/v1/faults`: the disk faults in force; POST `{"inbox": "enospc"|"eio"|null,
/// "checkpoint": ...}` sets them (keys left out stay). 404 unless the backend runs with
/// `--fault-injection`.
pub(super) async fn faults(shared: &Shared, req: HttpRequest<Incoming>) -> Reply {
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

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::{SocketAddr, allowed as admin_allowed};

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
