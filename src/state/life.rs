//! The life of a file (`docs/architecture.md`, "A file's life"), in one place: every change
//! of a row's `status`, and of what goes with it (attempts, checkpoint, archived size and
//! hash, the verified and deleted-in-the-cloud marks), is a statement or a transaction of
//! this module, with the audit record of the change in the same transaction. Other
//! modules read statuses; the archive's backends write bytes only and say what they wrote.
//!
//! | transition | where |
//! | --- | --- |
//! | listed → queued or skipped; skipped ↔ queued; unavailable → queued (new address) | [`Changes::listed`], [`Changes::judged`] (one rule: `verdict!`) |
//! | an artifact found → queued or skipped with its video; unavailable → queued | [`Changes::artifact_listed`], [`Changes::artifact_recorded`], [`Changes::artifacts_follow`] |
//! | queued → transferring | [`Db::claim_next`] |
//! | transferring: checkpoint | [`Db::save_checkpoint`] |
//! | transferring → archived (bytes durable, announced size, SHA-256) | [`Db::mark_archived`] |
//! | queued or transferring → archived without download (adopted) | [`Db::mark_adopted`] |
//! | meeting.json → archived or queued (reindex) | [`Changes::reindexed`], [`Changes::deletion_recorded`] |
//! | transferring → failed or unavailable (exhausted), or a failed attempt counted | [`Db::record_failure`], [`Db::note_error`] |
//! | transferring → queued (shutdown, dead process) | [`Db::release`], [`Db::requeue_interrupted`] |
//! | failed or unavailable → queued (`--retry-failed`) | [`Db::retry_failed`] |
//! | archived: verified | [`Db::mark_verified`] |
//! | deleted in the cloud (archived stays, queued or failed → unavailable) | [`Db::record_cloud_deletion`], [`Db::mark_deleted_in_cloud`] |

use super::audit::{self, Action, AuditEntry};
use super::catalog::{FileRecord, ReindexFile};
use super::files::MARK_MEETING_JSON_DIRTY;
use super::meetings::FileUpsert;
use super::uploads::DELETE_UPLOAD;
use super::{ArtifactUpsert, Db, DbError, FileRow, FileStatus};
use crate::domain::{MeetingRecordId, RecordFileId, SkipRule};
use crate::time::UnixMs;
use sqlx::Sqlite;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use wemeet_api::Secret;

/// When a failed attempt makes its file exhausted (`failed` or `unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhaust {
    /// Once this many attempts have failed; before that the caller retries it.
    After(u32),
    /// At once: no attempt can help (the API refused the recording).
    AtOnce,
}

/// How a file became archived: downloaded, or its copy adopted (with the times its
/// `meeting.json` recorded, if it did).
enum Became {
    Downloaded,
    Adopted(Option<(Option<UnixMs>, Option<UnixMs>)>),
}

/// The reason an artifact is skipped: the filter judges its video, not it.
pub(super) fn video_skipped() -> SkipRule {
    SkipRule::new("filter", "its video is skipped")
}

/// The one rule of `[filter]` and listings on a row that is not archived: `$rule` is the
/// skip rule that applies now (NULL: the file is wanted), `$address` an address just
/// given (NULL: none), `$leftover` 1 when a `transferring` row is a dead process's
/// leftover (at start, before any worker), 0 when a live worker holds it.
///
/// A rule skips every row not archived nor held by a live worker (failed and unavailable
/// ones too: the filter says what is to be archived, whatever happened to it); a skipped
/// row the filter wants again is queued with a fresh set of attempts, and so is one the
/// API had refused (`unavailable`) once an address comes.
macro_rules! verdict {
    (skips, $rule:literal, $leftover:literal) => {
        concat!(
            "(",
            $rule,
            " IS NOT NULL AND (files.status IN ('queued', 'failed', 'unavailable', \
             'skipped') OR (files.status = 'transferring' AND ",
            $leftover,
            ")))"
        )
    };
    (readdressed, $address:literal) => {
        concat!(
            "(files.status = 'unavailable' AND ",
            $address,
            " IS NOT NULL)"
        )
    };
    (queues, $rule:literal, $address:literal) => {
        concat!(
            "(",
            $rule,
            " IS NULL AND (files.status = 'skipped' OR ",
            verdict!(readdressed, $address),
            "))"
        )
    };
    ($rule:literal, $address:literal, $leftover:literal) => {
        concat!(
            "status = CASE WHEN ",
            verdict!(skips, $rule, $leftover),
            " THEN 'skipped' WHEN ",
            verdict!(queues, $rule, $address),
            " THEN 'queued' ELSE files.status END,
             skip_rule = CASE WHEN ",
            verdict!(skips, $rule, $leftover),
            " THEN ",
            $rule,
            " WHEN ",
            verdict!(queues, $rule, $address),
            " THEN NULL ELSE files.skip_rule END,
             attempts = CASE WHEN ",
            verdict!(queues, $rule, $address),
            " THEN 0 ELSE files.attempts END"
        )
    };
}

