//! # backend: sumstorm's management point and site server
//!
//! Built so far: the pieces every component shares.
//! - [`clock`]: site time with a time scale, on which every product interval runs.
//! - [`logs`]: component logs in the product's two formats, rolled over at 250,000 bytes.
//! - [`inbox`]: durable SMX files between the relay and StateSys: checksummed segments of many
//!   Reports, a group-commit writer that acknowledges only after `fdatasync`, crash recovery.
//! - [`mp`]: the MP's message handling over the site model (registration, policy assignments
//!   and body, location, relay check, MP list), without I/O.
//! - [`statesys`]: the sharded state store (32 bytes per client × update, newest MessageTime
//!   wins, replays change nothing) and per-client serial tracking.
//! - [`site`]: the site model (site file, default site, catalog and syncs, boundary groups) and
//!   the WSUS location decision.
//!
//! Still to come (issues 3 and 4, `shared/spec/contract.md` §2): the MP's HTTP side (the
//! endpoints over [`mp`], the relay on top of [`inbox`], MP file dispatch), the runtime that drives
//! [`site::chain`], StateSys's processing (inboxes, threads on the zero-copy scanner of
//! [`protocol::report`], checkpoints), summarization, `backend::run` and
//! the `backend serve` binary. There is no binary yet, on purpose: a binary that exists must do
//! what its `--help` says.

pub mod clock;
pub mod inbox;
pub mod logs;
pub mod mp;
pub mod server;
pub mod site;
pub mod statesys;
