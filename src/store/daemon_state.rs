//! What the daemon publishes for `status` and tests: small key/value facts and the call log.

use super::{Store, StoreError};

/// One logged API call.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ApiCall {
    pub at_ms: i64,
    /// `records` or `addresses`.
    pub endpoint: String,
    pub purpose: Option<String>,
    pub outcome: Option<String>,
}

impl Store {
    pub async fn set_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO daemon_state (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn state(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM daemon_state WHERE key = ?")
                .bind(key)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// The calls sent at or after `since_ms`, oldest first.
    pub async fn api_call_log(&self, since_ms: i64) -> Result<Vec<ApiCall>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT at_ms, endpoint, purpose, outcome FROM api_calls WHERE at_ms >= ?
             ORDER BY at_ms, id",
        )
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?)
    }

    /// Whether `[start, end]` was listed completely at or after `after_ms`.
    pub async fn window_listed_after(
        &self,
        start: i64,
        end: i64,
        after_ms: i64,
    ) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM windows WHERE start_time = ? AND end_time = ? AND listed_at >= ?",
        )
        .bind(start)
        .bind(end)
        .bind(after_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }
}

impl Store {
    /// Issue time (ms) of the oldest address still waiting to be used.
    pub async fn oldest_pending_address(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(address_issued_at) FROM files WHERE status IN ('queued', 'transferring')",
        )
        .fetch_one(self.pool())
        .await?)
    }
}

/// The daemon's side of `status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DaemonStatus {
    /// ms: when the next live poll is due, and when the last one listed every page.
    pub next_poll_at: Option<i64>,
    pub last_poll_ok_at: Option<i64>,
    /// Background backfill windows listed, out of how many (`run --since`).
    pub backfill_windows_done: Option<i64>,
    pub backfill_windows_total: Option<i64>,
    /// The file waiting longest for download.
    pub oldest_pending: Option<PendingFile>,
    /// Failed and unavailable files counted by reason, most common first.
    pub failures_by_reason: Vec<(String, i64)>,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct PendingFile {
    pub record_file_id: String,
    pub path: String,
    pub status: String,
    /// ms: when its meeting was first seen.
    pub waiting_since: i64,
}

impl Store {
    pub async fn daemon_status(&self) -> Result<DaemonStatus, StoreError> {
        let number = |v: Option<String>| v.and_then(|v| v.parse::<i64>().ok());
        Ok(DaemonStatus {
            next_poll_at: number(self.state(crate::metrics::NEXT_POLL).await?),
            last_poll_ok_at: number(self.state(crate::metrics::LAST_POLL_OK).await?),
            backfill_windows_done: number(self.state(crate::daemon::BACKFILL_DONE).await?),
            backfill_windows_total: number(self.state(crate::daemon::BACKFILL_TOTAL).await?),
            oldest_pending: sqlx::query_as(
                "SELECT f.record_file_id, f.path, f.status, m.first_seen_at AS waiting_since
                 FROM files f JOIN meetings m USING (meeting_record_id)
                 WHERE f.status IN ('queued', 'transferring')
                 ORDER BY m.first_seen_at, f.record_file_id LIMIT 1",
            )
            .fetch_optional(self.pool())
            .await?,
            failures_by_reason: sqlx::query_as(
                "SELECT COALESCE(last_error, status), COUNT(*) FROM files
                 WHERE status IN ('failed', 'unavailable')
                 GROUP BY 1 ORDER BY 2 DESC, 1",
            )
            .fetch_all(self.pool())
            .await?,
        })
    }
}
