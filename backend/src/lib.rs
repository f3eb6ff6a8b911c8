//! # backend: sumstorm's management point and site server
//!
//! `backend serve` (`src/main.rs`) runs [`server::run`]: the MP's CCM endpoints and the site API
//! over hyper, the relay writing durable SMX segments, and StateSys applying them.
//!
//! ## Layout
//! Each stage of `shared/spec/flow.md` is a module that owns its thread, its counters and its
//! on-disk format; [`server`] starts them, routes requests to them and stops them.
//! - [`server`]: the process: configuration, the data-directory lock, accept loop and limits
//!   (write deadline, request-memory budget), HTTPS and PKI mode (`server::tls`), HTTP
//!   plumbing, shutdown; `server/routes/` answers by audience (the MP's endpoints, the read-only
//!   site API, admin calls, metrics).
//! - [`pki`]: `backend pki init`, a test CA with server and client certificates.
//! - [`mp`]: the MP's message handling over the site model (registration, policy assignments
//!   and body, location, discovery data records, relay check, MP list), without I/O, and the
//!   relay's counters; client keys, the certificates `.sms_aut` hands out, NTLM, MPFDM.
//! - [`inbox`]: durable SMX files between the relay and StateSys: checksummed segments of many
//!   Reports, a group-commit writer thread that acknowledges only after `fdatasync`, discovery
//!   records, crash recovery.
//! - [`statesys`]: StateSys's thread and counters (`service`), the file loop (`worker`),
//!   per-Report processing, the sharded store and its data types, checkpoints, serials, and the
//!   summarization tasks with their schedule's thread, and compliance convergence.
//! - [`site`]: the site model (site file, default site, catalog and syncs, boundary groups), the
//!   running site (`live`: syncs through WSyncMgr → SMSDBMON → Policy Provider, and the Policy
//!   Provider's polling thread), and the WSUS location decision.
//! - [`sitedb`]: the PostgreSQL site database (`--database`): the product's views, kept current
//!   from the store's checkpoint frames by its own thread, never in ingestion's path.
//! - [`counters`]: one list of every stage's numbers, rendered as the status API and as metrics.
//! - [`clock`]: site time with a time scale; [`logs`]: the product's two log formats;
//!   [`faults`]: disk trouble on demand for tests; [`blockfile`]: appends that skip the page
//!   cache (`O_DIRECT`) for the store's log; [`priority`]: the site server's threads below the
//!   MP's request path.
//!
//! ## One Report's way through
//! `server::routes` reads the body (`server::http`: size and time limits, charged to the
//! request-memory budget) → `protocol::envelope::decode_request_charged` → `server::routes::mp`
//! → `mp::dispatch` scans it (400 if malformed) → `inbox::commit::GroupCommit::submit` → the
//! writer thread appends it to the open segment and `fdatasync`s the batch → the ack completes the
//! request (`NoReply`) → the segment is sealed and StateSys notified
//! (`statesys::service::Notifier`) → the StateSys thread (`statesys::service`) has
//! `statesys::worker` apply it through `statesys::process` into `statesys::store` → a checkpoint
//! makes the store durable and the segment is deleted → the summarizer thread
//! (`statesys::schedule`) runs `statesys::tasks`, which count the change (`statesys::summary`)
//! and publish the views the site API serves.

pub mod blockfile;
pub mod clock;
pub mod counters;
pub mod faults;
#[cfg(test)]
mod fixtures;
#[doc(hidden)]
pub mod fuzzing;
pub mod inbox;
pub mod logs;
pub mod mp;
pub mod pki;
pub mod priority;
pub mod server;
pub mod site;
pub mod sitedb;
pub mod statesys;
