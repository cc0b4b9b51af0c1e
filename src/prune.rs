//! `prune`: frees Tencent Meeting's cloud of recordings the archive holds, one file at a
//! time, each only once its archived copy was re-read and found intact right before.
//!
//! Deletion is permanent (no recycle bin is documented), so every step leans to keeping:
//! it is opt-in (`prune.enabled`); a file must have been archived for `prune.after`; the
//! copy is re-read through the [`Archive`] (disk or bucket) and judged by `verify`'s own
//! verdict ([`classify_archived`]) immediately before its `DELETE`; a copy that is
//! missing, damaged or unreadable is refused, logged at error and reported, and its
//! recording stays in the cloud. Files are deleted one by one with
//! `DELETE /v1/records/{record_file_id}`, never a whole recording at once: a recording may
//! hold what the archive does not (a file that failed). A file's deletion takes its audio
//! track and transcripts with it, so when `download.artifacts` asks for them a video waits
//! until they are archived (or the transcript wait ended without any) and is deleted only
//! if they too re-read intact.
//!
//! The API's answer and `deleted_in_cloud_at` are recorded in one transaction. A crash
//! between the `DELETE` and that commit loses the record only: the next run deletes
//! again, gets 4051 ("already deleted"), and records it then.

use crate::archive::Archive;
use crate::archive::meeting_json;
use crate::client::{ApiClient, CallError};
use crate::config::PruneConfig;
use crate::domain::RecordFileId;
use crate::errors::Class;
use crate::state::{ArtifactsWanted, Db, DbError, Fact, PruneCandidate};
use crate::time::UnixMs;
use crate::verify::{Status, classify::classify_archived};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Identifies the JSON layout of the report (`prune --format json`).
pub const SCHEMA: &str = "wemeet-archiver.prune/1";

/// Why a run did not happen, or stopped: nothing after this point was deleted.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(
        "prune.enabled is not true: deleting recordings from the cloud is permanent, so it is \
         opt-in; set `enabled = true` in the [prune] table of the configuration (and see \
         first what would be deleted with `prune --dry-run`); nothing was deleted"
    )]
    NotEnabled,
    #[error(transparent)]
    Db(#[from] DbError),
    /// No deletion can succeed until someone fixes the credentials or the permissions.
    #[error(transparent)]
    Api(CallError),
}

impl PruneError {
    /// Only the admin can fix a run that is not enabled, or the credentials and
    /// permissions; nothing goes on without the database.
    pub fn class(&self) -> Class {
        match self {
            Self::NotEnabled | Self::Db(_) => Class::Stop,
            Self::Api(e) => e.class(),
        }
    }
}

/// Whether the run deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Delete,
    /// Reads and checks exactly as a real run does, and deletes nothing.
    DryRun,
}

/// What became of one candidate. The serialised names are part of the report schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Intact, and deleted from the cloud by this run.
    Deleted,
    /// Intact, and the API answered 4051: deleted before (by a run whose answer was lost
    /// to a crash, or in the console). Recorded as deleted.
    AlreadyDeleted,
    /// `--dry-run`: intact; a real run would delete it.
    WouldDelete,
    /// The copy is not intact (`check` says how): the recording stays in the cloud.
    Refused,
    /// Intact, but the API did not delete it (`detail` says why).
    Failed,
    /// Its recording is under a legal hold (`detail` names the holds): it stays in the
    /// cloud, not re-read, until the last hold on it is released.
    Held,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::AlreadyDeleted => "already_deleted",
            Self::WouldDelete => "would_delete",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::Held => "held",
        }
    }

    /// The cloud no longer holds the file.
    pub fn is_gone(self) -> bool {
        matches!(self, Self::Deleted | Self::AlreadyDeleted)
    }
}

/// One candidate of the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PruneRow {
    pub record_file_id: RecordFileId,
    pub meeting_code: String,
    pub subject: String,
    /// Relative to the archive root, `/`-separated.
    pub path: String,
    /// Bytes recorded at download (what the cloud frees).
    pub size: u64,
    /// When it was archived (RFC 3339).
    pub archived_at: String,
    /// `verify`'s verdict on the copy, re-read right before the deletion.
    pub check: Status,
    pub outcome: Outcome,
    /// Why it was refused or failed, in words.
    pub detail: Option<String>,
}

/// How many candidates got each outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneSummary {
    /// Files due (archived at least `prune.after` ago, still in the cloud), in all.
    pub candidates: u64,
    /// Of those, re-read by this run (at most `prune.max_per_run`).
    pub checked: u64,
    pub deleted: u64,
    pub already_deleted: u64,
    pub would_delete: u64,
    pub refused: u64,
    pub failed: u64,
    /// Due files left in the cloud because their recording is held (not in `checked`).
    pub held: u64,
    /// Bytes the cloud no longer holds after this run (deleted and already deleted).
    pub bytes_freed: u64,
    /// `--dry-run`: bytes a real run would free.
    pub bytes_would_free: u64,
    /// Due files this run did not get to (`max_per_run`, an interruption): the next takes
    /// them.
    pub left_for_next_run: u64,
    pub elapsed_ms: u64,
}

