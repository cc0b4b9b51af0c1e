//! The numbers `status` prints.

use super::{Db, DbError, FileKind, FileStatus};
use crate::domain::{MeetingState, RecordFileId, SkipRule};
use crate::time::UnixMs;
use std::collections::BTreeMap;

/// A snapshot of the archive's state, as `status` and `status --json` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusReport {
    /// Meetings by state: "recording", "transcoding", "transcoded".
    pub meetings: BTreeMap<String, i64>,
    /// Files by status: queued, transferring, archived, failed, unavailable.
    pub files: BTreeMap<FileStatus, i64>,
    /// The same by kind: videos, audio tracks, transcripts.
    pub by_kind: BTreeMap<FileKind, BTreeMap<FileStatus, i64>>,
    /// Meetings looked at for artifacts with a video still without a transcript: still
    /// waited for, and those whose wait (`download.artifact_wait`) ended without one.
    /// Meaningful when transcripts are archived.
    pub transcripts_awaited: i64,
    pub transcript_waits_ended: i64,
    pub bytes_archived: i64,
    pub bytes_pending: i64,
    /// Archived recording files the API confirmed deleted from the cloud (`prune`), and
    /// their bytes with those of the audio tracks and transcripts that went with them: the
    /// cloud storage freed.
    pub files_deleted_in_cloud: i64,
    /// Files found intact at their destination and adopted instead of downloaded (a
    /// database rebuilt over an existing archive), and of those, how many had no SHA-256
    /// recorded in their `meeting.json` to compare with (their hash was only computed).
    pub files_adopted: i64,
    pub files_adopted_without_record: i64,
    /// Files whose row `reindex` rebuilt from their folder's `meeting.json`.
    pub files_reindexed: i64,
    pub bytes_freed: i64,
    pub windows_listed: i64,
    pub last_listing_at: Option<UnixMs>,
    /// Listing calls (`/v1/corp/records`) sent in the last 60 s.
    pub api_calls_last_60s: i64,
    /// Address calls (`/v1/addresses`) sent in the last 60 s.
    pub address_calls_last_60s: i64,
    /// Deletions (`DELETE /v1/records/...`) sent in the last 60 s.
    pub delete_calls_last_60s: i64,
    /// Failed and unavailable files, with the reason.
    pub failures: Vec<FailedFile>,
    /// Skipped files by the `[filter]` key that left them out (`filter.min_size`, ...).
    pub skipped_by_rule: Vec<(String, i64)>,
    /// S3 multipart uploads of files not yet archived (empty on local disk).
    pub uploads: Vec<super::uploads::UploadProgress>,
    /// What the daemon (`run`) publishes: polls, background backfill, the queue's head.
    pub daemon: super::DaemonStatus,
    /// The webhook's events: the last one received, and how many by status.
    pub webhook: super::WebhookStatus,
    /// Archived files that `verify` found intact at least once.
    pub files_verified: i64,
    /// The least and most recent of their last verifications.
    pub oldest_verified_at: Option<UnixMs>,
    pub newest_verified_at: Option<UnixMs>,
    /// Legal holds, expired recordings, the audit trail and its last check.
    pub retention: super::RetentionStatus,
}

/// What is left to download: files queued or transferring, and the bytes they still
/// need beyond their last checkpoint. `status` and the progress display both say it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct ToDo {
    pub files: i64,
    pub bytes: i64,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct FailedFile {
    pub record_file_id: RecordFileId,
    pub path: String,
    pub status: FileStatus,
    pub attempts: i64,
    pub reason: Option<String>,
}

pub(super) const TO_DO: &str =
    "SELECT COUNT(*) AS files, COALESCE(SUM(record_size - bytes_done), 0) AS bytes
             FROM files WHERE status IN ('queued', 'transferring')";

pub(super) const MEETINGS_BY_STATE: &str = "SELECT state, COUNT(*) FROM meetings GROUP BY state";

pub(super) const FILES_BY_KIND_AND_STATUS: &str =
    "SELECT kind, status, COUNT(*) FROM files GROUP BY kind, status";

pub(super) const TRANSCRIPT_WAITS: &str =
    "SELECT COALESCE(SUM(m.transcript_wait_ended_at IS NULL), 0),
                    COALESCE(SUM(m.transcript_wait_ended_at IS NOT NULL), 0)
             FROM meetings m
             WHERE m.artifacts_checked_at IS NOT NULL
               AND EXISTS (SELECT 1 FROM files v WHERE v.meeting_record_id = m.meeting_record_id
                           AND v.kind = 'video'
                           AND NOT EXISTS (SELECT 1 FROM files t
                                           WHERE t.parent_file_id = v.record_file_id
                                             AND t.kind = 'transcript'))";

pub(super) const BYTES_ARCHIVED: &str =
    "SELECT COALESCE(SUM(archived_size), 0) FROM files WHERE status = 'archived'";

pub(super) const DELETED_IN_CLOUD: &str =
    "SELECT COALESCE(SUM(kind = 'video'), 0), COALESCE(SUM(archived_size), 0) FROM files
             WHERE deleted_in_cloud_at IS NOT NULL";

/// Files adopted (of them, without a recorded hash) and reindexed: each count walks its
/// partial index (migration 0017), which holds only those files: a seek.
pub(super) const ADOPTED_AND_REINDEXED: &str =
    "SELECT (SELECT COUNT(*) FROM files WHERE adopted_at IS NOT NULL),
            (SELECT COUNT(*) FROM files WHERE adopted_at IS NOT NULL AND adopted_without_record),
            (SELECT COUNT(*) FROM files WHERE reindexed_at IS NOT NULL)";

