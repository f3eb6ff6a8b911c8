//! The MP's decode of a CCM_POST body (and of a reply), then the Report scan of what it yields.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| protocol::fuzzing::envelope(data));
