//! The life of one file: claim, checkpoint, archive, fail, retry.

use super::audit::{self, Action, AuditEntry};
use super::{Db, DbError};
use crate::time::UnixMs;

/// Where a file is in its life (see `migrations/0001_init.sql` and `0005_addresses.sql`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum FileStatus {
    /// Listed and transcoded: waiting for a worker (with or without an address yet).
    Queued,
    Transferring,
    Archived,
    /// Its attempts ran out (network, host, storage): `--retry-failed` tries again.
    Failed,
    /// The API says it cannot be downloaded: `/v1/addresses` gave no address for it after
    /// every attempt, or refused the recording outright.
    Unavailable,
    /// Left out by `[filter]` (the rule is in `skip_rule`): not a failure, never
    /// downloaded nor pruned; a wider filter queues it again at the next start.
    Skipped,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Transferring => "transferring",
            Self::Archived => "archived",
            Self::Failed => "failed",
            Self::Unavailable => "unavailable",
            Self::Skipped => "skipped",
        }
    }

    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::Transferring,
        Self::Archived,
        Self::Failed,
        Self::Unavailable,
        Self::Skipped,
    ];

    /// Still to be downloaded: a worker will get to it.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Queued | Self::Transferring)
    }
}

/// What a row of `files` holds: a recording's video, or one of its artifacts.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum FileKind {
    /// The MP4 the listing announces (with its size).
    Video,
    /// The audio track alone (m4a), from `/v1/addresses`.
    Audio,
    /// A transcript (txt, pdf, docx), from `/v1/addresses`; may appear hours late.
    Transcript,
}

impl FileKind {
    pub const ALL: [Self; 3] = [Self::Video, Self::Audio, Self::Transcript];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Transcript => "transcript",
        }
    }
}

/// A file with what a transfer needs from its meeting.
#[derive(Clone, sqlx::FromRow)]
pub struct FileRow {
    /// The key of the row: the API's record_file_id for a video, derived from its video's
    /// for an artifact.
    pub record_file_id: String,
    pub kind: FileKind,
    /// An artifact's video (`None` for a video).
    pub parent_file_id: Option<String>,
    pub meeting_record_id: String,
    pub media_start_time: UnixMs,
    /// Bytes announced: by the listing for a video, by the first response for an artifact
    /// (0 until then, `size_known` false).
    pub record_size: i64,
    pub size_known: bool,
    pub path: String,
    pub dir: String,
    pub status: FileStatus,
    /// A secret: never log it.
    pub download_address: Option<String>,
    pub address_issued_at: Option<UnixMs>,
    pub attempts: i64,
    pub bytes_done: i64,
    pub etag: Option<String>,
    pub hash_state: Option<Vec<u8>>,
    pub sha256: Option<String>,
    pub archived_size: Option<i64>,
    pub last_error: Option<String>,
    pub archived_at: Option<UnixMs>,
    /// When the API confirmed the file is deleted from the cloud (`prune`).
    pub deleted_in_cloud_at: Option<UnixMs>,
    /// The `[filter]` rule that left it out (`skipped` only).
    pub skip_rule: Option<String>,
    /// The recording's times, as listed (ms), for `meeting.json`.
    pub record_start_time: i64,
    pub record_end_time: i64,
}

/// Hand-written so that the download address never reaches a log through `{:?}`.
impl std::fmt::Debug for FileRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRow")
            .field("record_file_id", &self.record_file_id)
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("status", &self.status)
            .field("record_size", &self.record_size)
            .field("bytes_done", &self.bytes_done)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// A durable point of a transfer: `bytes_done` bytes are fsynced in the `.part` file and
/// `hash_state` is the SHA-256 state after exactly those bytes. The default is "start over".
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub bytes_done: i64,
    pub etag: Option<String>,
    pub hash_state: Option<Vec<u8>>,
}

