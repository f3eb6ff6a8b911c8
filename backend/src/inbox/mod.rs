//! The inbox between the MP relay and StateSys: durable SMX files.
//!
//! - [`segment`]: the file format (many Reports per file, checksummed), sealing, and recovery of
//!   a segment torn by a crash.
//! - [`commit`]: the group-commit writer thread the relay hands Reports to; each is acknowledged
//!   only after the `fdatasync` that covers it.

pub mod commit;
pub mod segment;
