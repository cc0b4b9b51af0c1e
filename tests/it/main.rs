//! Integration tests: the real simulator over HTTP on port 0, real SQLite, real files.

mod addresses;
mod artifacts;
mod audit;
mod backfill;
mod cli;
mod common;
mod daemon;
mod filter;
/// The CLI's formatting of sizes, for the figures its text is expected to print.
#[path = "../../src/cli/human.rs"]
#[allow(dead_code)]
mod human;
mod layout;
mod object_lock;
mod package;
mod progress;
mod prune;
mod reindex;
mod resume;
mod s3;
mod search;
mod verify;
mod webhook;
