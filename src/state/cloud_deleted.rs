//! Files the cloud no longer has, as a `recording.deleted` event says.
//!
//! Kept in its own table (`cloud_deletions`, migration 0009) and behind this one function:
//! the prune feature adds `files.deleted_in_cloud_at` for the deletions it makes itself.
//! Once both are in, this function writes that column instead (`COALESCE`, so the first
//! deletion's time stays), and a migration copies `cloud_deletions` into it and drops it.

use super::{Store, StoreError};
use crate::time::UnixMs;

impl Store {
    /// Records that the cloud deleted `record_file_ids` at `at` (told by the event
    /// `trace_id`). Archived copies stay as they are; a file not archived yet can never be,
    /// so a queued or failed one leaves the queue as `unavailable`, saying why (a transfer
    /// in flight fails on its own). Returns how many known files left the queue.
    pub async fn mark_deleted_in_cloud(
        &self,
        record_file_ids: &[String],
        at: UnixMs,
        trace_id: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let mut dequeued = 0;
        for id in record_file_ids {
            sqlx::query(
                "INSERT INTO cloud_deletions (record_file_id, deleted_at, trace_id)
                 VALUES (?, ?, ?) ON CONFLICT (record_file_id) DO NOTHING",
            )
            .bind(id)
            .bind(at)
            .bind(trace_id)
            .execute(&mut *tx)
            .await?;
            dequeued += sqlx::query(
                "UPDATE files SET status = 'unavailable',
                   last_error = 'deleted in the cloud before it was archived', updated_at = ?
                 WHERE record_file_id = ? AND status IN ('queued', 'failed')",
            )
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(dequeued)
    }

    /// When the cloud deleted `record_file_id`, if an event said so.
    pub async fn deleted_in_cloud_at(
        &self,
        record_file_id: &str,
    ) -> Result<Option<UnixMs>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT deleted_at FROM cloud_deletions WHERE record_file_id = ?")
                .bind(record_file_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::temp_store;
    use crate::state::{FileStatus, FileUpsert, MeetingUpsert};

    #[tokio::test]
    async fn a_deleted_file_not_archived_leaves_the_queue_and_an_archived_one_stays() {
        let (store, _dir) = temp_store().await;
        let file = |id: &str| FileUpsert {
            record_file_id: id.into(),
            record_start_time: 0,
            record_end_time: 0,
            record_size: 10,
            path: format!("d/{id}.mp4"),
            download_address: None,
        };
        let meeting = MeetingUpsert {
            meeting_record_id: "m".into(),
            meeting_id: "mid".into(),
            meeting_code: "1".into(),
            userid: "u".into(),
            subject: "s".into(),
            media_start_time: UnixMs(0),
            state: 3,
            record_type: 0,
            dir: "d".into(),
            files: vec![file("kept"), file("gone")],
        };
        store.upsert_meetings(&[meeting], UnixMs(0)).await.unwrap();
        store.mark_archived("kept", 10, "ab").await.unwrap();
        let ids = ["kept".to_string(), "gone".into(), "never-listed".into()];
        let dequeued = store
            .mark_deleted_in_cloud(&ids, UnixMs(5), "t")
            .await
            .unwrap();
        assert_eq!(dequeued, 1);
        let kept = store.file("kept").await.unwrap().unwrap();
        assert_eq!(kept.status, FileStatus::Archived);
        let gone = store.file("gone").await.unwrap().unwrap();
        assert_eq!(gone.status, FileStatus::Unavailable);
        assert!(gone.last_error.unwrap().contains("deleted in the cloud"));
        for id in &ids {
            assert_eq!(
                store.deleted_in_cloud_at(id).await.unwrap(),
                Some(UnixMs(5))
            );
        }
        store
            .mark_deleted_in_cloud(&ids[..1], UnixMs(9), "t2")
            .await
            .unwrap();
        assert_eq!(
            store.deleted_in_cloud_at("kept").await.unwrap(),
            Some(UnixMs(5)),
            "the first deletion's time stays"
        );
    }
}
