//! StateSys: applies state messages to the store.
//!
//! - [`process`]: one Report into the store (scan, resolve against the catalog, apply).
//! - [`store`]: the sharded state store and the apply rule.
//! - [`serials`]: per-client serial numbers seen and the gaps between them.
//!
//! Still to come (issue 3): reading the inboxes in name order, processing threads, checkpoints,
//! the per-batch log lines.

pub mod process;
pub mod serials;
pub mod store;