/// A listed file: new, queued (or skipped by its rule, `?10`); known, judged by the
/// filter's rule and the address the listing gave (a live worker keeps its claim). Its
/// size stays the one its bytes were written for.
pub(super) const UPSERT_FILE: &str = concat!(
    "INSERT INTO files (record_file_id, meeting_record_id, record_start_time,
       record_end_time, record_size, path, status, download_address,
       address_issued_at, updated_at, skip_rule)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6,
       CASE WHEN ?10 IS NULL THEN 'queued' ELSE 'skipped' END, ?7,
       CASE WHEN ?7 IS NULL THEN NULL ELSE ?9 END, ?8, ?10)
     ON CONFLICT (record_file_id) DO UPDATE SET
       download_address = COALESCE(excluded.download_address, files.download_address),
       address_issued_at = COALESCE(excluded.address_issued_at, files.address_issued_at),
       record_size = CASE WHEN files.status = 'archived' OR files.bytes_done > 0
                     THEN files.record_size ELSE excluded.record_size END, ",
    verdict!("excluded.skip_rule", "excluded.download_address", "0"),
    ", updated_at = excluded.updated_at"
);

/// A video judged again by `[filter]` at start (`?1` its rule), before any worker runs.
pub(super) const JUDGED: &str = concat!(
    "UPDATE files SET ",
    verdict!("?1", "NULL", "1"),
    ", updated_at = ?3 WHERE record_file_id = ?2 RETURNING status"
);

/// Artifacts follow their video when it is skipped...
pub(super) const SKIP_ARTIFACTS: &str =
    "UPDATE files SET status = 'skipped', skip_rule = ?, updated_at = ?
     WHERE kind != 'video'
       AND status IN ('queued', 'transferring', 'failed', 'unavailable')
       AND parent_file_id IN (SELECT record_file_id FROM files WHERE status = 'skipped')";

/// ... and when it is queued again.
pub(super) const QUEUE_ARTIFACTS: &str =
    "UPDATE files SET status = 'queued', skip_rule = NULL, attempts = 0, updated_at = ?
     WHERE kind != 'video' AND status = 'skipped'
       AND parent_file_id NOT IN (SELECT record_file_id FROM files WHERE status = 'skipped')";

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

/// Takes the file [`CLAIM_LOOK`] found (`?3`: transferring), only if still queued.
pub(super) const CLAIM_TAKE: &str = "UPDATE files SET status = ?3, updated_at = ?1
     WHERE record_file_id = ?2 AND status = 'queued'
     RETURNING record_file_id";

pub(super) const SAVE_CHECKPOINT: &str =
    "UPDATE files SET bytes_done = ?, etag = ?, hash_state = ?, updated_at = ?
     WHERE record_file_id = ?";

/// `?1`: archived.
pub(super) const MARK_ARCHIVED: &str =
    "UPDATE files SET status = ?1, archived_size = ?2, sha256 = ?3, archived_at = ?4,
       bytes_done = ?2, hash_state = NULL, last_error = NULL, download_address = NULL,
       updated_at = ?4
     WHERE record_file_id = ?5";

const MARK_ADOPTED: &str = "UPDATE files SET status = ?1, archived_size = ?2, record_size = ?2,
       size_known = 1, sha256 = ?3, archived_at = ?4, deleted_in_cloud_at = ?5,
       adopted_at = ?6, adopted_without_record = ?7, bytes_done = ?2, hash_state = NULL,
       last_error = NULL, download_address = NULL, updated_at = ?6
     WHERE record_file_id = ?8";

