//! Replays the fuzz corpora and regressions (`fuzz/corpus/<target>`, `fuzz/regressions/<target>`)
//! on stable Rust: the fast scanner agrees with the reference on every saved input, and no
//! decoder panics on any.

use std::path::{Path, PathBuf};

use protocol::bodies::*;
use protocol::envelope::{self, CONTENT_TYPE, Limits, MsgHeader};
use protocol::report::{self, Collect, reference};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in [fuzz.join("corpus").join(target), fuzz.join("regressions").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

#[test]
fn report_scan_corpus_agrees_with_the_reference() {
    let inputs = inputs("report_scan");
    assert!(inputs.len() >= 4, "the corpus holds at least the fixtures");
    for (path, data) in inputs {
        let (mut fast, mut slow) = (Collect::default(), Collect::default());
        let a = report::scan(&data, &mut fast);
        let b = reference::read(&data, &mut slow);
        assert_eq!(a.is_ok(), b.is_ok(), "{}: fast {a:?} reference {b:?}", path.display());
        if a.is_ok() {
            assert_eq!(a, b, "{}", path.display());
            assert_eq!(fast, slow, "{}", path.display());
        }
    }
}

#[test]
fn envelope_corpus_never_panics() {
    let inputs = inputs("envelope");
    assert!(inputs.len() >= 3);
    let limits = Limits { max_inflated: 1 << 20 };
    for (_, data) in inputs {
        if let Ok(req) = envelope::decode_request(CONTENT_TYPE, &data, &limits) {
            let _ = report::scan(req.body.as_bytes(), &mut Collect::default());
        }
        let _ = envelope::decode_reply(CONTENT_TYPE, &data, &limits);
    }
}

#[test]
fn bodies_corpus_never_panics() {
    let inputs = inputs("bodies");
    assert!(inputs.len() >= 2);
    for (_, data) in inputs {
        let Ok(text) = std::str::from_utf8(&data) else { continue };
        let _ = WsusLocationRequest::parse(text);
        let _ = WsusLocationReply::parse(text);
        let _ = ClientRegistrationRequest::parse(text);
        let _ = ClientRegistrationResponse::parse(text);
        let _ = RequestAssignments::parse(text);
        let _ = ReplyAssignments::parse(text);
        let _ = UpdateSourcePolicy::parse(text);
        let _ = MpList::parse(text);
        let _ = MsgHeader::parse(text);
    }
}
