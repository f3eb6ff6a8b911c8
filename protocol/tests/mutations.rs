//! Hostile and damaged input: never a panic, always an error or a valid result, and the fast
//! Report scanner always agrees with the quick-xml reference.

use proptest::prelude::*;

use protocol::envelope::{self, CONTENT_TYPE, Limits};
use protocol::report::{self, Collect};
use protocol::utf16;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Both readers on `bytes`; they must agree: equal results and equal events, or both errors.
fn agree(bytes: &[u8]) -> Option<Collect> {
    protocol::fuzzing::report_differential(bytes);
    let mut got = Collect::default();
    let result = report::scan(bytes, &mut got).ok().map(|_| got);
    // The MP's entry for text it has already decoded reads the same.
    if let Ok(text) = std::str::from_utf8(bytes) {
        let mut same = Collect::default();
        assert_eq!(report::scan_str(text, &mut same).ok().map(|_| same), result, "scan_str differs");
    }
    result
}

#[test]
fn every_truncation_of_every_report_fixture() {
    for name in ["report-one-message.xml", "report-three-messages.xml", "report-bad-records.xml"] {
        let bytes = fixture(name);
        let whole = bytes.trim_ascii_end().len();
        for cut in 0..bytes.len() {
            let result = agree(&bytes[..cut]);
            if cut < whole {
                assert!(result.is_none(), "{name} cut at {cut} still reads");
            }
        }
    }
}

/// Every byte replaced by every byte that means something to XML (and some that break UTF-8).
#[test]
fn every_single_byte_substitution() {
    let bytes = fixture("report-three-messages.xml");
    let specials = b"<>/=\"' \t&;!?[]-#xX:\0\x80\xC3\xFFaZ09";
    for pos in 0..bytes.len() {
        for &c in specials {
            let mut m = bytes.clone();
            m[pos] = c;
            agree(&m);
        }
    }
}

fn fragment() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "<StateMessage MessageTime=\"20140120171855.573000+000\" SerialNumber=\"7\">",
        "<StateMessage SerialNumber='8' MessageTime = '20140120171855.573000+060'>",
        "</StateMessage>",
        "<Topic ID=\"505fda07-b4f3-45fb-83d9-8642554e2773\" Type=\"500\" IDType=\"3\" User=\"\" UserSID=\"\"/>",
        "<Topic ID='{505FDA07-B4F3-45FB-83D9-8642554E2773}' Type='501'/>",
        "<Topic ID=\"&#x35;05fda07-b4f3-45fb-83d9-8642554e2773\" Type=\"&#53;00\"/>",
        "<Topic ID=\"x\" Type/>",
        "<Topic ID=\"x\"Type=\"500\"/>",
        "<Topic\tID\n=\r\"a\" />",
        "<State ID=\"2\" Criticality=\"0\"/>",
        "<State ID=\"2\" ID=\"3\"/>",
        "<State ID=\"9\"/>",
        "<State ID=\"&bogus;\"/>",
        "<State ID='1' User=\"&bogus;\"/>",
        "<State ID=\"1\" a=b/>",
        "<UserParameters Flags=\"0\" Count=\"1\">",
        "<UserParameters %%%>",
        "</UserParameters>",
        "<Param>",
        "</Param>",
        "<Param>200</Param>",
        "<ReportHeader><Identification><Machine><ClientID>GUID: A1006D0E-CF56-41D1-A006-6330EFC39381</ClientID>",
        "</Machine></Identification></ReportHeader>",
        "<ClientID>",
        "</ClientID>",
        "<NetBIOSName>PC&amp;1</NetBIOSName>",
        "<Priority>5</Priority>",
        "<ReportBody>",
        "</ReportBody>",
        "<Report>",
        "</Report>",
        "<Other a='1' b=\"2\">",
        "</Other>",
        "</Other >",
        "<Other/>",
        "<a\"b\">",
        "</a\"b\">",
        "<a\"b>",
        "</a\"b>",
        "<>",
        "</>",
        "< x>",
        "<x/ >",
        "&amp;",
        "&lt;",
        "&#x41;",
        "&#0;",
        "&bogus;",
        "&",
        "&a&b;",
        "<!-- c -- d -->",
        "<!---->",
        "<!-->",
        "<!--->-->",
        "<![CDATA[x]]>",
        "<![CDATA[]]>",
        "<![CDAT[x]]>",
        "<?pi x?>",
        "<??>",
        "<?>",
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
        "<!DOCTYPE x>",
        "<!x>",
        "\u{FEFF}",
        "é",
        " ",
        "\n",
        ">",
        "<",
        "\"",
        "'",
        "/",
        "=",
        "200",
    ]);
    prop_oneof![
        8 => fixed.prop_map(str::to_owned),
        1 => "[a-zA-Z<>/=\"' &;#!?\\[\\]-]{0,6}",
    ]
}

