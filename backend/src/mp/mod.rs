//! The management point's message handling: a decoded CCM message in, what to answer out, over
//! the site model. No I/O here: the HTTP layer decodes the envelope, calls [`dispatch`], encodes
//! the reply (faithful or plain XML), and hands relayed Reports to the inbox.
//!
//! | `TargetEndpoint` | body | answer |
//! |---|---|---|
//! | `MP_ClientRegistration` | `ClientRegistrationRequest` | `ClientRegistrationResponse`: approved, a stable SMS ID |
//! | `MP_PolicyManager` | `RequestAssignments` | `ReplyAssignments`: the UpdateSource policy at its current version |
//! | `MP_LocationManager` | `WSUSLocationRequest` | `WSUSLocationReply` ([`crate::site::Site::locate`]) |
//! | `MP_LocationManager` | `ContentLocationRequest` | `ContentLocationReply`: the DPs of the client's boundary groups ([`crate::site::Site::content_locations`]) |
//! | `MP_DdrEndpoint` | a discovery `Report` ([`protocol::bodies::DiscoveryRecord`]) | recorded as discovery (name, AD site, boundary groups) once durable, then `NoReply`; 400 when its `ClientID` is not the sender's `SourceID`; other reports (inventory) unhandled |
//! | `MP_RelayEndpoint` | `Report` (FileType SMX) | relay it (async: `NoReply`) once it is durable; 400 for a Report that does not scan, names a client other than `SourceID`, or has a `NetBIOSName` past [`protocol::names::MAX_NETBIOS_NAME`] |
//! | anything else | | unhandled: `NoReply` when asynchronous, else HTTP 200 with an empty body, as real MPs answer |
//!
//! With signing required, the HTTP layer checks registrations and `clientauth` hooks before
//! dispatching ([`keys`]); [`certs`] keeps the certificates `.sms_aut` hands out; [`ntlm`] answers the
//! Windows-authentication path; [`fdm`] moves a remote
//! MP's files.

// Request data decides indexes and sizes here: no indexing or arithmetic that can panic.
#![warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

pub mod certs;
pub mod fdm;
pub mod keys;
pub mod ntlm;

use protocol::bodies::{
    BodyError, ClientRegistrationRequest, ClientRegistrationResponse, ContentLocationRequest,
    DiscoveryRecord, IpAddressInfo, MpEntry, MpList, PolicyAssignment, ReplyAssignments, RequestAssignments,
    UnknownMachines, UpdateSourcePolicy, WsusLocationRequest, policy_location,
};
use protocol::envelope::{MsgHeader, Request};
use protocol::{Guid, Timestamp, names, utf16};
use sha2::{Digest, Sha256};

use crate::site::{Location, Site};
use crate::statesys::process::Scanned;

/// What the relay has acknowledged: Reports made durable, and the state messages in them.
/// Counted when a Report is on disk, whether or not its client is still there for the answer
/// (drain waits for StateSys to apply every one of them).
#[derive(Debug, Default)]
pub struct RelayCounters {
    pub reports_accepted: std::sync::atomic::AtomicU64,
    pub messages_accepted: std::sync::atomic::AtomicU64,
}

impl RelayCounters {
    pub fn readings(&self, out: &mut Vec<crate::counters::Reading>) {
        use crate::counters::Reading;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        out.extend([
            Reading::counter(&["ReportsAccepted"], "sumstorm_relay_reports_total", n(&self.reports_accepted)),
            Reading::counter(
                &["StateMessagesAccepted"],
                "sumstorm_relay_state_messages_total",
                n(&self.messages_accepted),
            ),
        ]);
    }
}

/// Who this MP is, for replies and the MP list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpIdentity {
    /// NetBIOS-style name (`PS1SYS`).
    pub name: String,
    pub fqdn: String,
    /// Where clients reach this server (`http://127.0.0.1:8080`); WSUS URLs point here.
    pub base_url: String,
    /// The MP build number the MP list reports.
    pub version: u32,
}

/// What to do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    /// Answer synchronously with this reply header and body XML.
    Reply { header: Box<MsgHeader>, xml: String, discovered: Option<Discovered> },
    /// A well-formed Report to relay, with its scan (for StateSys, in memory); answer `NoReply`
    /// once it is durable.
    Relay { records: u64, scanned: Box<Scanned> },
    /// A discovery record to keep (durably) before answering `NoReply`.
    Discovery(Discovered),
    /// A malformed message: HTTP 400 with this one-line reason, nothing written.
    BadRequest(String),
    /// An endpoint this MP does not serve: `NoReply` when the message is asynchronous, else HTTP
    /// 200 with an empty body (what real MPs answer).
    Unhandled,
}

