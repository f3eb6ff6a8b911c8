//! Differential: the fast Report scanner and the quick-xml reference must agree on every input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| protocol::fuzzing::report_differential(data));
