//! What `prune` reads and writes: the archived files it may delete from the cloud, and the
//! record of each deletion.
//!
//! A file deleted in the cloud stays `archived` (its copy is what is left, and `verify`
//! keeps checking it); only `deleted_in_cloud_at` says the cloud no longer holds it. A
//! listing that stops showing the file never touches its row (upserts only reach the files
//! a page lists), so nothing marks it missing, unavailable or queued again.

use super::holds::held_sql;
use super::verify::{VerifyRow, verify_row_select};
use super::{Db, DbError};
use crate::domain::RecordFileId;
use crate::time::UnixMs;

/// An archived file old enough to be deleted from the cloud: what its download recorded
/// (to re-check the copy against) and when it was archived.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PruneCandidate {
    #[sqlx(flatten)]
    pub file: VerifyRow,
    pub archived_at: UnixMs,
}

/// The artifacts `download.artifacts` asks for: a recording is deleted from the cloud
/// with its audio track and transcripts, so a video waits for those of the kinds wanted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArtifactsWanted {
    pub audio: bool,
    pub transcripts: bool,
}

/// The candidates' `FROM ... WHERE`: archived videos still in the cloud (and in the
/// archive: an expired recording's cloud copy may be the last one), archived at or
/// before `?1`, whose wanted artifacts are settled: looked for (`?2` audio, `?3`
/// transcripts wanted), every one found archived (one the API refuses keeps its video in
/// the cloud), and transcripts found or waited for to the end of `download.artifact_wait`.
macro_rules! candidates {
    ($select:expr, $tail:expr) => {
        concat!(
            $select,
            " FROM files f JOIN meetings m USING (meeting_record_id)
             WHERE f.status = 'archived' AND f.deleted_in_cloud_at IS NULL
               AND m.expired_at IS NULL
               AND f.kind = 'video' AND f.archived_at <= ?1
               AND ((?2 = 0 AND ?3 = 0) OR m.artifacts_checked_at IS NOT NULL)
               AND NOT EXISTS (SELECT 1 FROM files a WHERE a.parent_file_id = f.record_file_id
                   AND a.status != 'archived'
                   AND ((a.kind = 'audio' AND ?2) OR (a.kind = 'transcript' AND ?3)))
               AND (?3 = 0 OR m.transcript_wait_ended_at IS NOT NULL
                   OR EXISTS (SELECT 1 FROM files t WHERE t.parent_file_id = f.record_file_id
                       AND t.kind = 'transcript'))
             ",
            $tail
        )
    };
}

/// The columns of a [`PruneCandidate`].
macro_rules! candidate_columns {
    () => {
        "SELECT f.record_file_id, f.kind, m.meeting_code, m.subject,
                m.state AS meeting_state, m.media_start_time, f.path, f.status,
                f.record_size, f.archived_size, f.sha256, f.bytes_done, f.attempts,
                f.last_error, f.verified_at, f.skip_rule, f.archived_at"
    };
}

pub(super) const PRUNE_CANDIDATES: &str = candidates!(
    candidate_columns!(),
    concat!(
        "AND NOT ",
        held_sql!(),
        " ORDER BY f.archived_at, f.record_file_id LIMIT ?4"
    )
);

/// The archived artifacts of one video. (`+f.status`: the status takes no index, so the
/// plan seeks the video's artifacts instead of walking every archived file.)
pub(super) const ARCHIVED_ARTIFACTS: &str = concat!(
    verify_row_select!(),
    " WHERE f.parent_file_id = ? AND +f.status = 'archived' ORDER BY f.record_file_id"
);

pub(super) const COUNT_PRUNE_CANDIDATES: &str =
    candidates!("SELECT COUNT(*)", concat!("AND NOT ", held_sql!()));

