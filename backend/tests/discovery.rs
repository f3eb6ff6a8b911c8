//! What a registration or a location request taught the site survives a SIGKILL right after the
//! answer: the real `backend` binary is killed before its next checkpoint and restarted.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use protocol::bodies::{
    ClientRegistrationRequest, ClientRegistrationResponse, IpAddressInfo, WsusLocationRequest,
};
use protocol::envelope::{self, CONTENT_TYPE, MsgHeader, Reply};

/// The binary on `data`, checkpointing only every 10 minutes.
fn start(data: &Path) -> common::Binary {
    common::Binary::start(data, &["--checkpoint-ms", "600000"])
}

fn ccm(addr: SocketAddr, header: &mut MsgHeader, xml: &str) -> String {
    let body = envelope::build_request(header, xml, Some(6));
    let (status, _, reply) =
        common::call(addr, "CCM_POST", "/ccm_system/request", &[("Content-Type", CONTENT_TYPE)], &body)
            .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    match envelope::decode_reply(CONTENT_TYPE, &reply, &envelope::Limits::default()).unwrap() {
        Reply::Sync { body, .. } => body,
        other => panic!("{other:?}"),
    }
}

#[test]
fn registrations_and_locations_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = start(&data);
    let addr = server.addr;
    let header = |endpoint: &str, source: &str| MsgHeader {
        id: "{C2BB9710-C548-49D0-9DF8-5F9CFC5F3862}".into(),
        source_id: source.into(),
        source_host: "PS1WIN10X64".into(),
        target_endpoint: endpoint.into(),
        reply_to: "direct:PS1WIN10X64:Reply".into(),
        reply_mode: "Sync".into(),
        ..MsgHeader::default()
    };
    let registration = ClientRegistrationRequest {
        request_type: "Registration".into(),
        agent_identity: "CCMSetup.exe".into(),
        agent_version: "5.00.7958.1000".into(),
        properties: vec![("Netbios Name".into(), "PS1WIN10X64".into())],
        ..ClientRegistrationRequest::default()
    };
    let reply = ccm(addr, &mut header("MP_ClientRegistration", ""), &registration.to_xml());
    let id = ClientRegistrationResponse::parse(&reply).unwrap().sms_id;
    let location = WsusLocationRequest {
        content_id: "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}".parse().unwrap(),
        content_version: 38,
        site_code: "PS1".into(),
        ad_site: "CM12-R2-PS1".into(),
        ip_addresses: vec![IpAddressInfo { subnet: "192.168.2.0".into(), address: "192.168.2.62".into() }],
        ..WsusLocationRequest::default()
    };
    ccm(addr, &mut header("MP_LocationManager", &format!("GUID:{id}")), &location.to_xml());
    // Killed at once (SIGKILL, on drop): the next checkpoint is ten minutes away.
    drop(server);

    let server = start(&data);
    let (status, _, body) =
        common::call(server.addr, "GET", &format!("/api/v1/clients/{id}"), &[], b"").unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    drop(server);
    assert_eq!(
        status,
        200,
        "the registered client is known after the kill: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(json["NetBIOSName"], "PS1WIN10X64");
    assert_eq!(json["Location"]["ADSite"], "CM12-R2-PS1", "{json:#}");
}
