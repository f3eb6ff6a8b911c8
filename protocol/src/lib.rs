//! # protocol: the CCM wire formats sumstorm's MP, StateSys and load generator share
//!
//! ## Layout
//! - [`envelope`]: the `CCM_POST` multipart request (UTF-16LE `Msg` header + zlib or raw UTF-16LE
//!   body), the two-part sync reply and the async `NoReply` reply. UTF-16 and zlib are handled
//!   here, at the edge ([`utf16`]); everything after it is UTF-8.
//! - [`report`]: the state-message `Report`, the hot path. [`report::scan()`] is a zero-copy
//!   scanner that pushes each record into a [`report::ReportSink`]; [`report::reference`] is the
//!   quick-xml oracle it is tested against; [`report::ReportWriter`] writes Reports from templates.
//! - [`bodies`]: the low-rate message bodies (WSUS location, registration, policy assignments, the
//!   UpdateSource policy, the MP list), read into owned structs through [`xml::Element`].
//! - [`signing`]: client signing (wire.md §6): CryptoAPI public-key blobs, what a registration,
//!   a `ClientIDSignature` and a `PayloadSignature` cover, signing and verifying in both paddings.
//! - Helpers: [`guid`], [`cimtime`] (CIM and ISO datetimes), [`statenames`] (`SR_StateNames`),
//!   [`names`] (how long the names clients choose may be), [`units`] (spans of time as the site
//!   file and profiles write them).
//!
//! ## How a state message travels through this crate
//! ```text
//! client:  ReportWriter ─► utf16::encode ─► envelope::build_request (zlib) ─► HTTP body
//! MP:      HTTP body ─► envelope::decode_request (inflate, UTF-16 → UTF-8 once) ─► Report text
//! StateSys: Report text ─► report::scan ─► ReportSink::on_state_message (borrowed fields)
//! ```
//! This crate does no I/O and depends on neither tokio, actix nor hyper.

pub mod bodies;
pub mod cimtime;
pub mod envelope;
#[doc(hidden)]
pub mod fuzzing;
pub mod guid;
pub mod names;
pub mod report;
pub mod signing;
pub mod statenames;
pub mod units;
pub mod utf16;
pub mod xml;

pub use cimtime::Timestamp;
pub use guid::{Guid, GuidStyle};
