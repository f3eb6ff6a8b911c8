//! # loadgen: a population of simulated ConfigMgr clients, measured honestly
//!
//! `loadgen run <PROFILE>` (contract §3.1) simulates clients living the real client's life
//! against an MP (the backend embedded in the process by default, or any `--target`): one actix
//! actor per client ([`client`]), spread over one arbiter per core, on a simulated clock
//! ([`sim`]) that the profile ([`profile`]) compresses. Requests are measured from their intended
//! send time into per-arbiter HdrHistograms ([`metrics`]); at the end the backend drains and
//! summarizes and its views are checked against what the clients know they reported
//! ([`verify`]); [`results`] writes the run's files and [`report`] its HTML page. [`compare`]
//! judges a run against a baseline of several runs (as text, Markdown or JUnit XML); [`trends`]
//! follows every key figure across commits from the run history and finds where one changed;
//! [`merge`] adds sharded runs together afterwards, [`collect`] judges a fleet of shards live and
//! writes its results as one run's ([`k8s`] writes the manifests that run the fleet on
//! Kubernetes); [`search`] finds the largest load that meets every SLO
//! with trials that are runs; [`windows`] judges thresholds over windows and aborts a run live;
//! [`convergence`] says how long after each sync the clients' results were acknowledged,
//! applied and visible.
//!
//! Also: [`open`], the pacers (the open model, Reports at a fixed arrival rate; the closed model,
//! Reports back to back for the target's saturation); [`messages`], what a client
//! writes (message headers, Reports) for the clients, the open model and the crash harness;
//! [`transport`], the clients' HTTP (and TLS); [`signing`], the clients' keys (a pool drawn from
//! the seed) and the `clientauth` hooks they sign their messages with; [`crash`], the kill-and-restart harness; [`sink`], a null
//! MP that measures the generator alone.
//!
//! Errors: where a caller decides by the kind of failure, it is a type ([`run::RunError`]: a
//! `--target` that is not an MP is a bad argument, anything else a failed run;
//! [`transport::Failure`]: refused, answered non-2xx with its `Retry-After`, unreadable);
//! elsewhere an `anyhow::Error` with its context, printed whole by the binary.

pub mod client;
pub mod collect;
pub mod compare;
pub mod convergence;
pub mod crash;
pub mod k8s;
pub mod merge;
pub mod messages;
pub mod metrics;
pub mod open;
pub mod profile;
pub mod report;
pub mod results;
pub mod run;
pub mod search;
pub mod signing;
pub mod sim;
pub mod sink;
pub mod transport;
pub mod trends;
pub mod verify;
pub mod windows;
