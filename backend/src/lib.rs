//! # backend: sumstorm's management point and site server
//!
//! This crate is empty today. It will hold the MP (location manager, policy, relay endpoint
//! writing durable SMX files, MP file dispatch), the site (sync → STN → Policy Provider chain,
//! catalog, boundaries) and StateSys (inboxes, processing on the zero-copy scanner of
//! [`protocol::report`], the sharded state store, summarization), as `backend::run` plus a
//! `backend serve` binary: see issues 3 and 4 and `shared/spec/contract.md` §2.
//!
//! It has no binary yet, on purpose: a binary that exists must do what its `--help` says.
