//! The numbers `status` prints.

use super::{Store, StoreError};
use std::collections::BTreeMap;

/// A snapshot of the archive's state, as `status` and `status --json` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusReport {
    /// Meetings by state: "recording", "transcoding", "transcoded".
    pub meetings: BTreeMap<String, i64>,
    /// Files by status: queued, transferring, archived, failed, unavailable.
    pub files: BTreeMap<String, i64>,
    pub bytes_archived: i64,
    pub bytes_pending: i64,
    pub windows_listed: i64,
    pub last_listing_at: Option<i64>,
    pub api_calls_last_60s: i64,
    /// Failed and unavailable files, with the reason.
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Failure {
    pub record_file_id: String,
    pub path: String,
    pub status: String,
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
    pub async fn status(&self, now_ms: i64) -> Result<StatusReport, StoreError> {
        let meetings: Vec<(i64, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM meetings GROUP BY state")
                .fetch_all(self.pool())
                .await?;
        let files: Vec<(String, i64)> =
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
        let (windows_listed, last_listing_at): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MAX(listed_at) FROM windows")
                .fetch_one(self.pool())
                .await?;
        let api_calls_last_60s: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM api_calls WHERE at_ms > ?")
                .bind(now_ms - 60_000)
                .fetch_one(self.pool())
                .await?;
        let failures = sqlx::query_as(
            "SELECT record_file_id, path, status, attempts, last_error AS reason FROM files
             WHERE status IN ('failed', 'unavailable') ORDER BY path",
        )
        .fetch_all(self.pool())
        .await?;
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
            failures,
        })
    }
}
