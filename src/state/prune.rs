//! What `prune` reads and writes: the archived files it may delete from the cloud, and the
//! record of each deletion.
//!
//! A file deleted in the cloud stays `archived` (its copy is what is left, and `verify`
//! keeps checking it); only `deleted_in_cloud_at` says the cloud no longer holds it. A
//! listing that stops showing the file never touches its row (upserts only reach the files
//! a page lists), so nothing marks it missing, unavailable or queued again.

use super::verify::VerifyRow;
use super::{Store, StoreError};
use crate::time::UnixMs;

/// An archived file old enough to be deleted from the cloud: what its download recorded
/// (to re-check the copy against) and when it was archived.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PruneCandidate {
    #[sqlx(flatten)]
    pub file: VerifyRow,
    pub archived_at: UnixMs,
}

/// The candidates' `WHERE`: archived, still in the cloud, archived at or before `?1`.
macro_rules! candidates {
    ($select:literal, $tail:literal) => {
        concat!(
            $select,
            " FROM files f JOIN meetings m USING (meeting_record_id)
             WHERE f.status = 'archived' AND f.deleted_in_cloud_at IS NULL
               AND f.archived_at <= ?1 ",
            $tail
        )
    };
}

impl Store {
    /// At most `limit` candidates archived at or before `archived_before`, the oldest
    /// first (the longest kept, and the first that would have left the cloud anyway).
    pub async fn prune_candidates(
        &self,
        archived_before: UnixMs,
        limit: u32,
    ) -> Result<Vec<PruneCandidate>, StoreError> {
        Ok(sqlx::query_as(candidates!(
            "SELECT f.record_file_id, m.meeting_code, m.subject, m.state AS meeting_state,
                    m.media_start_time, f.path, f.status, f.record_size, f.archived_size,
                    f.sha256, f.bytes_done, f.attempts, f.last_error, f.verified_at,
                    f.archived_at",
            "ORDER BY f.archived_at, f.record_file_id LIMIT ?2"
        ))
        .bind(archived_before)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?)
    }

    /// How many candidates there are in all, beyond any limit.
    pub async fn count_prune_candidates(&self, archived_before: UnixMs) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(candidates!("SELECT COUNT(*)", ""))
            .bind(archived_before)
            .fetch_one(self.pool())
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Records the API's answer that the cloud no longer holds the file (a deletion, or
    /// 4051 for one that happened before), at `at`, and marks its `meeting.json` as
    /// behind, in one transaction. A kill before the commit loses only this record: the
    /// next run deletes again, gets 4051, and records it then.
    pub async fn record_cloud_deletion(
        &self,
        record_file_id: &str,
        at: UnixMs,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE files SET deleted_in_cloud_at = ?1, updated_at = ?1
             WHERE record_file_id = ?2 AND deleted_in_cloud_at IS NULL",
        )
        .bind(at)
        .bind(record_file_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE meetings SET json_dirty_at = ?1 WHERE meeting_record_id =
               (SELECT meeting_record_id FROM files WHERE record_file_id = ?2)",
        )
        .bind(at)
        .bind(record_file_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether any file waits for a transfer or is being transferred: the service's
    /// prune round gives way to them.
    pub async fn transfers_pending(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM files WHERE status IN ('queued', 'transferring'))",
        )
        .fetch_one(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::temp_store;
    use super::super::{FileStatus, FileUpsert, MeetingUpsert};
    use crate::time::UnixMs;

    fn meeting(files: &[&str]) -> MeetingUpsert {
        MeetingUpsert {
            meeting_record_id: "m1".into(),
            meeting_id: "mid".into(),
            meeting_code: "123".into(),
            userid: "u".into(),
            subject: "s".into(),
            media_start_time: UnixMs(1_000),
            state: 3,
            record_type: 0,
            dir: "2024/01/01/123-s".into(),
            files: files
                .iter()
                .map(|f| FileUpsert {
                    record_file_id: (*f).into(),
                    record_start_time: 0,
                    record_end_time: 1,
                    record_size: 10,
                    path: format!("2024/01/01/123-s/{f}.mp4"),
                    download_address: None,
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn a_deleted_file_is_no_candidate_and_a_listing_without_it_leaves_it_archived() {
        let (store, _dir) = temp_store().await;
        store
            .upsert_meetings(&[meeting(&["a", "b", "c"])], UnixMs(0))
            .await
            .unwrap();
        store.mark_archived("a", 10, "aa").await.unwrap();
        store.mark_archived("b", 10, "bb").await.unwrap();
        let far = UnixMs::now() + std::time::Duration::from_secs(60);
        let ids = |c: Vec<super::PruneCandidate>| {
            c.into_iter()
                .map(|c| c.file.record_file_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(store.prune_candidates(far, 10).await.unwrap()),
            ["a", "b"]
        );
        assert_eq!(ids(store.prune_candidates(far, 1).await.unwrap()), ["a"]);
        assert!(
            store
                .prune_candidates(UnixMs(0), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.count_prune_candidates(far).await.unwrap(), 2);

        let at = UnixMs::now();
        store.record_cloud_deletion("a", at).await.unwrap();
        store
            .record_cloud_deletion("a", at + std::time::Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(ids(store.prune_candidates(far, 10).await.unwrap()), ["b"]);
        assert_eq!(
            store.dirs_with_stale_meeting_json().await.unwrap(),
            ["2024/01/01/123-s"]
        );

        // The next listing shows only the files left in the cloud.
        store
            .upsert_meetings(&[meeting(&["b", "c"])], UnixMs(0))
            .await
            .unwrap();
        let a = store.file("a").await.unwrap().unwrap();
        assert_eq!(a.status, FileStatus::Archived);
        assert_eq!(a.deleted_in_cloud_at, Some(at), "the first record stands");
        assert!(store.transfers_pending().await.unwrap(), "c is queued");
        let status = store.status(UnixMs::now()).await.unwrap();
        assert_eq!((status.files_deleted_in_cloud, status.bytes_freed), (1, 10));
    }
}