pub(super) const FAILURES: &str =
    "SELECT record_file_id, path, status, attempts, last_error AS reason FROM files
             WHERE status IN ('failed', 'unavailable') ORDER BY path";

/// Skipped files by their whole rule; [`Db::skipped_by_rule`] counts them by its key.
pub(super) const SKIPPED_BY_RULE: &str =
    "SELECT skip_rule, COUNT(*) FROM files WHERE status = 'skipped' GROUP BY 1";

/// Files by status.
type FileCounts = BTreeMap<FileStatus, i64>;

impl Db {
    /// Skipped files by the key of their rule (`filter` for one without a rule), in the
    /// keys' order.
    async fn skipped_by_rule(&self) -> Result<Vec<(String, i64)>, DbError> {
        let rules: Vec<(Option<SkipRule>, i64)> = sqlx::query_as(SKIPPED_BY_RULE)
            .fetch_all(self.pool())
            .await?;
        let mut by_key: BTreeMap<String, i64> = BTreeMap::new();
        for (rule, n) in rules {
            let key = rule.as_ref().map_or("filter", SkipRule::key);
            *by_key.entry(key.to_owned()).or_default() += n;
        }
        Ok(by_key.into_iter().collect())
    }

    /// What is left to download (cheap: the status index), for a display to poll.
    pub async fn to_do(&self) -> Result<ToDo, DbError> {
        Ok(sqlx::query_as(TO_DO).fetch_one(self.pool()).await?)
    }

    pub async fn status(&self, now: UnixMs) -> Result<StatusReport, DbError> {
        let meetings: Vec<(MeetingState, i64)> = sqlx::query_as(MEETINGS_BY_STATE)
            .fetch_all(self.pool())
            .await?;
        let (files, by_kind) = self.files_by_status().await?;
        // Meetings looked at for artifacts with a video still without a transcript: awaited
        // while their wait runs, given up on once it ended.
        let (transcripts_awaited, transcript_waits_ended): (i64, i64) =
            sqlx::query_as(TRANSCRIPT_WAITS)
                .fetch_one(self.pool())
                .await?;
        let bytes_archived: i64 = sqlx::query_scalar(BYTES_ARCHIVED)
            .fetch_one(self.pool())
            .await?;
        let bytes_pending = self.to_do().await?.bytes;
        let (windows_listed, last_listing_at): (i64, Option<UnixMs>) =
            sqlx::query_as("SELECT COUNT(*), MAX(listed_at) FROM windows")
                .fetch_one(self.pool())
                .await?;
        let (files_deleted_in_cloud, bytes_freed): (i64, i64) = sqlx::query_as(DELETED_IN_CLOUD)
            .fetch_one(self.pool())
            .await?;
        let (files_adopted, files_adopted_without_record, files_reindexed): (i64, i64, i64) =
            sqlx::query_as(ADOPTED_AND_REINDEXED)
                .fetch_one(self.pool())
                .await?;
        let (api_calls_last_60s, address_calls_last_60s, delete_calls_last_60s) =
            self.calls_last_minute(now).await?;
        let failures = sqlx::query_as(FAILURES).fetch_all(self.pool()).await?;
        let skipped_by_rule = self.skipped_by_rule().await?;
        let verified = self.verification_summary().await?;
        Ok(StatusReport {
            meetings: meetings
                .into_iter()
                .map(|(s, n)| (s.to_string(), n))
                .collect(),
            files,
            by_kind,
            transcripts_awaited,
            transcript_waits_ended,
            bytes_archived,
            bytes_pending,
            files_deleted_in_cloud,
            files_adopted,
            files_adopted_without_record,
            files_reindexed,
            bytes_freed,
            windows_listed,
            last_listing_at,
            api_calls_last_60s,
            address_calls_last_60s,
            delete_calls_last_60s,
            failures,
            skipped_by_rule,
            uploads: self.uploads_in_progress().await?,
            daemon: self.daemon_status().await?,
            webhook: self.webhook_status().await?,
            files_verified: verified.files_verified,
            oldest_verified_at: verified.oldest_verified_at,
            newest_verified_at: verified.newest_verified_at,
            retention: self.retention_status().await?,
        })
    }

    /// Files by status, in all and by kind.
    async fn files_by_status(
        &self,
    ) -> Result<(FileCounts, BTreeMap<FileKind, FileCounts>), DbError> {
        let counts: Vec<(FileKind, FileStatus, i64)> = sqlx::query_as(FILES_BY_KIND_AND_STATUS)
            .fetch_all(self.pool())
            .await?;
        let mut files = BTreeMap::new();
        let mut by_kind: BTreeMap<FileKind, FileCounts> = BTreeMap::new();
        for (kind, status, n) in counts {
            *files.entry(status).or_default() += n;
            by_kind.entry(kind).or_default().insert(status, n);
        }
        Ok((files, by_kind))
    }

    /// Calls to `records`, `addresses` and `delete` sent in the minute before `now`.
    async fn calls_last_minute(&self, now: UnixMs) -> Result<(i64, i64, i64), DbError> {
        Ok(sqlx::query_as(
            "SELECT COALESCE(SUM(endpoint = 'records'), 0),
                    COALESCE(SUM(endpoint = 'addresses'), 0),
                    COALESCE(SUM(endpoint = 'delete'), 0)
             FROM api_calls WHERE at_ms > ?",
        )
        .bind(now - std::time::Duration::from_secs(60))
        .fetch_one(self.pool())
        .await?)
    }
}