/// A client the MP heard from: what the site's discovery records (registration gives the SMS ID
/// and name; a location request, where the client is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub client: Guid,
    pub netbios_name: String,
    pub location: Option<Location>,
}

fn bad(what: &str, e: BodyError) -> Dispatch {
    Dispatch::BadRequest(format!("{what}: {e}"))
}

/// Handles one decoded message. `reply_id` becomes the reply's message ID.
pub fn dispatch(site: &Site, mp: &MpIdentity, request: &Request, now: Timestamp, reply_id: Guid) -> Dispatch {
    let reply = |xml: String, discovered: Option<Discovered>| Dispatch::Reply {
        header: Box::new(request.header.reply(reply_id, &mp.name, now)),
        xml,
        discovered,
    };
    match request.header.target_endpoint.as_str() {
        "MP_ClientRegistration" => match ClientRegistrationRequest::parse(&request.body) {
            Ok(req) => {
                let response = register(site, &req, now);
                let discovered = Discovered {
                    client: response.sms_id,
                    netbios_name: req.netbios_name().to_owned(),
                    location: None,
                };
                reply(response.to_xml(), Some(discovered))
            }
            Err(e) => bad("ClientRegistrationRequest", e),
        },
        "MP_PolicyManager" => match RequestAssignments::parse(&request.body) {
            Ok(req) => reply(assignments(site, &req).to_xml(), None),
            Err(e) => bad("RequestAssignments", e),
        },
        "MP_LocationManager" => match WsusLocationRequest::parse(&request.body) {
            Ok(req) => {
                // SourceID names the client (empty before it registered: then nobody to record).
                let discovered = Guid::parse_sms_id(&request.header.source_id).ok().map(|client| {
                    Discovered { client, netbios_name: String::new(), location: Some(site.location_of(&req)) }
                });
                reply(site.locate(&req, &mp.base_url).to_xml(), discovered)
            }
            // A content location request; others (site information) are not served.
            Err(BodyError::Missing("WSUSLocationRequest")) => {
                match ContentLocationRequest::parse(&request.body) {
                    Ok(req) => reply(site.content_locations(&req).to_xml(), None),
                    Err(BodyError::Missing("ContentLocationRequest")) => Dispatch::Unhandled,
                    Err(e) => bad("ContentLocationRequest", e),
                }
            }
            Err(e) => bad("WSUSLocationRequest", e),
        },
        "MP_RelayEndpoint" => relay_check(request),
        "MP_DdrEndpoint" => match DiscoveryRecord::parse(&request.body) {
            Ok(Some(ddr)) => discovery(site, request, ddr),
            // Inventory and other reports: not processed here.
            Ok(None) => Dispatch::Unhandled,
            Err(e) => bad("DDR", e),
        },
        _ => Dispatch::Unhandled,
    }
}

/// A discovery record, recorded when it speaks for the client that sent it: its name, and where
/// its AD site and addresses put it.
fn discovery(site: &Site, request: &Request, ddr: DiscoveryRecord) -> Dispatch {
    let source = request.header.source_id.trim();
    if !source.is_empty() && Guid::parse_sms_id(source).ok() != Some(ddr.client) {
        return Dispatch::BadRequest(
            "the DDR's ClientID is not the SourceID it was sent from; a client sends only its own discovery data"
                .into(),
        );
    }
    let ips: Vec<IpAddressInfo> = ddr
        .subnets
        .iter()
        .map(|s| IpAddressInfo { subnet: s.clone(), address: String::new() })
        .chain(ddr.ip_addresses.iter().map(|a| IpAddressInfo { subnet: String::new(), address: a.clone() }))
        .collect();
    let location = site.location_at(&ddr.ad_site, &ips);
    Dispatch::Discovery(Discovered {
        client: ddr.client,
        netbios_name: ddr.netbios_name,
        location: Some(location),
    })
}

