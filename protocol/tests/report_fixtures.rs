//! Every Report fixture in `../shared/fixtures` yields what its README says, through both
//! readers.

use protocol::report::{self, Collect, Invalid, ScanErrorKind, reference};
use protocol::{Guid, Timestamp};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Both readers, which must agree.
fn read(bytes: &[u8]) -> Result<(Collect, report::ScanSummary), report::ScanError> {
    let mut fast = Collect::default();
    let mut slow = Collect::default();
    let a = report::scan(bytes, &mut fast);
    let b = reference::read(bytes, &mut slow);
    assert_eq!(a.is_ok(), b.is_ok(), "fast {a:?} reference {b:?}");
    if let (Ok(x), Ok(y)) = (&a, &b) {
        assert_eq!(x, y);
        assert_eq!(fast, slow);
    }
    a.map(|s| (fast, s))
}

fn guid(s: &str) -> Guid {
    s.parse().unwrap()
}

#[test]
fn one_message_from_the_seed() {
    let (got, summary) = read(&fixture("report-one-message.xml")).unwrap();
    assert_eq!((summary.records, summary.invalid), (1, 0));
    let h = &got.headers[0];
    assert_eq!(h.client, Some(guid("A1006D0E-CF56-41D1-A006-6330EFC39381")));
    assert_eq!(h.client_id_text.as_deref(), Some("GUID: A1006D0E-CF56-41D1-A006-6330EFC39381"));
    assert_eq!(h.netbios_name.as_deref(), Some("PS1WIN7X64"));
    assert_eq!(h.client_version.as_deref(), Some("5.00.7958.1000"));
    assert_eq!(h.priority, Some(5));
    let m = &got.messages[0];
    assert_eq!(m.topic_id, guid("505fda07-b4f3-45fb-83d9-8642554e2773"));
    assert_eq!((m.topic_type, m.id_type, m.state, m.criticality, m.serial), (500, 3, 2, 0, 232));
    assert_eq!(m.time, Timestamp::parse_iso(b"2014-01-20T17:18:55.573Z").unwrap());
    assert_eq!(m.params.iter().collect::<Vec<_>>(), ["200"]);
    assert!(m.is_valid());
}

#[test]
fn three_messages() {
    let (got, summary) = read(&fixture("report-three-messages.xml")).unwrap();
    assert_eq!((summary.records, summary.invalid), (3, 0));
    let m = &got.messages;
    assert_eq!(
        (m[0].topic_type, m[0].topic_id, m[0].state),
        (501, guid("C2D17964-BBDD-4339-B9F3-12D7205B39CC"), 2)
    );
    assert_eq!(m[0].params.get(0), Some("38"));
    assert_eq!((m[1].topic_id, m[1].state), (guid("4ae85c00-0eaa-4be0-b81b-dbd7053d5fae"), 3));
    assert_eq!((m[2].topic_id, m[2].state), (guid("505fda07-b4f3-45fb-83d9-8642554e2773"), 2));
    assert_eq!([m[0].serial, m[1].serial, m[2].serial], [230, 231, 239]);
}

#[test]
fn bad_records_are_counted_with_their_reasons() {
    let (got, summary) = read(&fixture("report-bad-records.xml")).unwrap();
    assert_eq!((summary.records, summary.invalid), (4, 3));
    let reasons: Vec<_> = got.messages.iter().map(|m| m.invalid).collect();
    assert_eq!(
        reasons,
        [None, Some(Invalid::BadTime), Some(Invalid::BadTopicId), Some(Invalid::StateOutOfRange)]
    );
    let good = &got.messages[0];
    assert_eq!((good.topic_id, good.state), (guid("505fda07-b4f3-45fb-83d9-8642554e2773"), 3));
    assert_eq!(got.headers[0].client, Some(guid("B2006D0E-CF56-41D1-A006-6330EFC39382")));
}

#[test]
fn truncated_report_is_a_bad_file() {
    let bytes = fixture("report-truncated.xml");
    let err = read(&bytes).unwrap_err();
    assert_eq!(err.kind, ScanErrorKind::Unclosed);
    // The error points at the tag that never closes.
    assert!(bytes[err.offset..].starts_with(b"<Topic ID=\"505fda07-b4f3-45fb-83d9"), "{err}");
}
