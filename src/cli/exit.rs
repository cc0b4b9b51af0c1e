//! Every exit code of the program, and which outcome gets which: one table.

use std::process::ExitCode;
use wemeet_archiver::config::ConfigError;
use wemeet_archiver::{AppError, Class, PruneReport, VerifyError};

/// How a command ended, as the shell sees it (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for is done: archived, intact, or stopped by a signal and resumable.
    Ok = 0,
    /// Not everything is archived (or, for `verify`, a problem was found; for `prune`, a
    /// copy was not intact or a deletion failed): each is listed.
    Incomplete = 1,
    /// Bad configuration, usage or credentials, or a check that could not run: nothing
    /// was changed.
    Usage = 2,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit as u8)
    }
}

/// A failed command: its exit code and the error the admin reads.
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            exit: Exit::Usage,
            error: error.into(),
        }
    }

    pub fn incomplete(error: impl Into<anyhow::Error>) -> Self {
        Self {
            exit: Exit::Incomplete,
            error: error.into(),
        }
    }

    /// What the admin must fix first (`Class::Stop`) is a usage error; anything else left
    /// the job incomplete.
    fn of(class: Class, error: impl Into<anyhow::Error>) -> Self {
        match class {
            Class::Stop => Self::usage(error),
            Class::Retry | Class::RetryLater | Class::RefreshAddress | Class::GiveUp => {
                Self::incomplete(error)
            }
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Self::usage(e)
    }
}

/// What the admin must fix (credentials, permissions, the bucket, another process on
/// the database) is a usage error; anything else left the job incomplete.
impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Self::of(e.class(), e)
    }
}

/// A check that could not run reached no verdict on the archive.
impl From<VerifyError> for Failure {
    fn from(e: VerifyError) -> Self {
        Self::of(e.class(), e)
    }
}

/// `prune`: a copy found not intact (kept in the cloud), a deletion the API refused, or a
/// run the API stopped leaves the job incomplete. An interrupted run is resumed by the
/// next one. Refusing to run without `prune.enabled` is a usage error, as [`AppError`].
pub fn of_prune(report: &PruneReport) -> Exit {
    if report.complete() {
        Exit::Ok
    } else {
        Exit::Incomplete
    }
}

pub type CliResult = Result<Exit, Failure>;
