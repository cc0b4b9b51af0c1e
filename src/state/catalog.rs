//! What the archive says about itself, folder by folder: the schema of `meeting.json`
//! (written by the transfer pool and `prune`, read back by adoption and `reindex`), and
//! applying folders of it to the database without changing what the database knows.
//!
//! The archive is the source of truth and the database its index: everything `reindex`
//! needs to rebuild a file's row (its kind, name, size, SHA-256, when it was archived and
//! deleted in the cloud) is in the file's entry.

use super::{Db, DbError, FileKind, FileStatus, life};
use crate::domain::{MeetingRecordId, MeetingState, RecordFileId};
use crate::time::UnixMs;

/// `schema` of the `meeting.json` this program writes. Schema 1 (no `schema` field) had
/// neither `archived_at`, the files' times nor the artifacts' keys: such a file is still
/// read, with what it lacks filled in (see [`FileRecord`]).
pub const MEETING_JSON_SCHEMA: &str = "wemeet-archiver.meeting/2";

/// One folder's `meeting.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MeetingJson {
    #[serde(default)]
    pub schema: Option<String>,
    pub meetings: Vec<MeetingRecord>,
}

/// A meeting stored in the folder, as the listing described it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MeetingRecord {
    pub meeting_record_id: MeetingRecordId,
    pub meeting_id: String,
    pub meeting_code: String,
    pub userid: String,
    pub subject: String,
    pub media_start_time: UnixMs,
    pub state: MeetingState,
    pub record_type: i64,
    pub dir: String,
    /// When its audio track and transcripts were last looked for, and when the wait for
    /// its transcripts ended (schema 2).
    #[serde(default)]
    pub artifacts_checked_at: Option<UnixMs>,
    #[serde(default)]
    pub transcript_wait_ended_at: Option<UnixMs>,
    /// When `expire` removed its files from the archive, past `retention.keep`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<UnixMs>,
    pub files: Vec<FileRecord>,
}

/// One file of a meeting: a video, or one of its artifacts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FileRecord {
    /// The video's record_file_id (an artifact's too: it names its video).
    pub record_file_id: RecordFileId,
    /// The row's key: the video's id, or the artifact's derived key (schema 2; for a
    /// schema-1 artifact `reindex` derives it from the file's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RecordFileId>,
    pub kind: FileKind,
    /// The file's name in the folder.
    pub file: String,
    pub record_size: u64,
    pub sha256: Option<String>,
    pub status: FileStatus,
    #[serde(default)]
    pub archived_at: Option<UnixMs>,
    #[serde(default)]
    pub deleted_in_cloud_at: Option<UnixMs>,
    #[serde(default)]
    pub record_start_time: Option<i64>,
    #[serde(default)]
    pub record_end_time: Option<i64>,
}

impl MeetingJson {
    /// The entry of the file whose row key is `key`, in this folder.
    pub fn file(&self, key: &RecordFileId) -> Option<&FileRecord> {
        self.meetings
            .iter()
            .flat_map(|m| &m.files)
            .find(|f| f.key.as_ref().unwrap_or(&f.record_file_id) == key)
    }
}

/// A file of one folder, ready to record (its key resolved, its path joined).
#[derive(Debug, Clone)]
pub struct ReindexFile {
    pub key: RecordFileId,
    pub parent_file_id: Option<RecordFileId>,
    pub path: String,
    pub record: FileRecord,
}

/// A meeting of one folder, ready to record.
#[derive(Debug, Clone)]
pub struct ReindexMeeting {
    pub meeting: MeetingRecord,
    pub files: Vec<ReindexFile>,
}

/// What applying one folder did.
#[derive(Debug, Clone, Default)]
pub struct FolderOutcome {
    pub meetings_added: u64,
    pub files_added: u64,
    /// Files the database already knew, in agreement.
    pub files_known: u64,
    /// The keys of the files added (for what a caller does per file: an audit trail, an
    /// index of transcripts).
    pub added_keys: Vec<RecordFileId>,
    /// What the database knows otherwise than `meeting.json` says: reported, not applied.
    pub disagreements: Vec<String>,
}

/// A row as the database knows it, to compare with its `meeting.json` entry.
#[derive(sqlx::FromRow)]
struct KnownFile {
    path: String,
    status: FileStatus,
    sha256: Option<String>,
    archived_size: Option<i64>,
}

