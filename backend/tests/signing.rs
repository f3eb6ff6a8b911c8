//! Client authentication over real sockets (`--require-signing`): a genuine registration and
//! genuine signed messages are served in both padding variants; a registration with a zeroed
//! signature and the five forgeries of a policy request (bad `PayloadSignature`, bad
//! `ClientIDSignature`, a foreign key, no `clientauth` hook, an unregistered SMS ID) are refused
//! with 403, counted and logged; keys survive a restart.

mod common;

use common::Server;
use protocol::bodies::{ClientRegistrationRequest, ClientRegistrationResponse, RequestAssignments};
use protocol::envelope::{self, CONTENT_TYPE, Limits, MsgHeader, Reply};
use protocol::signing::{self, Padding, SigningKey};
use rand::SeedableRng;

fn key(seed: u64) -> SigningKey {
    SigningKey::generate(&mut rand::rngs::ChaCha8Rng::seed_from_u64(seed), 2048).unwrap()
}

fn certificate_hex(key: &SigningKey) -> String {
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.pkcs8_der());
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().self_signed(&pair).unwrap();
    signing::to_hex(cert.der())
}

fn header(endpoint: &str, source_id: &str, machine: &str) -> MsgHeader {
    MsgHeader {
        id: "{5EED0000-0000-0000-0000-0000000000AB}".into(),
        source_id: source_id.into(),
        source_host: machine.into(),
        target_endpoint: endpoint.into(),
        reply_to: format!("direct:{machine}:Test"),
        reply_mode: if endpoint == "MP_RelayEndpoint" { "ASync" } else { "Sync" }.into(),
        ..MsgHeader::default()
    }
}

/// A registration of `machine` signed by `key` (its certificate carried).
fn registration(key: &SigningKey, machine: &str, padding: Padding, zero_signature: bool) -> Vec<u8> {
    let mut request = ClientRegistrationRequest {
        request_type: "Registration".into(),
        timestamp: "2026-12-03T00:00:00Z".into(),
        agent_identity: "CCMSetup.exe".into(),
        agent_version: "5.00.7958.1000".into(),
        properties: vec![
            ("Netbios Name".into(), machine.into()),
            ("FQ Name".into(), format!("{machine}.lab")),
        ],
        signing_certificate: certificate_hex(key),
        ..ClientRegistrationRequest::default()
    };
    let mut xml = request.to_signed_xml(|data| key.sign(data, padding));
    if zero_signature {
        xml = xml.replace(&request.signature, &"0".repeat(request.signature.len()));
    }
    envelope::build_request(&mut header("MP_ClientRegistration", "", machine), &xml, Some(1))
}

/// How a signed message is made, and how it may be forged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Forgery {
    None,
    PayloadSignature,
    ClientIdSignature,
    ForeignKey,
    NoHook,
}

/// A message to `endpoint` from `source_id`, signed by `key` (or forged as `forgery` says).
fn signed(
    endpoint: &str,
    source_id: &str,
    key: &SigningKey,
    padding: Padding,
    forgery: Forgery,
    xml: &str,
) -> Vec<u8> {
    let foreign = (forgery == Forgery::ForeignKey).then(key_other);
    let signer = foreign.as_ref().unwrap_or(key);
    let mut h = header(endpoint, source_id, "PC0001");
    envelope::build_signed_request(&mut h, xml, Some(1), |payload| {
        if forgery == Forgery::NoHook {
            return None;
        }
        let id_message = signing::client_id_message(if forgery == Forgery::ClientIdSignature {
            "GUID:other"
        } else {
            source_id
        });
        let payload_signed =
            if forgery == Forgery::PayloadSignature { b"another payload".as_slice() } else { payload };
        Some(signing::client_auth_hook(
            "PC0001",
            &signer.public().to_blob_hex(),
            &signer.sign(&id_message, padding),
            &signer.sign(payload_signed, padding),
        ))
    })
}

fn key_other() -> SigningKey {
    key(99)
}

fn policy_request(source_id: &str) -> String {
    let mut r =
        RequestAssignments { ack: true, request_type: "Full".into(), ..RequestAssignments::default() };
    r.requester.identification.client_id = source_id.into();
    r.requester.identification.netbios_name = "PC0001".into();
    r.requester.policy_source = "SMS:PS1".into();
    r.requester.resource_type = "Machine".into();
    r.to_xml()
}

fn register(server: &Server, key: &SigningKey, machine: &str, padding: Padding) -> String {
    let (status, _, body) = server.ccm(&registration(key, machine, padding, false));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let Ok(Reply::Sync { body, .. }) = envelope::decode_reply(CONTENT_TYPE, &body, &Limits::default()) else {
        panic!("a registration reply")
    };
    format!("GUID:{}", ClientRegistrationResponse::parse(&body).unwrap().sms_id)
}

