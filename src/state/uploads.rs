//! S3 multipart uploads in progress (`migrations/0002_s3_uploads.sql`): the upload id and
//! every acknowledged part, so that a restarted process continues the same upload.
//!
//! Each part is recorded in the same transaction that moves the file's checkpoint
//! (`files.bytes_done`, `hash_state`, `etag`) to the end of the first contiguous run of
//! parts: parts finish out of order when several are in flight, and only a gap-free prefix
//! can be resumed from.

use super::{Db, DbError};
use crate::domain::RecordFileId;
use crate::time::UnixMs;

/// The multipart upload of one file.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UploadRow {
    pub record_file_id: RecordFileId,
    pub upload_id: String,
    /// The key the upload was created for: a changed `prefix` must not make the archiver
    /// complete (or abort) an upload under a key it was not started for.
    pub object_key: String,
    pub part_size: u64,
    pub created_at: UnixMs,
    /// Set once the bucket assembled the object: the id is spent.
    pub completed_at: Option<UnixMs>,
}

/// One part the bucket acknowledged: source bytes `[start_offset, end_offset)`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PartRow {
    pub part_index: u64,
    /// object_store's `PartId`: the ETag, with the part checksum when one was sent.
    pub part_id: String,
    pub start_offset: u64,
    pub end_offset: u64,
    /// SHA-256 state after `end_offset` bytes (`download::hash_state` format).
    pub hash_state: Vec<u8>,
}

/// An upload as `status` shows it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct UploadProgress {
    pub record_file_id: RecordFileId,
    pub path: String,
    pub object_key: String,
    pub parts: i64,
    pub bytes_uploaded: i64,
    pub record_size: i64,
    pub created_at: UnixMs,
}

/// Forgets a file's upload (its parts go with it: `ON DELETE CASCADE`).
pub(super) const DELETE_UPLOAD: &str = "DELETE FROM uploads WHERE record_file_id = ?";