impl Db {
    /// A meeting whose video was adopted gets back, if it has none, when its artifacts
    /// were looked for and its transcripts' wait ended, as its `meeting.json` recorded.
    pub async fn restore_artifact_checks(&self, meeting: &MeetingRecord) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE meetings SET
               artifacts_checked_at = COALESCE(artifacts_checked_at, ?),
               transcript_wait_ended_at = COALESCE(transcript_wait_ended_at, ?)
             WHERE meeting_record_id = ?",
        )
        .bind(meeting.artifacts_checked_at)
        .bind(meeting.transcript_wait_ended_at)
        .bind(&meeting.meeting_record_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Records the folders' meetings and files that the database lacks, in one
    /// `BEGIN IMMEDIATE` transaction: a new meeting or file is inserted as described
    /// (archived files with their size, SHA-256 and times; any other status queued, for
    /// the next run to look at); a known one is left as it is, and what it disagrees on
    /// (folder, path, status, size, SHA-256) is returned, not applied. Only a deletion in
    /// the cloud the database did not know is added to a known archived file.
    pub async fn apply_meeting_jsons(
        &self,
        folders: &[Vec<ReindexMeeting>],
    ) -> Result<Vec<FolderOutcome>, DbError> {
        let now = UnixMs::now();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let mut outcomes = Vec::with_capacity(folders.len());
        for folder in folders {
            let mut out = FolderOutcome::default();
            for m in folder {
                apply_meeting(&mut tx, m, now, &mut out).await?;
            }
            outcomes.push(out);
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

async fn apply_meeting(
    tx: &mut sqlx::SqliteConnection,
    m: &ReindexMeeting,
    now: UnixMs,
    out: &mut FolderOutcome,
) -> Result<(), DbError> {
    let r = &m.meeting;
    let known_dir: Option<String> =
        sqlx::query_scalar("SELECT dir FROM meetings WHERE meeting_record_id = ?")
            .bind(&r.meeting_record_id)
            .fetch_optional(&mut *tx)
            .await?;
    match known_dir {
        Some(dir) if dir != r.dir => out.disagreements.push(format!(
            "meeting {}: the database has it in `{dir}`, meeting.json in `{}`",
            r.meeting_record_id, r.dir
        )),
        Some(_) => {}
        None => {
            sqlx::query(
                "INSERT INTO meetings (meeting_record_id, meeting_id, meeting_code, userid,
                   subject, media_start_time, state, record_type, dir, first_seen_at,
                   last_seen_at, artifacts_checked_at, transcript_wait_ended_at, expired_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.meeting_record_id)
            .bind(&r.meeting_id)
            .bind(&r.meeting_code)
            .bind(&r.userid)
            .bind(&r.subject)
            .bind(r.media_start_time)
            .bind(r.state)
            .bind(r.record_type)
            .bind(&r.dir)
            .bind(now)
            .bind(now)
            .bind(r.artifacts_checked_at)
            .bind(r.transcript_wait_ended_at)
            .bind(r.expired_at)
            .execute(&mut *tx)
            .await?;
            out.meetings_added += 1;
        }
    }
    for f in &m.files {
        apply_file(tx, &r.meeting_record_id, r.media_start_time, f, now, out).await?;
    }
    Ok(())
}

/// Records one file of a folder's `meeting.json`: inserted if the database lacks it, else
/// compared (see [`Db::apply_meeting_jsons`]).
async fn apply_file(
    tx: &mut sqlx::SqliteConnection,
    meeting_record_id: &MeetingRecordId,
    media_start_time: UnixMs,
    f: &ReindexFile,
    now: UnixMs,
    out: &mut FolderOutcome,
) -> Result<(), DbError> {
    let rec = &f.record;
    let archived = rec.status == FileStatus::Archived && rec.sha256.is_some();
    let known: Option<KnownFile> = sqlx::query_as(
        "SELECT path, status, sha256, archived_size FROM files WHERE record_file_id = ?",
    )
    .bind(&f.key)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(known) = known else {
        life::Changes::new(tx, now)
            .reindexed(meeting_record_id, media_start_time, f, archived)
            .await?;
        out.files_added += 1;
        out.added_keys.push(f.key.clone());
        return Ok(());
    };
    let differs = differences(&known, f, archived);
    if !differs.is_empty() {
        out.disagreements.push(format!(
            "{}: database / meeting.json differ: {}",
            f.path,
            differs.join(", ")
        ));
        return Ok(());
    }
    out.files_known += 1;
    if let Some(deleted) = rec.deleted_in_cloud_at {
        life::Changes::new(tx, now)
            .deletion_recorded(&f.key, deleted)
            .await?;
    }
    Ok(())
}

/// What the database knows of a file otherwise than its `meeting.json` entry says
/// (`archived`: the entry says archived, with a hash).
fn differences(k: &KnownFile, f: &ReindexFile, archived: bool) -> Vec<String> {
    let rec = &f.record;
    let mut differs = Vec::new();
    if k.path != f.path {
        differs.push(format!("path `{}` / `{}`", k.path, f.path));
    }
    // A pending file is the pool's: it adopts the copy or downloads it again.
    if archived && k.status != FileStatus::Archived && !k.status.is_pending() {
        differs.push(format!("status {} / archived", k.status.as_str()));
    }
    if archived && k.status == FileStatus::Archived {
        if k.sha256 != rec.sha256 {
            differs.push(format!(
                "sha256 {} / {}",
                k.sha256.as_deref().unwrap_or("-"),
                rec.sha256.as_deref().unwrap_or("-")
            ));
        }
        if k.archived_size != Some(super::size_column(rec.record_size)) {
            differs.push(format!(
                "size {} / {}",
                k.archived_size.unwrap_or(-1),
                rec.record_size
            ));
        }
    }
    differs
}
