//! The simulator, exercised over real HTTP as the archiver will use it: each endpoint
//! signed as the client signs, its answers read as the client reads them (`wemeet-api`'s
//! types) and as raw JSON, its downloads hashed against the manifest.

mod addresses;
mod common;
mod download;
mod listing;
