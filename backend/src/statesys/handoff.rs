//! Co-located relay to StateSys in memory: each Report the relay made durable is handed over
//! already scanned ([`Scanned`]), so StateSys applies it without reading the segment back or
//! scanning it again. The segment is the write-ahead log: once every record of a sealed segment
//! came this way, StateSys deletes it after its next checkpoint without ever reading it.
//!
//! Whatever does not come this way is read from its file as before: a segment some of whose
//! records were not handed over (the queue was past [`QUEUE_REPORTS`], a write failed), a
//! remote MP's files (they arrive through MPFDM), files dropped in the inbox by hand, and what a
//! crash left. Applying a record twice changes nothing, so a Report both handed over and read
//! back is harmless.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;

use super::process::Scanned;

/// Reports handed over and not yet applied, at most (about 7 KB each at 150 state messages):
/// past this, StateSys is behind and reads the files instead.
pub const QUEUE_REPORTS: u64 = 8192;

/// One record of a segment, as the relay has it.
#[derive(Debug)]
pub enum Parsed {
    /// A Report, scanned.
    Report(Box<Scanned>),
    /// A record the store already holds (discovery: the MP applies it before writing it).
    Applied,
    /// A discovery record for StateSys to apply (the store was still loading when the MP heard
    /// from the client).
    Discovery(crate::inbox::discovery::Discovery),
}

/// What StateSys's thread is woken with.
#[derive(Debug)]
pub enum Wake {
    /// Look at the inboxes (the stop, or a test).
    Look,
    /// Records now durable in `segment` (its `.part` path), opened at site time `opened` (µs).
    Durable { segment: PathBuf, opened: i64, records: Vec<Parsed> },
    /// A segment was sealed at `path`; `complete` when every record in it came as `Durable`.
    Sealed { path: PathBuf, complete: bool },
}

/// The relay's side: hands records over while StateSys keeps up.
#[derive(Debug, Clone)]
pub struct Handoff {
    wake: Sender<Wake>,
    /// Reports handed over and not yet applied.
    queued: Arc<AtomicU64>,
}

impl Handoff {
    pub fn new(wake: Sender<Wake>, queued: Arc<AtomicU64>) -> Handoff {
        Handoff { wake, queued }
    }

    /// Hands over `records`, durable in `segment` opened at `opened`; false (and nothing handed
    /// over) when StateSys is too far behind or gone: the segment must then be read.
    pub fn durable(&self, segment: &std::path::Path, opened: i64, records: Vec<Parsed>) -> bool {
        let reports = records.iter().filter(|r| matches!(r, Parsed::Report(_))).count() as u64;
        if self.queued.load(Ordering::Relaxed) + reports > QUEUE_REPORTS {
            return false;
        }
        self.queued.fetch_add(reports, Ordering::Relaxed);
        if self.wake.send(Wake::Durable { segment: segment.to_path_buf(), opened, records }).is_err() {
            self.queued.fetch_sub(reports, Ordering::Relaxed);
            return false;
        }
        true
    }
}
