//! The backend over real sockets on 127.0.0.1: fixtures posted as-is, the seed's flow end to end,
//! bad input, and a restart on the same data directory.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use backend::server::{Config, run};
use protocol::bodies::{
    ReplyAssignments, RequestAssignments, UpdateSourcePolicy, WsusLocationReply, WsusLocationRequest,
};
use protocol::envelope::{self, CONTENT_TYPE, Limits, MsgHeader, NO_REPLY, Reply};
use protocol::report::write::Param;
use protocol::report::{OutMessage, ReportIdentity, ReportWriter};
use protocol::{Guid, GuidStyle, Timestamp, utf16};
use serde_json::Value;

use common::fixture;

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(data: &Path, tune: impl FnOnce(&mut Config)) -> Server {
        let mut config = Config::new(data.to_owned());
        config.checkpoint_every = Duration::from_millis(50);
        config.poll_every = Duration::from_millis(50);
        // The product's 10 s pause, on a site clock running 1,000x: 10 ms.
        config.time_scale = 1000.0;
        tune(&mut config);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                run(listener, config, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(30)).expect("server starts");
        Server { addr, stop: Some(stop), thread: Some(thread) }
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    /// One request on its own connection: (status, headers in lower case, body).
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        common::call(self.addr, method, path, headers, body).expect("the server answers")
    }

    fn ccm(&self, body: &[u8]) -> (u16, String, Vec<u8>) {
        self.call("CCM_POST", "/ccm_system/request", &[("Content-Type", CONTENT_TYPE)], body)
    }

    fn json(&self, method: &str, path: &str, body: &[u8]) -> Value {
        let (status, _, body) = self.call(method, path, &[], body);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sync_reply(body: &[u8]) -> (MsgHeader, String) {
    match envelope::decode_reply(CONTENT_TYPE, body, &Limits::default()).unwrap() {
        Reply::Sync { header, body } => (*header, body),
        other => panic!("{other:?}"),
    }
}

#[test]
fn fixtures_posted_as_is() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |_| {});
    for name in ["ccm-wsus-location-request.bin", "ccm-wsus-location-request-uncompressed.bin"] {
        let (status, head, body) = server.ccm(&fixture(name));
        assert_eq!(status, 200, "{name}");
        assert!(head.contains("multipart/mixed"));
        let (header, xml) = sync_reply(&body);
        assert_eq!(header.target_endpoint, "LS_ReplyLocations");
        let reply = WsusLocationReply::parse(&xml).unwrap();
        let urls: Vec<_> = reply.records().map(|r| r.wsus_url.clone()).collect();
        assert_eq!(
            urls,
            [format!("http://{}/wsus/PS1SITE", server.addr), format!("http://{}/wsus/PS1SYS", server.addr)]
        );
    }
    let (status, _, body) = server.ccm(&fixture("ccm-relay-report-three.bin"));
    assert_eq!((status, body.as_slice()), (200, NO_REPLY));
    let status = server.json("POST", "/api/v1/drain?timeout=30", b"");
    assert_eq!(status["RecordsProcessed"], 3);
    assert_eq!(status["StateMessagesAccepted"], 3);
}

#[test]
fn bad_input_gets_clear_answers_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |c| c.limits.max_body = 64 * 1024);
    let plain = |xml: &[u8]| {
        server.call(
            "POST",
            "/ccm_system/request",
            &[("Content-Type", "text/xml"), ("X-Target-Endpoint", "MP_RelayEndpoint")],
            xml,
        )
    };
    // A truncated Report: 400 with a reason, nothing written.
    let (status, _, body) = plain(&fixture("report-truncated.xml"));
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("malformed Report"));
    // Unusable records are accepted and counted.
    assert_eq!(plain(&fixture("report-bad-records.xml")).0, 200);
    // Too large: 413. Not an envelope: 400. Wrong method: 405. Unknown endpoint: 200, empty.
    assert_eq!(plain(&vec![b' '; 100 * 1024]).0, 413);
    assert_eq!(server.ccm(b"--x\r\n\r\nnot a ccm message").0, 400);
    assert_eq!(server.call("GET", "/ccm_system/request", &[], b"").0, 405);
    let (status, _, body) = server.call(
        "POST",
        "/ccm_system/request",
        &[("Content-Type", "text/xml"), ("X-Target-Endpoint", "MP_DdrEndpoint")],
        b"<Report/>",
    );
    assert_eq!((status, body.len()), (200, 0));
    // A bad file dropped straight into the inbox goes to corrupt/.
    let incoming = tmp.path().join("inboxes/auth/statesys.box/incoming");
    std::fs::write(incoming.join("TRUNCATD.SMX"), fixture("report-truncated.xml")).unwrap();
    let status = server.json("POST", "/api/v1/drain?timeout=30", b"");
    assert_eq!(status["InvalidRecords"], 3);
    for _ in 0..200 {
        if tmp.path().join("inboxes/auth/statesys.box/corrupt/TRUNCATD.SMX").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(tmp.path().join("inboxes/auth/statesys.box/corrupt/TRUNCATD.SMX").exists());
    assert_eq!(server.json("GET", "/api/v1/status", b"")["BadFiles"], 1);
}

