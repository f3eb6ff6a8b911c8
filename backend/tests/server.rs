//! The backend over real sockets on 127.0.0.1: fixtures posted as-is, the seed's flow end to end,
//! bad input, and a restart on the same data directory.

mod common;

use std::path::Path;
use std::time::Duration;

use protocol::bodies::{
    ReplyAssignments, RequestAssignments, UpdateSourcePolicy, WsusLocationReply, WsusLocationRequest,
};
use protocol::envelope::{self, CONTENT_TYPE, Limits, MsgHeader, NO_REPLY, Reply};
use protocol::report::{OutMessage, ReportIdentity, ReportWriter};
use protocol::{Guid, GuidStyle, Timestamp, utf16};
use serde_json::Value;

use common::{Binary, Server, fixture};

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

/// Co-located, every segment comes to StateSys in memory, so it does not list its inboxes per
/// batch (a directory of applied segments would be all its work): a file dropped by hand waits
/// for the next poll, however many Reports are relayed meanwhile, and is then read.
#[test]
fn statesys_lists_its_inboxes_once_a_poll_not_per_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |c| c.poll_every = Duration::from_secs(3));
    let relay = || {
        let (status, _, body) = server.ccm(&fixture("ccm-relay-report-three.bin"));
        assert_eq!((status, body.as_slice()), (200, NO_REPLY));
    };
    // StateSys is up and has listed its inboxes.
    relay();
    assert_eq!(server.json("POST", "/api/v1/drain?timeout=30", b"")["RecordsProcessed"], 3);
    let incoming = tmp.path().join("inboxes/auth/statesys.box/incoming");
    std::fs::write(incoming.join("BYHAND01.SMX"), fixture("report-bad-records.xml")).unwrap();
    for _ in 0..20 {
        relay();
    }
    let status = server.json("POST", "/api/v1/drain?timeout=30", b"");
    assert_eq!(status["InvalidRecords"], 0, "the file dropped by hand is not read before the poll");
    assert_eq!(status["RecordsProcessed"], 63, "every relayed Report applied");
    for _ in 0..150 {
        if server.json("GET", "/api/v1/status", b"")["InvalidRecords"] == 3 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the file dropped by hand was not read at the poll");
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
    let policy_log = std::fs::read_to_string(tmp.path().join("logs/MP_Policy.log")).unwrap();
    assert!(
        policy_log.contains(&format!("machine policy assignments sent to GUID:{client}")),
        "{policy_log}"
    );
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
    let time = Timestamp::parse_iso(b"2014-01-20T17:18:55Z").unwrap();
    let report =
        String::from_utf8(common::one_message_report(client, "PS1WIN7X64", update, 232, 2, time)).unwrap();
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

    // A restart on the same data directory keeps the client (checkpoint + inbox replay) and
    // the synced site (content and policy versions, the catalog with the sync's updates).
    server.stop();
    let server = Server::start(tmp.path(), |_| {});
    let again = server.json("GET", &format!("/api/v1/clients/{client}"), b"");
    assert_eq!(again["Updates"][0]["Status"], 2);
    let site = server.json("GET", "/api/v1/site", b"");
    assert_eq!((site["ContentVersion"].as_u64(), site["PolicyVersion"].as_str()), (Some(39), Some("41.00")));
    assert_eq!(site["Updates"], 203);
}

/// A Report for `client` with one 500 state message per (catalog index, state), at `time`.
fn report_for(client: Guid, catalog: &Value, time: Timestamp, states: &[(usize, u32)]) -> Vec<u8> {
    let mut w = ReportWriter::new();
    w.begin(
        &ReportIdentity { client, netbios_name: "PC", client_version: "5.00.7958.1000", priority: 5 },
        time,
    );
    for (k, &(index, state)) in states.iter().enumerate() {
        let id: Guid = catalog["Updates"][index]["UpdateID"].as_str().unwrap().parse().unwrap();
        w.push(&OutMessage {
            time,
            serial: k as u64 + 1,
            topic_id: id,
            topic_style: GuidStyle::Lower,
            topic_type: 500,
            id_type: 3,
            state,
            criticality: 0,
            params: &[],
        });
    }
    w.finish().to_vec()
}