impl PruneSummary {
    fn count(&mut self, row: &PruneRow) {
        if row.outcome == Outcome::Held {
            self.held += 1;
            return;
        }
        self.checked += 1;
        let slot = match row.outcome {
            Outcome::Deleted => &mut self.deleted,
            Outcome::AlreadyDeleted => &mut self.already_deleted,
            Outcome::WouldDelete => &mut self.would_delete,
            Outcome::Refused => &mut self.refused,
            Outcome::Failed => &mut self.failed,
            Outcome::Held => &mut self.held,
        };
        *slot += 1;
        if row.outcome.is_gone() {
            self.bytes_freed += row.size;
        } else if row.outcome == Outcome::WouldDelete {
            self.bytes_would_free += row.size;
        }
    }
}

/// What one run did, as data: the command line renders it as a table or JSON.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PruneReport {
    pub schema: &'static str,
    /// The archive root or `s3://bucket/prefix`.
    pub archive: String,
    pub dry_run: bool,
    pub started_at: String,
    pub finished_at: String,
    /// Files archived at or before this instant were due (RFC 3339).
    pub archived_before: String,
    /// Stopped by SIGINT/SIGTERM: a deletion in flight is recorded by the next run (4051).
    pub interrupted: bool,
    /// Why the run stopped before its last candidate, when the API kept failing.
    pub stopped: Option<String>,
    pub summary: PruneSummary,
    /// Every candidate checked, oldest archived first.
    pub files: Vec<PruneRow>,
}

impl PruneReport {
    /// Every copy checked was intact and every intact one is gone from the cloud (or, in a
    /// dry run, would be).
    pub fn complete(&self) -> bool {
        self.summary.refused == 0 && self.summary.failed == 0 && self.stopped.is_none()
    }
}

/// What the API said to one `DELETE`.
enum DeleteReply {
    Gone(Outcome),
    /// This file only: reported, and the run goes on.
    Failed(CallError),
    /// Passing faults that outlived the retries: the run stops, the next tries again.
    Stop(CallError),
}

/// Deletes archived files from the cloud, after re-reading each.
pub struct Pruner {
    store: Db,
    archive: Arc<dyn Archive>,
    api: Arc<ApiClient>,
    config: PruneConfig,
    wanted: ArtifactsWanted,
}

impl Pruner {
    pub(crate) fn new(
        store: Db,
        archive: Arc<dyn Archive>,
        api: Arc<ApiClient>,
        config: PruneConfig,
        wanted: ArtifactsWanted,
    ) -> Self {
        Self {
            store,
            archive,
            api,
            config,
            wanted,
        }
    }

    /// One run: at most `prune.max_per_run` due files, oldest archived first, each re-read
    /// and, if intact, deleted (`Mode::Delete`, which needs `prune.enabled`) or reported as
    /// would-be deleted (`Mode::DryRun`). Stops between files when `cancel` fires.
    pub async fn run(
        &self,
        mode: Mode,
        cancel: &CancellationToken,
    ) -> Result<PruneReport, PruneError> {
        if mode == Mode::Delete && !self.config.enabled {
            return Err(PruneError::NotEnabled);
        }
        let started = Instant::now();
        let started_at = chrono::Utc::now().to_rfc3339();
        let archived_before = UnixMs::now() - self.config.after;
        let due = self
            .store
            .count_prune_candidates(archived_before, self.wanted)
            .await?;
        let candidates = self
            .store
            .prune_candidates(archived_before, self.wanted, self.config.max_per_run)
            .await?;
        tracing::info!(due, now = candidates.len(), dry_run = mode == Mode::DryRun, archive = %self.archive.describe(), "pruning");
        let mut report = PruneReport {
            schema: SCHEMA,
            archive: self.archive.describe(),
            dry_run: mode == Mode::DryRun,
            started_at,
            finished_at: String::new(),
            archived_before: archived_before.to_rfc3339().unwrap_or_default(),
            interrupted: false,
            stopped: None,
            summary: PruneSummary {
                candidates: due,
                ..PruneSummary::default()
            },
            files: Vec::with_capacity(candidates.len()),
        };
        for held in self
            .store
            .held_prune_candidates(archived_before, self.wanted)
            .await?
        {
            let row = self.held_row(held).await?;
            tracing::info!(path = %row.path, holds = row.detail.as_deref().unwrap_or(""), "not deleting from the cloud: the recording is held");
            report.summary.count(&row);
            report.files.push(row);
        }
        let mut intact = Vec::new();
        for candidate in candidates {
            let (row, stop) = match self.one(candidate, mode, cancel).await? {
                Step::Done(row) => (row, None),
                Step::Stop(row, why) => (row, Some(why)),
                Step::Interrupted => {
                    report.interrupted = true;
                    break;
                }
            };
            if row.check == Status::Ok {
                intact.push(row.record_file_id.clone());
            }
            report.summary.count(&row);
            report.files.push(row);
            if stop.is_some() {
                report.stopped = stop;
                break;
            }
        }
        // Re-read and found intact: as good as a `verify` of those files.
        self.store.mark_verified(&intact, UnixMs::now()).await?;
        if report.summary.refused > 0 {
            let refused = i64::try_from(report.summary.refused).unwrap_or(i64::MAX);
            self.store.record_fact(Fact::PruneRefused(refused)).await?;
        }
        meeting_json::rewrite_stale(&self.store, self.archive.as_ref()).await?;
        crate::audit::write_trail_or_warn(&self.store, self.archive.as_ref()).await;
        report.summary.left_for_next_run = due.saturating_sub(report.summary.checked);
        report.summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(0);
        report.finished_at = chrono::Utc::now().to_rfc3339();
        Ok(report)
    }