impl Db {
    pub async fn upload(
        &self,
        record_file_id: &RecordFileId,
    ) -> Result<Option<UploadRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT record_file_id, upload_id, object_key, part_size, created_at, completed_at
             FROM uploads WHERE record_file_id = ?",
        )
        .bind(record_file_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The recorded parts of a file's upload, by index.
    pub async fn upload_parts(
        &self,
        record_file_id: &RecordFileId,
    ) -> Result<Vec<PartRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT part_index, part_id, start_offset, end_offset, hash_state FROM upload_parts
             WHERE record_file_id = ? ORDER BY part_index",
        )
        .bind(record_file_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records a new upload for a file, replacing any previous one (whose parts are
    /// forgotten) and resetting the file's checkpoint: a new upload starts at byte 0.
    pub async fn start_upload(
        &self,
        record_file_id: &RecordFileId,
        upload_id: &str,
        object_key: &str,
        part_size: u64,
    ) -> Result<(), DbError> {
        let now = UnixMs::now();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(DELETE_UPLOAD)
            .bind(record_file_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO uploads (record_file_id, upload_id, object_key, part_size, created_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(record_file_id)
        .bind(upload_id)
        .bind(object_key)
        .bind(super::size_column(part_size))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        reset_checkpoint(&mut tx, record_file_id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an acknowledged part and moves the file's checkpoint to the end of the first
    /// contiguous run of parts (with `source_etag`, the download's ETag for `If-Range`).
    pub async fn save_part(
        &self,
        record_file_id: &RecordFileId,
        part: &PartRow,
        source_etag: Option<&str>,
    ) -> Result<(), DbError> {
        let now = UnixMs::now();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT OR REPLACE INTO upload_parts (record_file_id, part_index, part_id,
               start_offset, end_offset, hash_state, uploaded_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record_file_id)
        .bind(super::size_column(part.part_index))
        .bind(&part.part_id)
        .bind(super::size_column(part.start_offset))
        .bind(super::size_column(part.end_offset))
        .bind(&part.hash_state)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The smallest index whose successor is missing ends the run that starts at part 0
        // (every index below it is present, or a smaller one would qualify).
        let frontier: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT p.end_offset, p.hash_state FROM upload_parts p
             WHERE p.record_file_id = ?1
               AND EXISTS (SELECT 1 FROM upload_parts WHERE record_file_id = ?1 AND part_index = 0)
               AND NOT EXISTS (SELECT 1 FROM upload_parts q
                               WHERE q.record_file_id = ?1 AND q.part_index = p.part_index + 1)
             ORDER BY p.part_index LIMIT 1",
        )
        .bind(record_file_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((bytes_done, hash_state)) = frontier {
            sqlx::query(
                "UPDATE files SET bytes_done = ?, hash_state = ?, etag = ?, updated_at = ?
                 WHERE record_file_id = ?",
            )
            .bind(bytes_done)
            .bind(hash_state)
            .bind(source_etag)
            .bind(now)
            .bind(record_file_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that the bucket assembled the object from the parts.
    pub async fn mark_upload_completed(
        &self,
        record_file_id: &RecordFileId,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE uploads SET completed_at = ? WHERE record_file_id = ?")
            .bind(UnixMs::now())
            .bind(record_file_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Forgets parts from `first_index` on: a resume re-uploads them, and a part left
    /// beyond a gap must not join the contiguous run (and so the checkpoint) later.
    pub async fn forget_parts_from(
        &self,
        record_file_id: &RecordFileId,
        first_index: u64,
    ) -> Result<(), DbError> {
        sqlx::query("DELETE FROM upload_parts WHERE record_file_id = ? AND part_index >= ?")
            .bind(record_file_id)
            .bind(super::size_column(first_index))
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Starts a file over: resets its checkpoint and forgets the parts of its upload (the
    /// upload itself stays; its parts are overwritten from part 0), in one transaction, so
    /// that a crash cannot leave old parts beside a checkpoint that no longer vouches for
    /// them. On local disk there are no parts: this only resets the checkpoint.
    pub async fn forget_progress(&self, record_file_id: &RecordFileId) -> Result<(), DbError> {
        let now = UnixMs::now();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM upload_parts WHERE record_file_id = ?")
            .bind(record_file_id)
            .execute(&mut *tx)
            .await?;
        reset_checkpoint(&mut tx, record_file_id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets a file's upload and its parts: it was completed, aborted, or is gone from
    /// the bucket.
    pub async fn delete_upload(&self, record_file_id: &RecordFileId) -> Result<(), DbError> {
        sqlx::query(DELETE_UPLOAD)
            .bind(record_file_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Uploads of files not yet archived, oldest first, for `status`.
    pub async fn uploads_in_progress(&self) -> Result<Vec<UploadProgress>, DbError> {
        Ok(sqlx::query_as(
            "SELECT u.record_file_id, f.path, u.object_key,
               COUNT(p.part_index) AS parts,
               COALESCE(SUM(p.end_offset - p.start_offset), 0) AS bytes_uploaded,
               f.record_size, u.created_at
             FROM uploads u JOIN files f USING (record_file_id)
             LEFT JOIN upload_parts p USING (record_file_id)
             WHERE f.status != 'archived'
             GROUP BY u.record_file_id ORDER BY u.created_at, u.record_file_id",
        )
        .fetch_all(self.pool())
        .await?)
    }
}

async fn reset_checkpoint(
    tx: &mut sqlx::SqliteConnection,
    record_file_id: &RecordFileId,
    now: UnixMs,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE files SET bytes_done = 0, hash_state = NULL, etag = NULL, updated_at = ?
         WHERE record_file_id = ?",
    )
    .bind(now)
    .bind(record_file_id)
    .execute(tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::temp_store;
    use crate::state::{FileUpsert, MeetingUpsert};

    async fn store_with_file() -> (Db, tempfile::TempDir) {
        let (store, dir) = temp_store().await;
        store
            .upsert_meetings(
                &[MeetingUpsert {
                    meeting_record_id: "m1".into(),
                    meeting_id: "1".into(),
                    meeting_code: "100".into(),
                    userid: "u".into(),
                    subject: "s".into(),
                    media_start_time: UnixMs(0),
                    state: 3.into(),
                    record_type: 1,
                    dir: "1970/01/01/100-s".into(),
                    files: vec![FileUpsert {
                        record_file_id: "f1".into(),
                        record_start_time: 0,
                        record_end_time: 1,
                        record_size: 25,
                        path: "1970/01/01/100-s/f1.mp4".into(),
                        download_address: Some(wemeet_api::Secret::new(
                            "https://example.invalid/f1",
                        )),
                        skip_rule: None,
                    }],
                }],
                UnixMs(0),
            )
            .await
            .unwrap();
        (store, dir)
    }

    fn part(index: u64) -> PartRow {
        PartRow {
            part_index: index,
            part_id: format!("etag-{index}"),
            start_offset: index * 10,
            end_offset: (index * 10 + 10).min(25),
            hash_state: vec![index as u8],
        }
    }

    #[tokio::test]
    async fn the_checkpoint_follows_the_first_contiguous_run_of_parts() {
        let (store, _dir) = store_with_file().await;
        let f1 = &RecordFileId::from("f1");
        store
            .start_upload(f1, "up-1", "p/f1.mp4", 10)
            .await
            .unwrap();
        let bytes_done = |store: Db| async move { store.file(f1).await.unwrap().unwrap() };

        // Part 1 first (out of order): nothing is resumable yet.
        store.save_part(f1, &part(1), Some("\"e\"")).await.unwrap();
        assert_eq!(bytes_done(store.clone()).await.bytes_done, 0);
        store.save_part(f1, &part(0), Some("\"e\"")).await.unwrap();
        let row = bytes_done(store.clone()).await;
        assert_eq!(
            (row.bytes_done, row.hash_state, row.etag.as_deref()),
            (20, Some(vec![1]), Some("\"e\""))
        );
        store.save_part(f1, &part(2), Some("\"e\"")).await.unwrap();
        assert_eq!(bytes_done(store.clone()).await.bytes_done, 25);
        assert_eq!(store.upload_parts(f1).await.unwrap().len(), 3);

        let progress = store.uploads_in_progress().await.unwrap();
        assert_eq!((progress[0].parts, progress[0].bytes_uploaded), (3, 25));

        store.forget_progress(f1).await.unwrap();
        assert!(store.upload_parts(f1).await.unwrap().is_empty());
        assert_eq!(bytes_done(store.clone()).await.bytes_done, 0);
        assert_eq!(store.upload(f1).await.unwrap().unwrap().upload_id, "up-1");

        store.save_part(f1, &part(0), None).await.unwrap();
        store.save_part(f1, &part(2), None).await.unwrap();
        store.forget_parts_from(f1, 1).await.unwrap();
        assert_eq!(store.upload_parts(f1).await.unwrap().len(), 1);
        store.mark_upload_completed(f1).await.unwrap();
        assert!(
            store
                .upload(f1)
                .await
                .unwrap()
                .unwrap()
                .completed_at
                .is_some()
        );

        store.save_part(f1, &part(0), None).await.unwrap();
        store
            .start_upload(f1, "up-2", "p/f1.mp4", 10)
            .await
            .unwrap();
        assert!(
            store.upload_parts(f1).await.unwrap().is_empty(),
            "a new upload starts empty"
        );
        store.delete_upload(f1).await.unwrap();
        assert_eq!(store.upload(f1).await.unwrap(), None);
        assert!(store.uploads_in_progress().await.unwrap().is_empty());
    }
}
