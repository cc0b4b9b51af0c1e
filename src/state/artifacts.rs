//! Artifacts of a recording (audio track, transcripts): rows of `files` with a kind and a
//! parent video (`migrations/0007_artifacts.sql`), discovered through `/v1/addresses`.

use super::{Db, DbError, FileKind, life};
use crate::domain::{MeetingRecordId, RecordFileId};
use crate::time::UnixMs;
use wemeet_api::Secret;

/// An artifact as `/v1/addresses` revealed it, ready to store.
#[derive(Debug, Clone)]
pub struct ArtifactUpsert {
    /// The row's key (see `archive::layout::artifact_key`).
    pub key: RecordFileId,
    pub kind: FileKind,
    /// Its video's record_file_id.
    pub parent_file_id: RecordFileId,
    pub path: String,
    /// The signed address.
    pub download_address: Secret,
}

/// The next meeting whose artifacts are due for a look (see [`Db::claim_artifact_check`]),
/// in two parts so that each seeks its own index: those never looked at
/// (`meetings_artifacts_unchecked`, migration 0016), the oldest first, then (`?2`: with
/// transcripts) those still without one, the oldest first. (`INDEXED BY`: without the
/// statistics of `ANALYZE`, SQLite would rather walk every transcoded meeting.)
pub(super) const CLAIM_ARTIFACT_CHECK: &str =
    "UPDATE meetings SET artifacts_checked_at = ?1 WHERE meeting_record_id = (
       SELECT meeting_record_id FROM (
         SELECT * FROM (
           SELECT 0 AS part, m.meeting_record_id, m.media_start_time
           FROM meetings m INDEXED BY meetings_artifacts_unchecked
           WHERE m.state = 3 AND m.artifacts_checked_at IS NULL
             AND EXISTS (SELECT 1 FROM files v WHERE v.meeting_record_id = m.meeting_record_id
                         AND v.kind = 'video')
             AND NOT EXISTS (SELECT 1 FROM files v WHERE v.meeting_record_id = m.meeting_record_id
                             AND v.kind = 'video' AND v.status IN ('queued', 'transferring'))
           ORDER BY m.media_start_time LIMIT 1)
         UNION ALL
         SELECT * FROM (
           SELECT 1 AS part, m.meeting_record_id, m.media_start_time FROM meetings m
           WHERE ?2 AND m.state = 3 AND m.transcript_wait_ended_at IS NULL
             AND m.artifacts_checked_at < ?3
             AND EXISTS (SELECT 1 FROM files v
                         WHERE v.meeting_record_id = m.meeting_record_id AND v.kind = 'video'
                           AND NOT EXISTS (SELECT 1 FROM files t
                                           WHERE t.parent_file_id = v.record_file_id
                                             AND t.kind = 'transcript'))
             AND NOT EXISTS (SELECT 1 FROM files v WHERE v.meeting_record_id = m.meeting_record_id
                             AND v.kind = 'video' AND v.status IN ('queued', 'transferring'))
           ORDER BY m.media_start_time LIMIT 1)
         ORDER BY part LIMIT 1))
     RETURNING meeting_record_id";