    /// The report's row of a due file whose recording is held: not re-read, not deleted.
    async fn held_row(&self, candidate: PruneCandidate) -> Result<PruneRow, PruneError> {
        let file = candidate.file;
        let meeting = self
            .store
            .file(&file.record_file_id)
            .await?
            .map(|f| f.meeting_record_id)
            .unwrap_or_default();
        let holds = self.store.holds_on(&meeting).await?;
        let holds: Vec<String> = holds.iter().map(ToString::to_string).collect();
        Ok(PruneRow {
            size: file.archived_size.unwrap_or(file.record_size),
            record_file_id: file.record_file_id,
            meeting_code: file.meeting_code,
            subject: file.subject,
            path: file.path,
            archived_at: candidate.archived_at.to_rfc3339().unwrap_or_default(),
            check: Status::Pending,
            outcome: Outcome::Held,
            detail: Some(format!("on legal hold {}", holds.join(", "))),
        })
    }

    /// Re-reads one candidate and, if intact, deletes it (or not, in a dry run).
    async fn one(
        &self,
        candidate: PruneCandidate,
        mode: Mode,
        cancel: &CancellationToken,
    ) -> Result<Step, PruneError> {
        if cancel.is_cancelled() {
            return Ok(Step::Interrupted);
        }
        let file = &candidate.file;
        let read = tokio::select! {
            read = self.archive.digest(&file.path) => read,
            () = cancel.cancelled() => return Ok(Step::Interrupted),
        };
        let verdict = classify_archived(file, read);
        let mut row = PruneRow {
            record_file_id: file.record_file_id.clone(),
            meeting_code: file.meeting_code.clone(),
            subject: file.subject.clone(),
            path: file.path.clone(),
            size: verdict.expected_size.unwrap_or(0),
            archived_at: candidate.archived_at.to_rfc3339().unwrap_or_default(),
            check: verdict.status,
            outcome: Outcome::Refused,
            detail: verdict.detail,
        };
        if row.check == Status::Ok {
            self.check_artifacts(&mut row, cancel).await?;
        }
        if cancel.is_cancelled() {
            return Ok(Step::Interrupted);
        }
        if row.check != Status::Ok {
            tracing::error!(
                path = %row.path, check = row.check.as_str(), detail = row.detail.as_deref().unwrap_or("-"),
                "not deleting from the cloud: the archived copy is not intact"
            );
            return Ok(Step::Done(row));
        }
        if mode == Mode::DryRun {
            row.outcome = Outcome::WouldDelete;
            return Ok(Step::Done(row));
        }
        let answer = tokio::select! {
            answer = self.api.delete_record_file(&row.record_file_id) => answer,
            // The deletion may have happened: the next run's gets 4051 and records it.
            () = cancel.cancelled() => return Ok(Step::Interrupted),
        };
        Ok(match classify_answer(answer)? {
            DeleteReply::Gone(outcome) => {
                self.store
                    .record_cloud_deletion(&row.record_file_id, UnixMs::now())
                    .await?;
                tracing::info!(path = %row.path, bytes = row.size, outcome = outcome.as_str(), "deleted from the cloud");
                row.outcome = outcome;
                Step::Done(row)
            }
            DeleteReply::Failed(e) => {
                let why = crate::errors::chain(&e);
                tracing::error!(path = %row.path, error = %why, "the API did not delete this file");
                row.outcome = Outcome::Failed;
                row.detail = Some(why);
                Step::Done(row)
            }
            DeleteReply::Stop(e) => {
                let why = crate::errors::chain(&e);
                tracing::error!(path = %row.path, error = %why, "the API keeps failing; pruning stops until the next run");
                row.outcome = Outcome::Failed;
                row.detail = Some(why.clone());
                Step::Stop(row, why)
            }
        })
    }
}

