//! What clients other than ours send, over real sockets: HTTP libraries that percent-encode the
//! policy query, a body one byte past its declared length, asynchronous messages to endpoints
//! this MP does not process (a real MP answers `NoReply`), the Windows-authentication path, the
//! `.sms_aut` verbs tools probe, and a discovery data record sent the way clients send it.

mod common;

use common::{Server, fixture};
use protocol::envelope::{self, CONTENT_TYPE, Limits, MsgHeader, Reply};

#[test]
fn percent_encoded_policy_and_mp_list_queries_are_served() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |_| {});
    let site = server.json("GET", "/api/v1/site", b"");
    let id = site["PolicyID"].as_str().unwrap();
    let version = site["PolicyVersion"].as_str().unwrap().replacen('.', "_", 1);
    let raw = server.call("GET", &format!("/SMS_MP/.sms_pol?{id}.{version}"), &[], b"");
    assert_eq!(raw.0, 200);
    // Python's `requests` writes the braces as %7B and %7D.
    let inner = id.trim_start_matches('{').trim_end_matches('}');
    let encoded = server.call("GET", &format!("/SMS_MP/.sms_pol?%7B{inner}%7D.{version}"), &[], b"");
    assert_eq!((encoded.0, &encoded.2), (200, &raw.2));
    let ranged = server.call(
        "GET",
        &format!("/SMS_MP/.sms_pol?%7b{inner}%7d.{version}"),
        &[("Range", "bytes=0-9")],
        b"",
    );
    assert_eq!((ranged.0, ranged.2.as_slice()), (206, &raw.2[..10]));
    let list = server.call("GET", "/SMS_MP/.sms_aut?%4DPLIST", &[], b"");
    assert_eq!(list.0, 200);
    assert!(String::from_utf8_lossy(&list.2).contains("<MPList>"));
}

#[test]
fn an_odd_trailing_byte_is_read_as_the_header_declares() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |_| {});
    let bin = fixture("ccm-wsus-location-request-uncompressed.bin");
    let end = bin.windows(8).rposition(|w| w == b"\0\0\r\n\r\n--").unwrap() + 2;
    let odd = [&bin[..end], b"Z", &bin[end..]].concat();
    let (status, _, body) = server.ccm(&odd);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let reply = envelope::decode_reply(CONTENT_TYPE, &body, &Limits::default()).unwrap();
    assert!(matches!(&reply, Reply::Sync { body, .. } if body.contains("WSUSLocationReply")), "{reply:?}");
}

/// A message to `endpoint` with `mode`, in the faithful envelope.
fn message(endpoint: &str, mode: &str, xml: &str) -> Vec<u8> {
    let mut header = MsgHeader {
        id: "{5EED0000-0000-0000-0000-000000000001}".into(),
        source_id: "GUID:A1006D0E-CF56-41D1-A006-6330EFC39381".into(),
        source_host: "PS1WIN7X64".into(),
        target_endpoint: endpoint.into(),
        target_address: format!("mp:{endpoint}"),
        reply_to: "direct:PS1WIN7X64:Test".into(),
        reply_mode: mode.into(),
        ..MsgHeader::default()
    };
    envelope::build_request(&mut header, xml, Some(1))
}

#[test]
fn messages_this_mp_does_not_process_are_answered_as_a_real_one_answers_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, |_| {});
    // A DDR (asynchronous): NoReply, so the client is done with it.
    let ddr = message("MP_DdrEndpoint", "ASync", "<Report><ReportHeader/></Report>");
    let (status, _, body) = server.ccm(&ddr);
    assert_eq!(status, 200);
    assert_eq!(envelope::decode_reply(CONTENT_TYPE, &body, &Limits::default()), Ok(Reply::NoReply));
    // A synchronous message to an endpoint not served: the empty 200 real clients see.
    let (status, _, body) = server.ccm(&message("MP_Unknown", "Sync", "<Request/>"));
    assert_eq!((status, body.len()), (200, 0));
    // Both are in MP_Framework.log (one group a second at most: the first is there).
    let log = std::fs::read_to_string(data.join("logs/MP_Framework.log")).unwrap();
    assert!(
        log.contains("for MP_DdrEndpoint (ASync) is not processed by this MP; answered NoReply"),
        "{log}"
    );
}

