//! StateSys: applies state messages to the store and summarizes them.
//!
//! - [`service`]: StateSys's thread (wake on a sealed segment or the poll, the pause, batches,
//!   the pace, checkpoint cadence) and its counters; the process holds only its handle.
//! - [`worker`]: the file loop: inboxes in name order, bad files to `corrupt/`, batch log lines,
//!   checkpoint then delete, crash recovery.
//! - [`handoff`]: co-located, the relay's scanned Reports handed to StateSys in memory, the
//!   segment serving as the write-ahead log.
//! - [`process`]: one Report into the store (scan, resolve against the catalog, judge
//!   MessageTimes against the site clock, apply).
//! - [`state`]: the data: the 24-byte (client, update) state, scan state, records, clients.
//! - [`store`]: the sharded state store and the apply rule.
//! - [`checkpoint`]: the store's durable form: a log of what changed at each checkpoint, and a
//!   base compacted from it in the background.
//! - [`serials`]: per-client serial numbers seen and the gaps between them.
//! - [`summary`]: the incremental, sharded counting behind the summaries.
//! - [`convergence`]: after each sync, when clients' results were applied and first shown in the
//!   SUM Update Status view.
//! - [`tasks`]: the five summarization tasks and the views they publish; [`schedule`]: the
//!   thread that runs them on their site-clock schedules or on demand.

pub mod checkpoint;
pub mod convergence;
pub mod handoff;
pub mod process;
pub mod schedule;
pub mod serials;
pub mod service;
pub mod state;
pub mod store;
pub mod summary;
pub mod tasks;
pub mod worker;

use std::path::{Path, PathBuf};

/// Where StateSys reads and writes.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `inboxes/auth/statesys.box`
    pub statesys_box: PathBuf,
    /// `state/`
    pub state: PathBuf,
}

impl Paths {
    /// Where they are in a data directory: `inboxes/auth/statesys.box` and `state/`.
    pub fn in_data_dir(data: &Path) -> Paths {
        Paths { statesys_box: data.join("inboxes/auth/statesys.box"), state: data.join("state") }
    }

    pub fn incoming(&self) -> PathBuf {
        self.statesys_box.join("incoming")
    }

    /// The inbox folders in the order StateSys takes them.
    pub fn inboxes(&self) -> [PathBuf; 3] {
        let incoming = self.incoming();
        [incoming.join("high"), incoming.clone(), incoming.join("low")]
    }

    pub fn corrupt(&self) -> PathBuf {
        self.statesys_box.join("corrupt")
    }
}
