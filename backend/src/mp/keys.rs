//! Client authentication, when the MP requires signing (`--require-signing`): each client's
//! key, taken from the certificate its registration carried once the registration's own
//! signature verified, kept durably in `mp/keys.log`; and the checks of a signed message
//! (`protocol::signing` says what is signed).
//!
//! A message to a signed endpoint ([`SIGNED_ENDPOINTS`]) is served only when it has a
//! `clientauth` hook, its `SourceID` is a registered client, the hook's `PublicKey` is that
//! client's, and both `ClientIDSignature` and `PayloadSignature` verify. A client's
//! `ClientIDSignature` is the same on every message, so once one verified, later messages with
//! the same signature text are not verified again (a keyed hash of it is kept).
//!
//! `mp/keys.log` is a sequence of frames `[length u32][CRC-32 u32][client 16 bytes][blob]`
//! (little-endian; the blob is the key's CryptoAPI `PUBLICKEYBLOB`; the CRC covers client and
//! blob). A registration is answered once its frame is on disk; frames written together share
//! one `fdatasync`. A torn last frame is where the log ends; damage before it is refused with
//! its offset. A client registered again with another key: the later frame wins.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use protocol::envelope::MsgHeader;
use protocol::signing::{self, PublicKey, SigningError};
use protocol::{Guid, bodies::ClientRegistrationRequest};

pub use protocol::signing::{SIGNED_ENDPOINTS, is_signed_endpoint};

/// The log's file, under the data directory.
pub const KEYS_LOG: &str = "mp/keys.log";

