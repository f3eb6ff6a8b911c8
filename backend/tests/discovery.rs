//! What a registration or a location request taught the site survives a SIGKILL right after the
//! answer: the real `backend` binary is killed before its next checkpoint and restarted.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use protocol::bodies::{
    ClientRegistrationRequest, ClientRegistrationResponse, IpAddressInfo, WsusLocationRequest,
};
use protocol::envelope::{self, CONTENT_TYPE, MsgHeader, Reply};

/// The binary on `data`, checkpointing only every 10 minutes; its address from its first line.
/// The caller kills and waits for it.
#[allow(clippy::zombie_processes)]
fn start(data: &Path) -> (Child, SocketAddr) {
    let log = data.with_extension("log");
    let offset = std::fs::metadata(&log).map_or(0, |m| m.len()) as usize;
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_backend"))
        .args(["serve", "--listen", "127.0.0.1:0", "--checkpoint-ms", "600000", "--data-dir"])
        .arg(data)
        .stderr(stderr)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text
            .get(offset..)
            .and_then(|t| t.split("serving http://").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
        {
            return (child, addr.parse().unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the backend did not start: {text}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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
    let (mut child, addr) = start(&data);
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
    // Killed at once: the next checkpoint is ten minutes away.
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, addr) = start(&data);
    let (status, _, body) = common::call(addr, "GET", &format!("/api/v1/clients/{id}"), &[], b"").unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        status,
        200,
        "the registered client is known after the kill: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(json["NetBIOSName"], "PS1WIN10X64");
    assert_eq!(json["Location"]["ADSite"], "CM12-R2-PS1", "{json:#}");
}
