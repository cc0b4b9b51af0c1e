//! The full-text index of archived `txt` transcripts (`migrations/0018_transcript_index.sql`)
//! and the selection of recordings that `search` and `export` share.
//!
//! An index row counts only while its file is `archived` with the SHA-256 it was read
//! from: a transcript re-archived with other bytes, or no longer archived (expired), is
//! never found by its old text, whatever the state of the index; a fill then replaces or
//! drops the row.

use super::meetings::select_meetings;
use super::{Db, DbError, FileKind, FileStatus, MeetingRow};
use crate::domain::{MeetingRecordId, RecordFileId};
use crate::time::UnixMs;
use std::collections::HashSet;

/// Queries shorter than this (in characters) cannot use the trigram index.
pub const TRIGRAM: usize = 3;

/// An archived `txt` transcript whose text the index does not hold (or holds for other
/// bytes).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnindexedTranscript {
    pub record_file_id: RecordFileId,
    pub path: String,
    pub sha256: String,
}

/// The text of one transcript of a recording, as indexed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IndexedText {
    /// The transcript's key (`{video}/transcript/txt`, `.../txt/2`).
    pub record_file_id: RecordFileId,
    pub path: String,
    pub body: String,
}

/// What the index holds: rows, and bytes of text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct IndexSize {
    pub transcripts: i64,
    pub text_bytes: i64,
}

/// One file of a found recording.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct RecordingFile {
    pub meeting_record_id: MeetingRecordId,
    pub record_file_id: RecordFileId,
    pub kind: FileKind,
    pub status: FileStatus,
    /// The archived size, or the announced one while it is not archived.
    pub size: i64,
    pub path: String,
    pub sha256: Option<String>,
}

/// The selectors that SQL applies (`--subject`'s regular expression is applied by the
/// caller): all given ones must hold.
#[derive(Debug, Clone, Default)]
pub struct Selectors<'a> {
    pub userid: Option<&'a str>,
    pub meeting_code: Option<&'a str>,
    /// Inclusive bounds on `media_start_time`.
    pub since: Option<UnixMs>,
    pub until: Option<UnixMs>,
}

