//! # loadgen: a population of simulated ConfigMgr clients, measured honestly
//!
//! This crate is empty today. It will hold the client actors (actix, one per simulated client),
//! profiles, transport, HdrHistogram measurement, results, verification, compare and merge, as
//! `loadgen::run(plan)` plus a `loadgen` binary: see issues 5 and 6 and
//! `shared/spec/contract.md` §3. The wire it will speak is already in [`protocol`]: Reports
//! from [`protocol::report::ReportWriter`], requests from [`protocol::envelope::build_request`].
//!
//! It has no binary yet, on purpose: a binary that exists must do what its `--help` says.
