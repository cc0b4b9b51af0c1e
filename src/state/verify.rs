//! What `verify` reads from the database (what it writes, `verified_at`, is in `life`).

use super::{Db, DbError, FileKind, FileStatus};
use crate::domain::{MeetingState, RecordFileId, SkipRule};
use crate::time::UnixMs;

/// A file as `verify` checks it: what was recorded at download time, with the meeting
/// fields a report needs to be read without the database at hand.
/// The `SELECT ... FROM` that reads a [`VerifyRow`] (`f` the file, `m` its meeting): one
/// list of columns for `verify` and `prune`, which judge copies by the same rows.
macro_rules! verify_row_select {
    () => {
        "SELECT f.record_file_id, f.kind, m.meeting_code, m.subject, m.state AS meeting_state,
                m.media_start_time, f.path, f.status, f.record_size, f.archived_size,
                f.sha256, f.bytes_done, f.attempts, f.last_error, f.verified_at, f.skip_rule
         FROM files f JOIN meetings m USING (meeting_record_id)"
    };
}
pub(super) use verify_row_select;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerifyRow {
    pub record_file_id: RecordFileId,
    pub kind: FileKind,
    pub meeting_code: String,
    pub subject: String,
    pub meeting_state: MeetingState,
    pub media_start_time: UnixMs,
    pub path: String,
    pub status: FileStatus,
    pub record_size: u64,
    pub archived_size: Option<u64>,
    pub sha256: Option<String>,
    pub bytes_done: u64,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The last time `verify` found the file intact.
    pub verified_at: Option<UnixMs>,
    /// Why `[filter]` left it out (`skipped` only).
    pub skip_rule: Option<SkipRule>,
}

/// How much of the archive `verify` has vouched for, for `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerificationSummary {
    /// Archived files that were found intact at least once.
    pub files_verified: i64,
    /// The least recent `verified_at` of those files (the next to re-check).
    pub oldest_verified_at: Option<UnixMs>,
    pub newest_verified_at: Option<UnixMs>,
}

pub(super) const FILES_TO_VERIFY: &str = concat!(
    verify_row_select!(),
    // The file's copy of its meeting's start (migration 0016): the range seeks its index.
    " WHERE f.media_start_time >= COALESCE(?1, -9223372036854775808)
       AND f.media_start_time <= COALESCE(?2, 9223372036854775807)
       AND m.expired_at IS NULL
     ORDER BY f.path, f.record_file_id"
);

pub(super) const FILE_PATHS: &str = "SELECT path, status FROM files";

pub(super) const VERIFICATION_SUMMARY: &str =
    "SELECT COUNT(verified_at), MIN(verified_at), MAX(verified_at) FROM files
     WHERE status = 'archived'";

impl Db {
    /// Every file whose meeting's media started in `[start, end]` (each bound optional),
    /// ordered by path so that reports are stable from run to run.
    pub async fn files_to_verify(
        &self,
        start: Option<UnixMs>,
        end: Option<UnixMs>,
    ) -> Result<Vec<VerifyRow>, DbError> {
        Ok(sqlx::query_as(FILES_TO_VERIFY)
            .bind(start)
            .bind(end)
            .fetch_all(self.pool())
            .await?)
    }

    /// `(path, status)` of every file, whatever its date (an expired recording's too: a
    /// copy found again at its path is not called extra): a file on disk is "extra" only if
    /// no row at all claims it, not merely none in the range being verified.
    pub async fn file_paths(&self) -> Result<Vec<(String, FileStatus)>, DbError> {
        Ok(sqlx::query_as(FILE_PATHS).fetch_all(self.pool()).await?)
    }

    pub async fn verification_summary(&self) -> Result<VerificationSummary, DbError> {
        let (files_verified, oldest_verified_at, newest_verified_at) =
            sqlx::query_as(VERIFICATION_SUMMARY)
                .fetch_one(self.pool())
                .await?;
        Ok(VerificationSummary {
            files_verified,
            oldest_verified_at,
            newest_verified_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::MeetingUpsert;
    use super::super::test_support::{listed, temp_store};
    use crate::time::UnixMs;

    fn meeting(id: &str, start_ms: i64, files: &[&str]) -> MeetingUpsert {
        let files: Vec<_> = files.iter().map(|f| (*f, true)).collect();
        listed(
            id,
            start_ms,
            &format!("2024/01/01/code{id}-subject {id}"),
            &files,
        )
    }

    #[tokio::test]
    async fn range_filters_on_media_start_and_verified_at_is_kept_for_archived_files() {
        let (store, _dir) = temp_store().await;
        store
            .upsert_meetings(
                &[
                    meeting("1", 1_000, &["a", "b"]),
                    meeting("2", 5_000, &["c"]),
                ],
                UnixMs(0),
            )
            .await
            .unwrap();
        assert_eq!(store.files_to_verify(None, None).await.unwrap().len(), 3);
        let early = store
            .files_to_verify(None, Some(UnixMs(4_999)))
            .await
            .unwrap();
        assert_eq!(
            early
                .iter()
                .map(|r| r.record_file_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        let late = store
            .files_to_verify(Some(UnixMs(5_000)), None)
            .await
            .unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].meeting_code, "code2");
        assert_eq!(store.file_paths().await.unwrap().len(), 3);

        store.mark_archived(&"a".into(), 10, "00").await.unwrap();
        store.mark_archived(&"c".into(), 10, "00").await.unwrap();
        // "b" is not archived: marking it must not pretend it was verified.
        store
            .mark_verified(&["a".into(), "b".into()], UnixMs(42))
            .await
            .unwrap();
        let summary = store.verification_summary().await.unwrap();
        assert_eq!(summary.files_verified, 1);
        assert_eq!(summary.oldest_verified_at, Some(UnixMs(42)));
        store
            .mark_verified(&["c".into()], UnixMs(50))
            .await
            .unwrap();
        let summary = store.verification_summary().await.unwrap();
        assert_eq!(
            (
                summary.files_verified,
                summary.oldest_verified_at,
                summary.newest_verified_at
            ),
            (2, Some(UnixMs(42)), Some(UnixMs(50)))
        );
    }
}
