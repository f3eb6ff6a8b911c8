//! StateSys: applies state messages to the store.
//!
//! - [`checkpoint`]: the store's durable form, written atomically and checksummed.
//! - [`process`]: one Report into the store (scan, resolve against the catalog, judge
//!   MessageTimes against the site clock, apply).
//! - [`store`]: the sharded state store and the apply rule.
//! - [`worker`]: the file loop: inboxes in name order, bad files to `corrupt/`, batch log lines,
//!   checkpoint then delete, crash recovery.
//! - [`serials`]: per-client serial numbers seen and the gaps between them.
//! - [`summary`] and [`tasks`]: the summarization tasks and the views they build.
//!
//! The thread that drives [`worker`] (notification plus polling, the pause, when to checkpoint)
//! and the summarizer's schedule live in `crate::server` for now.

pub mod checkpoint;
pub mod process;
pub mod serials;
pub mod store;
pub mod summary;
pub mod tasks;
pub mod worker;
