//! The verification report: what one run found, as data. The command line renders it as
//! a table for the admin, JSON and CSV for scripts and spreadsheets; their schema is
//! documented in the README ("Verifying the archive") and only ever grows.

use super::classify::{ReportRow, Status};

/// Identifies the JSON layout, so that a consumer can refuse one it does not know.
pub const SCHEMA: &str = "wemeet-archiver.verify/1";

/// How many rows got each verdict, and how much work it took.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub ok: u64,
    pub missing: u64,
    pub size_mismatch: u64,
    pub hash_mismatch: u64,
    pub unreadable: u64,
    pub extra: u64,
    pub partial: u64,
    pub pending: u64,
    pub failed: u64,
    /// Left out by `[filter]`: not a problem.
    pub skipped: u64,
    /// Rows whose verdict is a problem (everything but `ok`, `pending` and `skipped`).
    pub problems: u64,
    /// Archived files in the range, and how many of them were re-read (fewer with
    /// `--sample`).
    pub archived_files: u64,
    pub checked_files: u64,
    pub bytes_hashed: u64,
    pub elapsed_ms: u64,
    pub jobs: usize,
}

impl Summary {
    pub fn count(&mut self, status: Status) {
        let slot = match status {
            Status::Ok => &mut self.ok,
            Status::Missing => &mut self.missing,
            Status::SizeMismatch => &mut self.size_mismatch,
            Status::HashMismatch => &mut self.hash_mismatch,
            Status::Unreadable => &mut self.unreadable,
            Status::Extra => &mut self.extra,
            Status::Partial => &mut self.partial,
            Status::Pending => &mut self.pending,
            Status::Failed => &mut self.failed,
            Status::Skipped => &mut self.skipped,
        };
        *slot += 1;
        if status.is_problem() {
            self.problems += 1;
        }
    }

    pub fn of(&self, status: Status) -> u64 {
        match status {
            Status::Ok => self.ok,
            Status::Missing => self.missing,
            Status::SizeMismatch => self.size_mismatch,
            Status::HashMismatch => self.hash_mismatch,
            Status::Unreadable => self.unreadable,
            Status::Extra => self.extra,
            Status::Partial => self.partial,
            Status::Pending => self.pending,
            Status::Failed => self.failed,
            Status::Skipped => self.skipped,
        }
    }
}

/// Everything one `verify` run found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub schema: &'static str,
    /// The archive root (or, for another backend, its description).
    pub archive: String,
    /// RFC 3339.
    pub started_at: String,
    pub finished_at: String,
    /// The `--since`/`--until` bounds on media start time (RFC 3339), if any.
    pub since: Option<String>,
    pub until: Option<String>,
    pub sample_percent: Option<f64>,
    /// True when no row is a problem: the exit status is 0.
    pub passed: bool,
    pub summary: Summary,
    /// Sorted by path.
    pub files: Vec<ReportRow>,
}

impl VerifyReport {
    pub fn problems(&self) -> impl Iterator<Item = &ReportRow> {
        self.files.iter().filter(|r| r.status.is_problem())
    }
}
