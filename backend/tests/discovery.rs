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
    // The store loads and the inbox replays after the MP answers: 503 until then.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (status, _, body) = loop {
        let answer = common::call(server.addr, "GET", &format!("/api/v1/clients/{id}"), &[], b"").unwrap();
        if answer.0 != 503 || std::time::Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
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

/// A store that does not load (damaged) stops the process with an error that names it, after
/// the MP may already have answered: nothing acknowledged is lost (it is in the inbox), and
/// nothing runs on a store that is not the site's.
#[test]
fn a_damaged_store_stops_the_backend_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("state")).unwrap();
    std::fs::write(data.join("state/store.ckpt"), b"SUMSTORM-STORE/3\nnot a store at all").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_backend"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the backend kept running on a damaged store");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("StateSys cannot load its store: the checkpoint is damaged"), "{stderr}");
}
