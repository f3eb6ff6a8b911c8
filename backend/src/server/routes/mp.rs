//! The MP's endpoints, what clients call: CCM messages (the faithful multipart envelope, or
//! plain XML with `X-Target-Endpoint` for tools) dispatched by `crate::mp`, relayed Reports made
//! durable before they are answered, the UpdateSource policy body (with byte ranges), and the
//! WSUS catalog a scan sees, and the `.sms_aut` verbs (the MP list, key information, certificates).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request as HttpRequest, StatusCode};
use protocol::bodies::{
    ClientRegistrationRequest, MpKeyInformation, X509CertificateReply, parse_policy_query,
};
use protocol::envelope::{self, CONTENT_TYPE as CCM_CONTENT_TYPE, MsgHeader, NO_REPLY, Request};

use crate::inbox::commit::{Ack, Busy, OnItsWay};
use crate::inbox::discovery::Discovery;
use crate::mp::keys::{self, ClientKeys, Refusal};
use crate::mp::{self, Dispatch};
use crate::server::Shared;
use crate::server::http::{Charge, Reply, busy, json_reply, read_body, reply, text};
use crate::statesys::handoff::Parsed;
use crate::statesys::process::Scanned;

/// Location request bodies longer than this are logged as `<XML Body Truncated>`.
const LOGGED_BODY_BYTES: usize = 4096;

/// The tree a low-rate body is read into holds at most its text again and
/// [`protocol::xml::MAX_NODES`] small nodes.
const TREE_NODE_BYTES: usize = 256;

/// `CCM_POST /ccm_system/request`: the faithful multipart envelope, or plain XML with
/// `X-Target-Endpoint` for tools. Also returns the message's `TargetEndpoint`, for the metrics.
pub(super) async fn ccm(shared: &Arc<Shared>, req: HttpRequest<Incoming>) -> (Reply, Option<String>) {
    // The request holds its charge until it is answered (a relayed Report waits in the inbox
    // queue meanwhile).
    let mut charge = Charge::new(shared);
    // Until it submits (or ends without), the inbox writer may wait for this request to join a
    // batch under load.
    let mut on_its_way = Some(shared.commit.on_its_way());
    let (parts, mut body) = match read_body(shared, req, &mut charge).await {
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
        // A body read in pieces was gathered into one buffer of its own: taken, not copied.
        // (A plain request has no signed payload, so nothing below needs the raw bytes.)
        let Ok(text_body) = String::from_utf8(Vec::from(std::mem::take(&mut body))) else {
            return (text(StatusCode::BAD_REQUEST, "plain XML requests are UTF-8"), None);
        };
        let header = MsgHeader {
            target_endpoint: endpoint.to_owned(),
            reply_to: "direct:tool:Reply".into(),
            reply_mode: if endpoint == "MP_RelayEndpoint" { "ASync".into() } else { "Sync".into() },
            ..MsgHeader::default()
        };
        Request { header, body: text_body, compressed: false, payload: 0..0 }
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
    let target = Some(request.header.target_endpoint.clone());
    // With signing required: a registration's key, to keep once it is registered; a message to
    // a signed endpoint refused unless its signatures verify.
    let registered_key = match &shared.keys {
        Some(keys) => match signing_check(keys, &request, &body) {
            Ok(key) => key,
            Err(refusal) => return (refuse_unsigned(shared, &request.header, &refusal), target),
        },
        None => None,
    };
    drop(body);
    if request.header.target_endpoint == "MP_LocationManager" {
        shared.location_log.sample(|| {
            // The product logs short bodies whole and marks long ones.
            let body = if request.body.len() <= LOGGED_BODY_BYTES {
                request.body.as_str()
            } else {
                "<XML Body Truncated>"
            };
            let call = if request.body.trim_start().starts_with("<ContentLocationRequest") {
                "MP LM: calling MP_GetContentDPInfoUnprotected"
            } else {
                "MP LM: calling MP_GetWSUSServerLocations"
            };
            [format!("MP LM: Message Body : {body}"), call.to_owned()]
        });
    }
    let decision = {
        let site = shared.site.read();
        mp::dispatch(&site, &shared.mp, &request, shared.clock.now(), shared.reply_id())
    };
    log_decision(shared, &request.header, &decision);
    let answer = match decision {
        Dispatch::Reply { mut header, xml, discovered } => {
            if let (Some(d), Some(key), Some(keys)) = (&discovered, registered_key, &shared.keys) {
                // The client's key is durable before it learns its SMS ID.
                let (keys, client) = (Arc::clone(keys), d.client);
                let kept = tokio::task::spawn_blocking(move || keys.keep(client, key)).await;
                if let Err(why) = kept.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                    let log = shared.registration_log.log();
                    log.log(
                        crate::logs::Severity::Error,
                        &format!("MP Reg: cannot keep the client's key: {why}"),
                    );
                    return (busy(shared, &why), target);
                }
            }
            if let Some(d) = discovered
                && let Err(answer) = discover(shared, d, &mut on_its_way).await
            {
                return (answer, target);
            }
            if plain {
                reply(StatusCode::OK, "text/xml; charset=utf-8", xml)
            } else {
                reply(StatusCode::OK, CCM_CONTENT_TYPE, envelope::build_sync_reply(&mut header, &xml))
            }
        }
        Dispatch::Relay { records, scanned } => {
            relay(shared, request.body.into_bytes(), records, scanned, plain, &mut on_its_way).await
        }
        Dispatch::Discovery(d) => match discover(shared, d, &mut on_its_way).await {
            Ok(()) if plain => text(StatusCode::OK, "NoReply"),
            Ok(()) => reply(StatusCode::OK, CCM_CONTENT_TYPE, NO_REPLY),
            Err(answer) => answer,
        },
        Dispatch::BadRequest(why) => text(StatusCode::BAD_REQUEST, why),
        Dispatch::Unhandled => unhandled(shared, &request.header, plain),
    };
    drop(charge);
    (answer, target)
}

