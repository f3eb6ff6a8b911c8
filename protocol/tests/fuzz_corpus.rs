//! Replays the fuzz corpora and regressions (`fuzz/corpus/<target>`, `fuzz/regressions/<target>`)
//! on stable Rust through the same checks the fuzz targets run (`protocol::fuzzing`).

use std::path::Path;

fn replay(target: &str, at_least: usize, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut seen = 0;
    for dir in [fuzz.join("corpus").join(target), fuzz.join("regressions").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
            let data = std::fs::read(&path).unwrap();
            if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
                panic!("{}: {:?}", path.display(), panic.downcast_ref::<String>());
            }
            seen += 1;
        }
    }
    assert!(seen >= at_least, "{target}: only {seen} inputs found");
}

#[test]
fn report_scan_corpus_agrees_with_the_reference() {
    replay("report_scan", 4, protocol::fuzzing::report_differential);
}

#[test]
fn envelope_corpus_never_panics() {
    replay("envelope", 3, protocol::fuzzing::envelope);
}

#[test]
fn bodies_corpus_never_panics() {
    replay("bodies", 2, protocol::fuzzing::bodies);
}

#[test]
fn location_corpus_round_trips() {
    replay("location", 2, protocol::fuzzing::location);
}

#[test]
fn registration_corpus_round_trips() {
    replay("registration", 2, protocol::fuzzing::registration);
}

#[test]
fn policy_corpus_round_trips() {
    replay("policy", 2, protocol::fuzzing::policy);
}
