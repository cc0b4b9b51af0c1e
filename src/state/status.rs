//! The numbers `status` prints.

use super::{FileStatus, Store, StoreError};
use crate::time::UnixMs;
use std::collections::BTreeMap;

/// A snapshot of the archive's state, as `status` and `status --json` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusReport {
    /// Meetings by state: "recording", "transcoding", "transcoded".
    pub meetings: BTreeMap<String, i64>,
    /// Files by status: queued, transferring, archived, failed, unavailable.
    pub files: BTreeMap<FileStatus, i64>,
    pub bytes_archived: i64,
    pub bytes_pending: i64,
    pub windows_listed: i64,
    pub last_listing_at: Option<UnixMs>,
    /// Listing calls (`/v1/corp/records`) sent in the last 60 s.
    pub api_calls_last_60s: i64,
    /// Address calls (`/v1/addresses`) sent in the last 60 s.
    pub address_calls_last_60s: i64,
    /// Failed and unavailable files, with the reason.
    pub failures: Vec<Failure>,
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
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Failure {
    pub record_file_id: String,
    pub path: String,
    pub status: FileStatus,
    pub attempts: i64,
    pub reason: Option<String>,
}

fn state_name(state: i64) -> String {
    match state {
        1 => "recording".into(),
        2 => "transcoding".into(),
        3 => "transcoded".into(),
        other => format!("state {other}"),
    }
}

impl Store {
    pub async fn status(&self, now: UnixMs) -> Result<StatusReport, StoreError> {
        let meetings: Vec<(i64, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM meetings GROUP BY state")
                .fetch_all(self.pool())
                .await?;
        let files: Vec<(FileStatus, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM files GROUP BY status")
                .fetch_all(self.pool())
                .await?;
        let (bytes_archived, bytes_pending): (i64, i64) = sqlx::query_as(
            "SELECT
               COALESCE(SUM(CASE WHEN status = 'archived' THEN archived_size END), 0),
               COALESCE(SUM(CASE WHEN status IN ('queued', 'transferring')
                                 THEN record_size - bytes_done END), 0)
             FROM files",
        )
        .fetch_one(self.pool())
        .await?;
        let (windows_listed, last_listing_at): (i64, Option<UnixMs>) =
            sqlx::query_as("SELECT COUNT(*), MAX(listed_at) FROM windows")
                .fetch_one(self.pool())
                .await?;
        let (api_calls_last_60s, address_calls_last_60s): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(endpoint = 'records'), 0), COALESCE(SUM(endpoint = 'addresses'), 0)
             FROM api_calls WHERE at_ms > ?",
        )
        .bind(now - std::time::Duration::from_secs(60))
        .fetch_one(self.pool())
        .await?;
        let failures = sqlx::query_as(
            "SELECT record_file_id, path, status, attempts, last_error AS reason FROM files
             WHERE status IN ('failed', 'unavailable') ORDER BY path",
        )
        .fetch_all(self.pool())
        .await?;
        let verified = self.verification_summary().await?;
        Ok(StatusReport {
            meetings: meetings
                .into_iter()
                .map(|(s, n)| (state_name(s), n))
                .collect(),
            files: files.into_iter().collect(),
            bytes_archived,
            bytes_pending,
            windows_listed,
            last_listing_at,
            api_calls_last_60s,
            address_calls_last_60s,
            failures,
            uploads: self.uploads_in_progress().await?,
            daemon: self.daemon_status().await?,
            webhook: self.webhook_status().await?,
            files_verified: verified.files_verified,
            oldest_verified_at: verified.oldest_verified_at,
            newest_verified_at: verified.newest_verified_at,
        })
    }
}
