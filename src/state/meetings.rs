//! Applying a listing page: meetings and their files, idempotently.

use super::{Db, DbError, life};
use crate::domain::{MeetingRecordId, MeetingState, RecordFileId, SkipRule};
use crate::time::UnixMs;
use wemeet_api::Secret;

/// A listed meeting, ready to store (paths already computed by the storage layout).
#[derive(Debug, Clone)]
pub struct MeetingUpsert {
    pub meeting_record_id: MeetingRecordId,
    pub meeting_id: String,
    pub meeting_code: String,
    pub userid: String,
    pub subject: String,
    pub media_start_time: UnixMs,
    pub state: MeetingState,
    pub record_type: i64,
    pub dir: String,
    pub files: Vec<FileUpsert>,
}

#[derive(Debug, Clone)]
pub struct FileUpsert {
    pub record_file_id: RecordFileId,
    pub record_start_time: i64,
    pub record_end_time: i64,
    pub record_size: u64,
    pub path: String,
    /// The signed address, when the API gave one.
    pub download_address: Option<Secret>,
    /// The `[filter]` rule that leaves the file out (`None`: it is archived).
    pub skip_rule: Option<SkipRule>,
}

/// A stored meeting, as `meeting.json`, `status` and `search` show it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct MeetingRow {
    pub meeting_record_id: MeetingRecordId,
    pub meeting_id: String,
    pub meeting_code: String,
    pub userid: String,
    pub subject: String,
    pub media_start_time: UnixMs,
    pub state: MeetingState,
    pub record_type: i64,
    pub dir: String,
    /// When its artifacts were last looked for, and when the wait for its transcripts
    /// ended: `meeting.json` keeps them, so that a rebuilt database does not look again.
    pub artifacts_checked_at: Option<UnixMs>,
    pub transcript_wait_ended_at: Option<UnixMs>,
}

pub(super) const UPSERT_MEETING: &str =
    "INSERT INTO meetings (meeting_record_id, meeting_id, meeting_code, userid, subject,
                   media_start_time, state, record_type, dir, first_seen_at, last_seen_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (meeting_record_id) DO UPDATE SET
                   meeting_id = excluded.meeting_id, meeting_code = excluded.meeting_code,
                   userid = excluded.userid, subject = excluded.subject,
                   media_start_time = excluded.media_start_time, state = excluded.state,
                   record_type = excluded.record_type, last_seen_at = excluded.last_seen_at";

/// `SELECT` of a [`MeetingRow`] followed by `$tail`, as one `&'static str`.
macro_rules! select_meetings {
    ($tail:literal) => {
        concat!(
            "SELECT meeting_record_id, meeting_id, meeting_code, userid, subject,
                    media_start_time, state, record_type, dir, artifacts_checked_at,
                    transcript_wait_ended_at
             FROM meetings ",
            $tail
        )
    };
}
pub(super) use select_meetings;

pub(super) const MEETINGS_IN_DIR: &str =
    select_meetings!("WHERE dir = ? ORDER BY media_start_time, meeting_record_id");

pub(super) const PENDING_MEETINGS: &str =
    select_meetings!("WHERE state IN (1, 2) ORDER BY media_start_time");

impl Db {
    /// Stores one listing page in one transaction: a malformed page is rejected before this
    /// point, so a page is applied whole or not at all.
    ///
    /// Once stored, a file's `path` and a meeting's `dir` never change (a renamed meeting
    /// must not orphan a half-written `.part` file), archived files are never touched, and
    /// an address in the listing (sharing on, downloads allowed) replaces the old one. A file
    /// without one is queued all the same: its address comes from `/v1/addresses` when its
    /// transfer starts. Only a file that endpoint refused (`unavailable`) waits for an
    /// address in a later listing.
    ///
    /// `listed_at` is when the listing call was sent: an address in it was issued no
    /// earlier, so taking that as its issue time never overestimates how long it lives.
    pub async fn upsert_meetings(
        &self,
        meetings: &[MeetingUpsert],
        listed_at: UnixMs,
    ) -> Result<(), DbError> {
        let now = UnixMs::now();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        for m in meetings {
            sqlx::query(UPSERT_MEETING)
                .bind(&m.meeting_record_id)
                .bind(&m.meeting_id)
                .bind(&m.meeting_code)
                .bind(&m.userid)
                .bind(&m.subject)
                .bind(m.media_start_time)
                .bind(m.state)
                .bind(m.record_type)
                .bind(&m.dir)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            for f in &m.files {
                life::Changes::new(&mut tx, now)
                    .listed(&m.meeting_record_id, f, listed_at)
                    .await?;
            }
        }
        tx.commit().await?;
        self.wake_workers();
        Ok(())
    }