/// `term` as an FTS5 string: one phrase, quotes doubled, so no operator of the query
/// syntax (`AND`, `*`, `:`) reaches the parser.
fn fts_phrase(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

/// `term` as a LIKE pattern matching it anywhere, with `%`, `_` and `\` taken literally.
fn like_anywhere(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Db {
    /// Stores the text of the archived transcript `record_file_id`, read from bytes whose
    /// SHA-256 is `sha256`, replacing what the index held for it. Nothing is stored if the
    /// file is no longer archived with that hash (re-archived or expired meanwhile).
    /// Returns whether it was stored.
    pub async fn index_transcript(
        &self,
        record_file_id: &RecordFileId,
        sha256: &str,
        body: &str,
    ) -> Result<bool, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT sha256 FROM files WHERE record_file_id = ? AND status = 'archived'",
        )
        .bind(record_file_id)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        if current.as_deref() != Some(sha256) {
            return Ok(false);
        }
        forget(&mut tx, record_file_id).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO transcript_texts (record_file_id, sha256, bytes, indexed_at)
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(record_file_id)
        .bind(sha256)
        .bind(body.len() as i64)
        .bind(UnixMs::now())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO transcript_fts (rowid, body) VALUES (?, ?)")
            .bind(id)
            .bind(body)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Drops the text of these transcripts from the index: the hook for whatever removes
    /// archived copies (retention's `expire`). Unknown ids are ignored.
    pub async fn forget_transcripts(
        &self,
        record_file_ids: &[&RecordFileId],
    ) -> Result<(), DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        for id in record_file_ids {
            forget(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Drops the rows whose file is no longer archived with the hash they were read from;
    /// returns how many.
    pub async fn drop_stale_transcripts(&self) -> Result<u64, DbError> {
        let stale: Vec<RecordFileId> = sqlx::query_scalar(
            "SELECT t.record_file_id FROM transcript_texts t
             LEFT JOIN files f ON f.record_file_id = t.record_file_id
             WHERE f.status IS NOT 'archived' OR f.sha256 IS NOT t.sha256",
        )
        .fetch_all(self.pool())
        .await?;
        let ids: Vec<&RecordFileId> = stale.iter().collect();
        self.forget_transcripts(&ids).await?;
        Ok(stale.len() as u64)
    }

    /// The archived `txt` transcripts the index lacks (or holds for other bytes).
    pub async fn unindexed_transcripts(&self) -> Result<Vec<UnindexedTranscript>, DbError> {
        Ok(sqlx::query_as(
            "SELECT f.record_file_id, f.path, f.sha256 FROM files f
             LEFT JOIN transcript_texts t ON t.record_file_id = f.record_file_id
             WHERE f.kind = 'transcript' AND f.status = 'archived' AND f.path LIKE '%.txt'
               AND f.sha256 IS NOT NULL AND t.sha256 IS NOT f.sha256
             ORDER BY f.record_file_id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// How much the index holds.
    pub async fn transcript_index_size(&self) -> Result<IndexSize, DbError> {
        Ok(sqlx::query_as(
            "SELECT COUNT(*) AS transcripts, COALESCE(SUM(bytes), 0) AS text_bytes
             FROM transcript_texts",
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// The recordings (meetings) whose indexed transcripts say `term`, anywhere, without
    /// regard to case: a trigram MATCH from three characters on, a LIKE over the same
    /// stored text below (the whole index is read then). The LIKE needs its ESCAPE clause:
    /// without one, FTS5 answers a trigram LIKE of under three characters with no rows.
    pub async fn recordings_saying(&self, term: &str) -> Result<HashSet<MeetingRecordId>, DbError> {
        /// The meetings of the live rows of the index that `$where` selects.
        macro_rules! live {
            ($where:literal) => {
                // CROSS JOIN keeps this order: the index asked once, then each row it
                // gives looked up (SQLite otherwise starts from the archived files and
                // probes the index for each: 1,000 times slower).
                concat!(
                    "SELECT DISTINCT f.meeting_record_id FROM transcript_fts x
                     CROSS JOIN transcript_texts t ON t.id = x.rowid
                     CROSS JOIN files f ON f.record_file_id = t.record_file_id
                     WHERE f.status = 'archived' AND f.sha256 = t.sha256 AND ",
                    $where
                )
            };
        }
        let rows: Vec<MeetingRecordId> = if term.chars().count() >= TRIGRAM {
            sqlx::query_scalar(live!("transcript_fts MATCH ?"))
                .bind(fts_phrase(term))
                .fetch_all(self.pool())
                .await?
        } else {
            sqlx::query_scalar(live!("x.body LIKE ? ESCAPE '\\'"))
                .bind(like_anywhere(term))
                .fetch_all(self.pool())
                .await?
        };
        Ok(rows.into_iter().collect())
    }

    /// The recordings that hold the SQL selectors, earliest first.
    pub async fn select_recordings(&self, s: &Selectors<'_>) -> Result<Vec<MeetingRow>, DbError> {
        Ok(sqlx::query_as(select_meetings!(
            "WHERE expired_at IS NULL
               AND (?1 IS NULL OR userid = ?1) AND (?2 IS NULL OR meeting_code = ?2)
               AND (?3 IS NULL OR media_start_time >= ?3)
               AND (?4 IS NULL OR media_start_time <= ?4)
             ORDER BY media_start_time, meeting_record_id"
        ))
        .bind(s.userid)
        .bind(s.meeting_code)
        .bind(s.since)
        .bind(s.until)
        .fetch_all(self.pool())
        .await?)
    }

    /// Every file of one recording, videos first, each followed by its artifacts.
    pub async fn recording_files(
        &self,
        meeting_record_id: &MeetingRecordId,
    ) -> Result<Vec<RecordingFile>, DbError> {
        Ok(sqlx::query_as(
            "SELECT meeting_record_id, record_file_id, kind, status,
               COALESCE(archived_size, record_size) AS size, path, sha256
             FROM files WHERE meeting_record_id = ?
             ORDER BY COALESCE(parent_file_id, record_file_id), parent_file_id IS NOT NULL,
               record_file_id",
        )
        .bind(meeting_record_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The indexed text of one recording's live transcripts.
    pub async fn recording_texts(
        &self,
        meeting_record_id: &MeetingRecordId,
    ) -> Result<Vec<IndexedText>, DbError> {
        Ok(sqlx::query_as(
            "SELECT f.record_file_id, f.path, x.body FROM files f
             CROSS JOIN transcript_texts t ON t.record_file_id = f.record_file_id
               AND t.sha256 = f.sha256
             CROSS JOIN transcript_fts x ON x.rowid = t.id
             WHERE f.meeting_record_id = ? AND f.status = 'archived'
             ORDER BY f.record_file_id",
        )
        .bind(meeting_record_id)
        .fetch_all(self.pool())
        .await?)
    }
}

pub(super) async fn forget(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    record_file_id: &RecordFileId,
) -> Result<(), DbError> {
    let id: Option<i64> =
        sqlx::query_scalar("DELETE FROM transcript_texts WHERE record_file_id = ? RETURNING id")
            .bind(record_file_id)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(id) = id {
        sqlx::query("DELETE FROM transcript_fts WHERE rowid = ?")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::temp_store;
    use crate::state::{ArtifactUpsert, FileUpsert, MeetingUpsert};

    async fn recording_with_transcript(store: &Db, id: &str) -> RecordFileId {
        let m = MeetingUpsert {
            meeting_record_id: format!("m{id}").into(),
            meeting_id: "1".into(),
            meeting_code: "123".into(),
            userid: "u".into(),
            subject: "s".into(),
            media_start_time: UnixMs(1),
            state: 3.into(),
            record_type: 0,
            dir: format!("d{id}"),
            files: vec![FileUpsert {
                record_file_id: id.into(),
                record_start_time: 0,
                record_end_time: 1,
                record_size: 10,
                path: format!("d{id}/{id}.mp4"),
                download_address: None,
                skip_rule: None,
            }],
        };
        store.upsert_meetings(&[m], UnixMs(1)).await.unwrap();
        let key = RecordFileId::new(format!("{id}/transcript/txt"));
        store
            .upsert_artifacts(
                &format!("m{id}").into(),
                &[ArtifactUpsert {
                    key: key.clone(),
                    kind: FileKind::Transcript,
                    parent_file_id: id.into(),
                    path: format!("d{id}/{id}.transcript.txt"),
                    download_address: wemeet_api::Secret::new("https://x/y"),
                }],
                UnixMs(1),
            )
            .await
            .unwrap();
        key
    }

    #[tokio::test]
    async fn text_is_found_by_three_characters_by_two_and_without_regard_to_case() {
        let (store, _dir) = temp_store().await;
        let key = recording_with_transcript(&store, "a").await;
        store.mark_archived(&key, 5, "h1").await.unwrap();
        let said =
            "[00:00:03] 张三: 今年的预算需要重新审批。\n[00:00:09] Bob: The Supplier contract.\n";
        assert!(store.index_transcript(&key, "h1", said).await.unwrap());
        for term in ["预算", "重新审批", "supplier", "SUPPLIER", "50%"] {
            let found = store.recordings_saying(term).await.unwrap();
            assert_eq!(found.contains("ma"), term != "50%", "{term}");
        }
        assert!(store.recordings_saying("预").await.unwrap().contains("ma"));
        assert!(store.recordings_saying("面试").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn text_of_other_bytes_or_of_a_file_no_longer_archived_is_not_found() {
        let (store, _dir) = temp_store().await;
        let key = recording_with_transcript(&store, "a").await;
        store.mark_archived(&key, 5, "h1").await.unwrap();
        assert!(!store.index_transcript(&key, "other", "预算").await.unwrap());
        assert!(store.index_transcript(&key, "h1", "预算").await.unwrap());
        store.mark_archived(&key, 5, "h2").await.unwrap();
        assert!(store.recordings_saying("预算").await.unwrap().is_empty());
        assert_eq!(store.unindexed_transcripts().await.unwrap().len(), 1);
        assert_eq!(store.drop_stale_transcripts().await.unwrap(), 1);
        assert_eq!(store.transcript_index_size().await.unwrap().transcripts, 0);
        assert!(store.index_transcript(&key, "h2", "面试").await.unwrap());
        assert!(store.unindexed_transcripts().await.unwrap().is_empty());
        store.forget_transcripts(&[&key]).await.unwrap();
        assert!(store.recordings_saying("面试").await.unwrap().is_empty());
    }
}
