//! protocol::fuzzing::policy: no panics, and what parses round-trips through its own XML.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| protocol::fuzzing::policy(data));
