//! The store's durable form: a **base** and a **log of changes**, so that a checkpoint costs
//! what changed since the last one, never the whole store.
//!
//! - `state/store.<G>.log`, the log of generation G: each checkpoint appends one frame with the
//!   clients changed since the last one (each client's whole header, and only the entries that
//!   changed, as the store's change tracking marks them) and syncs it (`fdatasync`). A frame is
//!   whole, or it is the last one, torn by a crash, and ignored (the inbox files it would have
//!   covered were not deleted).
//! - `state/store.ckpt`, the base of generation G: every client. Once the log outgrows half the
//!   base (and at least [`Durable::compact_min`]), appends move to log G+1 and a `compactor`
//!   thread writes base G+1 from the live store to `state/store.tmp`, one shard locked at a time,
//!   syncs it, renames it over the old base (which keeps a second name, `state/store.old`),
//!   syncs the directory, and deletes the old base and the older logs a slice at a time
//!   (`remove_gradually`). StateSys never waits for it. The snapshot is fuzzy (shards are
//!   taken at different moments), which is sound: every change after the switch is in log G+1,
//!   whose frames hold the values at their time, so base G+1 then log G+1 replayed in order give
//!   the store as it is.
//! - Loading: the base (generation B; none: empty), then every log of generation ≥ B in order;
//!   older logs, `store.tmp` and `store.old` are deleted. Replaying a frame sets values, so a
//!   crash at any point, compaction included, loads the store of the last whole frame. Bases of
//!   formats 1 and 2 (before the log) load as generation 0.
//!
//! ```text
//! base:   "SUMSTORM-STORE/3\n" | generation u64 | client* | clients u64 | crc32 u32
//! log:    "SUMSTORM-STORELOG/2\n" | generation u64 | zeros to 4096 | frame*
//! frame:  body length u64 | crc32 of the body u32 | body = client* | zeros to a multiple of 4096
//! client: id u128 | name len u16 + bytes | last_seen i64 | retired u8 | location: flag u8
//!         (+ AD site len u16 + bytes, boundary groups u64) | scan: flag u8 (+ time i64,
//!         serial u64, state u8, content_version u32) | serials: flag u8 (+ lo u64, hi u64) |
//!         gaps u16 + (u64, u64)* | entries
//! entries: 0 u8 | count u32 | count × (index u32, state)     the entries named (sparse)
//!        | 1 u8 | count u32 | count × state                  the row from index 0 (dense)
//! state:  time i64 | changed i64 | serial u32 | state u8
//! ```
//! All integers little-endian. A CRC-32 covers the base and each frame. A log's frames start on
//! 4 KiB blocks so that they are written without the page cache ([`crate::blockfile`]), and so is
//! the base (in whole blocks, then cut to its length): nobody reads them before the next start. Logs of format 1 (frames back to back) still load, and
//! one found at start is appended to in its own format until the next compaction.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use protocol::Guid;

use super::serials::Serials;
use super::state::{Client, ScanState, UpdateState};
use super::store::Store;
use crate::blockfile::{BLOCK, BlockBuf, BlockFile, align_up};
use crate::faults::{Disk, Faults};
use crate::site::Location;

const BASE_MAGIC: &[u8] = b"SUMSTORM-STORE/3\n";
const MAGIC_V2: &[u8] = b"SUMSTORM-STORE/2\n";
const MAGIC_V1: &[u8] = b"SUMSTORM-STORE/1\n";
const LOG_MAGIC: &[u8] = b"SUMSTORM-STORELOG/2\n";
const LOG_MAGIC_V1: &[u8] = b"SUMSTORM-STORELOG/1\n";
/// Where a log's first frame starts: format 2 (a block), format 1.
const LOG_HEADER: u64 = BLOCK as u64;
const LOG_HEADER_V1: u64 = (LOG_MAGIC_V1.len() + 8) as u64;
const FRAME_HEADER: usize = 12;
/// The widest row a store has: the largest catalog.
const MAX_STRIDE: usize = crate::site::catalog::MAX_UPDATES;
/// Bytes of one state: time, changed, serial, state.
const STATE_BYTES: usize = 21;
/// A base being compacted is synced this often, so it trickles to the disk instead of landing
/// on it at once (and on the inbox's `fdatasync`).
const COMPACT_SYNC_BYTES: u64 = 32 << 20;
/// A base is written in pieces of about this many bytes.
const BASE_CHUNK: usize = 8 << 20;

/// What a checkpoint (one frame) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// Clients written.
    pub clients: u64,
    /// Bytes appended to the log.
    pub bytes: u64,
    /// What the compaction did, if anything happened to it.
    pub compaction: Option<Compaction>,
}

/// News of the background compaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compaction {
    Started { generation: u64 },
    Done { generation: u64, bytes: u64, took: Duration },
    Failed(String),
}

/// What loading found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The base's generation (0 without one).
    pub generation: u64,
    /// Clients in the base.
    pub base_clients: u64,
    /// Frames replayed from the logs.
    pub frames: u64,
    /// Bytes read: base and logs.
    pub bytes: u64,
    pub took: Duration,
}

/// The store's durable form, open for checkpoints. One per data directory (the process holds
/// its lock).
pub struct Durable {
    dir: PathBuf,
    /// The generation of the log appended to.
    generation: u64,
    log: Log,
    /// The log's length up to its last whole frame.
    log_bytes: u64,
    /// A failed append may have left bytes past `log_bytes`.
    torn: bool,
    /// The last base's length (0: none yet).
    base_bytes: u64,
    /// The frame being written (its header, then its body), or changes taken from the store
    /// that are not durable yet (an append failed): the next checkpoint writes them first.
    pending: BlockBuf,
    compaction: Option<JoinHandle<io::Result<(u64, Duration)>>>,
    /// The log is not compacted before it holds this many bytes.
    pub compact_min: u64,
    /// A failed compaction is tried again once the log has grown past this.
    retry_at: u64,
    faults: Arc<Faults>,
    /// Takes each frame once it is durable (the site database's mirror).
    pub sink: Option<Arc<dyn FrameSink>>,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("generation", &self.generation)
            .field("log_bytes", &self.log_bytes)
            .field("base_bytes", &self.base_bytes)
            .field("compacting", &self.compaction.is_some())
            .finish_non_exhaustive()
    }
}

fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("store.{generation:020}.log"))
}