/// Records what the MP heard of a client; what the site learned is durable before the answer (a
/// restart replays it).
async fn discover(
    shared: &Shared,
    d: mp::Discovered,
    on_its_way: &mut Option<OnItsWay>,
) -> Result<(), Reply> {
    let now = shared.clock.now().0;
    // While StateSys loads the store, it applies what the MP hears after loading.
    let loading = shared.statesys.loading.load(Ordering::Acquire);
    let learned = loading || shared.store.discover(d.client, &d.netbios_name, d.location.clone(), now);
    if !learned {
        return Ok(());
    }
    let record =
        Discovery { client: d.client, netbios_name: d.netbios_name, location: d.location, time: now };
    let encoded = record.encode();
    let parsed = if loading { Parsed::Discovery(record) } else { Parsed::Applied };
    durable(shared, encoded, parsed, on_its_way, || {})
        .await
        .map_err(|e| e.answer(shared, shared.location_log.log(), "Discovery"))
}

/// The per-message logs (one group a second at most, with a count of those between): what a
/// failing client can be diagnosed from.
fn log_decision(shared: &Shared, header: &MsgHeader, decision: &Dispatch) {
    let (id, source) =
        (&header.id, if header.source_id.is_empty() { "(unregistered)" } else { &header.source_id });
    match (header.target_endpoint.as_str(), decision) {
        ("MP_ClientRegistration", Dispatch::Reply { discovered: Some(d), .. }) => {
            shared.registration_log.sample(|| {
                [
                    format!("MP Reg: Message ID: {id}"),
                    format!("MP Reg: Registered GUID:{} ({}), approval automatic", d.client, d.netbios_name),
                    "MP Reg: Processing completed. Completion state = 0".to_owned(),
                ]
            })
        }
        ("MP_PolicyManager", Dispatch::Reply { .. }) => shared
            .policy_log
            .sample(|| [format!("MP PA: Message ID: {id}; machine policy assignments sent to {source}")]),
        ("MP_DdrEndpoint", Dispatch::Discovery(d)) => shared.ddr_log.sample(|| {
            let site = d.location.as_ref().map_or("", |l| &*l.ad_site);
            [format!(
                "MP DDR: Message ID: {id}; discovery data for GUID:{} ({}) recorded, AD site {site:?}",
                d.client.styled(protocol::GuidStyle::Upper),
                d.netbios_name
            )]
        }),
        (endpoint, Dispatch::BadRequest(why)) => shared
            .framework_log
            .sample(|| [format!("MP: message {id} from {source} for {endpoint} refused (400): {why}")]),
        _ => {}
    }
}

