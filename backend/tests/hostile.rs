//! Hostile clients (issue 7 §4), over real sockets on 127.0.0.1: each case gets a bounded, clear
//! answer (or a closed connection, for a client that never finishes its headers), and an honest
//! client is served meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, call};
use protocol::envelope::{self, MsgHeader};
use protocol::{Guid, Timestamp};

const RELAY: [(&str, &str); 2] = [("Content-Type", "text/xml"), ("X-Target-Endpoint", "MP_RelayEndpoint")];

/// An honest client is answered, promptly.
fn assert_served(server: &Server) {
    let began = Instant::now();
    let (status, _, _) = server.call("GET", "/api/v1/status", &[], b"");
    assert_eq!(status, 200);
    assert!(began.elapsed() < Duration::from_secs(5), "an honest request took {:?}", began.elapsed());
}

/// Reads until the server closes the connection or `within` passes: (bytes, closed).
fn read_until_closed(s: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// What the server answered, for the log (`--nocapture`) and RELIABILITY.md.
fn shown(case: &str, status: u16, body: &[u8]) {
    let body = String::from_utf8_lossy(body);
    let line = body.rsplit("\r\n\r\n").next().unwrap_or("").lines().next().unwrap_or("").trim();
    eprintln!("hostile: {case}: {status} {line}");
}

fn status_of(response: &[u8]) -> u16 {
    std::str::from_utf8(response.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn report(netbios: &str, client: Guid) -> Vec<u8> {
    let update = Guid(0x505F_DA07_B4F3_45FB_83D9_8642_554E_2773);
    common::one_message_report(client, netbios, update, 1, 2, Timestamp(1_390_238_335_000_000))
}

#[test]
fn slow_headers_and_slow_bodies_are_cut_off_while_others_are_served() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |c| {
        c.limits.header_timeout = Duration::from_secs(1);
        c.limits.body_timeout = Duration::from_secs(1);
    });
    // Slowloris: a header line every 200 ms, forever. The connection is closed at the header
    // timeout, without an answer to a request that never finished.
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"POST /ccm_system/request HTTP/1.1\r\nHost: x\r\n").unwrap();
    let began = Instant::now();
    let trickle = {
        let mut s = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for i in 0..50 {
                std::thread::sleep(Duration::from_millis(200));
                if s.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).is_err() {
                    break;
                }
            }
        })
    };
    assert_served(&server);
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(8));
    assert!(closed, "a slowloris connection stays open");
    eprintln!("hostile: slowloris: closed after {:?}", began.elapsed());
    assert!(began.elapsed() < Duration::from_secs(7), "cut off after {:?}", began.elapsed());
    trickle.join().unwrap();

    // A slow body: the headers are whole, the body trickles. 408 at the body timeout.
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(
        b"POST /ccm_system/request HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\
          X-Target-Endpoint: MP_RelayEndpoint\r\nContent-Length: 1000\r\n\r\n<Report>",
    )
    .unwrap();
    let began = Instant::now();
    let trickle = {
        let mut s = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..50 {
                std::thread::sleep(Duration::from_millis(200));
                if s.write_all(b" ").is_err() {
                    break;
                }
            }
        })
    };
    assert_served(&server);
    let (response, _) = read_until_closed(&mut slow, Duration::from_secs(8));
    shown("slow body", status_of(&response), &response);
    assert_eq!(status_of(&response), 408, "{}", String::from_utf8_lossy(&response));
    assert!(began.elapsed() < Duration::from_secs(7));
    drop(slow);
    trickle.join().unwrap();
    assert_served(&server);
}