/// `?2`: at once; `?3`: the attempts allowed; `?4`: the status once exhausted.
pub(super) const RECORD_FAILURE: &str = "UPDATE files SET attempts = attempts + 1, last_error = ?1,
       status = CASE WHEN ?2 OR attempts + 1 >= ?3 THEN ?4 ELSE status END,
       updated_at = ?5
     WHERE record_file_id = ?6 RETURNING status";

pub(super) const NOTE_ERROR: &str =
    "UPDATE files SET last_error = ?, updated_at = ? WHERE record_file_id = ?";

/// `?1`: queued.
pub(super) const RELEASE: &str =
    "UPDATE files SET status = ?1, last_error = COALESCE(?2, last_error), updated_at = ?3
     WHERE record_file_id = ?4 AND status = 'transferring'";

pub(super) const MARK_VERIFIED: &str =
    "UPDATE files SET verified_at = ? WHERE record_file_id = ? AND status = 'archived'";

/// Rows per `mark_verified` transaction: one fsync per batch instead of one per file,
/// without holding the write lock long enough to stall a running download pool.
const MARK_BATCH: usize = 500;

impl Db {
    /// Files left `transferring` by a process that died go back to the queue; their
    /// checkpoints stay, so the next transfer resumes from them.
    pub async fn requeue_interrupted(&self) -> Result<u64, DbError> {
        self.requeue("UPDATE files SET status = ?, updated_at = ? WHERE status = 'transferring'")
            .await
    }

