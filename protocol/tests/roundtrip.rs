//! Write, then read: the same values come back, for every message type.

use proptest::prelude::*;

use protocol::bodies::*;
use protocol::envelope::{self, BodyRange, CONTENT_TYPE, Hook, Limits, MsgHeader, Reply};
use protocol::report::write::Param;
use protocol::report::{self, Collect, OutMessage, ReportIdentity, ReportWriter, reference};
use protocol::{Guid, GuidStyle, Timestamp, statenames};

/// Text that survives XML (trimmed on read, so no edge whitespace), with markup characters and
/// characters outside the BMP to exercise escaping and UTF-16 surrogates.
fn text() -> impl Strategy<Value = String> {
    "([A-Za-z0-9é😀<>&'\"]([A-Za-z0-9 .:_é😀<>&'\"/-]{0,16}[A-Za-z0-9é😀<>&])?)?"
}

fn guid() -> impl Strategy<Value = Guid> {
    any::<u128>().prop_map(Guid)
}

fn time() -> impl Strategy<Value = Timestamp> {
    (-62_135_596_800_000_000i64..253_402_300_799_999_999).prop_map(Timestamp)
}

fn seconds() -> impl Strategy<Value = Timestamp> {
    (0i64..4_102_444_800).prop_map(Timestamp::from_unix_seconds)
}

#[derive(Debug, Clone)]
struct Msg {
    time: Timestamp,
    serial: u64,
    topic: Guid,
    style: GuidStyle,
    topic_type: u32,
    id_type: u32,
    state: u32,
    criticality: u32,
    params: Vec<Result<u64, String>>,
}

