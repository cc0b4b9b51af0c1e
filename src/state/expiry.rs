//! What `expire` reads and writes (`migrations/0022_expiry.sql`): the recordings kept
//! past `retention.keep`, and the record of each one removed from the archive. The rows
//! stay (with their hashes) for the record; `verify` and `prune` no longer look at them.

use super::audit::{self, Action, AuditEntry};
use super::holds::held_sql;
use super::{Db, DbError};
use crate::domain::{MeetingRecordId, RecordFileId};
use crate::time::UnixMs;

/// One archived file of a recording past its retention.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ExpiringFile {
    #[serde(skip)]
    pub meeting_record_id: MeetingRecordId,
    pub record_file_id: RecordFileId,
    pub path: String,
    pub size: Option<i64>,
    pub sha256: Option<String>,
}

/// A recording that started before the retention's cut-off, with its archived files.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ExpiringRecording {
    pub meeting_record_id: MeetingRecordId,
    pub meeting_code: String,
    pub subject: String,
    pub userid: String,
    pub media_start_time: UnixMs,
    pub dir: String,
    #[sqlx(skip)]
    pub files: Vec<ExpiringFile>,
}

macro_rules! expiring {
    ($held:literal) => {
        concat!(
            "SELECT m.meeting_record_id, m.meeting_code, m.subject, m.userid,
                    m.media_start_time, m.dir
             FROM meetings m
             WHERE m.expired_at IS NULL AND m.media_start_time < ?1
               AND EXISTS (SELECT 1 FROM files f WHERE f.meeting_record_id = m.meeting_record_id
                           AND f.status = 'archived')
               AND ",
            $held,
            held_sql!(),
            " ORDER BY m.media_start_time, m.meeting_record_id"
        )
    };
}

impl Db {
    /// The recordings in the archive that started before `cut_off`: those free to expire,
    /// and those a hold keeps.
    pub async fn expiring_recordings(
        &self,
        cut_off: UnixMs,
    ) -> Result<(Vec<ExpiringRecording>, Vec<ExpiringRecording>), DbError> {
        let free = self.with_files(expiring!("NOT "), cut_off).await?;
        let held = self.with_files(expiring!(""), cut_off).await?;
        Ok((free, held))
    }

    async fn with_files(
        &self,
        query: &'static str,
        cut_off: UnixMs,
    ) -> Result<Vec<ExpiringRecording>, DbError> {
        let mut recordings: Vec<ExpiringRecording> = sqlx::query_as(query)
            .bind(cut_off)
            .fetch_all(self.pool())
            .await?;
        for r in &mut recordings {
            r.files = sqlx::query_as(
                "SELECT meeting_record_id, record_file_id, path, archived_size AS size, sha256
                 FROM files WHERE meeting_record_id = ? AND status = 'archived' ORDER BY path",
            )
            .bind(&r.meeting_record_id)
            .fetch_all(self.pool())
            .await?;
        }
        Ok(recordings)
    }

    /// Records that `recording`'s files were removed from the archive at `at`, past
    /// `keep`: the meeting is marked expired (its `meeting.json` behind) and the audit
    /// trail gets the record, in one transaction. Refused (false) if a hold came since.
    pub async fn mark_expired(
        &self,
        recording: &ExpiringRecording,
        keep: &str,
        at: UnixMs,
    ) -> Result<bool, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let marked = sqlx::query(concat!(
            "UPDATE meetings AS m SET expired_at = ?1, json_dirty_at = ?1
             WHERE m.meeting_record_id = ?2 AND m.expired_at IS NULL AND NOT ",
            held_sql!()
        ))
        .bind(at)
        .bind(&recording.meeting_record_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked == 0 {
            return Ok(false);
        }
        let entry = AuditEntry::new(
            Action::Expired,
            serde_json::json!({
                "keep": keep,
                "media_start_time": recording.media_start_time,
                "files": recording.files,
            }),
        )
        .meeting(&recording.meeting_record_id);
        audit::append(&mut tx, &entry, at).await?;
        // What its transcripts said is no longer searchable: they left the archive.
        let files: Vec<RecordFileId> =
            sqlx::query_scalar("SELECT record_file_id FROM files WHERE meeting_record_id = ?")
                .bind(&recording.meeting_record_id)
                .fetch_all(&mut *tx)
                .await?;
        for id in &files {
            super::transcripts::forget(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// When the recording was expired, if it was.
    pub async fn expired_at(
        &self,
        meeting_record_id: &MeetingRecordId,
    ) -> Result<Option<UnixMs>, DbError> {
        Ok(
            sqlx::query_scalar("SELECT expired_at FROM meetings WHERE meeting_record_id = ?")
                .bind(meeting_record_id)
                .fetch_optional(self.pool())
                .await?
                .flatten(),
        )
    }
}
