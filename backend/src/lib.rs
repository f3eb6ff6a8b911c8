//! # backend: sumstorm's management point and site server
//!
//! `backend serve` (`src/main.rs`) runs [`server::run`]: the MP's CCM endpoints and the site API
//! over hyper, the relay writing durable SMX segments, and StateSys applying them.
//!
//! ## Layout
//! - [`server`]: the process: the data-directory lock, accept loop and limits (write deadline,
//!   request-memory budget), routes (CCM faithful and plain, policy body, MPLIST, WSUS catalog,
//!   site API, metrics), the StateSys and summarizer threads, graceful shutdown.
//! - [`mp`]: the MP's message handling over the site model (registration, policy assignments
//!   and body, location, relay check, MP list), without I/O.
//! - [`inbox`]: durable SMX files between the relay and StateSys: checksummed segments of many
//!   Reports, a group-commit writer that acknowledges only after `fdatasync`, crash recovery.
//! - [`statesys`]: the file loop (inboxes in name order, bad files to `corrupt/`, batch log
//!   lines, checkpoint then delete), per-Report processing (MessageTimes bounded by the site
//!   clock), the sharded state store (24-byte entries, newest MessageTime wins, replays change
//!   nothing), serial tracking, checkpoints, and the summarization tasks.
//! - [`site`]: the site model (site file, default site, catalog and syncs, boundary groups), the
//!   sync → STN → Policy Provider chain, and the WSUS location decision.
//! - [`clock`]: site time with a time scale; [`logs`]: the product's two log formats.
//!
//! ## One Report's way through
//! `server::routes` reads the body (size and time limits, charged to the request-memory budget)
//! → `protocol::envelope::decode_request_charged`
//! → `mp::dispatch` scans it (400 if malformed) → `inbox::commit::GroupCommit::submit` → the
//! writer thread appends it to the open segment and `fdatasync`s the batch → the ack completes the
//! request (`NoReply`) → the segment is sealed and StateSys notified → `statesys::worker` applies
//! it through `statesys::process` into `statesys::store` → a checkpoint makes the store durable
//! and the segment is deleted.

pub mod clock;
pub mod faults;
#[cfg(test)]
mod fixtures;
#[doc(hidden)]
pub mod fuzzing;
pub mod inbox;
pub mod logs;
pub mod mp;
pub mod server;
pub mod site;
pub mod statesys;