/// The signing checks of a decoded message: a registration's signature (its key returned, to
/// keep), or a signed endpoint's `clientauth` hook. Other messages pass.
fn signing_check(
    keys: &ClientKeys,
    request: &Request,
    http_body: &[u8],
) -> Result<Option<protocol::signing::PublicKey>, Refusal> {
    let endpoint = request.header.target_endpoint.as_str();
    if endpoint == "MP_ClientRegistration" {
        // A request that does not parse is the dispatcher's to refuse (400).
        return match ClientRegistrationRequest::parse(&request.body) {
            Ok(r) => ClientKeys::check_registration(&request.body, &r).map(Some),
            Err(_) => Ok(None),
        };
    }
    if keys::is_signed_endpoint(endpoint) {
        keys.check(&request.header, http_body.get(request.payload.clone()).unwrap_or_default())?;
    }
    Ok(None)
}

/// The answer to a message refused for its signature: 403 with the reason, counted, and logged
/// in `MP_Framework.log` (registrations also in `MP_RegistrationManager.log`).
fn refuse_unsigned(shared: &Shared, header: &MsgHeader, refusal: &Refusal) -> Reply {
    shared.signing_refused.fetch_add(1, Ordering::Relaxed);
    let (id, endpoint) = (&header.id, &header.target_endpoint);
    let source = if header.source_id.is_empty() { "(unregistered)" } else { &header.source_id };
    shared.framework_log.sample(|| {
        [format!(
            "MP: message {id} from {source} for {endpoint} refused (403): authentication failed: {refusal}"
        )]
    });
    if endpoint == "MP_ClientRegistration" {
        shared.registration_log.sample(|| {
            [
                format!("MP Reg: Message ID: {id}"),
                format!(
                    "MP Reg: Failed to verify the registration request from {}: {refusal}",
                    header.source_host
                ),
            ]
        });
    }
    text(StatusCode::FORBIDDEN, format!("authentication failed: {refusal}"))
}

/// A message this MP does not process: asynchronous ones get `NoReply` (the sender is done), as
/// a real MP answers them; synchronous ones an empty 200 (what real clients see for a message
/// an MP could not handle). Logged either way.
fn unhandled(shared: &Shared, header: &MsgHeader, plain: bool) -> Reply {
    let asynchronous = header.reply_mode.eq_ignore_ascii_case("async");
    shared.framework_log.sample(|| {
        [format!(
            "MP: message {} for {} ({}) is not processed by this MP; answered {}",
            header.id,
            header.target_endpoint,
            if asynchronous { "ASync" } else { "Sync" },
            if asynchronous { "NoReply" } else { "an empty reply" }
        )]
    });
    match (asynchronous, plain) {
        (true, true) => text(StatusCode::OK, "NoReply"),
        (true, false) => reply(StatusCode::OK, CCM_CONTENT_TYPE, NO_REPLY),
        (false, _) => reply(StatusCode::OK, "text/plain", Bytes::new()),
    }
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

/// Writes `record` to the inbox and waits until it is on disk; `parsed` is the record as
/// StateSys takes it in memory. The request stops counting as on its way once it has submitted.
/// `on_durable` runs when the record is on disk, in the writer's
/// thread, whether or not this request is still waiting (a client that hung up has still had its
/// record made durable, and StateSys will apply it).
async fn durable(
    shared: &Shared,
    record: Vec<u8>,
    parsed: Parsed,
    on_its_way: &mut Option<OnItsWay>,
    on_durable: impl FnOnce() + Send + 'static,
) -> Result<(), NotDurable> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let ack: Ack = Box::new(move |r| {
        if r.is_ok() {
            on_durable();
        }
        let _ = tx.send(r);
    });
    let submitted = shared.commit.submit(record, Some(parsed), ack);
    on_its_way.take();
    if let Err(Busy { .. }) = submitted {
        return Err(NotDurable::Busy);
    }
    match rx.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(NotDurable::Failed(e.to_string())),
        Err(_) => Err(NotDurable::Failed("the inbox writer stopped".into())),
    }
}