#[test]
fn windows_authentication_is_offered_and_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |_| {});
    let ddr = message("MP_DdrEndpoint", "ASync", "<Report/>");
    let (status, head, _) =
        server.call("CCM_POST", "/ccm_system_windowsauth/request", &[("Content-Type", CONTENT_TYPE)], &ddr);
    assert_eq!(status, 401);
    assert!(
        head.contains("www-authenticate: negotiate") && head.contains("www-authenticate: ntlm"),
        "{head}"
    );
    // The other paths still take it.
    let (status, _, _) =
        server.call("CCM_POST", "/ccm_system_altauth/request", &[("Content-Type", CONTENT_TYPE)], &ddr);
    assert_eq!(status, 200);

    // A client that starts the NTLM exchange gets a CHALLENGE_MESSAGE to continue with...
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut negotiate = b"NTLMSSP\0".to_vec();
    negotiate.extend_from_slice(&1u32.to_le_bytes());
    negotiate.extend_from_slice(&0xE208_8297u32.to_le_bytes());
    negotiate.extend_from_slice(&[0; 16]);
    let auth = format!("NTLM {}", b64.encode(&negotiate));
    let head = raw_head(server.addr, &auth);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let blob = head
        .lines()
        .find_map(|l| l.strip_prefix("www-authenticate: NTLM "))
        .map(|b| b64.decode(b.trim()).unwrap())
        .unwrap_or_else(|| panic!("a challenge: {head}"));
    assert_eq!(&blob[..12], b"NTLMSSP\0\x02\0\0\0", "a CHALLENGE_MESSAGE");
    let (len, off) = (
        u16::from_le_bytes([blob[12], blob[13]]) as usize,
        u32::from_le_bytes(blob[16..20].try_into().unwrap()) as usize,
    );
    let target: Vec<u16> = blob[off..off + len].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(String::from_utf16(&target).unwrap(), "SUMSTORM");
    // ...and its AUTHENTICATE_MESSAGE is refused: no domain here to check it.
    let mut authenticate = b"NTLMSSP\0".to_vec();
    authenticate.extend_from_slice(&3u32.to_le_bytes());
    authenticate.extend_from_slice(&[0; 64]);
    let auth = format!("NTLM {}", b64.encode(&authenticate));
    let headers = [("Content-Type", CONTENT_TYPE), ("Authorization", auth.as_str())];
    let (status, head, _) = server.call("CCM_POST", "/ccm_system_windowsauth/request", &headers, &ddr);
    assert_eq!(status, 401);
    assert!(
        head.lines().any(|l| l == "www-authenticate: negotiate")
            && head.lines().any(|l| l == "www-authenticate: ntlm"),
        "{head}"
    );
}

#[test]
fn a_refused_message_is_logged_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, |_| {});
    let (status, _, body) = server.ccm(&message("MP_ClientRegistration", "Sync", "<NotARegistration/>"));
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let log = std::fs::read_to_string(data.join("logs/MP_Framework.log")).unwrap();
    assert!(
        log.contains("from GUID:A1006D0E-CF56-41D1-A006-6330EFC39381 for MP_ClientRegistration refused (400): ClientRegistrationRequest"),
        "{log}"
    );
}

#[test]
fn a_registration_is_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, |_| {});
    let request = protocol::bodies::ClientRegistrationRequest {
        agent_identity: "CCMSetup.exe".into(),
        agent_version: "5.00.7958.1000".into(),
        properties: vec![
            ("Netbios Name".into(), "PC0042".into()),
            ("FQ Name".into(), "PC0042.CONTOSO.COM".into()),
        ],
        ..Default::default()
    };
    let (status, _, _) = server.ccm(&message("MP_ClientRegistration", "Sync", &request.to_xml()));
    assert_eq!(status, 200);
    let log = std::fs::read_to_string(data.join("logs/MP_RegistrationManager.log")).unwrap();
    assert!(log.contains("(PC0042), approval automatic") && log.contains("Completion state = 0"), "{log}");
}

