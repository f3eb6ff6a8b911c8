//! protocol::fuzzing::registration: no panics, and what parses round-trips through its own XML.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| protocol::fuzzing::registration(data));