/// The logs in `dir`, by generation.
fn logs(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let Some(generation) = name
            .to_str()
            .and_then(|n| n.strip_prefix("store.")?.strip_suffix(".log"))
            .and_then(|g| g.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((generation, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// The name a replaced base has while it is taken apart ([`remove_gradually`]).
const OLD_BASE: &str = "store.old";

/// A file the compactor is done with is cut this much at a time before it is unlinked...
const DELETE_SLICE: u64 = 16 << 20;
/// ...with this pause between cuts. Unlinking a file of 800 MB at once held every other
/// `fdatasync` on the filesystem for 90 ms here (ext4: its extents are freed in one go); cut in
/// 16 MiB slices, none waited more than about 10 ms.
const DELETE_PAUSE: Duration = Duration::from_millis(5);

/// Deletes `path` a slice at a time (the compactor's old base and logs: nothing reads them any
/// more, so a crash halfway through only leaves a shorter file to delete).
fn remove_gradually(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    let mut len = file.metadata()?.len();
    while len > DELETE_SLICE {
        len -= DELETE_SLICE;
        file.set_len(len)?;
        std::thread::sleep(DELETE_PAUSE);
    }
    drop(file);
    fs::remove_file(path)
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The log appended to: format 2 (frames on blocks, written directly), or a format 1 log found
/// at start (frames back to back, through the page cache) until the next compaction.
#[derive(Debug)]
enum Log {
    Blocks(BlockFile),
    V1(File),
}

impl Log {
    fn file(&self) -> &File {
        match self {
            Log::Blocks(b) => b.file(),
            Log::V1(f) => f,
        }
    }

    /// Writes the frame in `frame` (header and body) at `at`: the bytes it takes in the log.
    fn append(&mut self, at: u64, frame: &mut BlockBuf) -> io::Result<u64> {
        match self {
            Log::Blocks(b) => {
                let blocks = frame.blocks();
                b.write_blocks(at, blocks)?;
                Ok(blocks.len() as u64)
            }
            Log::V1(f) => {
                f.write_all_at(frame.bytes(), at)?;
                Ok(frame.len() as u64)
            }
        }
    }
}

/// Creates the (empty) log of `generation`, durably.
fn create_log(dir: &Path, generation: u64) -> io::Result<Log> {
    let path = log_path(dir, generation);
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    let mut header = LOG_MAGIC.to_vec();
    header.extend_from_slice(&generation.to_le_bytes());
    BlockFile::write_padded(&file, 0, &header)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(Log::Blocks(BlockFile::open(&path)?))
}

impl Durable {
    /// Loads the store's durable form from `dir` into `store` (a new, empty one) and opens it
    /// for checkpoints.
    pub fn open(dir: &Path, store: &Store, faults: Arc<Faults>) -> Result<(Durable, Loaded), LoadError> {
        let started = Instant::now();
        fs::create_dir_all(dir)?;
        // A base being written, and a replaced base being taken apart (or a second name of the
        // base itself, if the compactor stopped between linking and renaming): neither is read.
        for leftover in ["store.tmp", OLD_BASE] {
            remove_if_there(&dir.join(leftover))?;
        }
        let mut loaded = Loaded::default();
        let base_bytes = match fs::read(dir.join("store.ckpt")) {
            Ok(bytes) => {
                let (generation, clients) = load_base(&bytes, store)?;
                (loaded.generation, loaded.base_clients) = (generation, clients);
                bytes.len() as u64
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        loaded.bytes = base_bytes;
        let mut tail = None;
        for (generation, path) in logs(dir)? {
            if generation < loaded.generation {
                // The base covers it: a compaction ended before it could delete it.
                fs::remove_file(&path)?;
                continue;
            }
            let bytes = fs::read(&path)?;
            let (frames, valid) = replay_log(&bytes, generation, store)?;
            loaded.frames += frames;
            loaded.bytes += bytes.len() as u64;
            tail = Some((generation, path, valid, bytes.starts_with(LOG_MAGIC_V1)));
        }
        let (generation, log, log_bytes) = match tail {
            Some((generation, path, valid, v1)) if valid >= if v1 { LOG_HEADER_V1 } else { LOG_HEADER } => {
                let log = if v1 {
                    Log::V1(OpenOptions::new().read(true).write(true).open(&path)?)
                } else {
                    Log::Blocks(BlockFile::open(&path)?)
                };
                // A torn last frame goes: new frames follow the last whole one.
                log.file().set_len(valid)?;
                log.file().sync_all()?;
                (generation, log, valid)
            }
            // A log whose header was cut short by a crash is begun again.
            Some((generation, ..)) => (generation, create_log(dir, generation)?, LOG_HEADER),
            None => (loaded.generation, create_log(dir, loaded.generation)?, LOG_HEADER),
        };
        loaded.took = started.elapsed();
        let durable = Durable {
            dir: dir.to_path_buf(),
            generation,
            log,
            log_bytes,
            torn: false,
            base_bytes,
            pending: BlockBuf::default(),
            compaction: None,
            compact_min: 64 << 20,
            retry_at: 0,
            sink: None,
            faults,
        };
        Ok((durable, loaded))
    }

    /// Whether changes taken from the store wait to be made durable (an append failed).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The log's length now.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// A checkpoint: appends what changed in `store` since the last one to the log and syncs
    /// it; then starts (or collects) a compaction when one is due. On an error nothing is lost:
    /// the changes are kept and written by the next checkpoint.
    pub fn save(&mut self, store: &Arc<Store>) -> io::Result<Saved> {
        let mut saved = Saved::default();
        if self.pending.is_empty() {
            // The header's place: filled in once the body is known.
            self.pending.extend(&[0; FRAME_HEADER]);
        }
        // Encoded where the write takes it from: in place, on a block.
        let out = self.pending.vec();
        store.take_unsaved(|c, row, listed| {
            saved.clients += 1;
            let which = match listed {
                Some((indexes, states)) => Which::Listed(indexes, states),
                None => Which::Unsaved,
            };
            encode_client(out, c, row, which);
        });
        let frame_len = self.pending.len();
        if frame_len == FRAME_HEADER {
            self.pending.clear();
        } else {
            let at = self.log_bytes;
            let frame = self.pending.bytes_mut();
            let crc = crc32fast::hash(&frame[FRAME_HEADER..]);
            frame[..8].copy_from_slice(&((frame_len - FRAME_HEADER) as u64).to_le_bytes());
            frame[8..FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
            let written = (|| {
                let end = at + self.log.append(at, &mut self.pending)?;
                if self.torn {
                    self.log.file().set_len(end)?;
                }
                self.faults.check(Disk::Checkpoint)?;
                self.log.file().sync_data()?;
                Ok::<_, io::Error>(end)
            })();
            let end = match written {
                Ok(end) => end,
                Err(e) => {
                    // Kept without its padding: the next changes follow the body.
                    self.pending.truncate(frame_len);
                    self.torn = true;
                    return Err(e);
                }
            };
            self.torn = false;
            saved.bytes = end - at;
            self.log_bytes = end;
            match &self.sink {
                Some(sink) => sink.frame(self.pending.take(FRAME_HEADER..frame_len)),
                None => self.pending.clear(),
            }
        }
        saved.compaction = self.compact(store, false)?;
        Ok(saved)
    }

    /// Collects a finished compaction; starts one when the log has outgrown half the base (or
    /// `now`).
    fn compact(&mut self, store: &Arc<Store>, now: bool) -> io::Result<Option<Compaction>> {
        let mut news = None;
        if self.compaction.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(done) = self.compaction.take()
        {
            news = Some(self.collect(done));
        }
        let due = self.log_bytes >= (self.base_bytes / 2).max(self.compact_min).max(self.retry_at);
        if self.compaction.is_none() && (due || now) {
            let generation = self.generation + 1;
            self.log = create_log(&self.dir, generation)?;
            (self.generation, self.log_bytes, self.torn, self.retry_at) = (generation, LOG_HEADER, false, 0);
            let (dir, store, faults) = (self.dir.clone(), Arc::clone(store), Arc::clone(&self.faults));
            self.compaction = Some(
                std::thread::Builder::new()
                    .name("compactor".into())
                    .spawn(move || write_base(&dir, generation, &store, &faults))?,
            );
            news = Some(Compaction::Started { generation });
        }
        Ok(news)
    }

    /// Writes a new base now, whatever the log's length, and waits for it (tests, benches).
    pub fn compact_now(&mut self, store: &Arc<Store>) -> io::Result<Compaction> {
        self.finish();
        self.compact(store, true)?;
        self.finish().ok_or_else(|| io::Error::other("no compaction ran"))
    }

    /// Waits for a compaction under way (at shutdown): what it did.
    pub fn finish(&mut self) -> Option<Compaction> {
        let running = self.compaction.take()?;
        Some(self.collect(running))
    }

    /// What a compaction that has ended did; a failed one is tried again once the log has
    /// grown by another `compact_min`.
    fn collect(&mut self, done: JoinHandle<io::Result<(u64, Duration)>>) -> Compaction {
        let failed = match done.join() {
            Ok(Ok((bytes, took))) => {
                self.base_bytes = bytes;
                return Compaction::Done { generation: self.generation, bytes, took };
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the compactor panicked".into(),
        };
        self.retry_at = self.log_bytes + self.compact_min;
        Compaction::Failed(failed)
    }
}

/// The compactor: base `generation` from the live store, then the older logs deleted. Returns
/// the base's length and how long it took.
fn write_base(dir: &Path, generation: u64, store: &Store, faults: &Faults) -> io::Result<(u64, Duration)> {
    let started = Instant::now();
    let tmp = dir.join("store.tmp");
    File::create(&tmp)?;
    // Around the page cache, as the log's frames: the base is read back only at a start, and a
    // gigabyte of dirty pages would be written back under the inbox's `fdatasync`.
    let mut file = BlockFile::open(&tmp)?;
    let (mut buf, mut crc) = (BlockBuf::default(), crc32fast::Hasher::new());
    let (mut at, mut clients, mut unsynced) = (0u64, 0u64, 0u64);
    buf.extend(BASE_MAGIC);
    buf.extend(&generation.to_le_bytes());
    crc.update(buf.bytes());
    for shard in 0..store.shard_count() {
        let from = buf.len();
        let out = buf.vec();
        // Copied under the shard's lock, written after it.
        store.for_each_in_shard(shard, |c, row| {
            clients += 1;
            encode_client(out, c, row, Which::Known);
        });
        crc.update(&buf.bytes()[from..]);
        if buf.len() >= BASE_CHUNK {
            let written = buf.write_whole_blocks(&mut file, at)?;
            (at, unsynced) = (at + written, unsynced + written);
        }
        if unsynced >= COMPACT_SYNC_BYTES {
            file.file().sync_data()?;
            unsynced = 0;
        }
    }
    buf.extend(&clients.to_le_bytes());
    crc.update(&clients.to_le_bytes());
    buf.extend(&crc.finalize().to_le_bytes());
    let bytes = at + buf.len() as u64;
    file.write_blocks(at, buf.blocks())?;
    // The padding of the last block goes: the base ends with its checksum.
    file.file().set_len(bytes)?;
    faults.check(Disk::Checkpoint)?;
    file.file().sync_all()?;
    drop(file);
    // The base being replaced keeps a second name through the rename, so the rename does not free
    // its hundreds of megabytes at once; it goes a slice at a time once the new one is durable.
    let (base, old) = (dir.join("store.ckpt"), dir.join(OLD_BASE));
    remove_if_there(&old)?;
    let kept = fs::hard_link(&base, &old).is_ok();
    fs::rename(&tmp, &base)?;
    sync_dir(dir)?;
    if kept {
        remove_gradually(&old)?;
    }
    for (older, path) in logs(dir)? {
        if older < generation {
            remove_gradually(&path)?;
        }
    }
    Ok((bytes, started.elapsed()))
}

/// Which entries of a row a client record carries.
#[derive(Clone, Copy)]
enum Which<'a> {
    /// The ones the store listed as changed since the last checkpoint (a log frame), in order,
    /// with their states.
    Listed(&'a [u32], &'a [UpdateState]),
    /// The ones the store marked changed since the last checkpoint (a log frame).
    Unsaved,
    /// Every known one (a base).
    Known,
}

/// A name as `len u16 + bytes`: the store keeps names far shorter (`protocol::names`); this
/// bound only makes sure the length fits, and never cuts inside a character, so the loader's
/// UTF-8 check always passes.
fn put_text(out: &mut Vec<u8>, text: &str) {
    let text = protocol::names::clip(text, u16::MAX as usize);
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// A state as it is written: one copy of a fixed array, not four appends (a frame holds millions).
fn state_bytes(u: &UpdateState) -> [u8; STATE_BYTES] {
    let mut b = [0u8; STATE_BYTES];
    b[..8].copy_from_slice(&u.time.to_le_bytes());
    b[8..16].copy_from_slice(&u.changed.to_le_bytes());
    b[16..20].copy_from_slice(&u.serial.to_le_bytes());
    b[20] = u.state;
    b
}

fn put_state(out: &mut Vec<u8>, u: &UpdateState) {
    out.extend_from_slice(&state_bytes(u));
}

/// A sparse entry: its index, then its state.
fn put_entry(out: &mut Vec<u8>, i: usize, u: &UpdateState) {
    let mut b = [0u8; 4 + STATE_BYTES];
    b[..4].copy_from_slice(&(i as u32).to_le_bytes());
    b[4..].copy_from_slice(&state_bytes(u));
    out.extend_from_slice(&b);
}

fn encode_client(out: &mut Vec<u8>, c: &Client, row: &[UpdateState], which: Which<'_>) {
    out.extend_from_slice(&c.id.0.to_le_bytes());
    put_text(out, &c.netbios_name);
    out.extend_from_slice(&c.last_seen.to_le_bytes());
    out.push(u8::from(c.retired));
    match &c.location {
        None => out.push(0),
        Some(l) => {
            out.push(1);
            put_text(out, &l.ad_site);
            out.extend_from_slice(&l.boundary_groups.to_le_bytes());
        }
    }
    match c.scan {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            out.extend_from_slice(&s.time.to_le_bytes());
            out.extend_from_slice(&s.serial.to_le_bytes());
            out.push(s.state);
            out.extend_from_slice(&s.content_version.to_le_bytes());
        }
    }
    match (c.serials.first(), c.serials.last()) {
        (Some(lo), Some(hi)) => {
            out.push(1);
            out.extend_from_slice(&lo.to_le_bytes());
            out.extend_from_slice(&hi.to_le_bytes());
        }
        _ => out.push(0),
    }
    let gaps = c.serials.missing();
    let gaps = &gaps[..gaps.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(gaps.len() as u16).to_le_bytes());
    for &(a, b) in gaps {
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
    }
    let picked = |u: &UpdateState| match which {
        Which::Unsaved | Which::Listed(..) => u.unsaved,
        Which::Known => u.is_known(),
    };
    let count = match which {
        Which::Listed(indexes, _) => indexes.len(),
        _ => row.iter().filter(|u| picked(u)).count(),
    };
    // Dense when the row costs less than the entries with their indexes.
    let dense = count > 0 && row.len() * STATE_BYTES <= count * (STATE_BYTES + 4);
    if dense {
        let len = row.iter().rposition(|u| picked(u) || u.is_known()).map_or(0, |i| i + 1);
        out.reserve(5 + len * STATE_BYTES);
        out.push(1);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        for u in &row[..len] {
            put_state(out, u);
        }
    } else {
        out.reserve(5 + count * (4 + STATE_BYTES));
        out.push(0);
        out.extend_from_slice(&(count as u32).to_le_bytes());
        match which {
            Which::Listed(indexes, states) => {
                for (&i, u) in indexes.iter().zip(states) {
                    put_entry(out, i as usize, u);
                }
            }
            _ => {
                for (i, u) in row.iter().enumerate().filter(|(_, u)| picked(u)) {
                    put_entry(out, i, u);
                }
            }
        }
    }
}

/// Why the store's durable form could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading the checkpoint: {0}")]
    Io(#[from] io::Error),
    #[error("the checkpoint is damaged: {0}")]
    Damaged(&'static str),
}

struct Reader<'b> {
    b: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], LoadError> {
        let bytes = self.b.get(self.at..self.at + N).ok_or(LoadError::Damaged("truncated"))?;
        self.at += N;
        Ok(bytes.try_into().unwrap_or([0; N]))
    }
    fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, LoadError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, LoadError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, LoadError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, LoadError> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    fn text(&mut self, len: usize, what: &'static str) -> Result<&'b str, LoadError> {
        let bytes = self.b.get(self.at..self.at + len).ok_or(LoadError::Damaged("truncated"))?;
        self.at += len;
        std::str::from_utf8(bytes).map_err(|_| LoadError::Damaged(what))
    }
    fn left(&self) -> usize {
        self.b.len().saturating_sub(self.at)
    }
    fn state(&mut self) -> Result<UpdateState, LoadError> {
        Ok(UpdateState::new(self.i64()?, self.i64()?, self.u32()?, self.u8()?))
    }
    fn location(&mut self) -> Result<Option<Location>, LoadError> {
        Ok(match self.u8()? {
            0 => None,
            _ => {
                let len = self.u16()? as usize;
                let ad_site = Box::from(self.text(len, "AD site")?);
                Some(Location { ad_site, boundary_groups: self.u64()? })
            }
        })
    }
    fn scan_and_serials(&mut self) -> Result<(Option<ScanState>, Serials), LoadError> {
        let scan = match self.u8()? {
            0 => None,
            _ => Some(ScanState {
                time: self.i64()?,
                serial: self.u64()?,
                state: self.u8()?,
                content_version: self.u32()?,
            }),
        };
        let span = match self.u8()? {
            0 => None,
            _ => Some((self.u64()?, self.u64()?)),
        };
        let gaps = (0..self.u16()?)
            .map(|_| Ok((self.u64()?, self.u64()?)))
            .collect::<Result<Vec<_>, LoadError>>()?;
        let serials = Serials::from_parts(span, gaps).ok_or(LoadError::Damaged("serial ranges"))?;
        Ok((scan, serials))
    }
}

/// One client record's entries: the row from index 0 (dense), or the entries named (sparse).
#[derive(Debug, Clone, Copy)]
pub enum Entries<'a> {
    Dense(&'a [UpdateState]),
    Sparse(&'a [(u32, UpdateState)]),
}

/// Reads one client record (format 3). `row` and `sparse` are scratch, and hold its entries.
fn read_client<'s>(
    r: &mut Reader<'_>,
    row: &'s mut Vec<UpdateState>,
    sparse: &'s mut Vec<(u32, UpdateState)>,
) -> Result<(Client, Entries<'s>), LoadError> {
    let id = Guid(u128::from_le_bytes(r.take()?));
    let len = r.u16()? as usize;
    let netbios_name = CompactString::from(r.text(len, "client name")?);
    let last_seen = r.i64()?;
    let retired = r.u8()? != 0;
    let location = r.location()?;
    let (scan, serials) = r.scan_and_serials()?;
    let client = Client { id, netbios_name, scan, serials, last_seen, location, retired };
    let dense = r.u8()?;
    let count = r.u32()? as usize;
    // A count the record cannot hold is damage (and must not become a giant allocation).
    let each = if dense == 1 { STATE_BYTES } else { STATE_BYTES + 4 };
    if dense > 1 || count > MAX_STRIDE || count * each > r.left() {
        return Err(LoadError::Damaged("update count"));
    }
    if dense == 1 {
        row.clear();
        for _ in 0..count {
            row.push(r.state()?);
        }
        Ok((client, Entries::Dense(row)))
    } else {
        sparse.clear();
        for _ in 0..count {
            let index = r.u32()?;
            if index as usize >= MAX_STRIDE {
                return Err(LoadError::Damaged("update index"));
            }
            sparse.push((index, r.state()?));
        }
        Ok((client, Entries::Sparse(sparse)))
    }
}

/// Reads one client record (format 3) and puts it into `store`. `row` and `sparse` are scratch.
fn restore_client(
    r: &mut Reader<'_>,
    store: &Store,
    row: &mut Vec<UpdateState>,
    sparse: &mut Vec<(u32, UpdateState)>,
) -> Result<(), LoadError> {
    match read_client(r, row, sparse)? {
        (client, Entries::Dense(row)) => store.restore(client, row),
        (client, Entries::Sparse(changes)) => store.restore_changes(client, changes),
    }
    Ok(())
}

/// Reads a log frame's body (as [`FrameSink::frame`] gets it): each client record in order, with
/// its entries. An entry whose `time` is [`super::state::NO_TIME`] says the client has no state
/// for that update (any it had is gone).
pub fn read_frame(body: &[u8], mut f: impl FnMut(&Client, Entries<'_>)) -> Result<(), LoadError> {
    let mut r = Reader { b: body, at: 0 };
    let (mut row, mut sparse) = (Vec::new(), Vec::new());
    while r.left() > 0 {
        let (client, entries) = read_client(&mut r, &mut row, &mut sparse)?;
        f(&client, entries);
    }
    Ok(())
}

/// Takes each log frame once it is on disk (the site database's mirror): the store's changes,
/// in order. It must not block.
pub trait FrameSink: Send + Sync + std::fmt::Debug {
    fn frame(&self, body: bytes::Bytes);
}

/// Loads a base into `store`: its generation and client count.
fn load_base(bytes: &[u8], store: &Store) -> Result<(u64, u64), LoadError> {
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err(LoadError::Damaged("truncated"));
    };
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return Err(LoadError::Damaged("checksum mismatch"));
    }
    if body.starts_with(MAGIC_V1) || body.starts_with(MAGIC_V2) {
        return load_v2(body, store).map(|clients| (0, clients));
    }
    if !body.starts_with(BASE_MAGIC) {
        return Err(LoadError::Damaged("not a store checkpoint"));
    }
    let Some((records, count)) = body.split_last_chunk::<8>() else {
        return Err(LoadError::Damaged("truncated"));
    };
    let mut r = Reader { b: records, at: BASE_MAGIC.len() };
    let generation = r.u64()?;
    let (mut row, mut sparse, mut clients) = (Vec::new(), Vec::new(), 0u64);
    while r.left() > 0 {
        restore_client(&mut r, store, &mut row, &mut sparse)?;
        clients += 1;
    }
    if clients != u64::from_le_bytes(*count) {
        return Err(LoadError::Damaged("client count"));
    }
    Ok((generation, clients))
}

/// Replays a log of `generation` into `store`: the frames replayed and the length up to the
/// last whole one. A torn last frame is where the log ends; damage before it is an error.
fn replay_log(bytes: &[u8], generation: u64, store: &Store) -> Result<(u64, u64), LoadError> {
    let v1 = bytes.starts_with(LOG_MAGIC_V1);
    let (header, align) = if v1 { (LOG_HEADER_V1, 1) } else { (LOG_HEADER, BLOCK) };
    if bytes.len() < header as usize {
        // Cut short while it was being created: nothing was ever appended.
        let head = &bytes[..bytes.len().min(LOG_MAGIC.len())];
        let magic = LOG_MAGIC.starts_with(head) || LOG_MAGIC_V1.starts_with(head);
        return if magic { Ok((0, 0)) } else { Err(LoadError::Damaged("not a store log")) };
    }
    let mut r = Reader { b: bytes, at: 0 };
    if !v1 && !bytes.starts_with(LOG_MAGIC) {
        return Err(LoadError::Damaged("not a store log"));
    }
    r.at = LOG_MAGIC.len();
    if r.u64()? != generation {
        return Err(LoadError::Damaged("log generation"));
    }
    r.at = header as usize;
    let (mut row, mut sparse, mut frames) = (Vec::new(), Vec::new(), 0u64);
    while r.left() > 0 {
        let start = r.at;
        let whole = r.left() >= FRAME_HEADER && {
            let len = u64::from_le_bytes(bytes[start..start + 8].try_into().unwrap_or_default());
            len <= (r.left() - FRAME_HEADER) as u64
        };
        if !whole {
            break;
        }
        let len = r.u64()? as usize;
        let crc = r.u32()?;
        let body = &bytes[r.at..r.at + len];
        if crc32fast::hash(body) != crc {
            if (r.at + len).next_multiple_of(align) >= bytes.len() {
                // The last frame, torn by a crash mid-write.
                return Ok((frames, start as u64));
            }
            return Err(LoadError::Damaged("log frame checksum"));
        }
        let mut fr = Reader { b: body, at: 0 };
        while fr.left() > 0 {
            restore_client(&mut fr, store, &mut row, &mut sparse)?;
        }
        // The next frame starts on the next block (format 2); padding a crash cut short is
        // written again by the next frame.
        r.at = (r.at + len).next_multiple_of(align).min(bytes.len());
        frames += 1;
        if align > 1 && r.at == bytes.len() {
            return Ok((frames, align_up((start + FRAME_HEADER + len) as u64)));
        }
    }
    Ok((frames, r.at as u64))
}

/// Loads a base of format 1 or 2 (one file, no log) into `store`: its client count.
///
/// ```text
/// "SUMSTORM-STORE/2\n" | stride: u32 | clients: u64 | per client: id u128 | name len u16 +
///   bytes | last_seen i64 | retired u8 | location | scan | serials | gaps |
///   stride × (time i64, changed i64, serial u32, state u8)
/// ```
/// Format 1 has no `retired` and no `location`.
fn load_v2(body: &[u8], store: &Store) -> Result<u64, LoadError> {
    let v1 = body.starts_with(MAGIC_V1);
    let mut r = Reader { b: body, at: MAGIC_V2.len() };
    let stride = r.u32()? as usize;
    let count = r.u64()?;
    // Every client holds 21 bytes per update: a stride the file cannot hold is damage (and must
    // not become an allocation of gigabytes).
    if stride > MAX_STRIDE || (count > 0 && stride * STATE_BYTES > body.len()) {
        return Err(LoadError::Damaged("update count"));
    }
    let mut row = vec![UpdateState::EMPTY; stride];
    for _ in 0..count {
        let id = Guid(u128::from_le_bytes(r.take()?));
        let len = r.u16()? as usize;
        let netbios_name = CompactString::from(r.text(len, "client name")?);
        let last_seen = r.i64()?;
        let (retired, location) = if v1 { (false, None) } else { (r.u8()? != 0, r.location()?) };
        let (scan, serials) = r.scan_and_serials()?;
        for u in row.iter_mut() {
            *u = r.state()?;
        }
        store.restore(Client { id, netbios_name, scan, serials, last_seen, location, retired }, &row);
    }
    if r.at != body.len() {
        return Err(LoadError::Damaged("trailing bytes"));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statesys::state::{Record, Target};

    /// Every client with its known states; rows compared without trailing empty entries (shards
    /// widen independently).
    fn snapshot(store: &Store) -> Vec<(Client, Vec<UpdateState>)> {
        let mut all = Vec::new();
        store.for_each(|c, row| {
            let known = row.iter().rposition(UpdateState::is_known).map_or(0, |i| i + 1);
            all.push((c.clone(), row[..known].to_vec()));
        });
        all.sort_by_key(|(c, _)| c.id);
        all
    }

    fn record(time: i64, serial: u64, index: u32, state: u8) -> Record {
        Record { time, serial, target: Target::Update { index, state } }
    }

    fn populated() -> Store {
        let store = Store::new(3, 8);
        for c in 0..50u128 {
            let records: Vec<Record> = (0..20u64)
                .map(|k| Record {
                    time: 1_000 * k as i64 + c as i64,
                    serial: 100 + k * (1 + c as u64 % 3),
                    target: match k % 5 {
                        0 => Target::Scan { state: 2 + (k % 2) as u8, content_version: 38 },
                        4 => Target::Other,
                        _ => Target::Update {
                            index: (k % 8) as u32 + if c == 7 { 10 } else { 0 },
                            state: (k % 4) as u8,
                        },
                    },
                })
                .collect();
            store.apply(Guid(c * 0x1234_5678_9ABC), &format!("PC{c}"), &records);
            if c % 4 == 0 {
                let location = Location { ad_site: format!("SITE-{c}").into(), boundary_groups: c as u64 };
                store.discover(Guid(c * 0x1234_5678_9ABC), "", Some(location), 5);
            }
        }
        // A client heard from once, long ago: retired.
        store.discover(Guid(999), "IDLE", None, 1);
        assert_eq!(store.retire_aged(3), 1);
        store
    }

    /// Opens `dir` into a new store.
    fn reopen(dir: &Path) -> (Store, Loaded) {
        let store = Store::new(1, 4);
        let (_, loaded) = Durable::open(dir, &store, Arc::default()).unwrap();
        (store, loaded)
    }

    #[test]
    fn frames_then_a_compacted_base_load_back_the_same_store() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(populated());
        let (mut durable, loaded) = Durable::open(tmp.path(), &Store::new(0, 0), Arc::default()).unwrap();
        assert_eq!(loaded, Loaded { took: loaded.took, ..Loaded::default() });
        let first = durable.save(&store).unwrap();
        assert_eq!(first.clients, 51);
        assert!(!store.has_unsaved());
        assert_eq!(durable.save(&store).unwrap().bytes, 0, "nothing changed, nothing written");

        // One state of one client changes: the frame holds that client and that entry.
        let c = Guid(3 * 0x1234_5678_9ABC);
        store.apply(c, "PC3", &[record(1 << 40, 1 << 20, 1, 3)]);
        let second = durable.save(&store).unwrap();
        assert_eq!(second.clients, 1);
        // (Frames take whole blocks: one change fits in one, every client takes several.)
        assert!(
            second.bytes == BLOCK as u64 && first.bytes >= 5 * BLOCK as u64,
            "{} bytes for one change, {} for all",
            second.bytes,
            first.bytes
        );

        let (loaded, report) = reopen(tmp.path());
        assert_eq!((report.generation, report.base_clients, report.frames), (0, 0, 2));
        let (a, b) = (snapshot(&loaded), snapshot(&store));
        assert!(a.iter().any(|(c, _)| c.retired) && a.iter().any(|(c, _)| c.location.is_some()));
        assert!(b.iter().any(|(_, row)| row.len() > 8), "a widened row is covered");
        assert!(a == b, "the loaded store differs from the saved one");

        // Compacted: a base of generation 1, the older log gone, the same store.
        assert!(matches!(durable.compact_now(&store).unwrap(), Compaction::Done { generation: 1, .. }));
        assert_eq!(logs(tmp.path()).unwrap().iter().map(|(g, _)| *g).collect::<Vec<_>>(), vec![1]);
        let (loaded, report) = reopen(tmp.path());
        assert_eq!((report.generation, report.base_clients, report.frames), (1, 51, 0));
        assert!(snapshot(&loaded) == b);

        // And it keeps working: a newer record still applies, a replay still does not.
        let r = record(1 << 41, 1 << 21, 1, 2);
        assert_eq!(loaded.apply(c, "PC3", &[r]).applied, 1);
        assert_eq!(loaded.apply(c, "PC3", &[r]).stale, 1);
    }

    /// A replaced base is taken apart under its second name and gone once the compaction ends;
    /// a second name left by a compactor stopped between linking and renaming (the base itself)
    /// is dropped at start, the base intact; so are the slices of a half-deleted old base.
    #[test]
    fn replaced_bases_go_and_what_a_stopped_compactor_left_is_dropped_harmlessly() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(populated());
        let (mut durable, _) = Durable::open(tmp.path(), &Store::new(0, 0), Arc::default()).unwrap();
        durable.save(&store).unwrap();
        for generation in 1..=2 {
            let done = durable.compact_now(&store).unwrap();
            assert!(matches!(done, Compaction::Done { generation: g, .. } if g == generation), "{done:?}");
            assert!(!tmp.path().join(OLD_BASE).exists(), "the replaced base is gone");
        }
        let want = snapshot(&store);
        drop(durable);

        // Stopped between the link and the rename: store.old is the base under another name.
        fs::hard_link(tmp.path().join("store.ckpt"), tmp.path().join(OLD_BASE)).unwrap();
        let (loaded, report) = reopen(tmp.path());
        assert_eq!(report.generation, 2);
        assert!(snapshot(&loaded) == want);
        assert!(!tmp.path().join(OLD_BASE).exists() && tmp.path().join("store.ckpt").exists());

        // Stopped while cutting an old base: the part left goes too.
        fs::write(tmp.path().join(OLD_BASE), vec![7u8; 3 * DELETE_SLICE as usize / 2]).unwrap();
        let (loaded, _) = reopen(tmp.path());
        assert!(snapshot(&loaded) == want);
        assert!(!tmp.path().join(OLD_BASE).exists());

        // And the slices: a file of several slices is cut down and gone.
        let big = tmp.path().join("big");
        fs::write(&big, vec![1u8; 2 * DELETE_SLICE as usize + 5]).unwrap();
        remove_gradually(&big).unwrap();
        assert!(!big.exists());
    }

    /// Changes made while the compactor copies the store land in the new log: base and log
    /// replayed give the store as it ended, whatever the interleaving. A log older than the base
    /// (a compaction that ended before deleting it) is not replayed, and goes.
    #[test]
    fn a_fuzzy_base_and_its_log_give_the_live_store() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::new(4, 16));
        let (mut durable, _) = Durable::open(tmp.path(), &Store::new(0, 0), Arc::default()).unwrap();
        durable.compact_min = 0;
        let mut serial = 0;
        for round in 0..40i64 {
            for c in 0..300u128 {
                serial += 1;
                let index = ((c as i64 + round) % 16) as u32;
                store.apply(
                    Guid(c + 1),
                    "PC",
                    &[record(round * 1_000 + c as i64, serial, index, (round % 4) as u8)],
                );
            }
            if round % 7 == 3 {
                store.retire_aged(round * 1_000 - 500);
            }
            durable.save(&store).unwrap();
        }
        durable.finish();
        durable.save(&store).unwrap();
        // One process owns the directory: the reader comes after the writer's compactor ends.
        durable.finish();
        let (loaded, report) = reopen(tmp.path());
        assert!(report.generation > 0, "compactions ran");
        assert!(snapshot(&loaded) == snapshot(&store));
        // An old log put back beside the newer base changes nothing and is deleted.
        let stale = log_path(tmp.path(), 0);
        let mut old = LOG_MAGIC.to_vec();
        old.extend_from_slice(&0u64.to_le_bytes());
        fs::write(&stale, old).unwrap();
        let (again, _) = reopen(tmp.path());
        assert!(snapshot(&again) == snapshot(&store));
        assert!(!stale.exists());
    }

    /// A crash mid-append leaves a torn last frame: loading ends at the frame before, and the
    /// next frame is appended after it. A failed append is written again by the next save.
    #[test]
    fn a_torn_last_frame_is_where_the_log_ends() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::new(2, 8));
        let faults = Arc::new(Faults::default());
        let (mut durable, _) = Durable::open(tmp.path(), &Store::new(0, 0), Arc::clone(&faults)).unwrap();
        store.apply(Guid(1), "A", &[record(10, 1, 0, 2)]);
        durable.save(&store).unwrap();
        let whole = snapshot(&store);
        store.apply(Guid(2), "B", &[record(10, 1, 1, 3)]);
        durable.save(&store).unwrap();
        drop(durable);
        let path = log_path(tmp.path(), 0);
        let bytes = fs::read(&path).unwrap();
        // Frames start on blocks: the second one's data ends before the file's padding.
        let len = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        let second = align_up((BLOCK + FRAME_HEADER + len(BLOCK)) as u64) as usize;
        let end = second + FRAME_HEADER + len(second);
        assert_eq!(bytes.len(), align_up(end as u64) as usize);
        for cut in [1, 5, 13, 40] {
            fs::write(&path, &bytes[..end - cut]).unwrap();
            let (loaded, report) = reopen(tmp.path());
            assert_eq!(report.frames, 1, "cut {cut}");
            assert!(snapshot(&loaded) == whole, "cut {cut}");
            // Torn where the padding is written too (one direct write of both), or flipped.
            let mut torn = bytes.clone();
            torn[end - cut] ^= 0x5A;
            fs::write(&path, &torn).unwrap();
            assert_eq!(reopen(tmp.path()).1.frames, 1, "flip {cut} from the end");
        }
        // Cut in its padding only: the frame is whole.
        fs::write(&path, &bytes[..end]).unwrap();
        assert_eq!(reopen(tmp.path()).1.frames, 2);
        fs::write(&path, &bytes).unwrap();
        // Reopened for appends, then one fails (the disk is full) and the next one retries it.
        let store = Arc::new(Store::new(2, 8));
        let (mut durable, _) = Durable::open(tmp.path(), &store, Arc::clone(&faults)).unwrap();
        store.apply(Guid(3), "C", &[record(20, 2, 2, 1)]);
        faults.set(Disk::Checkpoint, crate::faults::Fault::parse("ENOSPC"));
        assert!(durable.save(&store).is_err());
        assert!(durable.has_pending());
        faults.set(Disk::Checkpoint, None);
        store.apply(Guid(1), "A", &[record(30, 3, 0, 3)]);
        durable.save(&store).unwrap();
        let (loaded, _) = reopen(tmp.path());
        assert!(snapshot(&loaded) == snapshot(&store));
        assert!(loaded.client(Guid(3)).is_some());
    }

    #[test]
    fn damage_is_detected_not_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(populated());
        let (mut durable, _) = Durable::open(tmp.path(), &Store::new(0, 0), Arc::default()).unwrap();
        durable.compact_now(&store).unwrap();
        let base = tmp.path().join("store.ckpt");
        let good = fs::read(&base).unwrap();
        for at in [0, BASE_MAGIC.len() + 2, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            fs::write(&base, &bad).unwrap();
            let result = Durable::open(tmp.path(), &Store::new(0, 0), Arc::default());
            assert!(matches!(result, Err(LoadError::Damaged(_))), "flip at {at}");
        }
        fs::write(&base, &good).unwrap();
        // A frame damaged before the last one is damage, not a torn tail.
        store.apply(Guid(1), "A", &[record(10, 1, 0, 2)]);
        durable.save(&store).unwrap();
        store.apply(Guid(2), "B", &[record(10, 1, 0, 2)]);
        durable.save(&store).unwrap();
        drop(durable);
        let log = log_path(tmp.path(), 1);
        let mut bytes = fs::read(&log).unwrap();
        bytes[LOG_HEADER as usize + FRAME_HEADER + 3] ^= 1;
        fs::write(&log, bytes).unwrap();
        let result = Durable::open(tmp.path(), &Store::new(0, 0), Arc::default());
        assert!(matches!(result, Err(LoadError::Damaged("log frame checksum"))));
    }

    /// A base of format 2 (one file, no log) still loads, as generation 0.
    #[test]
    fn a_format_2_base_loads() {
        let mut body = MAGIC_V2.to_vec();
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&7u128.to_le_bytes());
        body.extend_from_slice(&2u16.to_le_bytes());
        body.extend_from_slice(b"PC");
        body.extend_from_slice(&50i64.to_le_bytes());
        body.extend_from_slice(&[0, 0, 0, 0]); // not retired, no location, no scan, no serials
        body.extend_from_slice(&0u16.to_le_bytes());
        for (time, state) in [(i64::MIN, 0u8), (40, 3)] {
            body.extend_from_slice(&time.to_le_bytes());
            body.extend_from_slice(&time.to_le_bytes());
            body.extend_from_slice(&9u32.to_le_bytes());
            body.push(state);
        }
        body.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("store.ckpt"), body).unwrap();
        let (store, loaded) = reopen(tmp.path());
        assert_eq!((loaded.generation, loaded.base_clients), (0, 1));
        let (c, row) = store.client(Guid(7)).unwrap();
        assert_eq!((c.netbios_name.as_str(), row[1].state, row[0].is_known()), ("PC", 3, false));
    }

    /// Whatever the writers take, the loader loads: clients named anything (any script, any
    /// length, a name cut at 65,535 bytes falling inside a character), anywhere, with any
    /// serials, states and times, at any stride up to the widest catalog, in a base and in a
    /// log frame.
    mod writer_and_loader_agree {
        use super::*;
        use proptest::prelude::*;

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                ".{0,40}",
                (65_500usize..65_540, any::<char>()).prop_map(|(n, c)| format!("{}{c}", "A".repeat(n))),
                (0usize..70_000).prop_map(|n| "é".repeat(n / 2)),
            ]
        }

        fn client() -> impl Strategy<Value = (Client, Vec<UpdateState>)> {
            (
                any::<u128>(),
                name(),
                proptest::option::of((name(), any::<u64>())),
                proptest::option::of((any::<i64>(), any::<u64>(), any::<u8>(), any::<u32>())),
                proptest::collection::vec(any::<u64>(), 0..80),
                any::<i64>(),
                any::<bool>(),
                proptest::collection::vec((any::<i64>(), any::<i64>(), any::<u32>(), any::<u8>()), 0..40),
            )
                .prop_map(
                    |(id, netbios_name, location, scan, serials, last_seen, retired, row)| {
                        let mut seen = Serials::default();
                        for s in serials {
                            seen.record(s);
                        }
                        let client = Client {
                            id: Guid(id),
                            netbios_name: netbios_name.into(),
                            scan: scan.map(|(time, serial, state, content_version)| ScanState {
                                time,
                                serial,
                                state,
                                content_version,
                            }),
                            serials: seen,
                            last_seen,
                            location: location
                                .map(|(s, g)| Location { ad_site: s.into(), boundary_groups: g }),
                            retired,
                        };
                        (client, row.into_iter().map(|(t, c, s, st)| UpdateState::new(t, c, s, st)).collect())
                    },
                )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
            #[test]
            fn whatever_is_saved_loads(
                clients in proptest::collection::vec(client(), 0..6),
                stride in 0usize..50,
                base in any::<bool>(),
            ) {
                let store = Arc::new(Store::new(2, stride));
                for (c, row) in &clients {
                    store.restore(c.clone(), row);
                }
                let tmp = tempfile::tempdir().unwrap();
                let (mut durable, _) = Durable::open(tmp.path(), &Store::new(0, 0), Arc::default()).unwrap();
                if base {
                    durable.compact_now(&store).unwrap();
                } else {
                    store.mark_all_unsaved();
                    durable.save(&store).unwrap();
                }
                let loaded = Store::new(1, 0);
                let opened = Durable::open(tmp.path(), &loaded, Arc::default());
                prop_assert!(opened.is_ok(), "{:?}", opened.err());
                prop_assert_eq!(loaded.clients(), store.clients());
                // The last client of each ID is the one kept.
                let kept: std::collections::HashMap<Guid, &Client> = clients.iter().map(|(c, _)| (c.id, c)).collect();
                for c in kept.values() {
                    let (back, _) = loaded.client(c.id).unwrap();
                    prop_assert!(c.netbios_name.starts_with(back.netbios_name.as_str()));
                    let room = c.netbios_name.len().min(u16::MAX as usize);
                    prop_assert!(back.netbios_name.len() <= room && back.netbios_name.len() + 4 > room);
                    let (want, got) = (store.client(c.id).unwrap().1, loaded.client(c.id).unwrap().1);
                    let known = |row: &[UpdateState]| row.iter().enumerate().filter(|(_, u)| u.is_known()).map(|(i, u)| (i, *u)).collect::<Vec<_>>();
                    prop_assert_eq!(known(&want), known(&got));
                }
            }
        }

        /// The widest row a store can have (the largest catalog) is written and loaded.
        #[test]
        fn the_widest_catalog_loads() {
            let store = Arc::new(Store::new(0, 4));
            let last = crate::site::catalog::MAX_UPDATES as u32 - 1;
            store.apply(Guid(1), "PC", &[record(5, 1, last, 3)]);
            let tmp = tempfile::tempdir().unwrap();
            let (mut durable, _) = Durable::open(tmp.path(), &Store::new(0, 0), Arc::default()).unwrap();
            durable.save(&store).unwrap();
            durable.compact_now(&store).unwrap();
            let (loaded, _) = reopen(tmp.path());
            assert_eq!(loaded.client(Guid(1)).unwrap().1[last as usize].state, 3);
        }
    }

    /// What a loader sees past the checksum is whatever the file holds: any bytes after the
    /// magic of a base (any format) or inside a log frame, with valid CRCs, and any byte changes
    /// of a real base with its CRC fixed up, load or fail with `Damaged`; never a panic, never
    /// a giant allocation.
    mod garbage {
        use super::*;
        use proptest::prelude::*;

        fn load_base_bytes(body: &[u8]) -> Result<(u64, u64), LoadError> {
            let mut bytes = body.to_vec();
            bytes.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
            load_base(&bytes, &Store::new(1, 0))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
            #[test]
            fn arbitrary_bodies(tail in proptest::collection::vec(any::<u8>(), 0..2048), format in 1u8..4) {
                let mut body = [MAGIC_V1, MAGIC_V2, BASE_MAGIC][format as usize - 1].to_vec();
                body.extend_from_slice(&tail);
                let _ = load_base_bytes(&body);
            }

            #[test]
            fn arbitrary_frames(frame in proptest::collection::vec(any::<u8>(), 0..2048), v1: bool) {
                let mut log = if v1 { LOG_MAGIC_V1 } else { LOG_MAGIC }.to_vec();
                log.extend_from_slice(&5u64.to_le_bytes());
                if !v1 {
                    log.resize(LOG_HEADER as usize, 0);
                }
                log.extend_from_slice(&(frame.len() as u64).to_le_bytes());
                log.extend_from_slice(&crc32fast::hash(&frame).to_le_bytes());
                log.extend_from_slice(&frame);
                let _ = replay_log(&log, 5, &Store::new(1, 0));
            }

            #[test]
            fn changed_bases(changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
                let tmp = tempfile::tempdir().unwrap();
                let store = Arc::new(populated());
                let (mut durable, _) = Durable::open(tmp.path(), &Store::new(0, 0), Arc::default()).unwrap();
                durable.compact_now(&store).unwrap();
                let bytes = fs::read(tmp.path().join("store.ckpt")).unwrap();
                let mut body = bytes[..bytes.len() - 4].to_vec();
                for (at, b) in changes {
                    let i = BASE_MAGIC.len() + at.index(body.len() - BASE_MAGIC.len());
                    body[i] = b;
                }
                let _ = load_base_bytes(&body);
            }
        }
    }
}