/// The raw head (case kept) of a windowsauth request carrying `authorization`.
fn raw_head(addr: std::net::SocketAddr, authorization: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let request = format!(
        "CCM_POST /ccm_system_windowsauth/request HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: {authorization}\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.split("\r\n\r\n").next().unwrap_or_default().replace("WWW-Authenticate", "www-authenticate")
}

/// A content location request in the shape Microsoft's troubleshooting guide shows a client
/// sending (`ContentTransferManager.log`): answered with the DPs of the client's boundary groups.
#[test]
fn content_location_requests_get_the_boundary_group_s_dps() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), |_| {});
    let request = r#"<ContentLocationRequest SchemaVersion="1.00" ExcludeFileList=""><Package ID="UID:Content_63fbf078-1815-4e37-9614-b60ce7947805" Version="1"/><AssignedSite SiteCode="PS1"/><ClientLocationInfo LocationType="SMSUpdate" DistributeOnDemand="0" UseAzure="0" AllowWUMU="0" UseProtected="0" AllowCaching="0" BranchDPFlags="0" UseInternetDP="0" AllowHTTP="1" AllowSMB="0" AllowMulticast="0"><ADSite Name="Default-First-Site-Name"/><Forest Name="contoso.com"/><Domain Name="contoso.com"/><IPAddresses><IPAddress SubnetAddress="10.10.25.128" Address="10.10.25.130"/></IPAddresses></ClientLocationInfo></ContentLocationRequest>"#;
    let (status, _, body) = server.ccm(&message("MP_LocationManager", "Sync", request));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let Ok(Reply::Sync { body, .. }) = envelope::decode_reply(CONTENT_TYPE, &body, &Limits::default()) else {
        panic!("a sync reply")
    };
    let reply = protocol::bodies::ContentLocationReply::parse(&body).unwrap();
    assert_eq!(reply.site_code, "PS1");
    let urls: Vec<&str> = reply.records.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(
        urls,
        ["http://PS1DP.contoso.com/SMS_DP_SMSPKG$/Content_63fbf078-1815-4e37-9614-b60ce7947805.1"]
    );
    assert_eq!(reply.records[0].locality, "LOCAL");
    // A malformed one is refused with its reason; a site information request is not served.
    let (status, _, body) = server.ccm(&message(
        "MP_LocationManager",
        "Sync",
        "<ContentLocationRequest SchemaVersion=\"1.00\"/>",
    ));
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("Package"));
    let (status, _, body) = server.ccm(&message("MP_LocationManager", "Sync", "<SiteInformationRequest/>"));
    assert_eq!((status, body.len()), (200, 0));
}

#[test]
fn sms_aut_verbs_answer_in_the_shapes_tools_read() {
    use protocol::bodies::{MpKeyInformation, X509CertificateReply};
    use protocol::signing::PublicKey;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let get = |server: &Server, verb: &str| {
        let (status, _, body) = server.call("GET", &format!("/SMS_MP/.sms_aut?{verb}"), &[], b"");
        (status, String::from_utf8(body).unwrap())
    };
    let (site_cert, mp_cert, media) = {
        let server = Server::start(&data, |_| {});
        let (status, xml) = get(&server, "MPKEYINFORMATION");
        assert_eq!(status, 200, "{xml}");
        let info = MpKeyInformation::parse(&xml).unwrap();
        assert_eq!((info.site_code.as_str(), info.unknown_machines), ("PS1", None));
        assert!(!info.fqdn.is_empty());
        // Percent-encoded, in any case: the same answer.
        assert_eq!(get(&server, "%4dpkeyinformation").1, xml);
        let (status, xml) = get(&server, "MPKEYINFORMATIONMEDIA");
        assert_eq!(status, 200);
        let media = MpKeyInformation::parse(&xml).unwrap().unknown_machines.expect("the unknown computers");
        assert_ne!(media.x86, media.x64);
        let cert = |verb| {
            let (status, xml) = get(&server, verb);
            assert_eq!(status, 200, "{xml}");
            let der = X509CertificateReply::parse(&xml).unwrap().der;
            PublicKey::from_certificate(&der).unwrap();
            der
        };
        let (site_cert, mp_cert) = (cert("SITESIGNCERT"), cert("MPCERT"));
        assert_ne!(site_cert, mp_cert);
        // A verb this MP does not serve: 404, logged with its name.
        let (status, body) = get(&server, "GETCLIENTAFFINITY&GUID:A1006D0E-CF56-41D1-A006-6330EFC39381");
        assert_eq!(status, 404, "{body}");
        (site_cert, mp_cert, media)
    };
    let log = std::fs::read_to_string(data.join("logs/MP_Framework.log")).unwrap();
    assert!(log.contains(".sms_aut?GETCLIENTAFFINITY is not served by this MP (404)"), "{log}");
    // After a restart: the same certificates and unknown computers.
    let server = Server::start(&data, |_| {});
    let again = |verb| X509CertificateReply::parse(&get(&server, verb).1).unwrap().der;
    assert_eq!((again("SITESIGNCERT"), again("MPCERT")), (site_cert, mp_cert));
    let xml = get(&server, "MPKEYINFORMATIONMEDIA").1;
    assert_eq!(MpKeyInformation::parse(&xml).unwrap().unknown_machines, Some(media));
}

