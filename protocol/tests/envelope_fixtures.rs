//! The `.bin` fixtures come from an independent Python sender: decode them byte for byte. And the
//! other direction: what we build is read back by Python's own zlib and UTF-16 codec.

use std::io::Write;
use std::process::{Command, Stdio};

use protocol::bodies::{IpAddressInfo, WsusLocationReply, WsusLocationRequest};
use protocol::envelope::{self, CONTENT_TYPE, Limits, MsgHeader, Reply};
use protocol::report::{self, Collect};
use protocol::{Guid, Timestamp};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap().trim().to_owned()
}

#[test]
fn relay_report_three() {
    let bin = fixture("ccm-relay-report-three.bin");
    let req = envelope::decode_request(CONTENT_TYPE, &bin, &Limits::default()).unwrap();
    let h = &req.header;
    assert!(req.compressed);
    assert_eq!(h.target_endpoint, "MP_RelayEndpoint");
    assert_eq!(h.target_address, "mp:MP_RelayEndpoint");
    assert_eq!(h.reply_mode, "ASync");
    assert!(!h.is_sync());
    assert_eq!(h.property("FileType"), Some("SMX"));
    assert_eq!(h.source_id, "GUID:A1006D0E-CF56-41D1-A006-6330EFC39381");
    assert_eq!(h.source_host, "PS1WIN7X64");
    assert_eq!(h.reply_to, "direct:PS1WIN7X64:StateMessage");
    assert_eq!(h.id, "{00000000-0000-0000-0000-000000005EED}");
    assert_eq!(h.priority, Some(3));
    assert_eq!(h.timeout, Some(60000));
    assert_eq!(h.sent_time, Timestamp::parse_iso(b"2014-01-20T12:18:09Z").ok());
    assert_eq!(h.schema_version, "1.1");
    assert_eq!(h.reply_compression, "zlib");
    let text = fixture_text("report-three-messages.xml");
    // Body Length is the UTF-16 byte count of the XML plus its NUL.
    assert_eq!(h.body.as_ref().map(|b| b.length), Some(text.encode_utf16().count() as u64 * 2 + 2));
    assert_eq!(req.body, text);
    let mut sink = Collect::default();
    let summary = report::scan(req.body.as_bytes(), &mut sink).unwrap();
    assert_eq!((summary.records, summary.invalid), (3, 0));
}

fn seed_location_request() -> WsusLocationRequest {
    WsusLocationRequest {
        content_id: "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}".parse().unwrap(),
        content_version: 38,
        site_code: "PS1".into(),
        on_internet: false,
        ad_site: "CM12-R2-PS1".into(),
        forest: "CONTOSO.COM".into(),
        domain: "CONTOSO.COM".into(),
        ip_addresses: vec![IpAddressInfo { subnet: "192.168.2.0".into(), address: "192.168.2.62".into() }],
    }
}

#[test]
fn location_request_compressed_and_raw() {
    for (name, compressed) in
        [("ccm-wsus-location-request.bin", true), ("ccm-wsus-location-request-uncompressed.bin", false)]
    {
        let req = envelope::decode_request(CONTENT_TYPE, &fixture(name), &Limits::default()).unwrap();
        assert_eq!(req.compressed, compressed, "{name}");
        assert_eq!(req.header.target_endpoint, "MP_LocationManager");
        assert_eq!(req.header.reply_to, "direct:PS1WIN7X64:LS_ReplyLocations");
        assert!(req.header.is_sync());
        assert_eq!(req.body, fixture_text("wsus-location-request.xml"), "{name}");
        assert_eq!(WsusLocationRequest::parse(&req.body).unwrap(), seed_location_request());
    }
}

#[test]
fn location_xml_fixtures() {
    assert_eq!(
        WsusLocationRequest::parse(&fixture_text("wsus-location-request.xml")).unwrap(),
        seed_location_request()
    );
    let reply = WsusLocationReply::parse(&fixture_text("wsus-location-reply.xml")).unwrap();
    let records: Vec<_> =
        reply.records().map(|r| (r.wsus_url.as_str(), r.server_name.as_str(), r.version)).collect();
    assert_eq!(
        records,
        [
            ("http://PS1SITE.CONTOSO.COM:8530", "PS1SITE.CONTOSO.COM", 38),
            ("https://PS1SYS.CONTOSO.COM:8531", "PS1SYS.CONTOSO.COM", 38)
        ]
    );
    assert_eq!(reply.sites[0].site_code, "PS1");
    // Our writer produces the seed's reply byte for byte.
    assert_eq!(reply.to_xml(), fixture_text("wsus-location-reply.xml"));
}