/// The summarization tasks over HTTP: known answers (unknowns included), one task on demand,
/// a bad task name, the log lines, the schedules on a fast site clock, and aged status.
#[test]
fn summaries_known_answers_schedules_and_aged_status() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |c| {
        c.summarize_at_start = false;
        // Site clock at 1,000x: the three summarizers every 60 site seconds (60 ms), the daily
        // ones left daily; status ages after 6 site hours.
        let s = &mut c.site.schedules;
        (s.update_status, s.update_group_status, s.assignment_compliance) =
            (Duration::from_secs(60), Duration::from_secs(60), Duration::from_secs(60));
        s.aged_after = Duration::from_secs(6 * 3600);
    });
    let catalog = server.json("GET", "/api/v1/catalog", b"");
    let now = Timestamp::from_unix_seconds(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64,
    );
    let plain = |body: &[u8]| {
        let headers = [("Content-Type", "text/xml"), ("X-Target-Endpoint", "MP_RelayEndpoint")];
        assert_eq!(server.call("POST", "/ccm_system/request", &headers, body).0, 200);
    };
    let (a, b, c) = (Guid(0xA), Guid(0xB), Guid(0xC));
    // A says where it is (so the boundary-group deployment targets it); C never does; B last
    // reported 12 hours ago, past the age limit.
    let location = WsusLocationRequest {
        content_id: "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}".parse().unwrap(),
        content_version: 38,
        site_code: "PS1".into(),
        ad_site: "CM12-R2-PS1".into(),
        ip_addresses: vec![protocol::bodies::IpAddressInfo {
            subnet: "10.0.0.0".into(),
            address: "10.0.0.7".into(),
        }],
        ..WsusLocationRequest::default()
    };
    let mut header = MsgHeader {
        source_id: format!("GUID:{a}"),
        target_endpoint: "MP_LocationManager".into(),
        reply_to: "direct:PC:Reply".into(),
        reply_mode: "Sync".into(),
        ..MsgHeader::default()
    };
    assert_eq!(server.ccm(&envelope::build_request(&mut header, &location.to_xml(), Some(6))).0, 200);
    plain(&report_for(a, &catalog, now, &[(0, 3), (100, 2)]));
    plain(&report_for(c, &catalog, now, &[(0, 1)]));
    plain(&report_for(b, &catalog, Timestamp(now.0 - 12 * 3_600_000_000), &[(0, 2)]));
    server.json("POST", "/api/v1/drain?timeout=30", b"");

    let ran = server.json("POST", "/api/v1/summarize", b"");
    let names: Vec<&str> =
        ran["Tasks"].as_array().unwrap().iter().map(|t| t["Task"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "SUM Migrate Update Status",
            "SUM Delete Aged Status",
            "SUM Update Status Summarizer",
            "SUM Update Group Status Summarizer",
            "SUM Assignment Compliance Evaluator"
        ]
    );
    assert_eq!(ran["Tasks"][1]["Rows"], 1, "B aged out");
    assert_eq!(ran["Tasks"][2]["Rows"], 200);
    assert_eq!(ran["Tasks"][4]["Rows"], 2 + 200, "2 deployments and their 100 updates each");
    let updates = server.json("GET", "/api/v1/summary/updates", b"");
    let row_of = |u: &Value| {
        [&u["NumTotal"], &u["NumUnknown"], &u["NumNotApplicable"], &u["NumMissing"], &u["NumPresent"]]
            .map(|v| v.as_i64().unwrap())
    };
    let row = |i: usize| row_of(&updates[i]);
    assert_eq!(updates.as_array().unwrap().len(), 200);
    assert_eq!(updates[0]["ArticleID"], catalog["Updates"][0]["ArticleID"]);
    assert_eq!(row(0), [2, 0, 1, 0, 1]);
    assert_eq!(updates[0]["PercentCompliant"], 100.0);
    assert_eq!(row(1), [2, 2, 0, 0, 0], "no state reported: unknown");
    assert_eq!(row(100), [2, 1, 0, 1, 0]);
    assert_eq!(updates[100]["PercentCompliant"], 0.0);
    let groups = server.json("GET", "/api/v1/summary/update-groups", b"");
    let g = |i: usize, k: &str| groups[i][k].as_i64().unwrap();
    // Group 1: both miss states for most updates: unknown. Group 2: A requires one: non-compliant.
    assert_eq!((g(0, "NumTotal"), g(0, "NumUnknown"), g(0, "NumCompliant")), (2, 2, 0));
    assert_eq!((g(1, "NumNonCompliant"), g(1, "NumUnknown")), (1, 1));
    let deployments = server.json("GET", "/api/v1/summary/deployments", b"");
    let d = |i: usize, k: &str| deployments[i][k].as_i64().unwrap();
    assert_eq!((d(0, "NumTargeted"), d(0, "NumUnknown")), (2, 2));
    assert_eq!((d(1, "NumTargeted"), d(1, "NumNonCompliant")), (1, 1), "only A said where it is");
    assert_eq!(deployments[1]["Updates"][0]["NumMissing"], 1);
    assert_eq!(deployments[1]["GroupID"], groups[1]["GroupID"]);

    // One task by name; a wrong name is refused with the list.
    let one = server.json("POST", "/api/v1/summarize?task=SUM%20Update%20Status%20Summarizer", b"");
    assert_eq!(one["Tasks"].as_array().unwrap().len(), 1);
    let (status, _, body) = server.call("POST", "/api/v1/summarize?task=nope", &[], b"");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("SUM Delete Aged Status"));

    // The schedules run on the site clock.
    let log = tmp.path().join("logs/StateSys.log");
    let mut text = String::new();
    for _ in 0..200 {
        text = std::fs::read_to_string(&log).unwrap();
        if text.matches("Started task 'SUM Update Group Status Summarizer'").count() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(text.matches("Started task 'SUM Update Group Status Summarizer'").count() >= 3, "{text}");
    assert!(text.contains(
        "Task 'SUM Update Status Summarizer' completed successfully after running for 0 seconds, with status 200."
    ));
    // B reports again: back in the counts, with its new state.
    plain(&report_for(b, &catalog, now, &[(0, 2)]));
    server.json("POST", "/api/v1/drain?timeout=30", b"");
    let again = server.json("POST", "/api/v1/summarize", b"");
    assert_eq!(again["Tasks"][1]["Rows"], 0, "nobody left to age");
    let updates = server.json("GET", "/api/v1/summary/updates", b"");
    assert_eq!(row_of(&updates[0]), [3, 0, 1, 1, 1]);
    let status = server.json("GET", "/api/v1/status", b"");
    assert_eq!(status["LastSummarization"].as_array().unwrap().len(), 5);
}

