//! What the service publishes for `status`, `/metrics` and `/healthz`: typed facts in one
//! row, the findings of the last scrub, and the queue's head.

use super::{Db, DbError, FileStatus};
use crate::domain::RecordFileId;
use crate::time::UnixMs;

/// The service's facts (`migrations/0006_daemon_facts.sql`); `None` until first set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct DaemonFacts {
    /// When the next live poll is due.
    pub next_poll_at: Option<UnixMs>,
    /// The last live poll that listed every page.
    pub last_poll_ok_at: Option<UnixMs>,
    /// `run --since`: background windows listed, out of how many.
    pub backfill_windows_done: Option<i64>,
    pub backfill_windows_total: Option<i64>,
    /// When the last periodic scrub finished.
    pub scrub_finished_at: Option<UnixMs>,
    /// When the last prune round of the service finished (`migrations/0008_prune.sql`).
    pub prune_finished_at: Option<UnixMs>,
    /// Copies that prune runs (the service's or the command's) found not intact, so did
    /// not delete the cloud's file for, in all.
    pub prune_refused: i64,
}

/// One fact to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    NextPoll(UnixMs),
    PollOk(UnixMs),
    BackfillProgress {
        done: i64,
        total: i64,
    },
    PruneFinished(UnixMs),
    /// A prune run refused this many more copies.
    PruneRefused(i64),
}

/// The daemon's side of `status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DaemonStatus {
    #[serde(flatten)]
    pub facts: DaemonFacts,
    /// The file waiting longest for download.
    pub oldest_pending: Option<PendingFile>,
    /// Failed and unavailable files counted by reason, most common first.
    pub failures_by_reason: Vec<(String, i64)>,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct PendingFile {
    pub record_file_id: RecordFileId,
    pub path: String,
    pub status: FileStatus,
    /// When its meeting was first seen.
    pub waiting_since: UnixMs,
}

pub(super) const OLDEST_PENDING_ADDRESS: &str =
    "SELECT MIN(address_issued_at) FROM files WHERE status IN ('queued', 'transferring')";

pub(super) const OLDEST_PENDING: &str =
    "SELECT f.record_file_id, f.path, f.status, m.first_seen_at AS waiting_since
     FROM files f JOIN meetings m USING (meeting_record_id)
     WHERE f.status IN ('queued', 'transferring')
     ORDER BY m.first_seen_at, f.record_file_id LIMIT 1";

pub(super) const FAILURES_BY_REASON: &str =
    "SELECT COALESCE(last_error, status), COUNT(*) FROM files
     WHERE status IN ('failed', 'unavailable')
     GROUP BY 1 ORDER BY 2 DESC, 1";

/// The upsert of one `$column` of the one row of `daemon_facts`.
macro_rules! set_fact {
    ($column:literal) => {
        concat!(
            "INSERT INTO daemon_facts (id, ",
            $column,
            ") VALUES (1, ?)
             ON CONFLICT (id) DO UPDATE SET ",
            $column,
            " = excluded.",
            $column
        )
    };
}

impl Db {
    pub async fn daemon_facts(&self) -> Result<DaemonFacts, DbError> {
        Ok(sqlx::query_as(
            "SELECT next_poll_at, last_poll_ok_at, backfill_windows_done, backfill_windows_total,
                    scrub_finished_at, prune_finished_at, prune_refused
             FROM daemon_facts WHERE id = 1",
        )
        .fetch_optional(self.pool())
        .await?
        .unwrap_or_default())
    }

