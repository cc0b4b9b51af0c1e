//! The record of a `relayout` (`migrations/0012_relayout.sql`): the plan, each move, the
//! end.

use super::audit::{self, Action, AuditEntry};
use super::{Db, DbError, FileKind, FileStatus};
use crate::domain::{MeetingRecordId, RecordFileId};
use crate::time::UnixMs;

/// A file with what a new path is rendered from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LaidOutFile {
    pub record_file_id: RecordFileId,
    pub kind: FileKind,
    pub parent_file_id: Option<RecordFileId>,
    pub path: String,
    pub status: FileStatus,
    pub record_start_time: i64,
    pub meeting_record_id: MeetingRecordId,
    pub meeting_id: String,
    pub meeting_code: String,
    pub userid: String,
    pub subject: String,
    pub media_start_time: i64,
    pub dir: String,
}

/// One recorded move still to do.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingMove {
    pub record_file_id: RecordFileId,
    pub path: String,
    pub new_path: String,
}

impl Db {
    /// Every file with its meeting's fields, a meeting's files together.
    pub async fn laid_out_files(&self) -> Result<Vec<LaidOutFile>, DbError> {
        Ok(sqlx::query_as(
            "SELECT f.record_file_id, f.kind, f.parent_file_id, f.path, f.status,
                    f.record_start_time, m.meeting_record_id, m.meeting_id, m.meeting_code,
                    m.userid, m.subject, m.media_start_time, m.dir
             FROM files f JOIN meetings m USING (meeting_record_id)
             ORDER BY m.meeting_record_id, f.record_start_time, f.record_file_id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// The template a relayout in progress moves to, if one is.
    pub async fn relayout_target(&self) -> Result<Option<String>, DbError> {
        Ok(
            sqlx::query_scalar("SELECT target FROM archive_layout WHERE id = 1")
                .fetch_optional(self.pool())
                .await?
                .flatten(),
        )
    }

    /// Records the plan, before anything moves: the target and every `(file, new path)`.
    pub async fn plan_relayout(
        &self,
        target: &str,
        moves: &[(RecordFileId, String)],
    ) -> Result<(), DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        for (record_file_id, new_path) in moves {
            sqlx::query("INSERT INTO relayout_moves (record_file_id, new_path) VALUES (?, ?)")
                .bind(record_file_id)
                .bind(new_path)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE archive_layout SET target = ? WHERE id = 1")
            .bind(target)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn pending_moves(&self) -> Result<Vec<PendingMove>, DbError> {
        Ok(sqlx::query_as(
            "SELECT r.record_file_id, f.path, r.new_path
             FROM relayout_moves r JOIN files f USING (record_file_id)
             ORDER BY f.path",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// The file is at its new path: the row says so and the move is done, together.
    pub async fn commit_move(
        &self,
        record_file_id: &RecordFileId,
        new_path: &str,
    ) -> Result<(), DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let (meeting, old_path): (String, String) =
            sqlx::query_as("SELECT meeting_record_id, path FROM files WHERE record_file_id = ?")
                .bind(record_file_id)
                .fetch_one(&mut *tx)
                .await?;
        if old_path != new_path {
            let entry = AuditEntry::new(
                Action::Moved,
                serde_json::json!({"from": old_path, "to": new_path}),
            )
            .meeting(meeting)
            .file(record_file_id);
            audit::append(&mut tx, &entry, UnixMs::now()).await?;
        }
        sqlx::query("UPDATE files SET path = ?, updated_at = ? WHERE record_file_id = ?")
            .bind(new_path)
            .bind(UnixMs::now())
            .bind(record_file_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM relayout_moves WHERE record_file_id = ?")
            .bind(record_file_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every move is done: the meetings get their new folders (each `meeting.json` marked
    /// behind) and the target becomes the archive's layout.
    pub async fn finish_relayout(&self, dirs: &[(String, String)]) -> Result<(), DbError> {
        let now = UnixMs::now();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        for (meeting_record_id, dir) in dirs {
            sqlx::query(
                "UPDATE meetings SET dir = ?, json_dirty_at = ? WHERE meeting_record_id = ?",
            )
            .bind(dir)
            .bind(now)
            .bind(meeting_record_id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE archive_layout SET template = target, target = NULL, recorded_at = ?
             WHERE id = 1 AND target IS NOT NULL",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
