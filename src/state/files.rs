//! Reading files: a row with what a transfer needs from its meeting, by id, by meeting, in a
//! range; and the download addresses stored with them (their statuses change in `life`).

use super::{Db, DbError, FileKind, FileStatus};
use crate::domain::{MeetingRecordId, RecordFileId, SkipRule};
use crate::time::UnixMs;
use wemeet_api::Secret;

/// A file with what a transfer needs from its meeting.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    /// The key of the row: the API's record_file_id for a video, derived from its video's
    /// for an artifact.
    pub record_file_id: RecordFileId,
    pub kind: FileKind,
    /// An artifact's video (`None` for a video).
    pub parent_file_id: Option<RecordFileId>,
    pub meeting_record_id: MeetingRecordId,
    pub media_start_time: UnixMs,
    /// Bytes announced: by the listing for a video, by the first response for an artifact
    /// (0 until then, `size_known` false).
    pub record_size: u64,
    pub size_known: bool,
    pub path: String,
    pub dir: String,
    pub status: FileStatus,
    /// The signed address: a `Secret`, so that `{:?}` of a row never shows it.
    #[sqlx(try_from = "StoredAddress")]
    pub download_address: Option<Secret>,
    pub address_issued_at: Option<UnixMs>,
    pub attempts: i64,
    pub bytes_done: u64,
    pub etag: Option<String>,
    pub hash_state: Option<Vec<u8>>,
    pub sha256: Option<String>,
    pub archived_size: Option<u64>,
    pub last_error: Option<String>,
    pub archived_at: Option<UnixMs>,
    /// When the API confirmed the file is deleted from the cloud (`prune`).
    pub deleted_in_cloud_at: Option<UnixMs>,
    /// The `[filter]` rule that left it out (`skipped` only).
    pub skip_rule: Option<SkipRule>,
    /// The recording's times, as listed (ms), for `meeting.json`.
    pub record_start_time: i64,
    pub record_end_time: i64,
}

/// A download address as its column holds it, made a [`Secret`] as it is read.
#[derive(sqlx::Type)]
#[sqlx(transparent)]
struct StoredAddress(Option<String>);

impl From<StoredAddress> for Option<Secret> {
    fn from(stored: StoredAddress) -> Self {
        stored.0.map(Secret::new)
    }
}

/// A durable point of a transfer: `bytes_done` bytes are fsynced in the `.part` file and
/// `hash_state` is the SHA-256 state after exactly those bytes. The default is "start over".
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub bytes_done: u64,
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

pub(super) const FILE: &str = select_files!("WHERE f.record_file_id = ?");

pub(super) const FILES_OF_MEETING: &str =
    select_files!("WHERE f.meeting_record_id = ? ORDER BY f.record_file_id");

/// Marks the `meeting.json` of a file's meeting as behind, at `?1` (the last change).
pub(super) const MARK_MEETING_JSON_DIRTY: &str =
    "UPDATE meetings SET json_dirty_at = ? WHERE meeting_record_id =
       (SELECT meeting_record_id FROM files WHERE record_file_id = ?)";

pub(super) const SET_ADDRESS: &str =
    "UPDATE files SET download_address = ?, address_issued_at = ?, updated_at = ?
     WHERE record_file_id = ? AND status IN ('queued', 'transferring')";

pub(super) const FORGET_ADDRESS: &str =
    "UPDATE files SET download_address = NULL, address_issued_at = NULL, updated_at = ?
     WHERE record_file_id = ?";

/// An address `/v1/addresses` gave for one file: a pair whose halves have types of their
/// own, so the id and the secret cannot be swapped.
#[derive(Debug, Clone)]
pub struct GivenAddress {
    pub record_file_id: RecordFileId,
    pub address: Secret,
}

impl Db {
    /// Stores the addresses `/v1/addresses` just gave for the files of one meeting that are
    /// still to download, all issued at `issued_at`, in one transaction.
    pub async fn set_addresses(
        &self,
        addresses: &[GivenAddress],
        issued_at: UnixMs,
    ) -> Result<(), DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        for GivenAddress {
            record_file_id,
            address,
        } in addresses
        {
            sqlx::query(SET_ADDRESS)
                .bind(address.expose())
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
    pub async fn forget_address(&self, record_file_id: &RecordFileId) -> Result<(), DbError> {
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

    pub async fn file(&self, record_file_id: &RecordFileId) -> Result<Option<FileRow>, DbError> {
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

    /// Files of one meeting, for its `meeting.json`.
    pub async fn files_of_meeting(
        &self,
        meeting_record_id: &MeetingRecordId,
    ) -> Result<Vec<FileRow>, DbError> {
        Ok(sqlx::query_as(FILES_OF_MEETING)
            .bind(meeting_record_id)
            .fetch_all(self.pool())
            .await?)
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

#[cfg(test)]
mod tests {
    use super::super::MeetingUpsert;
    use super::super::test_support::{listed, temp_store};
    use crate::time::UnixMs;

    fn meeting(id: &str, start_ms: i64, files: &[(&str, bool)]) -> MeetingUpsert {
        listed(id, start_ms, &format!("d/{id}"), files)
    }

    /// The address is read into a `Secret`: a row's `{:?}` (a log line, a test's panic)
    /// never shows it, and `set_addresses` stores what it is given.
    #[tokio::test]
    async fn a_rows_address_is_read_back_whole_and_never_shown_by_debug() {
        let (store, _dir) = temp_store().await;
        store
            .upsert_meetings(&[meeting("m", 1_000, &[("f", false)])], UnixMs(0))
            .await
            .unwrap();
        let given = super::GivenAddress {
            record_file_id: "f".into(),
            address: wemeet_api::Secret::new("https://host.invalid/f?sign=s3cr3t"),
        };
        store.set_addresses(&[given], UnixMs(5)).await.unwrap();
        let row = store.file(&"f".into()).await.unwrap().unwrap();
        let address = row.download_address.as_ref().unwrap();
        assert_eq!(address.expose(), "https://host.invalid/f?sign=s3cr3t");
        assert_eq!(row.address_issued_at, Some(UnixMs(5)));
        assert!(!format!("{row:?}").contains("s3cr3t"), "{row:?}");
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
