//! wemeet-archiver: archives an enterprise's Tencent Meeting cloud recordings before they
//! disappear, whatever their sharing settings, and proves with SHA-256 that the archive is
//! complete and intact.
//!
//! The data flows one way: the `census` lists the account through the `client` (the wire
//! contract of the `wemeet-api` crate, each endpoint under its persisted `budget`), `state`
//! records meetings and files in SQLite, `transfer` streams each file into the `archive`
//! (a directory or a bucket, one trait) with an address fetched just in time. `verify`
//! re-reads the archive; `prune` deletes in the cloud what it has just re-read and found
//! intact (opt-in). `app` opens an archive and runs the jobs on it (`backfill`, `reindex`,
//! `expire`, `relayout`…); `daemon` is the service. The library returns reports and typed
//! errors, and never prints: a job's `progress` is counters the binary draws.
//!
//! `audit` writes the hash-chained audit trail the `state` keeps into the archive itself,
//! and checks both copies; `holds` keeps the legal holds there too.
//!
//! `webhook` receives Tencent Meeting's events and has the census look up what they
//! announce, so a new recording is archived seconds after it exists; polling stays the
//! safety net. `metrics` serves the service's figures to Prometheus.
//!
//! `transcripts` keeps the full-text index of what was said; `search` finds recordings by
//! their metadata and their words, and `export` copies them out, checked, with a manifest.
//!
//! Layers import downward only (each imports from the layers before it):
//! `time`, `errors`, `retry`, `domain` < `filter` < `state` < `archive`, `budget`,
//! `progress` < `audit`, `config`, `holds`, `transcripts` < `client`, `search`, `verify` <
//! `census`, `export`, `prune`, `transfer` < `app`, `webhook` < `metrics` < `daemon`.
//!
//! # The public surface
//!
//! What the binary runs is re-exported here: the jobs, their options, reports and errors,
//! and the types they carry. [`config`] is the configuration file, section by section.
//! [`internals`] is what the integration tests and benchmarks drive below the jobs.

#![forbid(unsafe_code)]

mod app;
mod archive;
mod audit;
mod budget;
mod census;
mod client;
pub mod config;
mod daemon;
mod domain;
mod errors;
mod export;
mod filter;
mod holds;
mod metrics;
mod progress;
mod prune;
mod retry;
mod search;
mod state;
mod time;
mod transcripts;
mod transfer;
mod verify;
mod webhook;

// The service and the jobs over an opened archive.
pub use app::{
    App, AppError, BackfillReport, ExpireOutcome, ExpireReport, ReindexReport, RelayoutReport,
};
pub use daemon::Listeners;
// What every error at a boundary asks of its caller.
pub use errors::Class;

// The archive (a directory or a bucket), its audit trail and its legal holds.
pub use archive::{Archive, open as open_archive};
pub use audit::{TrailCheck, verify_trail, write_trail};
pub use holds::write_holds;

// The database and the types its reports carry.
pub use client::Budgets;
pub use domain::{
    FileKind, FileStatus, MeetingRecordId, MeetingState, RecordFileId, SkipRule, Window,
};
pub use state::{AuditRecord, Db, Hold, HoldScope, ReleaseError, StatusReport, ToDo};
pub use time::UnixMs;

// A job's counters, drawn by the binary.
pub use progress::{Planned, Progress, Snapshot, TransferSnapshot};

// `verify`, `prune`, `search` and `export`.
pub use export::{ExportOptions, Outcome as ExportOutcome, SUMS, export};
pub use prune::{
    Mode as PruneMode, Outcome as PruneOutcome, PruneReport, PruneRow, PruneSummary,
    SCHEMA as PRUNE_SCHEMA,
};
pub use search::{Query, Recording, SearchError, search};
pub use verify::{
    ReportRow, SCHEMA as VERIFY_SCHEMA, Status as VerifyStatus, Summary as VerifySummary,
    VerifyError, VerifyOptions, VerifyReport, run as verify,
};

/// The parts below the jobs that the integration tests and the benchmarks drive directly:
/// a database seeded row by row, a download pool or a webhook receiver run on their own, a
/// bucket's Object Lock API. Not an interface for other programs: it changes with the code.
pub mod internals {
    pub use crate::archive::marker::MARKER;
    pub use crate::archive::s3::{LockClient, LockError, LockMode, S3Bucket};
    pub use crate::audit::RESERVED_DIR;
    pub use crate::budget::Budget;
    pub use crate::census::split_windows;
    pub use crate::client::{ApiClient, http_client};
    pub use crate::metrics::MetricsSource;
    pub use crate::search::select;
    pub use crate::state::{ArtifactUpsert, EventStatus, FileRow, FileUpsert, MeetingUpsert};
    pub use crate::transcripts::{fill_index, index_archived};
    pub use crate::transfer::Pool;
    pub use crate::verify::{sums::render as render_sums, verify_configured};
    pub use crate::webhook::{Counters, ReasonLabel, Receiver, serve as serve_webhook};
}
