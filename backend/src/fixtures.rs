//! The shared wire samples (`../shared/fixtures`, beside the project) for unit tests.

/// The bytes of fixture `name`.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