/// The seed's flow on one client: sync → STN → policy version → assignments → body → location →
/// relay → StateSys → client status, with the product's log lines; then a restart keeps it.
#[test]
fn the_seed_flow_end_to_end_and_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path(), |_| {});
    let synced = server.json("POST", "/api/v1/sync", br#"{"new_updates": 3, "superseded": 1}"#);
    assert_eq!(
        (synced["ContentVersion"].as_u64(), synced["PolicyVersion"].as_str()),
        (Some(39), Some("41.00"))
    );

    let client = Guid(0xA1006D0E_CF56_41D1_A006_6330EFC39381);
    let header = |endpoint: &str| MsgHeader {
        id: "{C2BB9710-C548-49D0-9DF8-5F9CFC5F3862}".into(),
        source_id: format!("GUID:{client}"),
        source_host: "PS1WIN7X64".into(),
        target_endpoint: endpoint.into(),
        reply_to: "direct:PS1WIN7X64:Reply".into(),
        reply_mode: "Sync".into(),
        ..MsgHeader::default()
    };
    // Policy poll.
    let poll = RequestAssignments { request_type: "Full".into(), ..RequestAssignments::default() };
    let (status, _, body) =
        server.ccm(&envelope::build_request(&mut header("MP_PolicyManager"), &poll.to_xml(), Some(6)));
    assert_eq!(status, 200);
    let assignments = ReplyAssignments::parse(&sync_reply(&body).1).unwrap();
    let policy = &assignments.assignments[0];
    assert_eq!(policy.policy_version, "41.00");
    // Policy body, whole and by range.
    let url = policy.location.replace("http://<mp>", "");
    let (status, _, body) = server.call("GET", &url, &[], b"");
    assert_eq!(status, 200);
    let body_policy = UpdateSourcePolicy::parse(&utf16::decode(&body).unwrap()).unwrap();
    assert_eq!(body_policy.content_version, 39);
    let (status, head, part) = server.call("GET", &url, &[("Range", "bytes=0-9")], b"");
    assert_eq!((status, part.as_slice()), (206, &body[..10]));
    assert!(head.contains(&format!("content-range: bytes 0-9/{}", body.len())));
    assert_eq!(server.call("HEAD", &url, &[], b"").2.len(), 0);
    // Location at the new content version, then the catalog the SUP serves.
    let location = WsusLocationRequest {
        content_id: body_policy.update_source_id,
        content_version: 39,
        site_code: "PS1".into(),
        ad_site: "CM12-R2-PS1".into(),
        ip_addresses: vec![protocol::bodies::IpAddressInfo {
            subnet: "192.168.2.0".into(),
            address: "192.168.2.62".into(),
        }],
        ..WsusLocationRequest::default()
    };
    let (_, _, body) =
        server.ccm(&envelope::build_request(&mut header("MP_LocationManager"), &location.to_xml(), Some(6)));
    let sup_url =
        WsusLocationReply::parse(&sync_reply(&body).1).unwrap().records().next().unwrap().wsus_url.clone();
    let catalog = server.json(
        "GET",
        &format!("{}/catalog?version=39", sup_url.replace(&format!("http://{}", server.addr), "")),
        b"",
    );
    let update: Guid = catalog["Updates"][0]["UpdateID"].as_str().unwrap().parse().unwrap();
    // The scan's results, relayed.
    let mut w = ReportWriter::new();
    w.begin(
        &ReportIdentity { client, netbios_name: "PS1WIN7X64", client_version: "5.00.7958.1000", priority: 5 },
        Timestamp(0),
    );
    w.push(&OutMessage {
        time: Timestamp::parse_iso(b"2014-01-20T17:18:55Z").unwrap(),
        serial: 232,
        topic_id: update,
        topic_style: GuidStyle::Lower,
        topic_type: 500,
        id_type: 3,
        state: 2,
        criticality: 0,
        params: &[Param::Number(200)],
    });
    let report = String::from_utf8(w.finish().to_vec()).unwrap();
    let mut relay = header("MP_RelayEndpoint");
    relay.reply_mode = "ASync".into();
    relay.properties = vec![("FileType".into(), "SMX".into())];
    let (status, _, body) = server.ccm(&envelope::build_request(&mut relay, &report, Some(1)));
    assert_eq!((status, body.as_slice()), (200, NO_REPLY));
    server.json("POST", "/api/v1/drain?timeout=30", b"");
    let status = server.json("GET", &format!("/api/v1/clients/{client}"), b"");
    assert_eq!(status["Updates"][0]["Status"], 2);
    assert_eq!(status["Updates"][0]["StatusName"], "Update is required");
    assert_eq!(status["LastSerialNumber"], 232);

    let logs = tmp.path().join("logs");
    let read = |f: &str| std::fs::read_to_string(logs.join(f)).unwrap_or_default();
    assert!(read("SMSDBMON.log").contains("{C2D17964-BBDD-4339-B9F3-12D7205B39CC}.STN (non-zero)"));
    assert!(read("PolicyPv.log").contains("Found {C2D17964-BBDD-4339-B9F3-12D7205B39CC}.STN"));
    assert!(read("StateSys.log").contains("Processed 1 records with 0 invalid records."));
    assert!(read("StateSys.log").contains("Inbox notification triggered, pause for 10 seconds......"));
    assert!(read("MP_Location.log").contains("MP LM: Message Body : <WSUSLocationRequest"));
    assert!(read("MP_Relay.log").contains("Inv-Relay: Task completed successfully"));

    // A restart on the same data directory keeps the client (checkpoint + inbox replay).
    server.stop();
    let server = Server::start(tmp.path(), |_| {});
    let again = server.json("GET", &format!("/api/v1/clients/{client}"), b"");
    assert_eq!(again["Updates"][0]["Status"], 2);
}

