//! backend::fuzzing: one arbitrary request to the whole backend in this process (every route,
//! CCM envelopes to every endpoint); it must get an answer, and a panic anywhere aborts.
#![no_main]

use std::sync::OnceLock;

use backend::fuzzing::{Harness, request};

static HARNESS: OnceLock<Harness> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let harness = HARNESS.get_or_init(|| Harness::start(&std::env::temp_dir()));
    harness.send(&request(data));
});