#[test]
fn admin_calls_need_loopback_or_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |c| c.admin_token = Some("s3cret".into()));
    assert_eq!(server.call("POST", "/api/v1/sync", &[], b"").0, 403);
    assert_eq!(server.call("POST", "/api/v1/sync", &[("X-Admin-Token", "s3cret")], b"").0, 200);
    for path in ["/api/v1/drain", "/api/v1/summarize", "/api/v1/faults"] {
        assert_eq!(server.call("POST", path, &[], b"{}").0, 403, "{path}");
    }
    assert_eq!(server.call("GET", "/api/v1/statenames", &[], b"").0, 200);
    let (status, _, metrics) = server.call("GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("sumstorm_statesys_records_total 0"));
    assert!(metrics.contains("sumstorm_mp_request_seconds_count{endpoint=\"api\"}"), "{metrics}");
    assert!(metrics.contains("# TYPE sumstorm_inbox_commit_seconds histogram\n"), "{metrics}");
    assert!(metrics.contains("sumstorm_inbox_commit_seconds_bucket{le=\"+Inf\"} 0\n"), "{metrics}");
}

#[test]
fn remote_mp_mode_relays_through_the_outbox_and_mpfdm() {
    let tmp = tempfile::tempdir().unwrap();
    // Compressed whatever the rate, so StateSys reads a compressed record from the file MPFDM moved.
    let server = Server::start(tmp.path(), |c| {
        c.remote_mp = true;
        c.inbox_compression = backend::inbox::adaptive::Compression::Lz4;
    });
    let (status, _, body) = server.ccm(&fixture("ccm-relay-report-three.bin"));
    assert_eq!((status, body.as_slice()), (200, NO_REPLY));
    let status = server.json("POST", "/api/v1/drain?timeout=30", b"");
    assert_eq!(status["RecordsProcessed"], 3);
    // StateSys read the Report from its compressed segment.
    assert!(status["InboxStoredBytes"].as_u64() < status["InboxRecordBytes"].as_u64(), "{status:#}");
    // The Report's batch was written and synced once, and timed.
    assert_eq!(status["InboxCommit"]["Count"], 1, "{status:#}");
    assert_eq!(status["InboxCommit"]["AtMost"]["+Inf"], 1);
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

/// Disk trouble through the fault seam (issue 7 §2): a failing inbox sync or checkpoint makes
/// the relay answer 503 with Retry-After, nothing acknowledged is lost (not even across a stop
/// while the checkpoint still fails), and service resumes once the disk is back.
#[test]
fn disk_trouble_answers_503_loses_nothing_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path(), |c| c.fault_injection = true);
    let catalog = server.json("GET", "/api/v1/catalog", b"");
    let client = Guid(0xD15C_0000_0000_0000_0000_0000_0000_0001);
    let now = Timestamp(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64,
    );
    // Report r sets update r to a state of its own.
    let post = |server: &Server, r: usize| {
        let state = 1 + (r % 3) as u32;
        let body = report_for(client, &catalog, Timestamp(now.0 + r as i64 * 1_000_000), &[(r, state)]);
        server.call(
            "POST",
            "/ccm_system/request",
            &[("Content-Type", "text/xml"), ("X-Target-Endpoint", "MP_RelayEndpoint")],
            &body,
        )
    };
    let set = |server: &Server, faults: &str| server.json("POST", "/api/v1/faults", faults.as_bytes());
    let status = |server: &Server| server.json("GET", "/api/v1/status", b"");
    let wait_for = |server: &Server, key: &str, value: bool| {
        for _ in 0..500 {
            if status(server)[key] == value {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{key} never became {value}");
    };
    assert_eq!(post(&server, 1).0, 200);

    // The inbox's sync fails: 503 with Retry-After and the reason; nothing half-written stays.
    assert_eq!(set(&server, r#"{"inbox": "enospc"}"#)["Inbox"], "enospc");
    let (code, head, body) = post(&server, 2);
    assert_eq!(code, 503);
    assert!(head.contains("retry-after: 5"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("No space left"), "{}", String::from_utf8_lossy(&body));
    assert!(status(&server)["InboxWriteErrors"].as_u64().unwrap() >= 1);
    set(&server, r#"{"inbox": null}"#);
    assert_eq!(post(&server, 2).0, 200, "resumes once the disk is back");

    // The checkpoint fails: the relay stops acknowledging until one is written.
    set(&server, r#"{"checkpoint": "eio"}"#);
    assert_eq!(post(&server, 3).0, 200);
    wait_for(&server, "CheckpointFailing", true);
    let (code, head, body) = post(&server, 4);
    assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
    assert!(head.contains("retry-after"));
    assert!(String::from_utf8_lossy(&body).contains("checkpoint"));
    // Stopped while the checkpoint still fails: the inbox files it does not cover stay.
    server.stop();
    let mut server = Server::start(tmp.path(), |c| c.fault_injection = true);
    assert_eq!(status(&server)["CheckpointFailing"], false);
    assert_eq!(post(&server, 4).0, 200);
    set(&server, r#"{"checkpoint": "enospc"}"#);
    assert_eq!(post(&server, 5).0, 200);
    wait_for(&server, "CheckpointFailing", true);
    set(&server, r#"{"checkpoint": null}"#);
    wait_for(&server, "CheckpointFailing", false);
    assert_eq!(post(&server, 6).0, 200);
    server.json("POST", "/api/v1/drain?timeout=30", b"");

    // Every acknowledged Report, and only those, across the stop.
    let check = |server: &Server| {
        let json = server.json("GET", &format!("/api/v1/clients/{client}"), b"");
        let rows = json["Updates"].as_array().unwrap();
        let got: Vec<(String, u64)> = rows
            .iter()
            .map(|r| (r["UpdateID"].as_str().unwrap().to_owned(), r["Status"].as_u64().unwrap()))
            .collect();
        let want: Vec<(String, u64)> = (1..=6)
            .map(|r| (catalog["Updates"][r]["UpdateID"].as_str().unwrap().to_owned(), 1 + (r % 3) as u64))
            .collect();
        assert_eq!(got, want);
    };
    check(&server);
    server.stop();
    let server = Server::start(tmp.path(), |_| {});
    check(&server);
    assert_eq!(server.call("POST", "/api/v1/faults", &[], b"{}").0, 404, "off unless asked for");
}

/// A tmpfs mounted for one test, unmounted (lazily) when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// `None` where mounting is not allowed (not root, no CAP_SYS_ADMIN); CI sets
    /// `SUMSTORM_REQUIRE_TMPFS=1`, which makes that a failure instead.
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok && std::env::var_os("SUMSTORM_REQUIRE_TMPFS").is_some() {
            panic!("cannot mount a tmpfs at {} (SUMSTORM_REQUIRE_TMPFS is set)", at.display());
        }
        ok.then(|| SmallDisk(at.to_owned()))
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A real full disk (a 3 MiB tmpfs): the relay fills it until writes fail, answers 503 with
/// Retry-After from then on, keeps every Report it acknowledged, and takes Reports again once
/// the filesystem grows.
#[test]
fn a_real_full_disk_answers_503_and_resumes_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&tmp.path().join("small"), "3m") else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    };
    let mut server = Server::start(&disk.0, |_| {});
    let catalog = server.json("GET", "/api/v1/catalog", b"");
    let now = Timestamp(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64,
    );
    let states: Vec<(usize, u32)> = (0..150).map(|u| (u, 1 + (u % 3) as u32)).collect();
    let post = |server: &Server, k: u128| {
        let body = report_for(Guid(0xF011_0000 << 96 | k), &catalog, now, &states);
        server.call(
            "POST",
            "/ccm_system/request",
            &[("Content-Type", "text/xml"), ("X-Target-Endpoint", "MP_RelayEndpoint")],
            &body,
        )
    };
    let mut acked = Vec::new();
    let mut refused = 0;
    for k in 0..2000u128 {
        let (code, head, _) = post(&server, k);
        match code {
            200 => acked.push(k),
            503 => {
                assert!(head.contains("retry-after"), "{head}");
                refused += 1;
                if refused == 20 {
                    break;
                }
            }
            other => panic!("Report {k}: {other}"),
        }
    }
    assert!(refused == 20, "the disk never filled ({} acknowledged)", acked.len());
    assert!(acked.len() > 10, "some Reports went in before it filled");
    eprintln!("full disk: {} Reports acknowledged, then {refused} refused", acked.len());
    // Space returns: the relay resumes (StateSys catches up and checkpoints first).
    disk.resize("256m");
    let mut resumed = false;
    for k in 10_000..10_500u128 {
        if post(&server, k).0 == 200 {
            acked.push(k);
            resumed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(resumed, "the relay did not resume once space returned");
    server.json("POST", "/api/v1/drain?timeout=60", b"");
    server.stop();
    let server = Server::start(&disk.0, |_| {});
    for k in &acked {
        let json = server.json("GET", &format!("/api/v1/clients/{}", Guid(0xF011_0000 << 96 | k)), b"");
        assert_eq!(json["Updates"].as_array().unwrap().len(), 150, "client {k}");
    }
    drop(server);
}

/// `backend serve` turns transparent huge pages off for its process (the kernel shows it in
/// `/proc/<pid>/status`), so a fault on freed heap zeroes a page, not 2 MiB.
#[test]
fn the_backend_runs_without_transparent_huge_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Binary::start(&tmp.path().join("data"), &[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let line =
        status.lines().find(|l| l.starts_with("THP_enabled:")).expect("a kernel that shows THP_enabled");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    assert!(server.stop().success());
}

/// Each thread of the process as (name, nice value), from `/proc`.
fn thread_priorities(pid: u32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Fields after the name in parentheses; the nice value is the 19th field of the line.
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        out.push((comm.trim().to_owned(), fields[16].parse().unwrap()));
    }
    out
}

/// The site server's threads run below the MP's request path (`--background-nice`, 19 by
/// default), and the threads they start with them; at 0 every thread keeps the process's.
#[test]
fn the_site_servers_threads_run_below_the_mps() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = thread_priorities(std::process::id()).into_iter().map(|(_, n)| n).min().unwrap();
    for (args, background) in [(&[][..], ours.max(19)), (&["--background-nice", "0"][..], ours)] {
        let server = Binary::start(&tmp.path().join("data"), args);
        // Each thread lowers itself as it starts: look until they all have (5 s at most).
        let wanted = |name: &str| if ["statesys", "summarizer"].contains(&name) { background } else { ours };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let threads = loop {
            let threads = thread_priorities(server.child.id());
            let named = |name: &str| threads.iter().filter(|(n, _)| n == name).count() > 0;
            let all_named =
                ["statesys", "summarizer", "tokio-rt-worker", "inbox-commit"].iter().all(|n| named(n));
            let right = threads
                .iter()
                .all(|(n, v)| !["statesys", "summarizer"].contains(&n.as_str()) || *v == background);
            if (all_named && right) || std::time::Instant::now() > deadline {
                break threads;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for name in ["statesys", "summarizer", "tokio-rt-worker", "inbox-commit"] {
            let found: Vec<i32> = threads.iter().filter(|(n, _)| n == name).map(|(_, v)| *v).collect();
            assert!(!found.is_empty(), "no thread {name}: {threads:?}");
            assert!(found.iter().all(|&v| v == wanted(name)), "{name} with {args:?}: {threads:?}");
        }
        assert!(server.stop().success());
    }
}

/// `count` plain Reports of 150 state messages against the site's catalog, each from another
/// client (ids `tag` in the top 16 bits, then 1, 2, ...).
fn distinct_reports(server: &Server, tag: u128, count: u128) -> Vec<Vec<u8>> {
    let catalog = server.json("GET", "/api/v1/catalog", b"");
    let now = Timestamp(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64,
    );
    let states: Vec<(usize, u32)> = (0..150).map(|i| (i, 1 + (i % 3) as u32)).collect();
    (1..=count).map(|c| report_for(Guid(tag << 112 | c), &catalog, now, &states)).collect()
}

/// Relays one plain Report; it must be acknowledged.
fn relay_plain(server: &Server, report: &[u8]) {
    let (status, _, _) = server.call(
        "POST",
        "/ccm_system/request",
        &[("Content-Type", "text/xml"), ("X-Target-Endpoint", "MP_RelayEndpoint")],
        report,
    );
    assert_eq!(status, 200);
}

/// The relay stores Reports LZ4-compressed with `--inbox-compression lz4` (a fraction of their
/// bytes on disk), as received with `none`, and with `auto` (the default) as received while the
/// disk is not the limit, as under these two requests; either way `backend inbox dump` prints
/// each sealed segment's Reports as the XML the client sent.
#[test]
fn inbox_segments_are_compressed_and_dump_as_the_xml_sent() {
    use backend::inbox::adaptive::Compression;
    for codec in [Compression::Lz4, Compression::None, Compression::Auto] {
        let tmp = tempfile::tempdir().unwrap();
        // No checkpoint during the test: an applied segment stays until the next one.
        let server = Server::start(tmp.path(), |c| {
            c.inbox_compression = codec;
            c.checkpoint_every = Duration::from_secs(3600);
        });
        let reports = distinct_reports(&server, 0xC0DE, 2);
        for report in &reports {
            relay_plain(&server, report);
        }
        // The segment seals by age (200 ms).
        let incoming = tmp.path().join("inboxes/auth/statesys.box/incoming");
        let mut sealed = Vec::new();
        for _ in 0..500 {
            sealed = std::fs::read_dir(&incoming)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "SMX"))
                .collect();
            if !sealed.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(sealed.len(), 1, "{codec:?}: one segment holds both Reports");
        let size = std::fs::metadata(&sealed[0]).unwrap().len() as usize;
        let sent: usize = reports.iter().map(Vec::len).sum();
        match codec {
            Compression::Lz4 => assert!(size * 3 < sent, "{size} bytes on disk for {sent} sent"),
            Compression::None | Compression::Auto => {
                assert!(size > sent, "{codec:?}: {size} bytes on disk for {sent} sent")
            }
        }
        let status = server.json("GET", "/api/v1/status", b"");
        assert_eq!(status["InboxCompressing"], codec == Compression::Lz4, "{status:#}");
        assert_eq!(status["InboxCompressionSwitches"], 0, "{status:#}");
        assert_eq!(status["InboxRecordBytes"], sent, "{status:#}");
        assert!(status["InboxStoredBytes"].as_u64().unwrap() < size as u64, "{status:#}");
        let dump = std::process::Command::new(env!("CARGO_BIN_EXE_backend"))
            .args(["inbox", "dump"])
            .arg(&sealed[0])
            .output()
            .unwrap();
        assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
        let mut expected = Vec::new();
        for report in &reports {
            expected.extend_from_slice(report);
            if !report.ends_with(b"\n") {
                expected.push(b'\n');
            }
        }
        assert!(dump.stdout == expected, "{codec:?}: the dump is not the Reports sent");
    }
}

/// `auto` turns compression on once Reports arrive faster than `--inbox-compress-above` (here a
/// thousand bytes a second, so a few Reports do it), says so in `MP_Relay.log` and the status,
/// and the segments, records of both kinds, dump as the XML sent.
#[test]
fn auto_compression_turns_on_over_its_rate_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |c| {
        c.inbox_compress_above = 1_000;
        c.checkpoint_every = Duration::from_secs(3600);
    });
    let reports = distinct_reports(&server, 0xA070, 12);
    // Over a second: the rate is measured per quarter second, and two quarters above it switch.
    for report in &reports {
        relay_plain(&server, report);
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = server.json("GET", "/api/v1/status", b"");
    assert_eq!(status["InboxCompressing"], true, "{status:#}");
    assert_eq!(status["InboxCompressionSwitches"], 1, "{status:#}");
    let sent: u64 = reports.iter().map(|r| r.len() as u64).sum();
    let stored = status["InboxStoredBytes"].as_u64().unwrap();
    assert!(stored < sent * 9 / 10, "the later Reports are compressed: {stored} of {sent}");
    let relay_log = std::fs::read_to_string(tmp.path().join("logs/MP_Relay.log")).unwrap();
    assert!(relay_log.contains("Inbox compression on: "), "{relay_log}");
    assert!(relay_log.contains("over 0 MB/s"), "{relay_log}");
    // Every segment sealed (by age), in order, dumps as the Reports sent.
    let incoming = tmp.path().join("inboxes/auth/statesys.box/incoming");
    let mut sealed = Vec::new();
    for _ in 0..500 {
        let files: Vec<_> = std::fs::read_dir(&incoming).unwrap().flatten().map(|e| e.path()).collect();
        if !files.iter().any(|p| p.extension().is_some_and(|x| x == "part")) {
            sealed = files.into_iter().filter(|p| p.extension().is_some_and(|x| x == "SMX")).collect();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    sealed.sort();
    assert!(sealed.len() > 1, "{sealed:?}");
    let mut dumped = Vec::new();
    for file in &sealed {
        let dump = std::process::Command::new(env!("CARGO_BIN_EXE_backend"))
            .args(["inbox", "dump"])
            .arg(file)
            .output()
            .unwrap();
        assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
        dumped.extend(dump.stdout);
    }
    let mut expected = Vec::new();
    for report in &reports {
        expected.extend_from_slice(report);
        if !report.ends_with(b"\n") {
            expected.push(b'\n');
        }
    }
    assert!(dumped == expected, "the dump is not the Reports sent");
    server.json("POST", "/api/v1/drain?timeout=30", b"");
    assert_eq!(server.json("GET", "/api/v1/status", b"")["RecordsProcessed"], 12 * 150);
}