/// What the relay checks of a Report before making it durable: it scans (so StateSys will read
/// it), its `NetBIOSName` is within [`names::MAX_NETBIOS_NAME`], and the client it speaks for
/// is the one the message came from (`SourceID`, when the envelope carries one; plain-XML
/// requests from tools carry none).
fn relay_check(request: &Request) -> Dispatch {
    let mut scanned = Box::new(Scanned::for_report_of(request.body.len()));
    if let Err(e) = scanned.scan_str(&request.body) {
        return Dispatch::BadRequest(e.to_string());
    }
    if !names::fits(&scanned.netbios, names::MAX_NETBIOS_NAME) {
        return Dispatch::BadRequest(format!(
            "NetBIOSName is longer than {} characters ({} bytes)",
            names::MAX_NETBIOS_NAME,
            scanned.netbios.len()
        ));
    }
    let source = request.header.source_id.trim();
    if !source.is_empty() {
        let Ok(source) = Guid::parse_sms_id(source) else {
            return Dispatch::BadRequest("SourceID is not an SMS ID".into());
        };
        if scanned.client.is_some_and(|client| client != source) {
            return Dispatch::BadRequest(
                "the Report's ClientID is not the SourceID it was sent from; a client relays only its own state messages"
                    .into(),
            );
        }
    }
    Dispatch::Relay { records: scanned.messages.len() as u64, scanned }
}

/// A name-based GUID (version 5 layout) from SHA-256 of `parts`: stable across restarts.
fn stable_guid(parts: &[&str]) -> Guid {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(digest.first_chunk::<16>().unwrap_or(&[0; 16]));
    let raw = u128::from_be_bytes(bytes);
    Guid((raw & !(0xF << 76) & !(0x3 << 62)) | (0x5 << 76) | (0x2 << 62))
}

/// The SMS ID a client gets: the same for the same site and machine, every time it registers.
pub fn sms_id(site: &Site, netbios_name: &str, fqdn: &str) -> Guid {
    stable_guid(&["sms-id", &site.code, &netbios_name.to_ascii_uppercase(), &fqdn.to_ascii_lowercase()])
}

/// Registration: auto-approved, with a stable SMS ID.
pub fn register(site: &Site, req: &ClientRegistrationRequest, now: Timestamp) -> ClientRegistrationResponse {
    ClientRegistrationResponse {
        status: 0,
        sms_id: sms_id(site, req.netbios_name(), req.fqdn()),
        timestamp: Some(now),
    }
}

/// The UpdateSource policy as it stands.
pub fn update_source_policy(site: &Site) -> UpdateSourcePolicy {
    UpdateSourcePolicy {
        policy_id: site.policy_id.clone(),
        policy_version: site.policy_version(),
        policy_source: format!("SMS:{}", site.code),
        update_source_id: site.update_source_id,
        content_version: site.content_version,
        content_type: 2,
    }
}

/// The policy body as served (`GET /SMS_MP/.sms_pol?...`): UTF-16LE with a BOM.
pub fn policy_body(site: &Site) -> Vec<u8> {
    utf16::encode(&update_source_policy(site).to_xml(), true)
}

