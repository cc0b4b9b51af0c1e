//! wemeet-archiver: archives an enterprise's Tencent Meeting cloud recordings before their
//! download addresses expire, and proves with SHA-256 that the archive is intact.
//!
//! The data flows one way: `scheduler` lists windows through `api` (signed, under the
//! `budget`), `store` records meetings and files, `download` streams each file into
//! `storage`. `app` wires them for the `cli`; `simulator` is the fake API that tests and
//! the demo run against (production code never calls it).

pub mod api;
pub mod app;
pub mod budget;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod download;
pub mod metrics;
pub mod scheduler;
pub mod secret;
pub mod simulator;
pub mod storage;
pub mod store;
pub mod verify;