impl Pruner {
    /// Re-reads the video's archived artifacts, which its deletion takes from the cloud
    /// too: the first not intact refuses the video (naming it in `detail`); their bytes
    /// count in what the cloud frees.
    async fn check_artifacts(
        &self,
        row: &mut PruneRow,
        cancel: &CancellationToken,
    ) -> Result<(), PruneError> {
        for artifact in self.store.archived_artifacts(&row.record_file_id).await? {
            let read = tokio::select! {
                read = self.archive.digest(&artifact.path) => read,
                () = cancel.cancelled() => return Ok(()),
            };
            let verdict = classify_archived(&artifact, read);
            if verdict.status != Status::Ok {
                row.check = verdict.status;
                row.detail = Some(format!(
                    "{} {}: {}",
                    artifact.kind.as_str(),
                    artifact.path,
                    verdict.detail.as_deref().unwrap_or("not intact")
                ));
                return Ok(());
            }
            row.size += verdict.expected_size.unwrap_or(0);
        }
        Ok(())
    }
}

/// Where the run stands after one candidate.
enum Step {
    Done(PruneRow),
    /// The API kept failing on this one: the run stops after it, for this reason.
    Stop(PruneRow, String),
    /// `cancel` fired before the candidate's outcome was known.
    Interrupted,
}

/// Sorts the API's answer to a `DELETE` by what the run does next. 4051 is a deletion that
/// happened before; the other errors are classified like the listing's.
fn classify_answer<T>(answer: Result<T, CallError>) -> Result<DeleteReply, PruneError> {
    let error = match answer {
        Ok(_) => return Ok(DeleteReply::Gone(Outcome::Deleted)),
        Err(CallError::Api(e)) if e.is_already_deleted() => {
            return Ok(DeleteReply::Gone(Outcome::AlreadyDeleted));
        }
        Err(e) => e,
    };
    Ok(match error.class() {
        Class::Stop => return Err(PruneError::Api(error)),
        Class::GiveUp => DeleteReply::Failed(error),
        Class::Retry | Class::RetryLater | Class::RefreshAddress => DeleteReply::Stop(error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wemeet_api::{ApiError, Endpoint};

    fn api(status: u16, code: i64) -> Result<(), CallError> {
        Err(CallError::Api(ApiError::from_reply(
            Endpoint::Delete,
            status,
            Some(code),
            String::new(),
            "t".into(),
        )))
    }

    #[test]
    fn a_deletion_answered_4051_counts_as_done_and_other_errors_as_the_listings() {
        let outcome = |a| match classify_answer(a) {
            Ok(DeleteReply::Gone(o)) => o.as_str().to_string(),
            Ok(DeleteReply::Failed(_)) => "failed".into(),
            Ok(DeleteReply::Stop(_)) => "stop".into(),
            Err(e) => format!("fatal: {}", e.class() == Class::Stop),
        };
        assert_eq!(outcome(Ok(())), "deleted");
        assert_eq!(outcome(api(500, 4051)), "already_deleted");
        assert_eq!(outcome(api(500, 7003)), "failed");
        assert_eq!(outcome(api(400, 190_004)), "failed");
        assert_eq!(outcome(api(500, 41)), "stop");
        assert_eq!(outcome(api(400, 190_310)), "stop");
        assert_eq!(outcome(api(400, 500_014)), "fatal: true");
        assert_eq!(outcome(api(400, 200_003)), "fatal: true");
    }

    #[test]
    fn the_summary_counts_freed_bytes_only_for_files_gone_from_the_cloud() {
        let row = |outcome| PruneRow {
            record_file_id: "f".into(),
            meeting_code: "c".into(),
            subject: "s".into(),
            path: "p".into(),
            size: 10,
            archived_at: String::new(),
            check: Status::Ok,
            outcome,
            detail: None,
        };
        let mut summary = PruneSummary::default();
        for outcome in [
            Outcome::Deleted,
            Outcome::AlreadyDeleted,
            Outcome::Refused,
            Outcome::Failed,
            Outcome::WouldDelete,
        ] {
            summary.count(&row(outcome));
        }
        assert_eq!(summary.checked, 5);
        assert_eq!((summary.deleted, summary.already_deleted), (1, 1));
        assert_eq!(
            (summary.refused, summary.failed, summary.would_delete),
            (1, 1, 1)
        );
        assert_eq!((summary.bytes_freed, summary.bytes_would_free), (20, 10));
    }
}