/// `SELECT` of a [`FileRow`] followed by `$tail`, as one `&'static str` (no run-time SQL).
macro_rules! select_files {
    ($tail:literal) => {
        concat!(
            "SELECT f.record_file_id, f.kind, f.parent_file_id, f.meeting_record_id,
               m.media_start_time, f.record_size, f.size_known,
               f.path, m.dir, f.status, f.download_address, f.address_issued_at, f.attempts,
               f.bytes_done, f.etag, f.hash_state, f.sha256, f.archived_size, f.last_error,
               f.archived_at, f.deleted_in_cloud_at, f.skip_rule, f.record_start_time,
               f.record_end_time
             FROM files f JOIN meetings m USING (meeting_record_id) ",
            $tail
        )
    };
}

/// The next file to claim, in the claim's order (see [`Db::claim_next`]): a seek into
/// the partial index `files_claim` (`migrations/0016_growth.sql`), which holds exactly the
/// queued files in this order, so a claim costs the same with 10 or 100,000 rows queued.
/// The meeting's start is read from the file's own copy of it (kept in step by triggers),
/// so no join is needed to order.
pub(super) const CLAIM_LOOK: &str = "SELECT f.record_file_id FROM files f
     WHERE f.status = 'queued'
     ORDER BY f.address_issued_at IS NULL, f.address_issued_at DESC,
              f.media_start_time, f.meeting_record_id, f.record_file_id
     LIMIT 1";

/// Takes the file [`CLAIM_LOOK`] found, only if still queued.
pub(super) const CLAIM_TAKE: &str = "UPDATE files SET status = 'transferring', updated_at = ?
     WHERE record_file_id = ? AND status = 'queued'
     RETURNING record_file_id";

pub(super) const FILE: &str = select_files!("WHERE f.record_file_id = ?");

pub(super) const FILES_OF_MEETING: &str =
    select_files!("WHERE f.meeting_record_id = ? ORDER BY f.record_file_id");

pub(super) const SAVE_CHECKPOINT: &str =
    "UPDATE files SET bytes_done = ?, etag = ?, hash_state = ?, updated_at = ?
     WHERE record_file_id = ?";

pub(super) const MARK_ARCHIVED: &str =
    "UPDATE files SET status = 'archived', archived_size = ?, sha256 = ?, archived_at = ?,
       bytes_done = ?, hash_state = NULL, last_error = NULL, download_address = NULL,
       updated_at = ?
     WHERE record_file_id = ?";

/// Marks the `meeting.json` of a file's meeting as behind, at `?1` (the last change).
pub(super) const MARK_MEETING_JSON_DIRTY: &str =
    "UPDATE meetings SET json_dirty_at = ? WHERE meeting_record_id =
       (SELECT meeting_record_id FROM files WHERE record_file_id = ?)";

pub(super) const RECORD_FAILURE: &str = "UPDATE files SET attempts = attempts + 1, last_error = ?,
       status = CASE WHEN ? OR attempts + 1 >= ? THEN ? ELSE status END,
       updated_at = ?
     WHERE record_file_id = ? RETURNING status";

pub(super) const NOTE_ERROR: &str =
    "UPDATE files SET last_error = ?, updated_at = ? WHERE record_file_id = ?";

pub(super) const RELEASE: &str =
    "UPDATE files SET status = 'queued', last_error = COALESCE(?, last_error), updated_at = ?
     WHERE record_file_id = ? AND status = 'transferring'";

pub(super) const SET_ADDRESS: &str =
    "UPDATE files SET download_address = ?, address_issued_at = ?, updated_at = ?
     WHERE record_file_id = ? AND status IN ('queued', 'transferring')";

pub(super) const FORGET_ADDRESS: &str =
    "UPDATE files SET download_address = NULL, address_issued_at = NULL, updated_at = ?
     WHERE record_file_id = ?";

impl Db {
    /// Files left `transferring` by a process that died go back to the queue; their
    /// checkpoints stay, so the next transfer resumes from them.
    pub async fn requeue_interrupted(&self) -> Result<u64, DbError> {
        let done = sqlx::query(
            "UPDATE files SET status = 'queued', updated_at = ? WHERE status = 'transferring'",
        )
        .bind(UnixMs::now())
        .execute(self.writer())
        .await?;
        self.wake_workers();
        Ok(done.rows_affected())
    }