#[test]
fn thousands_of_idle_connections_neither_block_others_nor_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |c| {
        c.limits.header_timeout = Duration::from_secs(2);
        c.limits.max_connections = 3000;
    });
    let idle: Vec<TcpStream> = (0..2000).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_served(&server);
    // Past the header timeout every idle connection has been closed by the server.
    std::thread::sleep(Duration::from_secs(3));
    for mut s in idle.into_iter().step_by(40) {
        let (_, closed) = read_until_closed(&mut s, Duration::from_secs(2));
        assert!(closed, "an idle connection outlived the header timeout");
    }

    // At the connection cap, newcomers get a short 503 with Retry-After until idlers time out.
    let small = tempfile::tempdir().unwrap();
    let capped = Server::start(small.path(), |c| {
        c.limits.header_timeout = Duration::from_secs(1);
        c.limits.max_connections = 50;
    });
    let idle: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(capped.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let (status, head, _) = capped.call("GET", "/api/v1/status", &[], b"");
    shown("past the connection cap", status, head.as_bytes());
    assert_eq!(status, 503);
    assert!(head.contains("retry-after"), "{head}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_served(&capped);
    drop(idle);
}

#[test]
fn oversized_bodies_headers_and_floods_of_bytes_get_limits_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |c| {
        c.limits.max_body = 1 << 20;
        c.limits.max_request_memory = 3 << 20;
    });
    // A declared body past the limit: 413 before a byte of it is read.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(
        b"POST /ccm_system/request HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\
          X-Target-Endpoint: MP_RelayEndpoint\r\nContent-Length: 9437184\r\n\r\n",
    )
    .unwrap();
    let (response, _) = read_until_closed(&mut s, Duration::from_secs(3));
    shown("declared body past the limit", status_of(&response), &response);
    assert_eq!(status_of(&response), 413, "{}", String::from_utf8_lossy(&response));
    // A chunked body that never says how long it is: 413 once it passes the limit.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(
        b"POST /ccm_system/request HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\
          X-Target-Endpoint: MP_RelayEndpoint\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
    for _ in 0..20 {
        if s.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let (response, _) = read_until_closed(&mut s, Duration::from_secs(3));
    shown("chunked body past the limit", status_of(&response), &response);
    assert_eq!(status_of(&response), 413, "{}", String::from_utf8_lossy(&response));
    // Heads past 64 KiB: 431 (ours, exact); far past it, hyper's own 431 before buffering more,
    // and the connection closed.
    for size in [100 << 10, 8 << 20] {
        let mut s = TcpStream::connect(server.addr).unwrap();
        let head = format!(
            "GET /api/v1/status HTTP/1.1\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
            "a".repeat(size)
        );
        let _ = s.write_all(head.as_bytes());
        let (response, closed) = read_until_closed(&mut s, Duration::from_secs(3));
        shown(&format!("head of {size} bytes"), status_of(&response), &response);
        assert_eq!(status_of(&response), 431, "{size}: {}", String::from_utf8_lossy(&response));
        assert!(closed);
    }
    // Many large bodies at once: past the request-memory budget (3 MiB here; each byte that
    // arrives is charged twice, for the pieces and the buffer they end in), newcomers get 503
    // with Retry-After instead of memory. A declared length reserves nothing: bytes do.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(
                b"POST /ccm_system/request HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\
                  X-Target-Endpoint: MP_RelayEndpoint\r\nContent-Length: 800000\r\n\r\n",
            )
            .unwrap();
            s.write_all(&vec![b' '; 700_000]).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Answered once its bytes pass what is left.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(
        b"POST /ccm_system/request HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\
          X-Target-Endpoint: MP_RelayEndpoint\r\nContent-Length: 800000\r\n\r\n",
    )
    .unwrap();
    let _ = s.write_all(&vec![b' '; 800_000]);
    let (response, _) = read_until_closed(&mut s, Duration::from_secs(2));
    let response = String::from_utf8_lossy(&response).to_lowercase();
    shown("bodies past the request-memory budget", status_of(response.as_bytes()), response.as_bytes());
    assert_eq!(status_of(response.as_bytes()), 503, "{response}");
    assert!(response.contains("retry-after") && response.contains("bytes in flight"), "{response}");
    assert_served(&server);
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let (status, _, _) = server.call("POST", "/ccm_system/request", &RELAY, &report("PC", Guid(7)));
    assert_eq!(status, 200, "the budget comes back when they go");
}

