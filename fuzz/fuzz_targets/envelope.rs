//! The MP's decode of a CCM_POST body, then the Report scan of whatever it yields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::envelope::{self, CONTENT_TYPE, Limits};
use protocol::report::{self, Collect};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_inflated: 1 << 20 };
    if let Ok(req) = envelope::decode_request(CONTENT_TYPE, data, &limits) {
        let _ = report::scan(req.body.as_bytes(), &mut Collect::default());
    }
    let _ = envelope::decode_reply(CONTENT_TYPE, data, &limits);
});