    pub async fn meeting(
        &self,
        meeting_record_id: &MeetingRecordId,
    ) -> Result<Option<MeetingRow>, DbError> {
        Ok(
            sqlx::query_as(select_meetings!("WHERE meeting_record_id = ?"))
                .bind(meeting_record_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Every meeting stored in the folder `dir` (a recurring meeting can put several
    /// recordings with the same code and subject in one day's folder).
    pub async fn meetings_in_dir(&self, dir: &str) -> Result<Vec<MeetingRow>, DbError> {
        Ok(sqlx::query_as(MEETINGS_IN_DIR)
            .bind(dir)
            .fetch_all(self.pool())
            .await?)
    }

    /// Meetings still recording or transcoding (state 1/2): their files appear later.
    pub async fn pending_meetings(&self) -> Result<Vec<MeetingRow>, DbError> {
        Ok(sqlx::query_as(PENDING_MEETINGS)
            .fetch_all(self.pool())
            .await?)
    }
}

/// Folders whose `meeting.json` is behind and whose last change was at or before `?1`.
pub(super) const QUIET_STALE_DIRS: &str = "SELECT dir FROM meetings WHERE json_dirty_at <= ?";

/// The oldest change not yet in a `meeting.json`.
pub(super) const OLDEST_STALE: &str =
    "SELECT MIN(json_dirty_at) FROM meetings WHERE json_dirty_at IS NOT NULL";

pub(super) const MEETING_JSON_WRITTEN: &str =
    "UPDATE meetings SET json_dirty_at = NULL WHERE dir = ? AND json_dirty_at <= ?";

impl Db {
    /// Folders whose `meeting.json` is behind the database (see migration 0004).
    pub async fn dirs_with_stale_meeting_json(&self) -> Result<Vec<String>, DbError> {
        self.quiet_dirs_with_stale_meeting_json(UnixMs(i64::MAX))
            .await
    }

    /// Folders whose `meeting.json` is behind the database and that saw no change after
    /// `quiet_since`: a folder still changing (the other files of a meeting being
    /// archived) waits for the end of its burst, so its `meeting.json` is written once
    /// for the burst.
    pub async fn quiet_dirs_with_stale_meeting_json(
        &self,
        quiet_since: UnixMs,
    ) -> Result<Vec<String>, DbError> {
        // Deduplicated and sorted here: an ORDER BY on `dir` would walk the folder index
        // instead of seeking the few marked rows.
        let dirs: std::collections::BTreeSet<String> = sqlx::query_scalar(QUIET_STALE_DIRS)
            .bind(quiet_since)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .collect();
        Ok(dirs.into_iter().collect())
    }

    /// When the oldest change not yet in a `meeting.json` was made (`None`: all written).
    pub async fn oldest_stale_meeting_json(&self) -> Result<Option<UnixMs>, DbError> {
        Ok(sqlx::query_scalar(OLDEST_STALE)
            .fetch_one(self.pool())
            .await?)
    }

    /// `meeting.json` of `dir` was written from what the database held at `read_at`:
    /// marks set before then are covered, later ones are not.
    pub async fn meeting_json_written(&self, dir: &str, read_at: UnixMs) -> Result<(), DbError> {
        sqlx::query(MEETING_JSON_WRITTEN)
            .bind(dir)
            .bind(read_at)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
