//! Integration tests: the real simulator over HTTP on port 0, real SQLite, real files.

mod backfill;
mod cli;
mod common;
mod resume;
mod simulator;