    pub async fn record_fact(&self, fact: Fact) -> Result<(), DbError> {
        let query = match fact {
            Fact::NextPoll(at) => sqlx::query(set_fact!("next_poll_at")).bind(at),
            Fact::PollOk(at) => sqlx::query(set_fact!("last_poll_ok_at")).bind(at),
            Fact::BackfillProgress { done, total } => sqlx::query(
                "INSERT INTO daemon_facts (id, backfill_windows_done, backfill_windows_total)
                 VALUES (1, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET
                   backfill_windows_done = excluded.backfill_windows_done,
                   backfill_windows_total = excluded.backfill_windows_total",
            )
            .bind(done)
            .bind(total),
            Fact::PruneFinished(at) => sqlx::query(set_fact!("prune_finished_at")).bind(at),
            Fact::PruneRefused(n) => sqlx::query(
                "INSERT INTO daemon_facts (id, prune_refused) VALUES (1, ?)
                 ON CONFLICT (id) DO UPDATE SET
                   prune_refused = daemon_facts.prune_refused + excluded.prune_refused",
            )
            .bind(n),
        };
        query.execute(self.writer()).await?;
        Ok(())
    }

    /// Records a finished scrub: when, and (if it could run) its findings by verdict name,
    /// in one transaction (the metrics never see the findings of one scrub with the time
    /// of another).
    pub async fn record_scrub(
        &self,
        finished_at: UnixMs,
        findings: Option<&[(&str, u64)]>,
    ) -> Result<(), DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO daemon_facts (id, scrub_finished_at) VALUES (1, ?)
             ON CONFLICT (id) DO UPDATE SET scrub_finished_at = excluded.scrub_finished_at",
        )
        .bind(finished_at)
        .execute(&mut *tx)
        .await?;
        let Some(findings) = findings else {
            tx.commit().await?;
            return Ok(());
        };
        sqlx::query("DELETE FROM scrub_findings")
            .execute(&mut *tx)
            .await?;
        for (status, files) in findings {
            sqlx::query("INSERT INTO scrub_findings (status, files) VALUES (?, ?)")
                .bind(status)
                .bind(i64::try_from(*files).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The findings of the last scrub, by verdict name (empty before the first).
    pub async fn scrub_findings(&self) -> Result<Vec<(String, i64)>, DbError> {
        Ok(
            sqlx::query_as("SELECT status, files FROM scrub_findings ORDER BY status")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Issue time of the oldest address still waiting to be used.
    pub async fn oldest_pending_address(&self) -> Result<Option<UnixMs>, DbError> {
        Ok(sqlx::query_scalar(OLDEST_PENDING_ADDRESS)
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn daemon_status(&self) -> Result<DaemonStatus, DbError> {
        Ok(DaemonStatus {
            facts: self.daemon_facts().await?,
            oldest_pending: sqlx::query_as(OLDEST_PENDING)
                .fetch_optional(self.pool())
                .await?,
            failures_by_reason: sqlx::query_as(FAILURES_BY_REASON)
                .fetch_all(self.pool())
                .await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::temp_store;

    #[tokio::test]
    async fn facts_are_kept_one_by_one_and_a_scrub_replaces_the_last() {
        let (store, _dir) = temp_store().await;
        assert_eq!(store.daemon_facts().await.unwrap(), DaemonFacts::default());
        store.record_fact(Fact::NextPoll(UnixMs(5))).await.unwrap();
        store.record_fact(Fact::PollOk(UnixMs(3))).await.unwrap();
        store
            .record_fact(Fact::BackfillProgress { done: 1, total: 4 })
            .await
            .unwrap();
        store
            .record_fact(Fact::PruneFinished(UnixMs(7)))
            .await
            .unwrap();
        for n in [2, 1] {
            store.record_fact(Fact::PruneRefused(n)).await.unwrap();
        }
        store
            .record_scrub(UnixMs(9), Some(&[("ok", 3), ("missing", 1)]))
            .await
            .unwrap();
        store
            .record_scrub(UnixMs(10), Some(&[("ok", 4)]))
            .await
            .unwrap();
        store.record_scrub(UnixMs(11), None).await.unwrap();
        let facts = store.daemon_facts().await.unwrap();
        assert_eq!(
            facts,
            DaemonFacts {
                next_poll_at: Some(UnixMs(5)),
                last_poll_ok_at: Some(UnixMs(3)),
                backfill_windows_done: Some(1),
                backfill_windows_total: Some(4),
                scrub_finished_at: Some(UnixMs(11)),
                prune_finished_at: Some(UnixMs(7)),
                prune_refused: 3,
            }
        );
        assert_eq!(store.scrub_findings().await.unwrap(), [("ok".into(), 4)]);
    }
}