fn message() -> impl Strategy<Value = Msg> {
    let types = prop::sample::select(vec![300u32, 301, 302, 402, 500, 501]);
    let param = prop_oneof![any::<u64>().prop_map(Ok), text().prop_map(Err)];
    (
        time(),
        any::<u64>(),
        guid(),
        prop::sample::select(vec![GuidStyle::Lower, GuidStyle::Upper, GuidStyle::UpperBraced]),
        types,
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(param, 0..=5),
    )
        .prop_map(|(time, serial, topic, style, topic_type, id_type, state, criticality, params)| Msg {
            time,
            serial,
            topic,
            style,
            topic_type,
            id_type,
            state: state % (statenames::max_state(topic_type).unwrap_or(0) + 1),
            criticality,
            params,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn report(client in guid(), name in text(), version in text(), priority: u32, date in time(),
              msgs in prop::collection::vec(message(), 0..30)) {
        // Messages often share a time (a scan's results): about half take the one before's, so
        // the writer's reuse of a formatted time is crossed both ways.
        let mut msgs = msgs;
        for i in 1..msgs.len() {
            if msgs[i].serial % 2 == 0 {
                msgs[i].time = msgs[i - 1].time;
            }
        }
        let mut w = ReportWriter::new();
        w.begin(&ReportIdentity { client, netbios_name: &name, client_version: &version, priority }, date);
        for m in &msgs {
            let params: Vec<Param> = m.params.iter().map(|p| match p {
                Ok(n) => Param::Number(*n),
                Err(t) => Param::Text(t),
            }).collect();
            w.push(&OutMessage {
                time: m.time, serial: m.serial, topic_id: m.topic, topic_style: m.style, topic_type: m.topic_type,
                id_type: m.id_type, state: m.state, criticality: m.criticality, params: &params,
            });
        }
        let bytes = w.finish().to_vec();
        let mut got = Collect::default();
        let summary = report::scan(&bytes, &mut got).unwrap();
        prop_assert_eq!(summary.records, msgs.len() as u64);
        prop_assert_eq!(summary.invalid, 0);
        let h = &got.headers[0];
        prop_assert_eq!(h.client, Some(client));
        prop_assert_eq!(h.netbios_name.as_deref(), Some(name.as_str()));
        prop_assert_eq!(h.client_version.as_deref(), Some(version.as_str()));
        prop_assert_eq!(h.priority, Some(priority));
        for (want, got) in msgs.iter().zip(&got.messages) {
            prop_assert_eq!(got.time, want.time);
            prop_assert_eq!(got.serial, want.serial);
            prop_assert_eq!(got.topic_id, want.topic);
            prop_assert_eq!((got.topic_type, got.id_type, got.state, got.criticality),
                            (want.topic_type, want.id_type, want.state, want.criticality));
            let params: Vec<String> = want.params.iter().map(|p| match p {
                Ok(n) => n.to_string(),
                Err(t) => t.clone(),
            }).collect();
            prop_assert_eq!(got.params.iter().collect::<Vec<_>>(), params);
        }
        let mut oracle = Collect::default();
        prop_assert_eq!(reference::read(&bytes, &mut oracle), Ok(summary));
        prop_assert_eq!(oracle, got);
    }

    #[test]
    fn location(content_id in guid(), version: u32, site in text(), on_internet: bool, ad in text(),
                forest in text(), domain in text(), ips in prop::collection::vec((text(), text()), 0..4),
                sites in prop::collection::vec((text(), prop::collection::vec((text(), text(), any::<u32>()), 0..4)), 0..3)) {
        let req = WsusLocationRequest {
            content_id, content_version: version, site_code: site, on_internet, ad_site: ad, forest, domain,
            ip_addresses: ips.into_iter().map(|(subnet, address)| IpAddressInfo { subnet, address }).collect(),
        };
        prop_assert_eq!(WsusLocationRequest::parse(&req.to_xml()).unwrap(), req);
        let reply = WsusLocationReply { sites: sites.into_iter().map(|(site_code, records)| LocationSite {
            site_code,
            records: records.into_iter().map(|(wsus_url, server_name, version)| LocationRecord { wsus_url, server_name, version }).collect(),
        }).collect() };
        prop_assert_eq!(WsusLocationReply::parse(&reply.to_xml()).unwrap(), reply);
    }

    #[test]
    fn content_location(package in "[A-Za-z0-9:_-]{1,60}", version: u32, site in text(), kind in text(), on_internet: bool,
                        ad in "[A-Za-z0-9 -]{0,60}", forest in text(), domain in text(), ips in prop::collection::vec((text(), text()), 0..4),
                        records in prop::collection::vec((text(), text(), text(), prop::collection::vec("[0-9.]{1,15}", 0..3), any::<u32>(), text(), text()), 0..4)) {
        let req = ContentLocationRequest {
            package_id: package, version, site_code: site, location_type: kind, on_internet, ad_site: ad, forest, domain,
            ip_addresses: ips.into_iter().map(|(subnet, address)| IpAddressInfo { subnet, address }).collect(),
        };
        prop_assert_eq!(ContentLocationRequest::parse(&req.to_xml()).unwrap(), req);
        let reply = ContentLocationReply {
            site_code: "PS1".into(),
            records: records.into_iter().map(|(url, signature, ad_site, subnets, version, server, locality)| DpRecord {
                url, signature, ad_site, subnets, version, server: server.trim().to_owned(), locality: locality.trim().to_owned(),
            }).collect(),
        };
        prop_assert_eq!(ContentLocationReply::parse(&reply.to_xml()).unwrap(), reply);
    }

    #[test]
    fn registration(name in "[A-Z0-9-]{1,15}", fqdn in text(), agent in text(), version in text(), cert in "[0-9A-F]{0,64}",
                    sig in "[0-9A-F]{0,64}", stamp in text(), status in 0u32..2, sms in guid(), at in seconds()) {
        let req = ClientRegistrationRequest {
            request_type: "Registration".into(), timestamp: stamp, agent_identity: agent, agent_version: version,
            properties: vec![("Netbios Name".into(), name.clone()), ("FQ Name".into(), fqdn.clone()), ("Locale ID".into(), "1033".into())],
            signing_certificate: cert, signature: sig,
        };
        let back = ClientRegistrationRequest::parse(&req.to_xml()).unwrap();
        prop_assert_eq!(back.netbios_name(), name.as_str());
        prop_assert_eq!(back.fqdn(), fqdn.as_str());
        prop_assert_eq!(back, req);
        let resp = ClientRegistrationResponse { status, sms_id: sms, timestamp: Some(at) };
        prop_assert_eq!(ClientRegistrationResponse::parse(&resp.to_xml()).unwrap(), resp);
    }

    #[test]
    fn policy(ack: bool, kind in prop::sample::select(vec!["Full", "OnUpdate", "Always"]), client in guid(), fqdn in text(),
              name in text(), source in text(), cookie in text(), major in 1u32..1000, flags in 0u32..128,
              source_id in guid(), content: u32, aid in guid(), pid in guid(), hash in "[0-9A-F]{0,64}") {
        let request = RequestAssignments {
            ack, request_type: kind.into(),
            requester: Requester {
                identification: Identification { client_id: format!("GUID:{client}"), fqdn, netbios_name: name, sid: String::new() },
                policy_source: source, resource_type: "Machine".into(), server_cookie: cookie,
            },
        };
        prop_assert_eq!(RequestAssignments::parse(&request.to_xml()).unwrap(), request.clone());
        let policy_id = pid.to_string_styled(GuidStyle::Lower);
        let policy_id = format!("{{{policy_id}}}");
        let version = format!("{major}.00");
        let location = policy_location(&policy_id, &version);
        let reply = ReplyAssignments::answering(&request, vec![PolicyAssignment {
            assignment_id: aid, policy_id: policy_id.clone(), policy_version: version.clone(), policy_type: "Machine".into(),
            policy_category: "UpdateSource".into(), policy_flags: flags, policy_hash: hash, location: location.clone(),
        }]);
        let xml = reply.to_xml();
        prop_assert!(xml.contains("<![CDATA[http://<mp>/SMS_MP/.sms_pol?"));
        prop_assert_eq!(ReplyAssignments::parse(&xml).unwrap(), reply);
        let query = location.split_once('?').unwrap().1;
        prop_assert_eq!(parse_policy_query(query), Some((policy_id.as_str(), version.clone())));
        let body = UpdateSourcePolicy {
            policy_id, policy_version: version, policy_source: "SMS:PS1".into(), update_source_id: source_id,
            content_version: content, content_type: 2,
        };
        prop_assert_eq!(UpdateSourcePolicy::parse(&body.to_xml()).unwrap(), body);
    }

    #[test]
    fn mplist(mps in prop::collection::vec((text(), text(), any::<u32>(), 0u32..2), 0..4)) {
        let list = MpList { mps: mps.into_iter().map(|(name, fqdn, version, ssl_state)| MpEntry { name, fqdn, version, ssl_state }).collect() };
        prop_assert_eq!(MpList::parse(&list.to_xml()).unwrap(), list);
    }

    #[test]
    fn envelope_request(id in guid(), source in guid(), host in text(), endpoint in text(), props in prop::collection::vec((text(), text()), 0..3),
                        hook_props in prop::collection::vec((text(), text()), 0..3), priority in prop::option::of(any::<u32>()),
                        timeout in prop::option::of(any::<u64>()), sent in prop::option::of(seconds()), body in text(), level in prop::option::of(0u32..=9)) {
        let mut header = MsgHeader {
            schema_version: "1.1".into(), reply_compression: "zlib".into(), id: id.to_string_styled(GuidStyle::UpperBraced),
            source_id: format!("GUID:{source}"), source_host: host, target_address: format!("mp:{endpoint}"), target_endpoint: endpoint,
            reply_to: "direct:X:Y".into(), reply_mode: "Sync".into(), priority, timeout, sent_time: sent, protocol: "http".into(),
            hooks: vec![Hook { element: "Hook2".into(), name: "clientauth".into(), properties: hook_props }],
            properties: props, payload_type: "inline".into(), correlation_id: String::new(), req_version: "5931".into(),
            ..MsgHeader::default()
        };
        let xml = format!("<Report>{}</Report>", body.replace('<', "&lt;").replace('&', "&amp;"));
        let bytes = envelope::build_request(&mut header, &xml, level);
        prop_assert_eq!(header.body.clone(), Some(BodyRange { kind: "ByteRange".into(), offset: 0, length: xml.encode_utf16().count() as u64 * 2 + 2 }));
        let back = envelope::decode_request(CONTENT_TYPE, &bytes, &Limits::default()).unwrap();
        prop_assert_eq!(&back.header, &header);
        prop_assert_eq!(back.body, xml);
        prop_assert_eq!(back.compressed, level.is_some());
    }

    #[test]
    fn envelope_sync_reply(body in text(), mp in text(), now in seconds()) {
        let request = MsgHeader { id: "{X}".into(), reply_to: "direct:PC:LS_ReplyLocations".into(), source_host: "PC".into(), ..MsgHeader::default() };
        let mut header = request.reply(Guid(1), &mp, now);
        let xml = format!("<R a=\"{}\"/>", body.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;"));
        let bytes = envelope::build_sync_reply(&mut header, &xml);
        match envelope::decode_reply(CONTENT_TYPE, &bytes, &Limits::default()).unwrap() {
            Reply::Sync { header: got, body } => {
                prop_assert_eq!(body, xml);
                prop_assert_eq!(*got, header);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }
}