/// Makes the Report durable and only then answers `NoReply`.
async fn relay(
    shared: &Arc<Shared>,
    report: Vec<u8>,
    records: u64,
    scanned: Box<Scanned>,
    plain: bool,
    on_its_way: &mut Option<OnItsWay>,
) -> Reply {
    let waiting = shared.statesys.files_waiting.load(Ordering::Relaxed);
    if waiting as usize > shared.limits.high_water_files {
        return busy(shared, "the inbox is past its high-water mark; retry later");
    }
    if shared.statesys.checkpoint_failing.load(Ordering::Acquire) {
        return busy(shared, "StateSys cannot write its checkpoint (disk trouble); retry later");
    }
    // Counted where it becomes durable: drain waits for every Report StateSys will apply.
    let counted = Arc::clone(shared);
    let accepted = move || {
        counted.relay.messages_accepted.fetch_add(records, Ordering::Relaxed);
        counted.relay.reports_accepted.fetch_add(1, Ordering::Release);
    };
    match durable(shared, report, Parsed::Report(scanned), on_its_way, accepted).await {
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

/// `GET|HEAD /SMS_MP/.sms_aut?<VERB>`: the MP list, the MP's key information (for boot media too,
/// with the site's unknown computers), the site's and the MP's signing certificates. Other verbs
/// are 404s, logged.
pub(super) async fn sms_aut(shared: &Arc<Shared>, query: &str) -> Reply {
    // Clients built on common HTTP libraries percent-encode; some verbs carry an argument
    // (`GETCLIENTAFFINITY&<SMSID>`).
    let query = crate::server::http::percent_decode(query);
    let verb = query.split('&').next().unwrap_or_default().trim().to_ascii_uppercase();
    let key_information = |media: bool| {
        let site = shared.site.read();
        MpKeyInformation {
            fqdn: shared.mp.fqdn.clone(),
            site_code: site.code.clone(),
            unknown_machines: media.then(|| mp::unknown_machines(&site)),
        }
        .to_xml()
    };
    let xml = match verb.as_str() {
        "MPLIST" => mp::mp_list(&shared.mp).to_xml(),
        "MPKEYINFORMATION" => key_information(false),
        "MPKEYINFORMATIONMEDIA" => key_information(true),
        "SITESIGNCERT" | "MPCERT" => {
            let certificates = Arc::clone(&shared.certificates);
            let got = tokio::task::spawn_blocking(move || certificates.get()).await;
            match got.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                Ok(c) => {
                    let der = if verb == "MPCERT" { &c.mp_signing } else { &c.site_signing };
                    X509CertificateReply { der: der.clone() }.to_xml()
                }
                Err(why) => {
                    shared.framework_log.log().log(
                        crate::logs::Severity::Error,
                        &format!("MP: .sms_aut?{verb}: cannot load the certificate: {why}"),
                    );
                    return text(StatusCode::INTERNAL_SERVER_ERROR, why);
                }
            }
        }
        _ => {
            shared.framework_log.sample(|| [format!("MP: .sms_aut?{verb} is not served by this MP (404)")]);
            return text(StatusCode::NOT_FOUND, format!("no .sms_aut verb {verb:?} here"));
        }
    };
    reply(StatusCode::OK, "text/xml", xml)
}

/// `GET|HEAD /SMS_MP/.sms_pol?{PolicyID}.40_00`: the UpdateSource policy body, with ranges.
pub(super) fn policy_body<B>(shared: &Shared, query: &str, req: &HttpRequest<B>) -> Reply {
    let site = shared.site.read();
    // Clients built on common HTTP libraries percent-encode the braces.
    let query = crate::server::http::percent_decode(query);
    let Some((id, version)) = parse_policy_query(&query) else {
        shared.policy_log.sample(|| {
            [format!("MP Policy: download of {query:?} refused (400): not {{PolicyID}}.<version>")]
        });
        return text(StatusCode::BAD_REQUEST, "expected .sms_pol?{PolicyID}.<version>");
    };
    let body = mp::policy_body(&site);
    let current = version == site.policy_version() || version == mp::policy_hash(&body);
    if !id.eq_ignore_ascii_case(&site.policy_id) || !current {
        shared.policy_log.sample(|| [format!("MP Policy: no policy {id} version {version} (404)")]);
        return text(StatusCode::NOT_FOUND, "no such policy version");
    }
    shared.policy_log.sample(|| [format!("MP Policy: policy {id} version {version} sent")]);
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
pub(super) fn wsus_catalog(shared: &Shared, name: &str, query: &str) -> Reply {
    let site = shared.site.read();
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
    json_reply(StatusCode::OK, &site.catalog.to_json(version))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::byte_range;

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
}