/// A discovery data record as clients (and the public tools that imitate them) send it: an
/// earlier copy as an attachment, then the record as the body at the offset the header gives,
/// in one zlib stream.
fn ddr_message(source: &str, record: &str) -> Vec<u8> {
    let part = |xml: &str| {
        let mut b = protocol::utf16::encode(xml, false);
        b.extend_from_slice(b"\0\0\r\n");
        b
    };
    let first = record.replace(
        &record[record.find("<ReportBody>").unwrap()..record.find("</ReportBody>").unwrap() + 13],
        "<ReportBody />",
    );
    let (attachment, body) = (part(&first), part(record));
    let header = format!(
        "<Msg ReplyCompression=\"zlib\" SchemaVersion=\"1.1\"><Attachment Length=\"{}\" \
         Name=\"403838f7-69bb-43d5-8362-28a5755b97b5\" Offset=\"0\" /><Attachment Length=\"{}\" Offset=\"{}\" />\
         <Body Type=\"ByteRange\" Length=\"{}\" Offset=\"{}\" /><CorrelationID>{{00000000-0000-0000-0000-000000000000}}</CorrelationID>\
         <Hooks><Hook3 Name=\"zlib-compress\" /></Hooks><ID>{{CA6A20DC-2440-44B1-A78F-E2FE792973BA}}</ID>\
         <Payload Type=\"inline\" /><Priority>0</Priority><Protocol>http</Protocol><ReplyMode>ASync</ReplyMode>\
         <ReplyTo>direct:CAVE-PC:SccmMessaging</ReplyTo><SentTime>2026-12-03T10:15:00Z</SentTime>\
         <SourceID>{source}</SourceID><SourceHost>CAVE-PC</SourceHost><TargetAddress>mp:MP_DdrEndpoint</TargetAddress>\
         <TargetEndpoint>MP_DdrEndpoint</TargetEndpoint><TargetHost>PS1SYS</TargetHost><Timeout>60000</Timeout></Msg>",
        attachment.len() - 4,
        body.len() - 4,
        attachment.len(),
        body.len() - 2,
        attachment.len()
    );
    let boundary = envelope::BOUNDARY;
    let mut out = format!("--{boundary}\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n").into_bytes();
    out.extend_from_slice(&protocol::utf16::encode(&header, true));
    out.extend_from_slice(
        format!("\r\n--{boundary}\r\ncontent-type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(&envelope::deflate(&[attachment, body].concat(), 6));
    out.extend_from_slice(format!("\r\n--{boundary}--").as_bytes());
    out
}

#[test]
fn a_ddr_sent_as_clients_send_it_is_recorded_as_discovery() {
    use protocol::bodies::DiscoveryRecord;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, |_| {});
    let id = "A1006D0E-CF56-41D1-A006-6330EFC39381";
    // Once StateSys has loaded its (empty) store, what the MP learns is applied as it answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.call("GET", &format!("/api/v1/clients/{id}"), &[], b"").0 == 503 {
        assert!(std::time::Instant::now() < deadline, "StateSys never loaded");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let record = DiscoveryRecord {
        client: protocol::Guid::parse_sms_id(&format!("GUID:{id}")).unwrap(),
        netbios_name: "CAVE-PC".into(),
        fqdn: "cave-pc.contoso.com".into(),
        domain: "contoso.com".into(),
        ad_site: "Default-First-Site-Name".into(),
        ip_addresses: vec!["10.10.25.130".into(), "fe80::1".into()],
        subnets: vec!["10.10.25.128".into()],
    };
    let (status, _, body) =
        server.ccm(&ddr_message(&format!("GUID:{id}"), &record.to_xml_at("20261203101500.575000+120")));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(envelope::decode_reply(CONTENT_TYPE, &body, &Limits::default()), Ok(Reply::NoReply));
    let client = server.json("GET", &format!("/api/v1/clients/{id}"), b"");
    assert_eq!(client["NetBIOSName"], "CAVE-PC", "{client:#}");
    assert_eq!(client["Location"]["ADSite"], "Default-First-Site-Name", "{client:#}");
    // Another client's record, sent by this one: refused, nothing recorded.
    let other = DiscoveryRecord { client: protocol::Guid(7), ..record.clone() };
    let (status, _, body) = server.ccm(&ddr_message(&format!("GUID:{id}"), &other.to_xml()));
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("not the SourceID"));
    assert_eq!(server.call("GET", &format!("/api/v1/clients/{}", protocol::Guid(7)), &[], b"").0, 404);
    let log = std::fs::read_to_string(data.join("logs/MP_Ddr.log")).unwrap();
    assert!(log.contains(&format!("discovery data for GUID:{id} (CAVE-PC) recorded")), "{log}");
}
