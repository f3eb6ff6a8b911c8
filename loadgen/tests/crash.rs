//! The short version of the crash harness (issue 7 §1): the real `backend` binary killed with
//! SIGKILL five times under a relay load (once at a random instant, once aimed at each phase),
//! restarted each time; every acknowledged message must be applied exactly once.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn backend_binary() -> PathBuf {
    // `cargo test --workspace` builds the backend beside loadgen.
    let path = PathBuf::from(env!("CARGO_BIN_EXE_loadgen")).with_file_name("backend");
    assert!(path.is_file(), "{} missing: run the tests with --workspace", path.display());
    path
}

#[test]
fn every_acknowledged_message_survives_sigkill_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("crash");
    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["crash", "--cycles", "5", "--clients", "300", "--max-gap-ms", "400", "--backend"])
        .arg(backend_binary())
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    let result: Value = serde_json::from_slice(&std::fs::read(out.join("crash.json")).unwrap()).unwrap();
    assert_eq!(status.code(), Some(0), "{result:#}");
    assert_eq!(result["Exact"], true);
    assert_eq!(result["Cycles"], 5);
    assert_eq!(result["Kills"].as_array().unwrap().len(), 5);
    // Every client got Reports through between kills, and every kill cost it a resend.
    assert!(result["MessagesChecked"].as_u64().unwrap() > 300 * 20 * 5, "{result:#}");
    assert!(result["Resends"].as_u64().unwrap() >= 300, "{result:#}");
    assert!(!out.join("data").exists(), "a passing run cleans up its data");
}

#[test]
fn a_missing_backend_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["crash", "--cycles", "1", "--backend"])
        .arg(tmp.path().join("no-such-backend"))
        .arg("--out")
        .arg(tmp.path())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}