impl Db {
    /// At most `limit` candidates archived at or before `archived_before`, the oldest
    /// first (the longest kept, and the first that would have left the cloud anyway).
    pub async fn prune_candidates(
        &self,
        archived_before: UnixMs,
        wanted: ArtifactsWanted,
        limit: u32,
    ) -> Result<Vec<PruneCandidate>, DbError> {
        Ok(sqlx::query_as(PRUNE_CANDIDATES)
            .bind(archived_before)
            .bind(wanted.audio)
            .bind(wanted.transcripts)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?)
    }

    /// How many candidates there are in all, beyond any limit.
    pub async fn count_prune_candidates(
        &self,
        archived_before: UnixMs,
        wanted: ArtifactsWanted,
    ) -> Result<u64, DbError> {
        let n: i64 = sqlx::query_scalar(COUNT_PRUNE_CANDIDATES)
            .bind(archived_before)
            .bind(wanted.audio)
            .bind(wanted.transcripts)
            .fetch_one(self.pool())
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The candidates left out because their recording is held: `prune` names them.
    pub async fn held_prune_candidates(
        &self,
        archived_before: UnixMs,
        wanted: ArtifactsWanted,
    ) -> Result<Vec<PruneCandidate>, DbError> {
        Ok(sqlx::query_as(candidates!(
            candidate_columns!(),
            concat!(
                "AND ",
                held_sql!(),
                " ORDER BY f.archived_at, f.record_file_id"
            )
        ))
        .bind(archived_before)
        .bind(wanted.audio)
        .bind(wanted.transcripts)
        .fetch_all(self.pool())
        .await?)
    }

    /// The archived artifacts of the video `record_file_id`: `prune` re-reads them with
    /// it, since its deletion takes them from the cloud too.
    pub async fn archived_artifacts(
        &self,
        record_file_id: &RecordFileId,
    ) -> Result<Vec<VerifyRow>, DbError> {
        Ok(sqlx::query_as(ARCHIVED_ARTIFACTS)
            .bind(record_file_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// Whether any file waits for a transfer or is being transferred: the service's
    /// prune round gives way to them.
    pub async fn transfers_pending(&self) -> Result<bool, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM files WHERE status IN ('queued', 'transferring'))",
        )
        .fetch_one(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::temp_store;
    use super::super::{ArtifactUpsert, FileKind, FileStatus, FileUpsert, MeetingUpsert};
    use super::{ArtifactsWanted, PruneCandidate, RecordFileId};
    use crate::time::UnixMs;

    const NONE: ArtifactsWanted = ArtifactsWanted {
        audio: false,
        transcripts: false,
    };

    fn ids(c: Vec<PruneCandidate>) -> Vec<RecordFileId> {
        c.into_iter().map(|c| c.file.record_file_id).collect()
    }

    fn meeting(files: &[&str]) -> MeetingUpsert {
        MeetingUpsert {
            meeting_record_id: "m1".into(),
            meeting_id: "mid".into(),
            meeting_code: "123".into(),
            userid: "u".into(),
            subject: "s".into(),
            media_start_time: UnixMs(1_000),
            state: 3.into(),
            record_type: 0,
            dir: "2024/01/01/123-s".into(),
            files: files
                .iter()
                .map(|f| FileUpsert {
                    record_file_id: (*f).into(),
                    record_start_time: 0,
                    record_end_time: 1,
                    record_size: 10,
                    path: format!("2024/01/01/123-s/{f}.mp4"),
                    download_address: None,
                    skip_rule: None,
                })
                .collect(),
        }
    }

    /// A store holding `meeting(files)`, with `archived` (id, SHA-256) archived, 10 bytes
    /// each.
    async fn archived(files: &[&str], archived: &[(&str, &str)]) -> (super::Db, tempfile::TempDir) {
        let (store, dir) = temp_store().await;
        store
            .upsert_meetings(&[meeting(files)], UnixMs(0))
            .await
            .unwrap();
        for (id, sha256) in archived {
            store
                .mark_archived(&(*id).into(), 10, sha256)
                .await
                .unwrap();
        }
        (store, dir)
    }

    #[tokio::test]
    async fn each_deletion_is_one_audit_record_saying_who_deleted_it() {
        let (store, _dir) = archived(&["a", "b"], &[("a", "aa"), ("b", "bb")]).await;
        store
            .record_cloud_deletion(&"a".into(), UnixMs::now())
            .await
            .unwrap();
        store
            .record_cloud_deletion(&"a".into(), UnixMs::now())
            .await
            .unwrap();
        let ids = [RecordFileId::from("b"), "never-listed".into()];
        store
            .mark_deleted_in_cloud(&ids, UnixMs::now())
            .await
            .unwrap();
        let records = store.audit_records(1, 100).await.unwrap();
        let deletions: Vec<(Option<&str>, &serde_json::Value)> = records
            .iter()
            .filter(|r| r.action == "deleted_in_cloud")
            .map(|r| (r.record_file_id.as_deref(), &r.details["by"]))
            .collect();
        assert_eq!(
            deletions,
            [
                (Some("a"), &serde_json::json!("prune")),
                (Some("b"), &serde_json::json!("event"))
            ]
        );
        assert_eq!(
            records.len(),
            4,
            "2 archived, 2 deleted: a repeat records nothing"
        );
    }

    #[tokio::test]
    async fn a_held_recording_is_no_candidate_until_its_last_hold_is_released() {
        use super::super::HoldScope;
        let (store, _dir) = archived(&["a"], &[("a", "aa")]).await;
        let far = UnixMs::now() + std::time::Duration::from_secs(60);
        let by_meeting = HoldScope::Meeting {
            meeting_record_id: "m1".into(),
        };
        let by_range = HoldScope::Range {
            since: UnixMs(1_000),
            until: UnixMs(1_000),
        };
        let candidates = async || ids(store.prune_candidates(far, NONE, 10).await.unwrap());
        let first = store.add_hold(&by_meeting, "one").await.unwrap();
        let second = store.add_hold(&by_range, "two").await.unwrap();
        assert!(candidates().await.is_empty());
        assert_eq!(
            ids(store.held_prune_candidates(far, NONE).await.unwrap()),
            ["a"]
        );
        store.release_hold(first.id).await.unwrap();
        assert_eq!(store.holds_on(&"m1".into()).await.unwrap(), [second.id]);
        assert!(candidates().await.is_empty());
        store.release_hold(second.id).await.unwrap();
        assert_eq!(candidates().await, ["a"]);
        assert!(store.held_meetings().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_deleted_file_is_no_candidate_and_a_listing_without_it_leaves_it_archived() {
        let (store, _dir) = archived(&["a", "b", "c"], &[("a", "aa"), ("b", "bb")]).await;
        let far = UnixMs::now() + std::time::Duration::from_secs(60);
        assert_eq!(
            ids(store.prune_candidates(far, NONE, 10).await.unwrap()),
            ["a", "b"]
        );
        assert_eq!(
            ids(store.prune_candidates(far, NONE, 1).await.unwrap()),
            ["a"]
        );
        assert!(
            store
                .prune_candidates(UnixMs(0), NONE, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.count_prune_candidates(far, NONE).await.unwrap(), 2);

        let at = UnixMs::now();
        store.record_cloud_deletion(&"a".into(), at).await.unwrap();
        store
            .record_cloud_deletion(&"a".into(), at + std::time::Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            ids(store.prune_candidates(far, NONE, 10).await.unwrap()),
            ["b"]
        );
        assert_eq!(
            store.dirs_with_stale_meeting_json().await.unwrap(),
            ["2024/01/01/123-s"]
        );

        // The next listing shows only the files left in the cloud.
        store
            .upsert_meetings(&[meeting(&["b", "c"])], UnixMs(0))
            .await
            .unwrap();
        let a = store.file(&"a".into()).await.unwrap().unwrap();
        assert_eq!(a.status, FileStatus::Archived);
        assert_eq!(a.deleted_in_cloud_at, Some(at), "the first record stands");
        assert!(store.transfers_pending().await.unwrap(), "c is queued");
        let status = store.status(UnixMs::now()).await.unwrap();
        assert_eq!((status.files_deleted_in_cloud, status.bytes_freed), (1, 10));
    }

    #[tokio::test]
    async fn a_video_waits_for_its_wanted_artifacts_to_be_settled_and_goes_with_them() {
        let (store, _dir) = archived(&["a"], &[("a", "aa")]).await;
        let far = UnixMs::now() + std::time::Duration::from_secs(60);
        let all = ArtifactsWanted {
            audio: true,
            transcripts: true,
        };
        let audio_only = ArtifactsWanted {
            audio: true,
            transcripts: false,
        };
        let due = async |wanted| ids(store.prune_candidates(far, wanted, 10).await.unwrap());
        assert_eq!(due(NONE).await, ["a"]);
        assert!(due(audio_only).await.is_empty(), "never looked for");

        let audio = ArtifactUpsert {
            key: "a/audio".into(),
            kind: FileKind::Audio,
            parent_file_id: "a".into(),
            path: "2024/01/01/123-s/a.m4a".into(),
            download_address: wemeet_api::Secret::new("https://x/a.m4a"),
        };
        store
            .upsert_artifacts(&"m1".into(), &[audio], UnixMs::now())
            .await
            .unwrap();
        assert!(due(audio_only).await.is_empty(), "its audio is queued");
        store
            .mark_archived(&"a/audio".into(), 3, "cc")
            .await
            .unwrap();
        assert_eq!(due(audio_only).await, ["a"]);
        assert!(due(all).await.is_empty(), "transcripts still awaited");
        store
            .end_transcript_wait(&"m1".into(), UnixMs::now())
            .await
            .unwrap();
        assert_eq!(due(all).await, ["a"]);
        assert_eq!(store.count_prune_candidates(far, all).await.unwrap(), 1);
        assert_eq!(
            ids_of(store.archived_artifacts(&"a".into()).await.unwrap()),
            ["a/audio"]
        );

        store
            .record_cloud_deletion(&"a".into(), UnixMs::now())
            .await
            .unwrap();
        let audio = store.file(&"a/audio".into()).await.unwrap().unwrap();
        assert!(audio.deleted_in_cloud_at.is_some(), "gone with its video");
        assert!(due(all).await.is_empty());
    }

    fn ids_of(rows: Vec<super::VerifyRow>) -> Vec<RecordFileId> {
        rows.into_iter().map(|r| r.record_file_id).collect()
    }
    #[tokio::test]
    async fn a_deleted_file_not_archived_leaves_the_queue_and_an_archived_one_stays() {
        let (store, _dir) = archived(&["kept", "gone"], &[("kept", "ab")]).await;
        let named = [
            RecordFileId::from("kept"),
            "gone".into(),
            "never-listed".into(),
        ];
        let dequeued = store
            .mark_deleted_in_cloud(&named, UnixMs(5))
            .await
            .unwrap();
        assert_eq!(dequeued, 1);
        let kept = store.file(&"kept".into()).await.unwrap().unwrap();
        assert_eq!(kept.status, FileStatus::Archived);
        assert_eq!(kept.deleted_in_cloud_at, Some(UnixMs(5)));
        let gone = store.file(&"gone".into()).await.unwrap().unwrap();
        assert_eq!(gone.status, FileStatus::Unavailable);
        assert!(gone.last_error.unwrap().contains("deleted in the cloud"));
        assert!(
            ids(store
                .prune_candidates(UnixMs(i64::MAX / 2), NONE, 10)
                .await
                .unwrap())
            .is_empty()
        );
        store
            .mark_deleted_in_cloud(&named[..1], UnixMs(9))
            .await
            .unwrap();
        let kept = store.file(&"kept".into()).await.unwrap().unwrap();
        assert_eq!(
            kept.deleted_in_cloud_at,
            Some(UnixMs(5)),
            "the first record stands"
        );
    }
}