    /// Atomically takes the next queued file, so two workers never get the same one.
    ///
    /// Files holding an address go first, the most recently issued first: when a worker
    /// fetched the addresses of a meeting, its other files follow while those addresses are
    /// young, so one `/v1/addresses` call serves the whole meeting. Files without an
    /// address follow, oldest meeting first (the first to leave the cloud), a meeting's
    /// files together.
    pub async fn claim_next(&self) -> Result<Option<FileRow>, DbError> {
        let claiming = self.claims.lock().await;
        let id = loop {
            // Looked for first, read-only: an idle worker's look takes no write lock, so
            // it never makes the listing's commits wait.
            let next: Option<String> = sqlx::query_scalar(CLAIM_LOOK)
                .fetch_optional(self.pool())
                .await?;
            let Some(next) = next else {
                return Ok(None);
            };
            // Taken only if still queued (another process may have changed it meanwhile).
            let claimed: Option<String> = sqlx::query_scalar(CLAIM_TAKE)
                .bind(UnixMs::now())
                .bind(&next)
                .fetch_optional(self.writer())
                .await?;
            if let Some(id) = claimed {
                break id;
            }
        };
        drop(claiming);
        self.file(&id).await
    }

    /// Stores the addresses `/v1/addresses` just gave for the files of one meeting that are
    /// still to download, all issued at `issued_at`, in one transaction.
    pub async fn set_addresses(
        &self,
        addresses: &[(String, String)],
        issued_at: UnixMs,
    ) -> Result<(), DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        for (record_file_id, address) in addresses {
            sqlx::query(SET_ADDRESS)
                .bind(address)
                .bind(issued_at)
                .bind(issued_at)
                .bind(record_file_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets a file's address: the download host refused it, so the next attempt must not
    /// start on it.
    pub async fn forget_address(&self, record_file_id: &str) -> Result<(), DbError> {
        sqlx::query(FORGET_ADDRESS)
            .bind(UnixMs::now())
            .bind(record_file_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Whether any file is recorded (a new database knows none).
    pub async fn knows_any_file(&self) -> Result<bool, DbError> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM files)")
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn file(&self, record_file_id: &str) -> Result<Option<FileRow>, DbError> {
        Ok(sqlx::query_as(FILE)
            .bind(record_file_id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// All files, in archive order; `verify` and tests walk them.
    pub async fn all_files(&self) -> Result<Vec<FileRow>, DbError> {
        Ok(sqlx::query_as(select_files!("ORDER BY f.path"))
            .fetch_all(self.pool())
            .await?)
    }

    pub async fn save_checkpoint(
        &self,
        record_file_id: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), DbError> {
        sqlx::query(SAVE_CHECKPOINT)
            .bind(checkpoint.bytes_done)
            .bind(checkpoint.etag.as_deref())
            .bind(checkpoint.hash_state.as_deref())
            .bind(UnixMs::now())
            .bind(record_file_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Called only after the bytes are durable under their final name with the right size.
    /// Also marks the meeting's `meeting.json` as behind, in the same transaction.
    pub async fn mark_archived(
        &self,
        record_file_id: &str,
        size: i64,
        sha256: &str,
    ) -> Result<(), DbError> {
        let now = UnixMs::now();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(MARK_ARCHIVED)
            .bind(size)
            .bind(sha256)
            .bind(now)
            .bind(size)
            .bind(now)
            .bind(record_file_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(MARK_MEETING_JSON_DIRTY)
            .bind(now)
            .bind(record_file_id)
            .execute(&mut *tx)
            .await?;
        let details = serde_json::json!({"size": size, "sha256": sha256});
        audit_file(&mut tx, Action::Archived, record_file_id, details, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The intact copy already at a claimed file's destination becomes its archived copy,
    /// nothing downloaded: with the times its `meeting.json` recorded (`archived_at`,
    /// `deleted_in_cloud_at`), or, `without_record`, with the hash just computed and now
    /// (counted apart by `status`). The folder's `meeting.json` is marked behind only when
    /// it did not record the file.
    pub async fn mark_adopted(
        &self,
        record_file_id: &str,
        size: i64,
        sha256: &str,
        recorded: Option<(Option<UnixMs>, Option<UnixMs>)>,
    ) -> Result<(), DbError> {
        let now = UnixMs::now();
        let (archived_at, deleted_in_cloud_at) = recorded.unwrap_or_default();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE files SET status = 'archived', archived_size = ?, record_size = ?,
               size_known = 1, sha256 = ?, archived_at = ?, deleted_in_cloud_at = ?,
               adopted_at = ?, adopted_without_record = ?, bytes_done = ?, hash_state = NULL,
               last_error = NULL, download_address = NULL, updated_at = ?
             WHERE record_file_id = ?",
        )
        .bind(size)
        .bind(size)
        .bind(sha256)
        .bind(archived_at.unwrap_or(now))
        .bind(deleted_in_cloud_at)
        .bind(now)
        .bind(recorded.is_none())
        .bind(size)
        .bind(now)
        .bind(record_file_id)
        .execute(&mut *tx)
        .await?;
        if recorded.is_none() {
            sqlx::query(MARK_MEETING_JSON_DIRTY)
                .bind(now)
                .bind(record_file_id)
                .execute(&mut *tx)
                .await?;
        }
        let details =
            serde_json::json!({"size": size, "sha256": sha256, "recorded": recorded.is_some()});
        audit_file(&mut tx, Action::Adopted, record_file_id, details, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Counts a failed attempt of a claimed file and records why. When its attempts run out
    /// (or at once, when `now`), the file becomes `exhausted` (`failed`, or `unavailable`
    /// when the API gives no address for it) until `--retry-failed`; otherwise it stays
    /// claimed by the caller, who retries it. Returns the new status.
    pub async fn record_failure(
        &self,
        record_file_id: &str,
        error: &str,
        max_attempts: u32,
        exhausted: FileStatus,
        now: bool,
    ) -> Result<FileStatus, DbError> {
        Ok(sqlx::query_scalar(RECORD_FAILURE)
            .bind(error)
            .bind(now)
            .bind(i64::from(max_attempts))
            .bind(exhausted)
            .bind(UnixMs::now())
            .bind(record_file_id)
            .fetch_one(self.writer())
            .await?)
    }

    /// Records why a claimed file is waiting, without spending an attempt (disk full).
    pub async fn note_error(&self, record_file_id: &str, error: &str) -> Result<(), DbError> {
        sqlx::query(NOTE_ERROR)
            .bind(error)
            .bind(UnixMs::now())
            .bind(record_file_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Files of one meeting, for its `meeting.json`.
    pub async fn files_of_meeting(&self, meeting_record_id: &str) -> Result<Vec<FileRow>, DbError> {
        Ok(sqlx::query_as(FILES_OF_MEETING)
            .bind(meeting_record_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// Puts a claimed file back without counting an attempt (shutdown, paused transfer).
    pub async fn release(&self, record_file_id: &str, note: Option<&str>) -> Result<(), DbError> {
        sqlx::query(RELEASE)
            .bind(note)
            .bind(UnixMs::now())
            .bind(record_file_id)
            .execute(self.writer())
            .await?;
        self.wake_workers();
        Ok(())
    }

    /// `backfill --retry-failed`: failed and unavailable files get a fresh set of attempts
    /// (an address the API refused yesterday may be given today).
    pub async fn retry_failed(&self) -> Result<u64, DbError> {
        let done = sqlx::query(
            "UPDATE files SET status = 'queued', attempts = 0, updated_at = ?
             WHERE status IN ('failed', 'unavailable')",
        )
        .bind(UnixMs::now())
        .execute(self.writer())
        .await?;
        self.wake_workers();
        Ok(done.rows_affected())
    }

    /// Files of meetings whose media started in `[start, end]` that are neither archived
    /// nor left out by `[filter]`.
    pub async fn unarchived_in_range(
        &self,
        start: UnixMs,
        end: UnixMs,
    ) -> Result<Vec<FileRow>, DbError> {
        Ok(sqlx::query_as(UNARCHIVED_IN_RANGE)
            .bind(start)
            .bind(end)
            .fetch_all(self.pool())
            .await?)
    }
}

/// The end of every backfill (a live poll's included): seeks the files' own copy of their
/// meeting's start (`files_media_start_time`), where the meeting's column made SQLite walk
/// every file in path order.
pub(super) const UNARCHIVED_IN_RANGE: &str = select_files!(
    "WHERE f.media_start_time BETWEEN ? AND ? AND f.status NOT IN ('archived', 'skipped')
     ORDER BY f.path"
);

/// Appends to the audit trail, in the transaction of the change, that `record_file_id`
/// (at its path, of its kind) was archived or adopted; `details` adds the size and hash.
async fn audit_file(
    tx: &mut sqlx::SqliteConnection,
    action: Action,
    record_file_id: &str,
    mut details: serde_json::Value,
    now: UnixMs,
) -> Result<(), DbError> {
    let (meeting, path, kind): (String, String, String) =
        sqlx::query_as("SELECT meeting_record_id, path, kind FROM files WHERE record_file_id = ?")
            .bind(record_file_id)
            .fetch_one(&mut *tx)
            .await?;
    details["path"] = path.into();
    details["kind"] = kind.into();
    let entry = AuditEntry::new(action, details)
        .meeting(meeting)
        .file(record_file_id);
    audit::append(tx, &entry, now).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::temp_store;
    use super::super::{FileUpsert, MeetingUpsert};
    use crate::time::UnixMs;

    fn meeting(id: &str, start_ms: i64, files: &[(&str, bool)]) -> MeetingUpsert {
        MeetingUpsert {
            meeting_record_id: id.into(),
            meeting_id: format!("m{id}"),
            meeting_code: format!("code{id}"),
            userid: "u".into(),
            subject: format!("subject {id}"),
            media_start_time: UnixMs(start_ms),
            state: 3,
            record_type: 1,
            dir: format!("d/{id}"),
            files: files
                .iter()
                .map(|(f, addressed)| FileUpsert {
                    record_file_id: (*f).into(),
                    record_start_time: 0,
                    record_end_time: 1,
                    record_size: 10,
                    path: format!("d/{id}/{f}.mp4"),
                    download_address: addressed.then(|| "https://example.invalid/x".into()),
                    skip_rule: None,
                })
                .collect(),
        }
    }

    /// The claim's order (addresses first, the youngest first; then the oldest meeting,
    /// a meeting's files together) holds through the index on the file's copy of its
    /// meeting's start, also when a later listing moves that start.
    #[tokio::test]
    async fn claims_follow_addresses_then_the_oldest_meeting_also_after_its_start_moves() {
        let (store, _dir) = temp_store().await;
        let page = [
            meeting("late", 9_000, &[("late-b", false), ("late-a", false)]),
            meeting("early", 1_000, &[("early-a", false)]),
            meeting("moved", 5_000, &[("moved-a", false)]),
        ];
        store.upsert_meetings(&page, UnixMs(0)).await.unwrap();
        // Listed again, addressed at two times, and with one meeting's start moved earlier.
        store
            .upsert_meetings(
                &[meeting("x", 20_000, &[("old-address", true)])],
                UnixMs(100),
            )
            .await
            .unwrap();
        store
            .upsert_meetings(
                &[meeting("y", 30_000, &[("new-address", true)])],
                UnixMs(200),
            )
            .await
            .unwrap();
        let mut moved = page[2].clone();
        moved.media_start_time = UnixMs(10);
        store.upsert_meetings(&[moved], UnixMs(300)).await.unwrap();

        let mut order = Vec::new();
        while let Some(row) = store.claim_next().await.unwrap() {
            order.push(row.record_file_id);
        }
        assert_eq!(
            order,
            [
                "new-address",
                "old-address",
                "moved-a",
                "early-a",
                "late-a",
                "late-b"
            ]
        );
    }
}