/// `SHA256:<HEX>` of the served body, as `PolicyHashEx` carries it.
pub fn policy_hash(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut out = String::from("SHA256:");
    for b in digest.iter() {
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// The reply to a policy poll: what the client sent, echoed, and the UpdateSource policy at its
/// current version. Any `PolicySource` is accepted (some senders hard-code `SMS:PRI`).
pub fn assignments(site: &Site, req: &RequestAssignments) -> ReplyAssignments {
    let policy = PolicyAssignment {
        assignment_id: stable_guid(&["assignment", &site.policy_id]),
        policy_id: site.policy_id.clone(),
        policy_version: site.policy_version(),
        policy_type: "Machine".into(),
        policy_category: "UpdateSource".into(),
        policy_flags: 0,
        policy_hash: policy_hash(&policy_body(site)),
        location: policy_location(&site.policy_id, &site.policy_version()),
    };
    ReplyAssignments::answering(req, vec![policy])
}

/// The site's "x86 Unknown Computer" and "x64 Unknown Computer" resources: stable per site.
pub fn unknown_machines(site: &Site) -> UnknownMachines {
    UnknownMachines {
        x86: stable_guid(&["unknown-computer", &site.code, "x86"]),
        x64: stable_guid(&["unknown-computer", &site.code, "x64"]),
    }
}

/// `GET /SMS_MP/.sms_aut?MPLIST`: this MP.
pub fn mp_list(mp: &MpIdentity) -> MpList {
    MpList {
        mps: vec![MpEntry {
            name: mp.name.clone(),
            fqdn: mp.fqdn.clone(),
            version: mp.version,
            ssl_state: 0,
        }],
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::fixtures::fixture;
    use protocol::bodies::{ReplyAssignments, WsusLocationReply, parse_policy_query};
    use protocol::envelope::{CONTENT_TYPE, Limits, decode_request};

    fn mp() -> MpIdentity {
        MpIdentity {
            name: "PS1SYS".into(),
            fqdn: "PS1SYS.CONTOSO.COM".into(),
            base_url: "http://127.0.0.1:8080".into(),
            version: 9128,
        }
    }

    fn request(fixture_name: &str) -> Request {
        decode_request(CONTENT_TYPE, &fixture(fixture_name), &Limits::default()).unwrap()
    }

    #[test]
    fn the_seed_location_request_gets_both_sups() {
        let site = Site::default_site();
        let req = request("ccm-wsus-location-request.bin");
        let Dispatch::Reply { header, xml, .. } = dispatch(&site, &mp(), &req, Timestamp(0), Guid(9)) else {
            panic!("a reply")
        };
        assert_eq!(header.target_endpoint, "LS_ReplyLocations");
        assert_eq!(header.correlation_id, req.header.id);
        let reply = WsusLocationReply::parse(&xml).unwrap();
        let urls: Vec<_> = reply.records().map(|r| r.wsus_url.as_str()).collect();
        assert_eq!(urls, ["http://127.0.0.1:8080/wsus/PS1SITE", "http://127.0.0.1:8080/wsus/PS1SYS"]);
        assert!(reply.records().all(|r| r.version == 38));
    }

    #[test]
    fn relay_counts_well_formed_reports_and_refuses_broken_ones() {
        let site = Site::default_site();
        let mut req = request("ccm-relay-report-three.bin");
        let Dispatch::Relay { records, scanned } = dispatch(&site, &mp(), &req, Timestamp(0), Guid(1)) else {
            panic!("not relayed")
        };
        assert_eq!((records, scanned.messages.len(), scanned.netbios.as_str()), (3, 3, "PS1WIN7X64"));
        // A state-message Report is no discovery record: the DDR endpoint does not process it.
        let whole = req.body.clone();
        req.header.target_endpoint = "MP_DdrEndpoint".into();
        assert_eq!(dispatch(&site, &mp(), &req, Timestamp(0), Guid(1)), Dispatch::Unhandled);
        req.header.target_endpoint = "MP_RelayEndpoint".into();
        req.body.truncate(whole.len() / 2);
        assert!(matches!(dispatch(&site, &mp(), &req, Timestamp(0), Guid(1)), Dispatch::BadRequest(_)));
    }

    #[test]
    fn registration_is_stable_per_machine() {
        let site = Site::default_site();
        let req = |name: &str, fqdn: &str| ClientRegistrationRequest {
            properties: vec![("Netbios Name".into(), name.into()), ("FQ Name".into(), fqdn.into())],
            ..ClientRegistrationRequest::default()
        };
        let a = register(&site, &req("PC1", "pc1.contoso.com"), Timestamp(0));
        assert_eq!(a.status, 0);
        assert_eq!(a.sms_id, register(&site, &req("pc1", "PC1.CONTOSO.COM"), Timestamp(5)).sms_id);
        assert_ne!(a.sms_id, register(&site, &req("PC2", "pc2.contoso.com"), Timestamp(0)).sms_id);
        assert_eq!(a.sms_id.to_string().as_bytes()[14], b'5', "name-based GUID: {}", a.sms_id);
    }

    #[test]
    fn policy_assignment_points_at_the_current_body_and_its_hash() {
        let mut site = Site::default_site();
        let poll = RequestAssignments { request_type: "Full".into(), ..RequestAssignments::default() };
        let reply = ReplyAssignments::parse(&assignments(&site, &poll).to_xml()).unwrap();
        let a = &reply.assignments[0];
        assert_eq!((a.policy_category.as_str(), a.policy_version.as_str()), ("UpdateSource", "40.00"));
        let query = a.location.strip_prefix("http://<mp>/SMS_MP/.sms_pol?").unwrap();
        assert_eq!(parse_policy_query(query), Some((site.policy_id.as_str(), "40.00".to_owned())));
        let body = policy_body(&site);
        assert_eq!(a.policy_hash, policy_hash(&body));
        let text = utf16::decode(&body).unwrap();
        let policy = UpdateSourcePolicy::parse(&text).unwrap();
        assert_eq!((policy.update_source_id, policy.content_version), (site.update_source_id, 38));
        // After a sync and the Policy Provider's bump, the assignment moves with it.
        site.sync(5, 0);
        site.policy_major += 1;
        let moved = &assignments(&site, &poll).assignments[0];
        assert_eq!(moved.policy_version, "41.00");
        assert_ne!(moved.policy_hash, a.policy_hash);
        assert_eq!(moved.assignment_id, a.assignment_id, "the same assignment, a new version");
    }

    #[test]
    fn mp_list_names_this_mp() {
        let list = MpList::parse(&mp_list(&mp()).to_xml()).unwrap();
        assert_eq!((list.mps[0].name.as_str(), list.mps[0].version), ("PS1SYS", 9128));
    }
}