impl Db {
    /// Stores the artifacts of one meeting with their fresh addresses (issued no earlier
    /// than `issued_at`), in one transaction: new ones are queued (their size unknown), or
    /// skipped with their video (`[filter]`); the
    /// address of one still to download is replaced, and one the API had refused is queued
    /// again. Archived artifacts are never touched.
    pub async fn upsert_artifacts(
        &self,
        meeting_record_id: &MeetingRecordId,
        artifacts: &[ArtifactUpsert],
        issued_at: UnixMs,
    ) -> Result<(), DbError> {
        let now = UnixMs::now();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let mut changes = life::Changes::new(&mut tx, now);
        for a in artifacts {
            changes
                .artifact_listed(meeting_record_id, a, issued_at)
                .await?;
        }
        sqlx::query("UPDATE meetings SET artifacts_checked_at = ? WHERE meeting_record_id = ?")
            .bind(issued_at)
            .bind(meeting_record_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.wake_workers();
        Ok(())
    }

    /// Queues the artifacts a video's `meeting.json` records (key, path, entry), with the
    /// size recorded there, for their copies to be adopted (or downloaded again) without
    /// a look at `/v1/addresses` first: the meeting counts as looked at now. Rows already
    /// there are left as they are.
    pub async fn queue_recorded_artifacts(
        &self,
        video_id: &RecordFileId,
        artifacts: &[(RecordFileId, String, super::catalog::FileRecord)],
    ) -> Result<(), DbError> {
        let now = UnixMs::now();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let mut changes = life::Changes::new(&mut tx, now);
        for (key, path, record) in artifacts {
            changes
                .artifact_recorded(video_id, (key, path, record))
                .await?;
        }
        sqlx::query(
            "UPDATE meetings SET artifacts_checked_at = ? WHERE artifacts_checked_at IS NULL
               AND meeting_record_id = (SELECT meeting_record_id FROM files WHERE record_file_id = ?)",
        )
        .bind(now)
        .bind(video_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.wake_workers();
        Ok(())
    }

    /// Records the size the first response announced for an artifact: from now on every
    /// resume is held to it.
    pub async fn set_announced_size(&self, key: &RecordFileId, size: u64) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE files SET record_size = ?, size_known = 1, updated_at = ?
             WHERE record_file_id = ? AND size_known = 0",
        )
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(UnixMs::now())
        .bind(key)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Takes the next transcoded meeting whose artifacts need a look at `/v1/addresses`,
    /// once none of its videos is still to download (a video's own address call looks
    /// for them, and a video adopted from the archive brings back what its `meeting.json`
    /// recorded of them): one never looked at, or (with `transcripts`) one with a video still without a
    /// transcript, whose wait has not ended, last looked at before `recheck_before`.
    /// Marks it looked at now, so two workers never take the same one.
    pub async fn claim_artifact_check(
        &self,
        transcripts: bool,
        recheck_before: UnixMs,
    ) -> Result<Option<MeetingRecordId>, DbError> {
        Ok(sqlx::query_scalar(CLAIM_ARTIFACT_CHECK)
            .bind(UnixMs::now())
            .bind(transcripts)
            .bind(recheck_before)
            .fetch_optional(self.writer())
            .await?)
    }

    /// A look that failed: the meeting is taken again later, as if never looked at.
    pub async fn release_artifact_check(
        &self,
        meeting_record_id: &MeetingRecordId,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE meetings SET artifacts_checked_at = NULL WHERE meeting_record_id = ?")
            .bind(meeting_record_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// The record_file_ids of the meeting's videos that have no transcript yet, and when
    /// the last of its videos ended (the wait for transcripts counts from there).
    pub async fn videos_without_transcript(
        &self,
        meeting_record_id: &MeetingRecordId,
    ) -> Result<(Vec<String>, UnixMs), DbError> {
        let ids = sqlx::query_scalar(
            "SELECT v.record_file_id FROM files v
             WHERE v.meeting_record_id = ? AND v.kind = 'video'
               AND NOT EXISTS (SELECT 1 FROM files t WHERE t.parent_file_id = v.record_file_id
                               AND t.kind = 'transcript')
             ORDER BY v.record_file_id",
        )
        .bind(meeting_record_id)
        .fetch_all(self.pool())
        .await?;
        let ended: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(record_end_time) FROM files WHERE meeting_record_id = ? AND kind = 'video'",
        )
        .bind(meeting_record_id)
        .fetch_one(self.pool())
        .await?;
        Ok((ids, UnixMs(ended.unwrap_or(0))))
    }

    /// The wait for the meeting's transcripts is over: it is not looked at again for them.
    pub async fn end_transcript_wait(
        &self,
        meeting_record_id: &MeetingRecordId,
        at: UnixMs,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE meetings SET transcript_wait_ended_at = ? WHERE meeting_record_id = ?
               AND transcript_wait_ended_at IS NULL",
        )
        .bind(at)
        .bind(meeting_record_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
