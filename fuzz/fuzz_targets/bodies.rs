//! Every low-rate body parser (location, registration, policy, MP list, Msg header).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::bodies::*;
use protocol::envelope::MsgHeader;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = WsusLocationRequest::parse(text);
    let _ = WsusLocationReply::parse(text);
    let _ = ClientRegistrationRequest::parse(text);
    let _ = ClientRegistrationResponse::parse(text);
    let _ = RequestAssignments::parse(text);
    let _ = ReplyAssignments::parse(text);
    let _ = UpdateSourcePolicy::parse(text);
    let _ = MpList::parse(text);
    let _ = MsgHeader::parse(text);
    let _ = parse_policy_query(text);
});