/// A Python client's reading of a reply: split on the boundary, take the octet-stream part,
/// inflate, decode UTF-16 (BOM honoured), drop the last character, parse.
const PYTHON_READER: &str = r#"
import sys, zlib, xml.etree.ElementTree as ET
data = sys.stdin.buffer.read()
parts = data.split(b"--aAbBcCdDv1234567890VxXyYzZ")
for p in parts:
    head, sep, body = p.partition(b"\r\n\r\n")
    if b"application/octet-stream" in head.lower():
        text = zlib.decompress(body.rstrip(b"\r\n")).decode("utf-16")
        root = ET.fromstring(text[:-1])
        print(root.tag, len(list(root.iter("LocationRecord"))))
    elif b"charset=utf-16" in head.lower() and body:
        hdr = ET.fromstring(body.rstrip(b"\r\n").decode("utf-16"))
        print(hdr.tag, hdr.findtext("CorrelationID"), hdr.find("Body").get("Length"))
"#;

#[test]
fn python_reads_our_sync_reply() {
    let request =
        envelope::decode_request(CONTENT_TYPE, &fixture("ccm-wsus-location-request.bin"), &Limits::default())
            .unwrap();
    let reply_xml = fixture_text("wsus-location-reply.xml");
    let mut header = request.header.reply(Guid(7), "PS1SYS.CONTOSO.COM", Timestamp::from_unix_seconds(0));
    let bytes = envelope::build_sync_reply(&mut header, &reply_xml);

    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_READER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test (.ci/run installs it)");
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let said = String::from_utf8(out.stdout).unwrap();
    let length = reply_xml.encode_utf16().count() * 2 + 4;
    assert_eq!(said, format!("Msg {{00000000-0000-0000-0000-000000005EED}} {length}\nWSUSLocationReply 2\n"));

    // And our own reader agrees.
    match envelope::decode_reply(CONTENT_TYPE, &bytes, &Limits::default()).unwrap() {
        Reply::Sync { header, body } => {
            assert_eq!(body, reply_xml);
            assert_eq!(header.target_endpoint, "LS_ReplyLocations");
            assert_eq!(header.correlation_id, request.header.id);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn our_request_reads_like_the_fixture() {
    let fixture_req =
        envelope::decode_request(CONTENT_TYPE, &fixture("ccm-relay-report-three.bin"), &Limits::default())
            .unwrap();
    for level in [None, Some(1), Some(6)] {
        let mut header: MsgHeader = fixture_req.header.clone();
        let bytes = envelope::build_request(&mut header, &fixture_req.body, level);
        let back = envelope::decode_request(CONTENT_TYPE, &bytes, &Limits::default()).unwrap();
        assert_eq!(back.body, fixture_req.body);
        assert_eq!(back.header, header);
        assert_eq!(back.compressed, level.is_some());
        assert_eq!(header.body, fixture_req.header.body, "same Body Length as the Python sender");
    }
}

/// A sender whose uncompressed body runs one byte past its header's `Body Length` (an odd
/// trailing byte): the MP reads what the header declares, as a real one does.
#[test]
fn an_odd_byte_past_the_declared_length_is_not_read() {
    let bin = fixture("ccm-wsus-location-request-uncompressed.bin");
    let end = bin.windows(8).rposition(|w| w == b"\0\0\r\n\r\n--").expect("the body's NUL and CRLF") + 2;
    let mut odd = bin[..end].to_vec();
    odd.push(b'Z');
    odd.extend_from_slice(&bin[end..]);
    let req = envelope::decode_request(CONTENT_TYPE, &odd, &Limits::default()).unwrap();
    assert_eq!(req.body, fixture_text("wsus-location-request.xml"));
}
