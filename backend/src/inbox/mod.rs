//! The inbox between the MP relay and StateSys: durable SMX files.
//!
//! - [`segment`]: the file format (many Reports per file, checksummed), sealing, and recovery of
//!   a segment torn by a crash.
//! - [`commit`]: the group-commit writer thread the relay hands Reports to; each is acknowledged
//!   only after the `fdatasync` that covers it.
//! - [`adaptive`]: `--inbox-compression auto`, which compresses Reports only while the disk is
//!   the relay's limit, as the writer's commit times tell.
//! - [`discovery`]: the records that make registrations and locations durable beside them.
//! - [`dump`]: `backend inbox dump`, an inbox file printed as the XML its clients sent.

pub mod adaptive;
pub mod commit;
pub mod discovery;
pub mod dump;
pub mod segment;