fn document() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), any::<bool>(), prop::collection::vec(fragment(), 0..24)).prop_map(
        |(bom, skeleton, parts)| {
            let mut doc = String::new();
            if bom {
                doc.push('\u{FEFF}');
            }
            if skeleton {
                doc.push_str("<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<Report><ReportBody>");
            }
            for p in parts {
                doc.push_str(&p);
            }
            if skeleton {
                doc.push_str("</ReportBody></Report>");
            }
            doc.into_bytes()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Documents assembled from the markup that differs between tokenizers.
    #[test]
    fn fast_and_reference_agree_on_generated_documents(doc in document()) {
        agree(&doc);
    }

    #[test]
    fn fast_and_reference_agree_on_random_bytes(doc in prop::collection::vec(any::<u8>(), 0..64)) {
        agree(&doc);
    }
}

#[test]
fn huge_and_deep_reports_are_bounded() {
    let huge = format!(
        "<Report><ReportBody><StateMessage MessageTime=\"{}\" SerialNumber=\"1\"><Topic ID=\"x\" Type=\"500\"/><State ID=\"1\"/></StateMessage></ReportBody></Report>",
        "9".repeat(10 << 20)
    );
    let got = agree(huge.as_bytes()).expect("well-formed");
    assert_eq!(got.messages[0].invalid, Some(report::Invalid::BadTime));
    let deep = format!("<Report>{}{}</Report>", "<a>".repeat(10_000), "</a>".repeat(10_000));
    let err = report::scan(deep.as_bytes(), &mut Collect::default()).unwrap_err();
    assert_eq!(err.kind, report::ScanErrorKind::TooDeep);
    agree(deep.as_bytes());
}

fn decode(bytes: &[u8]) -> Result<envelope::Request, envelope::EnvelopeError> {
    envelope::decode_request(CONTENT_TYPE, bytes, &Limits::default())
}

#[test]
fn every_truncation_of_every_envelope_fixture() {
    for name in [
        "ccm-relay-report-three.bin",
        "ccm-wsus-location-request.bin",
        "ccm-wsus-location-request-uncompressed.bin",
    ] {
        let bytes = fixture(name);
        let whole = decode(&bytes).unwrap();
        for cut in 0..bytes.len() {
            // A cut inside the closing delimiter may still decode; then it must decode the same.
            if let Ok(req) = decode(&bytes[..cut]) {
                assert_eq!(req.body, whole.body, "{name} cut at {cut}");
            }
        }
    }
}

#[test]
fn byte_flips_in_envelopes_never_panic() {
    for name in ["ccm-relay-report-three.bin", "ccm-wsus-location-request-uncompressed.bin"] {
        let bytes = fixture(name);
        for pos in 0..bytes.len() {
            for c in [0x00, 0xFF, b'-', b'\r', b'\n', 0xD8, 0xDC, bytes[pos] ^ 0x01] {
                let mut m = bytes.clone();
                m[pos] = c;
                if let Ok(req) = decode(&m) {
                    let _ = report::scan(req.body.as_bytes(), &mut Collect::default());
                }
            }
        }
    }
}

#[test]
fn wrong_boundaries_are_refused() {
    let bytes = fixture("ccm-relay-report-three.bin");
    for ct in [
        "multipart/mixed; boundary=\"aAbBcCdDv1234567890VxXyYzz\"",
        "multipart/mixed; boundary=other",
        "multipart/mixed",
        "text/xml",
        "",
    ] {
        assert!(envelope::decode_request(ct, &bytes, &Limits::default()).is_err(), "{ct}");
    }
    // Unquoted is fine.
    assert!(
        envelope::decode_request(
            "multipart/mixed; boundary=aAbBcCdDv1234567890VxXyYzZ",
            &bytes,
            &Limits::default()
        )
        .is_ok()
    );
}

/// Replaces the body part of a CCM request with `part` (content type and bytes).
fn with_body(part_type: &str, part: &[u8], hooks: &str) -> Vec<u8> {
    let header = format!(
        "<Msg><ID>{{1}}</ID><TargetEndpoint>MP_RelayEndpoint</TargetEndpoint><Hooks>{hooks}</Hooks></Msg>"
    );
    let mut out =
        b"--aAbBcCdDv1234567890VxXyYzZ\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n".to_vec();
    out.extend(utf16::encode(&header, true));
    out.extend_from_slice(
        format!("\r\n--aAbBcCdDv1234567890VxXyYzZ\r\ncontent-type: {part_type}\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(part);
    out.extend_from_slice(b"\r\n--aAbBcCdDv1234567890VxXyYzZ--");
    out
}

#[test]
fn bad_zlib_odd_utf16_and_bombs() {
    let zlib = r#"<Hook3 Name="zlib-compress"/>"#;
    let good = envelope::deflate(&utf16::encode("<Report/>\0", false), 6);
    assert_eq!(decode(&with_body("application/octet-stream", &good, zlib)).unwrap().body, "<Report/>");
    // Corrupt zlib streams.
    for damage in [0usize, 1, 2, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[damage] ^= 0x55;
        assert!(decode(&with_body("application/octet-stream", &bad, zlib)).is_err(), "damage at {damage}");
    }
    assert!(matches!(
        decode(&with_body("application/octet-stream", b"not zlib", zlib)),
        Err(envelope::EnvelopeError::Zlib(_))
    ));
    // A lone surrogate in the body, raw and compressed; and an odd byte count.
    let mut lone = utf16::encode("<Report>", false);
    lone.extend_from_slice(&[0x00, 0xD8]);
    lone.extend(utf16::encode("</Report>\0", false));
    assert!(matches!(
        decode(&with_body("text/plain; charset=UTF-16", &lone, "")),
        Err(envelope::EnvelopeError::BodyText(_))
    ));
    assert!(matches!(
        decode(&with_body("application/octet-stream", &envelope::deflate(&lone, 1), zlib)),
        Err(envelope::EnvelopeError::BodyText(_))
    ));
    assert!(decode(&with_body("text/plain; charset=UTF-16", b"<\0R\0x", "")).is_err());
    // A zip bomb: 64 MiB of zeros in about 64 KiB, against a 16 MiB limit.
    let bomb = envelope::deflate(&vec![0u8; 64 << 20], 9);
    assert!(bomb.len() < 100_000);
    assert!(matches!(
        decode(&with_body("application/octet-stream", &bomb, zlib)),
        Err(envelope::EnvelopeError::TooLarge(_))
    ));
}

#[test]
fn huge_header_values_and_lone_surrogates_in_the_header() {
    let huge = format!(
        "<Msg><ID>{}</ID><TargetEndpoint>MP_RelayEndpoint</TargetEndpoint></Msg>",
        "x".repeat(4 << 20)
    );
    let mut out = b"--B\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n".to_vec();
    out.extend(utf16::encode(&huge, true));
    out.extend_from_slice(b"\r\n--B\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n");
    out.extend(utf16::encode("<Report/>\0", false));
    out.extend_from_slice(b"\r\n--B--");
    let req = envelope::decode_request("multipart/mixed; boundary=B", &out, &Limits::default()).unwrap();
    assert_eq!(req.header.id.len(), 4 << 20);

    let mut lone = b"--B\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n\xFF\xFE<\0M\0\x00\xDC".to_vec();
    lone.extend_from_slice(b"\r\n--B\r\n\r\nx\r\n--B--");
    assert!(matches!(
        envelope::decode_request("multipart/mixed; boundary=B", &lone, &Limits::default()),
        Err(envelope::EnvelopeError::HeaderText(_))
    ));
}
