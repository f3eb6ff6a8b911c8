//! What each fuzz target checks, in one place: the `fuzz/` targets call these, and
//! `tests/fuzz_corpus.rs` replays the saved corpora through them on stable Rust.

use crate::bodies::*;
use crate::envelope::{self, CONTENT_TYPE, Limits, MsgHeader};
use crate::report::{self, Collect, reference};

/// The fast Report scanner and the quick-xml reference agree: the same records and counts, or
/// both reject the input.
pub fn report_differential(data: &[u8]) {
    let (mut fast, mut slow) = (Collect::default(), Collect::default());
    let a = report::scan(data, &mut fast);
    let b = reference::read(data, &mut slow);
    match (&a, &b) {
        (Ok(x), Ok(y)) => {
            assert_eq!(x, y, "summaries differ");
            assert_eq!(fast, slow, "records differ");
        }
        (Err(_), Err(_)) => {}
        _ => panic!("fast {a:?} vs reference {b:?}"),
    }
}

/// Envelope decoding never panics and stays within its inflate bound; what decodes, scans.
pub fn envelope(data: &[u8]) {
    let limits = Limits { max_inflated: 1 << 20 };
    if let Ok(req) = envelope::decode_request(CONTENT_TYPE, data, &limits) {
        let _ = report::scan(req.body.as_bytes(), &mut Collect::default());
    }
    let _ = envelope::decode_reply(CONTENT_TYPE, data, &limits);
}

/// Parses `text` as `T`; what parses must write back to XML that parses to the same value (what
/// the MP writes from client-chosen strings stays well-formed and means the same).
macro_rules! round_trip {
    ($text:expr, $($t:ty),+) => {$(
        if let Ok(v) = <$t>::parse($text) {
            let again = <$t>::parse(&v.to_xml())
                .unwrap_or_else(|e| panic!("{}: its own XML does not parse: {e}", stringify!($t)));
            assert_eq!(again, v, "{} changed in a round trip", stringify!($t));
        }
    )+};
}

/// Every low-rate body parser never panics.
pub fn bodies(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = WsusLocationRequest::parse(text);
    let _ = WsusLocationReply::parse(text);
    let _ = ContentLocationRequest::parse(text);
    let _ = ContentLocationReply::parse(text);
    if let Ok(Some(r)) = DiscoveryRecord::parse(text) {
        let again = DiscoveryRecord::parse(&r.to_xml()).expect("a DDR's own XML parses");
        assert_eq!(again, Some(r), "a DDR changed in a round trip");
    }
    let _ = ClientRegistrationRequest::parse(text);
    let _ = ClientRegistrationResponse::parse(text);
    let _ = RequestAssignments::parse(text);
    let _ = ReplyAssignments::parse(text);
    let _ = UpdateSourcePolicy::parse(text);
    let _ = MpList::parse(text);
    round_trip!(text, MpKeyInformation, X509CertificateReply);
    let _ = MsgHeader::parse(text);
    let _ = parse_policy_query(text);
}

/// The location request and reply parsers: no panics, and round trips.
pub fn location(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    round_trip!(text, WsusLocationRequest, WsusLocationReply);
}

/// The registration request and response parsers: no panics, and round trips.
pub fn registration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    round_trip!(text, ClientRegistrationRequest, ClientRegistrationResponse);
}

/// The policy parsers (assignment request and reply, UpdateSource policy body, the policy body
/// query): no panics, and round trips.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    round_trip!(text, RequestAssignments, ReplyAssignments, UpdateSourcePolicy);
    let _ = parse_policy_query(text);
}
