//! Replays the router fuzz target's corpus and regressions (`fuzz/corpus/router`,
//! `fuzz/regressions/router`) on stable Rust, through the same harness the target drives: a
//! whole backend in this process, one request per input, each must get an HTTP answer. A panic
//! in the server (which the fuzzer sees as an abort) drops the connection here and fails.

use std::path::Path;

use backend::fuzzing::{Harness, request};

#[test]
fn router_corpus_gets_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let harness = Harness::start(tmp.path());
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut seen = 0;
    for dir in [fuzz.join("corpus/router"), fuzz.join("regressions/router")] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        paths.sort();
        for path in paths {
            // (A running fuzzer may have just replaced it.)
            let Ok(data) = std::fs::read(&path) else { continue };
            harness.send(&request(&data));
            seen += 1;
        }
    }
    assert!(seen >= 20, "only {seen} inputs found");
    // Still serving after all of them.
    harness.send(b"GET /api/v1/status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
}
