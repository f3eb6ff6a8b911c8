//! StateSys: applies state messages to the store.
//!
//! - [`checkpoint`]: the store's durable form, written atomically and checksummed.
//! - [`process`]: one Report into the store (scan, resolve against the catalog, apply).
//! - [`store`]: the sharded state store and the apply rule.
//! - [`serials`]: per-client serial numbers seen and the gaps between them.
//!
//! Still to come (issue 3): reading the inboxes in name order, processing threads, when to
//! checkpoint and delete processed files, the per-batch log lines.

pub mod checkpoint;
pub mod process;
pub mod serials;
pub mod store;