/// Why a message was refused. Answered 403, logged in `MP_Framework.log` (registrations in
/// `MP_RegistrationManager.log`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the message is not signed (no clientauth hook)")]
    NotSigned,
    #[error("the clientauth hook has no {0}")]
    Missing(&'static str),
    #[error("the sender {0:?} is not a registered client")]
    Unregistered(String),
    #[error("the PublicKey is not the key the client registered")]
    ForeignKey,
    #[error("{0}")]
    Signature(#[from] SigningError),
    #[error("the registration has no signing certificate")]
    NoCertificate,
    #[error("the registration has no Data element to verify")]
    NoData,
}

struct Client {
    key: Arc<PublicKey>,
    /// The keyed hash of the `ClientIDSignature` last verified (0: none yet).
    verified_id: AtomicU64,
}

/// The registered clients' keys.
pub struct ClientKeys {
    clients: RwLock<HashMap<Guid, Client>>,
    /// One `Arc` per distinct key: clients sharing a key share it.
    interned: Mutex<HashMap<PublicKey, Arc<PublicKey>>>,
    hasher: std::hash::RandomState,
    log: KeyLog,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeys").field("clients", &self.len()).finish_non_exhaustive()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ClientKeys {
    /// Opens (or starts) `data_dir/mp/keys.log` and loads what it holds.
    pub fn open(data_dir: &Path) -> io::Result<ClientKeys> {
        let path = data_dir.join(KEYS_LOG);
        let (frames, end) = load(&path)?;
        let log = KeyLog::open(&path, end)?;
        let keys = ClientKeys {
            clients: RwLock::new(HashMap::with_capacity(frames.len())),
            interned: Mutex::new(HashMap::new()),
            hasher: std::hash::RandomState::new(),
            log,
        };
        for (client, key) in frames {
            keys.remember(client, key);
        }
        Ok(keys)
    }

    /// Clients with a key.
    pub fn len(&self) -> usize {
        read(&self.clients).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remember(&self, client: Guid, key: PublicKey) {
        let key = Arc::clone(lock(&self.interned).entry(key.clone()).or_insert_with(|| Arc::new(key)));
        let mut clients = self.clients.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        clients.insert(client, Client { key, verified_id: AtomicU64::new(0) });
    }

    /// Keeps `client`'s key, durably: returns once it is on disk (blocking; frames written
    /// meanwhile share the sync). Nothing is written when the client already has this key.
    pub fn keep(&self, client: Guid, key: PublicKey) -> io::Result<()> {
        if read(&self.clients).get(&client).is_some_and(|c| *c.key == key) {
            return Ok(());
        }
        self.log.append(&frame(client, &key.to_blob()))?;
        self.remember(client, key);
        Ok(())
    }

    /// Checks a registration: its certificate's key signed its `Data` element. Returns the key.
    pub fn check_registration(xml: &str, request: &ClientRegistrationRequest) -> Result<PublicKey, Refusal> {
        if request.signing_certificate.is_empty() {
            return Err(Refusal::NoCertificate);
        }
        let key = PublicKey::from_certificate_hex(&request.signing_certificate)?;
        let messages = signing::registration_messages(xml);
        if messages.is_empty() {
            return Err(Refusal::NoData);
        }
        let mut last = Refusal::NoData;
        for message in &messages {
            match key.verify("the registration's SignatureValue", message, &request.signature) {
                Ok(_) => return Ok(key),
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }

    /// Checks a message to a signed endpoint; `payload` is what its `PayloadSignature` covers
    /// (`protocol::envelope::Request::payload`).
    pub fn check(&self, header: &MsgHeader, payload: &[u8]) -> Result<(), Refusal> {
        let hook = header.hook(signing::CLIENT_AUTH).ok_or(Refusal::NotSigned)?;
        let property =
            |name: &'static str| hook.property(name).filter(|v| !v.is_empty()).ok_or(Refusal::Missing(name));
        let (public, id_signature, payload_signature) =
            (property("PublicKey")?, property("ClientIDSignature")?, property("PayloadSignature")?);
        let unregistered = || Refusal::Unregistered(header.source_id.clone());
        let client = Guid::parse_sms_id(&header.source_id).map_err(|_| unregistered())?;
        let key = {
            let clients = read(&self.clients);
            let known = clients.get(&client).ok_or_else(unregistered)?;
            if PublicKey::from_blob_hex(public)? != *known.key {
                return Err(Refusal::ForeignKey);
            }
            let id_hash = self.hasher.hash_one(id_signature).max(1);
            if known.verified_id.load(Ordering::Relaxed) != id_hash {
                let message = signing::client_id_message(&header.source_id);
                known.key.verify("ClientIDSignature", &message, id_signature)?;
                known.verified_id.store(id_hash, Ordering::Relaxed);
            }
            Arc::clone(&known.key)
        };
        key.verify("PayloadSignature", payload, payload_signature)?;
        Ok(())
    }
}

fn frame(client: Guid, blob: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(blob.len().saturating_add(16));
    body.extend_from_slice(&client.0.to_le_bytes());
    body.extend_from_slice(blob);
    let mut out = Vec::with_capacity(body.len().saturating_add(8));
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The frames of `bytes` and where the last whole one ends. A torn or damaged last frame ends
/// the log; damage before another frame is an error naming its offset.
pub fn decode(bytes: &[u8]) -> Result<(Vec<(Guid, PublicKey)>, usize), String> {
    let mut frames = Vec::new();
    let mut at = 0usize;
    while let Some(rest) = bytes.get(at..) {
        let Some((len, rest)) = rest.split_first_chunk::<4>() else { break };
        let Some((crc, rest)) = rest.split_first_chunk::<4>() else { break };
        let len = u32::from_le_bytes(*len) as usize;
        let Some(body) = rest.get(..len) else { break };
        let end = at.saturating_add(8).saturating_add(len);
        let damaged = |why: &str| Err(format!("{KEYS_LOG} is damaged at byte {at}: {why}"));
        let parsed = match body.split_first_chunk::<16>() {
            Some((id, blob)) if crc32fast::hash(body) == u32::from_le_bytes(*crc) => {
                PublicKey::from_blob(blob)
                    .map(|key| (Guid(u128::from_le_bytes(*id)), key))
                    .map_err(|e| e.to_string())
            }
            _ => Err("its checksum does not match".to_owned()),
        };
        match parsed {
            Ok(frame) => frames.push(frame),
            // The last frame, torn while it was written.
            Err(_) if end == bytes.len() => break,
            Err(why) => return damaged(&why),
        }
        at = end;
    }
    Ok((frames, at))
}

fn load(path: &Path) -> io::Result<(Vec<(Guid, PublicKey)>, u64)> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let (frames, end) = decode(&bytes).map_err(io::Error::other)?;
    Ok((frames, end as u64))
}

/// The append-only file, group-committed.
struct KeyLog {
    path: PathBuf,
    /// The file and how many frames were written to it.
    writer: Mutex<(File, u64)>,
    /// A handle for syncing, and how many frames are known to be on disk.
    synced: Mutex<(File, u64)>,
}

impl KeyLog {
    fn open(path: &Path, end: u64) -> io::Result<KeyLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        // A torn last frame goes: the next one starts where the log ends.
        file.set_len(end)?;
        let mut writer = file.try_clone()?;
        std::io::Seek::seek(&mut writer, io::SeekFrom::Start(end))?;
        Ok(KeyLog { path: path.to_owned(), writer: Mutex::new((writer, 0)), synced: Mutex::new((file, 0)) })
    }

    fn append(&self, frame: &[u8]) -> io::Result<()> {
        let mine = {
            let mut w = lock(&self.writer);
            let before = std::io::Seek::stream_position(&mut w.0)?;
            if let Err(e) = w.0.write_all(frame) {
                // Leave no torn frame for the next one to follow.
                let _ = w.0.set_len(before);
                let _ = std::io::Seek::seek(&mut w.0, io::SeekFrom::Start(before));
                return Err(io::Error::new(e.kind(), format!("{}: {e}", self.path.display())));
            }
            w.1 = w.1.saturating_add(1);
            w.1
        };
        let mut s = lock(&self.synced);
        if s.1 < mine {
            // Everything written so far goes with this sync.
            let upto = lock(&self.writer).1;
            s.0.sync_data().map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
            s.1 = upto;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(bits: usize, seed: u8) -> PublicKey {
        // A blob of any modulus is a key to the log (which never verifies with it).
        let mut blob = signing::from_hex("0602000000A4000052534131").expect("hex");
        blob.extend_from_slice(&(bits as u32).to_le_bytes());
        blob.extend_from_slice(&65537u32.to_le_bytes());
        blob.extend((0..bits / 8).map(|i| (i as u8).wrapping_mul(seed) | 1));
        *blob.last_mut().expect("a modulus") = 0xC1; // the top byte: a key of the full size
        PublicKey::from_blob(&blob).expect("a blob")
    }

    #[test]
    fn keys_survive_a_restart_and_a_torn_frame() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let keys = ClientKeys::open(dir.path()).expect("opens");
            keys.keep(Guid(1), key(2048, 3)).expect("kept");
            keys.keep(Guid(2), key(2048, 3)).expect("kept");
            keys.keep(Guid(1), key(1024, 5)).expect("kept");
        }
        let path = dir.path().join(KEYS_LOG);
        let whole = std::fs::metadata(&path).expect("log").len();
        // A frame cut short, as a crash mid-write leaves it.
        let mut f = OpenOptions::new().append(true).open(&path).expect("log");
        f.write_all(&frame(Guid(3), &key(2048, 7).to_blob())[..100]).expect("written");
        drop(f);
        let keys = ClientKeys::open(dir.path()).expect("opens");
        assert_eq!(keys.len(), 2);
        assert_eq!(*read(&keys.clients)[&Guid(1)].key, key(1024, 5));
        assert_eq!(std::fs::metadata(&path).expect("log").len(), whole);
        keys.keep(Guid(3), key(2048, 7)).expect("kept");
        drop(keys);
        assert_eq!(ClientKeys::open(dir.path()).expect("opens").len(), 3);
    }

    #[test]
    fn damage_before_the_end_is_refused_with_its_offset() {
        let mut bytes = frame(Guid(1), &key(1024, 3).to_blob());
        let second = bytes.len();
        bytes.extend(frame(Guid(2), &key(1024, 5).to_blob()));
        bytes[10] ^= 1;
        assert!(decode(&bytes).unwrap_err().contains("at byte 0"));
        bytes[10] ^= 1;
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(decode(&bytes).map(|(f, end)| (f.len(), end)), Ok((1, second)));
    }

    proptest! {
        // Whatever the writer writes, the reader loads; garbage never panics it.
        #[test]
        fn what_is_written_is_read(clients in proptest::collection::vec((any::<u128>(), 1u8..255, any::<bool>()), 0..8)) {
            let mut bytes = Vec::new();
            let mut want = Vec::new();
            for (id, seed, big) in clients {
                let k = key(if big { 2048 } else { 1024 }, seed);
                bytes.extend(frame(Guid(id), &k.to_blob()));
                want.push((Guid(id), k));
            }
            let (got, end) = decode(&bytes).expect("decodes");
            prop_assert_eq!(end, bytes.len());
            prop_assert_eq!(got, want);
        }

        #[test]
        fn garbage_is_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&bytes);
        }
    }
}