#[test]
fn deep_enormous_and_undecodable_xml_and_zip_bombs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |c| c.limits.max_inflated = 1 << 20);
    let plain = |endpoint: &str, body: &[u8]| {
        let began = Instant::now();
        let answer = server.call(
            "POST",
            "/ccm_system/request",
            &[("Content-Type", "text/xml"), ("X-Target-Endpoint", endpoint)],
            body,
        );
        assert!(began.elapsed() < Duration::from_secs(5), "took {:?}", began.elapsed());
        answer
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    // 200,000 levels deep, as a Report and as a location request.
    let deep = format!("<Report>{}{}</Report>", "<a>".repeat(200_000), "</a>".repeat(200_000));
    let (status, _, body) = plain("MP_RelayEndpoint", deep.as_bytes());
    shown("Report 200,000 levels deep", status, &body);
    assert_eq!(status, 400, "{}", text(&body));
    let deep_location = format!("<WSUSLocationRequest>{}", "<Content>".repeat(200_000));
    let (status, _, body) = plain("MP_LocationManager", deep_location.as_bytes());
    shown("location request 200,000 levels deep", status, &body);
    assert_eq!(status, 400, "{}", text(&body));
    // Enormous: one 6 MB attribute value in a Report.
    let huge = format!(
        "<Report><ReportHeader><Identification><Machine><ClientInstalled Name=\"{}\"/>",
        "x".repeat(6 << 20)
    );
    let (status, _, body) = plain("MP_RelayEndpoint", huge.as_bytes());
    shown("6 MB attribute value", status, &body);
    assert_eq!(status, 400, "{}", text(&body));
    // Not UTF-8 where UTF-8 is promised.
    let (status, _, body) = plain("MP_RelayEndpoint", b"<Report>\xff\xfe\xfd</Report>");
    shown("plain body not UTF-8", status, &body);
    assert_eq!((status, text(&body).contains("UTF-8")), (400, true), "{}", text(&body));

    // A zip bomb: 8 MiB of UTF-16 that deflates to a few KiB, past the 1 MiB inflate bound.
    let mut header = MsgHeader {
        target_endpoint: "MP_RelayEndpoint".into(),
        reply_to: "direct:PC:SccmMessaging".into(),
        reply_mode: "ASync".into(),
        ..MsgHeader::default()
    };
    let bomb_xml = format!("<Report>{}</Report>", " ".repeat(4 << 20));
    let bomb = envelope::build_request(&mut header, &bomb_xml, Some(9));
    assert!(bomb.len() < 64 * 1024, "the bomb is small on the wire ({} bytes)", bomb.len());
    let (status, _, body) = server.ccm(&bomb);
    shown("zip bomb", status, &body);
    assert_eq!(status, 400, "{}", text(&body));
    assert!(text(&body).contains("inflate"), "{}", text(&body));

    // Invalid UTF-16: an unpaired high surrogate in an uncompressed body.
    let mut bad = envelope::build_request(&mut header, "<Report>\u{20AC}</Report>", None);
    let euro = [0xAC, 0x20];
    let at = bad.windows(2).position(|w| w == euro).unwrap();
    bad[at..at + 2].copy_from_slice(&[0x00, 0xD8]);
    let (status, _, body) = server.ccm(&bad);
    shown("lone UTF-16 surrogate", status, &body);
    assert_eq!(status, 400, "{}", text(&body));
    assert!(text(&body).to_lowercase().contains("utf-16"), "{}", text(&body));
    assert_served(&server);
}

#[test]
fn names_from_clients_never_reach_the_file_system() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |_| {});
    // Traversal in every client-chosen name: NetBIOS name, message ID, source host.
    let mut header = MsgHeader {
        id: "{../../../../tmp/evil}".into(),
        source_id: "GUID:..\\..\\evil".into(),
        source_host: "../../../etc".into(),
        target_endpoint: "MP_RelayEndpoint".into(),
        reply_to: "direct:../..:SccmMessaging".into(),
        reply_mode: "ASync".into(),
        properties: vec![("FileType".into(), "../../SMX".into())],
        ..MsgHeader::default()
    };
    let xml = String::from_utf8(report("../../../../etc/passwd", Guid(0xE71))).unwrap();
    // A SourceID that is no SMS ID is refused (nothing written); with the client's own, the
    // rest of the traversal is taken and must not reach a file name.
    let (status, _, body) = server.ccm(&envelope::build_request(&mut header, &xml, Some(6)));
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    header.source_id = format!("GUID:{}", Guid(0xE71));
    let (status, _, body) = server.ccm(&envelope::build_request(&mut header, &xml, Some(6)));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    server.json("POST", "/api/v1/drain?timeout=30", b"");
    // Every file under the data folder has a name the server made.
    let mut stack = vec![tmp.path().to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.contains("evil") && !name.contains("passwd") && !name.contains(".."), "{name}");
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    // And in paths: answered, never followed.
    for path in
        ["/wsus/..%2F..%2Fetc/catalog", "/wsus/../../etc/catalog", "/SMS_MP/.sms_pol?../../etc/passwd"]
    {
        let (status, _, _) = server.call("GET", path, &[], b"");
        assert!(matches!(status, 400 | 404), "{path}: {status}");
    }
    let (status, _, _) = server.call("GET", "/api/v1/clients/..%2F..%2Fetc%2Fpasswd", &[], b"");
    assert_eq!(status, 400);
    assert_served(&server);
    let _ = call(server.addr, "GET", "/api/v1/status", &[], b"");
}