#[test]
fn admin_calls_need_loopback_or_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |c| c.admin_token = Some("s3cret".into()));
    assert_eq!(server.call("POST", "/api/v1/sync", &[], b"").0, 403);
    assert_eq!(server.call("POST", "/api/v1/sync", &[("X-Admin-Token", "s3cret")], b"").0, 200);
    assert_eq!(server.call("GET", "/api/v1/statenames", &[], b"").0, 200);
    let (status, _, metrics) = server.call("GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("sumstorm_statesys_records_total 0"));
    assert!(metrics.contains("sumstorm_mp_request_seconds_count{endpoint=\"api\"}"), "{metrics}");
}

#[test]
fn remote_mp_mode_relays_through_the_outbox_and_mpfdm() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |c| c.remote_mp = true);
    let (status, _, body) = server.ccm(&fixture("ccm-relay-report-three.bin"));
    assert_eq!((status, body.as_slice()), (200, NO_REPLY));
    let status = server.json("POST", "/api/v1/drain?timeout=30", b"");
    assert_eq!(status["RecordsProcessed"], 3);
    let mpfdm = std::fs::read_to_string(tmp.path().join("logs/MPFDM.log")).unwrap();
    assert!(mpfdm.contains("Moved file ") && mpfdm.contains("StateMsg.box"), "{mpfdm}");
    let outbox = tmp.path().join("mp/outboxes/StateMsg.box");
    assert_eq!(
        std::fs::read_dir(outbox)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "SMX"))
            .count(),
        0
    );
}

#[test]
fn the_policy_provider_picks_up_an_stn_dropped_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |_| {});
    assert_eq!(server.json("GET", "/api/v1/site", b"")["PolicyVersion"], "40.00");
    let stn = tmp.path().join("inboxes/policypv.box/{C2D17964-BBDD-4339-B9F3-12D7205B39CC}.STN");
    std::fs::write(&stn, "x").unwrap();
    for _ in 0..500 {
        if !stn.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!stn.exists(), "the STN was picked up and deleted");
    assert_eq!(server.json("GET", "/api/v1/site", b"")["PolicyVersion"], "41.00");
}