    /// Queues the files `sql` (binding queued and now) takes, and wakes the workers.
    async fn requeue(&self, sql: &'static str) -> Result<u64, DbError> {
        let done = sqlx::query(sql)
            .bind(FileStatus::Queued)
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
            let next: Option<RecordFileId> = sqlx::query_scalar(CLAIM_LOOK)
                .fetch_optional(self.pool())
                .await?;
            let Some(next) = next else {
                return Ok(None);
            };
            // Taken only if still queued (another process may have changed it meanwhile).
            let claimed: Option<RecordFileId> = sqlx::query_scalar(CLAIM_TAKE)
                .bind(UnixMs::now())
                .bind(&next)
                .bind(FileStatus::Transferring)
                .fetch_optional(self.writer())
                .await?;
            if let Some(id) = claimed {
                break id;
            }
        };
        drop(claiming);
        self.file(&id).await
    }

    pub async fn save_checkpoint(
        &self,
        record_file_id: &RecordFileId,
        checkpoint: &super::Checkpoint,
    ) -> Result<(), DbError> {
        sqlx::query(SAVE_CHECKPOINT)
            .bind(super::size_column(checkpoint.bytes_done))
            .bind(checkpoint.etag.as_deref())
            .bind(checkpoint.hash_state.as_deref())
            .bind(UnixMs::now())
            .bind(record_file_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Called only after the bytes are durable under their final name with the size the
    /// API announced (`size`) and their SHA-256 computed. In the same transaction: the
    /// meeting's `meeting.json` is marked behind, the upload (if any) forgotten, and the
    /// audit trail told.
    pub async fn mark_archived(
        &self,
        record_file_id: &RecordFileId,
        size: u64,
        sha256: &str,
    ) -> Result<(), DbError> {
        self.archive(record_file_id, size, sha256, Became::Downloaded)
            .await
    }

    /// The intact copy already at a claimed file's destination becomes its archived copy,
    /// nothing downloaded: with the times its `meeting.json` recorded (`archived_at`,
    /// `deleted_in_cloud_at`), or, `without_record`, with the hash just computed and now
    /// (counted apart by `status`). The folder's `meeting.json` is marked behind only when
    /// it did not record the file.
    pub async fn mark_adopted(
        &self,
        record_file_id: &RecordFileId,
        size: u64,
        sha256: &str,
        recorded: Option<(Option<UnixMs>, Option<UnixMs>)>,
    ) -> Result<(), DbError> {
        self.archive(record_file_id, size, sha256, Became::Adopted(recorded))
            .await
    }

    /// `record_file_id` becomes archived with `size` bytes of `sha256`, in one transaction
    /// with its audit record and the mark of its `meeting.json` as behind.
    async fn archive(
        &self,
        record_file_id: &RecordFileId,
        size: u64,
        sha256: &str,
        became: Became,
    ) -> Result<(), DbError> {
        let now = UnixMs::now();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let (action, details, behind) = match became {
            Became::Downloaded => {
                sqlx::query(MARK_ARCHIVED)
                    .bind(FileStatus::Archived)
                    .bind(super::size_column(size))
                    .bind(sha256)
                    .bind(now)
                    .bind(record_file_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(DELETE_UPLOAD)
                    .bind(record_file_id)
                    .execute(&mut *tx)
                    .await?;
                let details = serde_json::json!({"size": size, "sha256": sha256});
                (Action::Archived, details, true)
            }
            Became::Adopted(recorded) => {
                let (archived_at, deleted_in_cloud_at) = recorded.unwrap_or_default();
                sqlx::query(MARK_ADOPTED)
                    .bind(FileStatus::Archived)
                    .bind(super::size_column(size))
                    .bind(sha256)
                    .bind(archived_at.unwrap_or(now))
                    .bind(deleted_in_cloud_at)
                    .bind(now)
                    .bind(recorded.is_none())
                    .bind(record_file_id)
                    .execute(&mut *tx)
                    .await?;
                let details = serde_json::json!(
                    {"size": size, "sha256": sha256, "recorded": recorded.is_some()}
                );
                (Action::Adopted, details, recorded.is_none())
            }
        };
        if behind {
            mark_meeting_json_behind(&mut tx, record_file_id, now).await?;
        }
        audit_file(&mut tx, action, record_file_id, details, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Counts a failed attempt of a claimed file and records why. When `exhaust` says so,
    /// the file becomes `exhausted` (`failed`, or `unavailable` when the API gives no
    /// address for it) until `--retry-failed`; otherwise it stays claimed by the caller,
    /// who retries it. Returns the new status.
    pub async fn record_failure(
        &self,
        record_file_id: &RecordFileId,
        error: &str,
        exhausted: FileStatus,
        exhaust: Exhaust,
    ) -> Result<FileStatus, DbError> {
        let (at_once, max_attempts) = match exhaust {
            Exhaust::After(max_attempts) => (false, max_attempts),
            Exhaust::AtOnce => (true, 0),
        };
        Ok(sqlx::query_scalar(RECORD_FAILURE)
            .bind(error)
            .bind(at_once)
            .bind(i64::from(max_attempts))
            .bind(exhausted)
            .bind(UnixMs::now())
            .bind(record_file_id)
            .fetch_one(self.writer())
            .await?)
    }

    /// Records why a claimed file is waiting, without spending an attempt (disk full).
    pub async fn note_error(
        &self,
        record_file_id: &RecordFileId,
        error: &str,
    ) -> Result<(), DbError> {
        sqlx::query(NOTE_ERROR)
            .bind(error)
            .bind(UnixMs::now())
            .bind(record_file_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Puts a claimed file back without counting an attempt (shutdown, paused transfer).
    pub async fn release(
        &self,
        record_file_id: &RecordFileId,
        note: Option<&str>,
    ) -> Result<(), DbError> {
        sqlx::query(RELEASE)
            .bind(FileStatus::Queued)
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
        self.requeue(
            "UPDATE files SET status = ?, attempts = 0, updated_at = ?
             WHERE status IN ('failed', 'unavailable')",
        )
        .await
    }

    /// Records that these archived files were found intact at `at`. Rows that stopped
    /// being archived meanwhile are left alone.
    pub async fn mark_verified(
        &self,
        record_file_ids: &[RecordFileId],
        at: UnixMs,
    ) -> Result<(), DbError> {
        for batch in record_file_ids.chunks(MARK_BATCH) {
            let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
            for id in batch {
                sqlx::query(MARK_VERIFIED)
                    .bind(at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Records the API's answer that the cloud no longer holds the file (a deletion, or
    /// 4051 for one that happened before), at `at`, and marks its `meeting.json` as
    /// behind, in one transaction. A kill before the commit loses only this record: the
    /// next run deletes again, gets 4051, and records it then.
    pub async fn record_cloud_deletion(
        &self,
        record_file_id: &RecordFileId,
        at: UnixMs,
    ) -> Result<(), DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        mark_gone(&mut tx, record_file_id, at, "prune").await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that the cloud deleted `record_file_ids` (and their artifacts) at `at`, as a
    /// `recording.deleted` event says: the same record as a deletion of our own, so `prune`
    /// skips them and `status` counts them. Archived copies stay as they are; a file not
    /// archived yet can never be, so a queued or failed one leaves the queue as
    /// `unavailable`, saying why (a transfer in flight fails on its own). A file never
    /// listed has no row and needs none: no listing will show it again. Returns how many
    /// known files left the queue.
    pub async fn mark_deleted_in_cloud(
        &self,
        record_file_ids: &[RecordFileId],
        at: UnixMs,
    ) -> Result<u64, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let mut dequeued = 0;
        for id in record_file_ids {
            mark_gone(&mut tx, id, at, "event").await?;
            dequeued += sqlx::query(
                "UPDATE files SET status = ?1,
                   last_error = 'deleted in the cloud before it was archived', updated_at = ?2
                 WHERE (record_file_id = ?3 OR parent_file_id = ?3)
                   AND status IN ('queued', 'failed')",
            )
            .bind(FileStatus::Unavailable)
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(dequeued)
    }
}

/// Changes to files in one transaction (of the caller's), all made at `now`.
pub(super) struct Changes<'c> {
    tx: &'c mut sqlx::SqliteConnection,
    now: UnixMs,
}

impl<'c> Changes<'c> {
    pub(super) fn new(tx: &'c mut sqlx::SqliteConnection, now: UnixMs) -> Self {
        Self { tx, now }
    }

    /// Runs `query` in the transaction.
    async fn run(&mut self, query: Query<'_, Sqlite, SqliteArguments>) -> Result<(), DbError> {
        query.execute(&mut *self.tx).await?;
        Ok(())
    }

    /// Stores one listed file of `meeting_record_id` (see [`UPSERT_FILE`]), with the address
    /// issued no earlier than `listed_at`.
    pub(super) async fn listed(
        &mut self,
        meeting_record_id: &MeetingRecordId,
        f: &FileUpsert,
        listed_at: UnixMs,
    ) -> Result<(), DbError> {
        sqlx::query(UPSERT_FILE)
            .bind(&f.record_file_id)
            .bind(meeting_record_id)
            .bind(f.record_start_time)
            .bind(f.record_end_time)
            .bind(super::size_column(f.record_size))
            .bind(&f.path)
            .bind(f.download_address.as_ref().map(Secret::expose))
            .bind(self.now)
            .bind(listed_at)
            .bind(&f.skip_rule)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Applies `[filter]`'s `rule` for a video at start (see [`JUDGED`]); returns its status.
    pub(super) async fn judged(
        &mut self,
        record_file_id: &RecordFileId,
        rule: Option<&SkipRule>,
    ) -> Result<FileStatus, DbError> {
        Ok(sqlx::query_scalar(JUDGED)
            .bind(rule)
            .bind(record_file_id)
            .bind(self.now)
            .fetch_one(&mut *self.tx)
            .await?)
    }

    /// Artifacts follow their videos' status: skipped with a skipped video, queued again with
    /// a queued one. Returns how many were skipped and queued.
    pub(super) async fn artifacts_follow(&mut self) -> Result<(u64, u64), DbError> {
        let skipped = sqlx::query(SKIP_ARTIFACTS)
            .bind(video_skipped())
            .bind(self.now)
            .execute(&mut *self.tx)
            .await?;
        let queued = sqlx::query(QUEUE_ARTIFACTS)
            .bind(self.now)
            .execute(&mut *self.tx)
            .await?;
        Ok((skipped.rows_affected(), queued.rows_affected()))
    }

    /// Stores an artifact `/v1/addresses` revealed for a meeting, with its address issued no
    /// earlier than `issued_at`: new, it is queued (its size unknown), or skipped with its
    /// video; known and still to download, its address is replaced, and one the API had
    /// refused is queued again. Archived artifacts are never touched.
    pub(super) async fn artifact_listed(
        &mut self,
        meeting_record_id: &MeetingRecordId,
        a: &ArtifactUpsert,
        issued_at: UnixMs,
    ) -> Result<(), DbError> {
        self.run(
            sqlx::query(concat!(
                "INSERT INTO files (record_file_id, meeting_record_id, record_start_time,
               record_end_time, record_size, size_known, path, status, download_address,
               address_issued_at, updated_at, kind, parent_file_id, skip_rule)
             SELECT ?1, ?2, v.record_start_time, v.record_end_time, 0, 0, ?3,
               CASE WHEN v.status = 'skipped' THEN 'skipped' ELSE 'queued' END, ?4,
               ?5, ?6, ?7, ?8, CASE WHEN v.status = 'skipped' THEN ?9 END
             FROM files v WHERE v.record_file_id = ?8
             ON CONFLICT (record_file_id) DO UPDATE SET
               download_address = excluded.download_address,
               address_issued_at = excluded.address_issued_at,
               attempts = CASE WHEN ",
                verdict!(readdressed, "excluded.download_address"),
                " THEN 0 ELSE files.attempts END,
               status = CASE WHEN ",
                verdict!(readdressed, "excluded.download_address"),
                " THEN 'queued' ELSE files.status END,
               updated_at = excluded.updated_at
             WHERE files.status != 'archived'"
            ))
            .bind(&a.key)
            .bind(meeting_record_id)
            .bind(&a.path)
            .bind(a.download_address.expose())
            .bind(issued_at)
            .bind(self.now)
            .bind(a.kind)
            .bind(&a.parent_file_id)
            .bind(video_skipped()),
        )
        .await
    }

    /// Queues an artifact of `video_id` that its `meeting.json` records (`key`, `path`,
    /// `record`), with the size recorded there, for its copy to be adopted (or downloaded
    /// again). A row already there is left as it is.
    pub(super) async fn artifact_recorded(
        &mut self,
        video_id: &RecordFileId,
        (key, path, record): (&RecordFileId, &str, &FileRecord),
    ) -> Result<(), DbError> {
        self.run(
            sqlx::query(
                "INSERT INTO files (record_file_id, meeting_record_id, record_start_time,
               record_end_time, record_size, size_known, path, status, updated_at, kind,
               parent_file_id)
             SELECT ?1, v.meeting_record_id, v.record_start_time, v.record_end_time, ?2, 1,
               ?3, ?7, ?4, ?5, ?6
             FROM files v WHERE v.record_file_id = ?6
             ON CONFLICT (record_file_id) DO NOTHING",
            )
            .bind(key)
            .bind(super::size_column(record.record_size))
            .bind(path)
            .bind(self.now)
            .bind(record.kind)
            .bind(video_id)
            .bind(FileStatus::Queued),
        )
        .await
    }

    /// Inserts a file of `meeting_record_id` the database lacks as its `meeting.json` entry
    /// describes it (`reindex`): archived (`archived`: the entry says so and has a hash) with
    /// its size, SHA-256 and times, else queued for the next run to look at.
    pub(super) async fn reindexed(
        &mut self,
        meeting_record_id: &MeetingRecordId,
        media_start_time: UnixMs,
        f: &ReindexFile,
        archived: bool,
    ) -> Result<(), DbError> {
        let rec = &f.record;
        let start = rec.record_start_time.unwrap_or(media_start_time.0);
        self.run(
            sqlx::query(
                "INSERT INTO files (record_file_id, meeting_record_id, record_start_time,
               record_end_time, record_size, size_known, path, status, sha256, archived_size,
               archived_at, bytes_done, updated_at, kind, parent_file_id, deleted_in_cloud_at,
               reindexed_at)
             VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&f.key)
            .bind(meeting_record_id)
            .bind(start)
            .bind(rec.record_end_time.unwrap_or(start))
            .bind(super::size_column(rec.record_size))
            .bind(&f.path)
            .bind(if archived {
                FileStatus::Archived
            } else {
                FileStatus::Queued
            })
            .bind(rec.sha256.as_deref().filter(|_| archived))
            .bind(archived.then_some(super::size_column(rec.record_size)))
            .bind(archived.then(|| rec.archived_at.unwrap_or(self.now)))
            .bind(if archived {
                super::size_column(rec.record_size)
            } else {
                0
            })
            .bind(self.now)
            .bind(rec.kind)
            .bind(&f.parent_file_id)
            .bind(rec.deleted_in_cloud_at.filter(|_| archived))
            .bind(self.now),
        )
        .await
    }

    /// Adds a deletion in the cloud that `meeting.json` records to a known archived file
    /// that lacks one (`reindex`).
    pub(super) async fn deletion_recorded(
        &mut self,
        record_file_id: &RecordFileId,
        deleted: UnixMs,
    ) -> Result<(), DbError> {
        self.run(
            sqlx::query(
                "UPDATE files SET deleted_in_cloud_at = ? WHERE record_file_id = ?
               AND deleted_in_cloud_at IS NULL AND status = 'archived'",
            )
            .bind(deleted)
            .bind(record_file_id),
        )
        .await
    }
}

/// Marks the `meeting.json` of `record_file_id`'s meeting as behind since `at`.
async fn mark_meeting_json_behind(
    tx: &mut sqlx::SqliteConnection,
    record_file_id: &RecordFileId,
    at: UnixMs,
) -> Result<(), DbError> {
    sqlx::query(MARK_MEETING_JSON_DIRTY)
        .bind(at)
        .bind(record_file_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Sets `deleted_in_cloud_at` on a file and its artifacts (the first record stands),
/// records it in the audit trail the first time (`by`: `prune`, or `event` for a
/// `recording.deleted` event) and marks its `meeting.json` as behind.
async fn mark_gone(
    tx: &mut sqlx::SqliteConnection,
    record_file_id: &RecordFileId,
    at: UnixMs,
    by: &str,
) -> Result<(), DbError> {
    let marked = sqlx::query(
        "UPDATE files SET deleted_in_cloud_at = ?1, updated_at = ?1
         WHERE (record_file_id = ?2 OR parent_file_id = ?2) AND deleted_in_cloud_at IS NULL",
    )
    .bind(at)
    .bind(record_file_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let file: Option<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT meeting_record_id, path, sha256 FROM files WHERE record_file_id = ?",
    )
    .bind(record_file_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((meeting, path, sha256)) = file.filter(|_| marked > 0) {
        let entry = AuditEntry::new(
            Action::DeletedInCloud,
            serde_json::json!({"by": by, "path": path, "sha256": sha256, "files": marked}),
        )
        .meeting(meeting)
        .file(record_file_id);
        audit::append(tx, &entry, UnixMs::now()).await?;
    }
    mark_meeting_json_behind(tx, record_file_id, at).await
}

/// Appends to the audit trail, in the transaction of the change, that `record_file_id`
/// (at its path, of its kind) was archived or adopted; `details` adds the size and hash.
async fn audit_file(
    tx: &mut sqlx::SqliteConnection,
    action: Action,
    record_file_id: &RecordFileId,
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
    use super::super::test_support::{listed, temp_store};
    use super::{Exhaust, FileStatus};
    use crate::time::UnixMs;

    /// A listing applies the filter's rule as the start does (one rule): a failed file the
    /// filter now leaves out is skipped, and queued again with fresh attempts once wanted.
    #[tokio::test]
    async fn a_listing_skips_and_queues_a_failed_file_as_the_filter_does() {
        let (store, _dir) = temp_store().await;
        let mut page = listed("m", 1_000, "d/m", &[("a", false)]);
        store
            .upsert_meetings(&[page.clone()], UnixMs(0))
            .await
            .unwrap();
        store.claim_next().await.unwrap().unwrap();
        let failed = store
            .record_failure(&"a".into(), "boom", FileStatus::Failed, Exhaust::AtOnce)
            .await
            .unwrap();
        assert_eq!(failed, FileStatus::Failed);

        page.files[0].skip_rule = Some("filter.users: u".into());
        store
            .upsert_meetings(&[page.clone()], UnixMs(1))
            .await
            .unwrap();
        let row = store.file(&"a".into()).await.unwrap().unwrap();
        assert_eq!(row.status, FileStatus::Skipped);
        assert_eq!(row.skip_rule.as_deref(), Some("filter.users: u"));

        page.files[0].skip_rule = None;
        store.upsert_meetings(&[page], UnixMs(2)).await.unwrap();
        let row = store.file(&"a".into()).await.unwrap().unwrap();
        assert_eq!((row.status, row.attempts), (FileStatus::Queued, 0));
        assert_eq!(row.skip_rule, None);
    }
}
