//! wemeet-archiver: archives an enterprise's Tencent Meeting cloud recordings before they
//! disappear, whatever their sharing settings, and proves with SHA-256 that the archive is
//! complete and intact.
//!
//! The data flows one way: the `census` lists the account through the `client` (the wire
//! contract of the `wemeet-api` crate, each endpoint under its persisted `budget`), `state`
//! records meetings and files in SQLite, `transfer` streams each file into the `archive`
//! (a directory or a bucket, one trait) with an address fetched just in time. `verify`
//! re-reads the archive; `prune` deletes in the cloud what it has just re-read and found
//! intact (opt-in). `app` and `daemon` wire them into the jobs the binary runs; the
//! library returns reports and typed errors, and never prints: a job's `progress` is
//! counters the binary draws, and `human` formats sizes and durations for its text.
//!
//! `audit` writes the hash-chained audit trail the `state` keeps into the archive itself,
//! and checks both copies.
//!
//! `webhook` receives Tencent Meeting's events and has the census look up what they
//! announce, so a new recording is archived seconds after it exists; polling stays the
//! safety net.
//!
//! `transcripts` keeps the full-text index of what was said; `search` finds recordings by
//! their metadata and their words, and `export` copies them out, checked, with a manifest.
//!
//! Layers import downward only: `time`, `errors`, `retry`, `progress`, `human`, `filter` < `state` <
//! `budget` < `client` < `archive` < `audit`, `holds`, `transcripts` < `census`, `transfer`,
//! `verify` < `search` < `export`, `prune` < `app`, `webhook`, `relayout`, `expire` < `metrics`
//! < `daemon`.

pub mod app;
pub mod archive;
pub mod audit;
pub mod budget;
pub mod census;
pub mod client;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod errors;
pub mod export;
pub mod filter;
pub mod holds;
pub mod metrics;
pub mod progress;
pub mod prune;
pub mod retry;
pub mod search;
pub mod state;
pub mod time;
pub mod transcripts;
pub mod transfer;
pub mod verify;
pub mod webhook;