#[test]
fn genuine_messages_are_served_and_forgeries_refused_in_both_paddings() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, |c| c.require_signing = true);
    let k = key(1);
    let mut refused = 0;
    for (n, padding) in [Padding::DigestInfo, Padding::Bare].into_iter().enumerate() {
        // A registration whose signature is zeroed is refused, and teaches the MP nothing.
        let (status, _, body) = server.ccm(&registration(&k, &format!("ZERO{n}"), padding, true));
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("does not verify"));
        refused += 1;

        let id = register(&server, &k, &format!("PC000{n}"), padding);
        let xml = policy_request(&id);
        let (status, _, body) =
            server.ccm(&signed("MP_PolicyManager", &id, &k, padding, Forgery::None, &xml));
        assert_eq!(status, 200, "{padding:?}: {}", String::from_utf8_lossy(&body));
        let reply = envelope::decode_reply(CONTENT_TYPE, &body, &Limits::default()).unwrap();
        assert!(matches!(&reply, Reply::Sync { body, .. } if body.contains("ReplyAssignments")), "{reply:?}");

        for (forgery, why) in [
            (Forgery::PayloadSignature, "PayloadSignature does not verify"),
            (Forgery::ClientIdSignature, "ClientIDSignature does not verify"),
            (Forgery::ForeignKey, "not the key the client registered"),
            (Forgery::NoHook, "not signed"),
        ] {
            let (status, _, body) = server.ccm(&signed("MP_PolicyManager", &id, &k, padding, forgery, &xml));
            assert_eq!((status, forgery), (403, forgery), "{}", String::from_utf8_lossy(&body));
            assert!(
                String::from_utf8_lossy(&body).contains(why),
                "{forgery:?}: {}",
                String::from_utf8_lossy(&body)
            );
            refused += 1;
        }
        // Signed properly, by a key, for an SMS ID no registration gave.
        let stranger = "GUID:0BADF00D-0000-4000-8000-000000000001";
        let (status, _, body) = server.ccm(&signed(
            "MP_PolicyManager",
            stranger,
            &k,
            padding,
            Forgery::None,
            &policy_request(stranger),
        ));
        assert_eq!(status, 403);
        assert!(String::from_utf8_lossy(&body).contains("not a registered client"));
        refused += 1;

        // A signed Report is relayed; the same Report altered after signing is not.
        let report = format!(
            "<Report><ReportHeader><Identification><Machine><ClientInstalled>1</ClientInstalled><ClientType>1</ClientType><ClientID>{id}</ClientID><ClientVersion>5.00.7958.1000</ClientVersion><NetBIOSName>PC000{n}</NetBIOSName><CodePage>437</CodePage><SystemDefaultLCID>1033</SystemDefaultLCID><Priority>5</Priority></Machine></Identification><ReportDetails><ReportContent>State Message Data</ReportContent><ReportType>Full</ReportType><Date>20261203000000.000000+000</Date><Version>1.0</Version><Format>1.0</Format></ReportDetails></ReportHeader><ReportBody></ReportBody></Report>"
        );
        let relay = signed("MP_RelayEndpoint", &id, &k, padding, Forgery::None, &report);
        let (status, _, body) = server.ccm(&relay);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(envelope::decode_reply(CONTENT_TYPE, &body, &Limits::default()), Ok(Reply::NoReply));
        let tampered = tamper_payload(&relay);
        assert_eq!(server.ccm(&tampered).0, 403);
        refused += 1;
        // Plain XML cannot carry a hook: refused at a signed endpoint.
        let plain = server.call(
            "POST",
            "/ccm_system/request",
            &[("Content-Type", "text/xml"), ("X-Target-Endpoint", "MP_RelayEndpoint")],
            report.as_bytes(),
        );
        assert_eq!(plain.0, 403);
        refused += 1;
    }
    let status = server.json("GET", "/api/v1/status", b"");
    assert_eq!(status["SigningRefused"], refused);
    assert_eq!(status["SigningKeys"], 2);
    // The first refusal is in the logs (at most one group a second is written, then a count).
    let framework = std::fs::read_to_string(data.join("logs/MP_Framework.log")).unwrap();
    assert!(framework.contains("refused (403): authentication failed"), "{framework}");
    let registration_log = std::fs::read_to_string(data.join("logs/MP_RegistrationManager.log")).unwrap();
    assert!(
        registration_log.contains("Failed to verify the registration request from ZERO0"),
        "{registration_log}"
    );
}

/// `message` with one byte of its zlib payload changed the way a proxy could change it.
fn tamper_payload(message: &[u8]) -> Vec<u8> {
    let request = envelope::decode_request(CONTENT_TYPE, message, &Limits::default()).unwrap();
    let mut body = envelope::inflate(&message[request.payload.clone()], 0, 1 << 20).unwrap();
    // Swap a character of the UTF-16 text: still a Report, no longer what was signed.
    let at = body.windows(2).position(|w| w == b"1\0").unwrap();
    body[at] = b'2';
    let recompressed = envelope::deflate(&body, 1);
    [&message[..request.payload.start], &recompressed[..], &message[request.payload.end..]].concat()
}

#[test]
fn keys_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let k = key(2);
    let mut server = Server::start(&data, |c| c.require_signing = true);
    let id = register(&server, &k, "KEPT01", Padding::DigestInfo);
    server.stop();
    let server = Server::start(&data, |c| c.require_signing = true);
    let xml = policy_request(&id);
    let (status, _, body) =
        server.ccm(&signed("MP_PolicyManager", &id, &k, Padding::DigestInfo, Forgery::None, &xml));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // Without --require-signing, nothing is checked.
    drop(server);
    let open = Server::start(&tmp.path().join("open"), |_| {});
    let (status, _, _) =
        open.ccm(&signed("MP_PolicyManager", &id, &k, Padding::DigestInfo, Forgery::NoHook, &xml));
    assert_eq!(status, 200);
}
