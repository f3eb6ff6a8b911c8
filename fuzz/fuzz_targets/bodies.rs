//! Every low-rate body parser (location, registration, policy, MP list, Msg header).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| protocol::fuzzing::bodies(data));
