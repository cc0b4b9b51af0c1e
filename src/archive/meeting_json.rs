//! `meeting.json` beside the recordings: the metadata of every meeting stored in a folder
//! (a recurring meeting can share one) and, per file, its size, SHA-256 and, once `prune`
//! deleted it from the cloud, when; never a sharing password nor a download address.
//!
//! Written by the transfer pool when a folder's burst of changes is over (its files
//! archived one after another: one write for the burst, not one per file), by `prune` when
//! a file is deleted in the cloud, and by `expire` when a recording's files leave the
//! archive (`expired_at`). Each change marks the folder's `meeting.json` as behind in the
//! same transaction (`json_dirty_at`, the time of the last change), so a crash before the
//! write is repaired by the next run.

use crate::archive::{Archive, ArchiveError, ReadError};
use crate::domain::RecordFileId;
use crate::state::catalog::{FileRecord, MEETING_JSON_SCHEMA, MeetingJson, MeetingRecord};
use crate::state::{Db, DbError};
use crate::time::UnixMs;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long a folder goes without a change before its `meeting.json` is written: longer
/// than the gap between two files of one meeting archived one after the other (the claim
/// keeps a meeting's files together), short enough that the file is soon current.
const QUIET: Duration = Duration::from_millis(500);

/// How long a folder whose `meeting.json` could not be written (a full disk) waits before
/// the next try, so that a lasting failure costs one warning a minute, not one per round.
const AFTER_FAILURE: Duration = Duration::from_secs(60);

/// One process writes a given archive (the database lock says so), but inside it the pool
/// and `prune` may rewrite the same folder's file at once, and a local archive writes
/// through one temporary name per file: writes go one at a time, process-wide.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, thiserror::Error)]
pub enum MeetingJsonError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("meeting.json cannot be rendered or parsed")]
    Json(#[from] serde_json::Error),
}

/// Rewrites `{dir}/meeting.json` from the database. Entries of the file being replaced
/// that the database does not know (files `reindex` has not brought back yet, after the
/// database was lost) are carried over: a rewrite never forgets what the archive holds.
pub(crate) async fn write(
    store: &Db,
    archive: &dyn Archive,
    dir: &str,
) -> Result<(), MeetingJsonError> {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let read_at = UnixMs::now();
    let mut meetings = Vec::new();
    for m in store.meetings_in_dir(dir).await? {
        let files = store
            .files_of_meeting(&m.meeting_record_id)
            .await?
            .into_iter()
            .map(|f| FileRecord {
                record_file_id: f
                    .parent_file_id
                    .clone()
                    .unwrap_or_else(|| f.record_file_id.clone()),
                key: Some(f.record_file_id),
                kind: f.kind,
                file: f.path.rsplit('/').next().unwrap_or_default().to_string(),
                record_size: f.record_size,
                sha256: f.sha256,
                status: f.status,
                archived_at: f.archived_at,
                deleted_in_cloud_at: f.deleted_in_cloud_at,
                record_start_time: Some(f.record_start_time),
                record_end_time: Some(f.record_end_time),
            })
            .collect();
        let expired_at = store.expired_at(&m.meeting_record_id).await?;
        meetings.push(MeetingRecord {
            meeting_record_id: m.meeting_record_id,
            meeting_id: m.meeting_id,
            meeting_code: m.meeting_code,
            userid: m.userid,
            subject: m.subject,
            media_start_time: m.media_start_time,
            state: m.state,
            record_type: m.record_type,
            dir: m.dir,
            artifacts_checked_at: m.artifacts_checked_at,
            transcript_wait_ended_at: m.transcript_wait_ended_at,
            expired_at,
            files,
        });
    }
    if let Ok(Some(old)) = read(archive, dir).await {
        carry_over(&mut meetings, old);
    }
    let doc = MeetingJson {
        schema: Some(MEETING_JSON_SCHEMA.into()),
        meetings,
    };
    let json = serde_json::to_vec_pretty(&doc)?;
    archive
        .put_small(&format!("{dir}/meeting.json"), json.into())
        .await?;
    store.meeting_json_written(dir, read_at).await?;
    Ok(())
}

/// Adds to `meetings` (from the database) what `old` (the file on disk) holds that they
/// lack: whole meetings, and files of known meetings.
fn carry_over(meetings: &mut Vec<MeetingRecord>, old: MeetingJson) {
    let key = |f: &FileRecord| f.key.clone().unwrap_or_else(|| f.record_file_id.clone());
    for old_meeting in old.meetings {
        match meetings
            .iter_mut()
            .find(|m| m.meeting_record_id == old_meeting.meeting_record_id)
        {
            Some(known) => {
                let keys: std::collections::HashSet<RecordFileId> =
                    known.files.iter().map(key).collect();
                known.files.extend(
                    old_meeting
                        .files
                        .into_iter()
                        .filter(|f| !keys.contains(&key(f))),
                );
            }
            None => meetings.push(old_meeting),
        }
    }
}

/// `{dir}/meeting.json` as the archive holds it; `None` if there is none.
pub(crate) async fn read(
    archive: &dyn Archive,
    dir: &str,
) -> Result<Option<MeetingJson>, MeetingJsonError> {
    let path = format!("{dir}/meeting.json");
    match read_bytes(archive, &path).await {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        Err(ReadError::NotFound) => Ok(None),
        Err(ReadError::Refused(e)) => Err(ArchiveError::from(e).into()),
        Err(ReadError::Archive(e)) => Err(e.into()),
    }
}

/// The whole of a small object (a `meeting.json`, the archive's marker).
pub(crate) async fn read_bytes(archive: &dyn Archive, path: &str) -> Result<Vec<u8>, ReadError> {
    use futures::TryStreamExt;
    let mut body = archive.read(path).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.try_next().await? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Brings every `meeting.json` marked as behind up to date (after a crash, or a batch of
/// changes); a folder that cannot be written is logged and stays marked.
pub(crate) async fn rewrite_stale(store: &Db, archive: &dyn Archive) -> Result<(), DbError> {
    for dir in store.dirs_with_stale_meeting_json().await? {
        if let Err(e) = write(store, archive, &dir).await {
            tracing::warn!(%dir, error = %crate::errors::chain(&e), "could not rewrite meeting.json");
        }
    }
    Ok(())
}

/// Writes the `meeting.json` of each folder whose last change is at least `quiet` older
/// than `now`, except those in `failed` (folder, when its write failed) until their wait
/// is over. Returns how many it wrote.
pub(crate) async fn write_quiet(
    store: &Db,
    archive: &dyn Archive,
    quiet: Duration,
    now: UnixMs,
    failed: &mut HashMap<String, Instant>,
) -> Result<usize, DbError> {
    failed.retain(|_, at| at.elapsed() < AFTER_FAILURE);
    let mut written = 0;
    for dir in store
        .quiet_dirs_with_stale_meeting_json(now - quiet)
        .await?
    {
        if failed.contains_key(&dir) {
            continue;
        }
        match write(store, archive, &dir).await {
            Ok(()) => written += 1,
            Err(MeetingJsonError::Db(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(%dir, error = %crate::errors::chain(&e), "could not write meeting.json; trying again later");
                failed.insert(dir, Instant::now());
            }
        }
    }
    Ok(written)
}

/// The transfer pool's writer of `meeting.json`: woken by `changed` (a file archived),
/// it writes each folder once its burst of changes is over ([`QUIET`]), until `stop`.
/// What is still behind then is left to [`rewrite_stale`] (the end of the run, or the
/// next start after a crash: the marks stay until written).
pub(crate) async fn write_when_quiet(
    store: &Db,
    archive: &dyn Archive,
    changed: &Notify,
    stop: &CancellationToken,
) -> Result<(), DbError> {
    let mut failed = HashMap::new();
    while !stop.is_cancelled() {
        let woken = changed.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let now = UnixMs::now();
        write_quiet(store, archive, QUIET, now, &mut failed).await?;
        match store.oldest_stale_meeting_json().await? {
            // Until the oldest change still behind is quiet (at least QUIET: a folder that
            // failed keeps its old mark). Changes meanwhile need no wake-up: they are
            // younger, so due later, and the next round sees them.
            Some(at) => {
                let due = u64::try_from((at + QUIET).0 - now.0).unwrap_or(0);
                let wait = Duration::from_millis(due).clamp(QUIET, AFTER_FAILURE);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => {}
                }
            }
            // Nothing behind: until a change.
            None => tokio::select! {
                () = woken => {}
                () = stop.cancelled() => {}
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::local::LocalArchive;
    use crate::state::{FileUpsert, MeetingUpsert};

    /// A burst of three files archived in one folder: nothing is written while the folder
    /// is still changing, then one `meeting.json` with all three; the marks stay until it
    /// is written, so a crash before then leaves the folder to `rewrite_stale`.
    #[tokio::test]
    async fn a_folder_is_written_once_its_burst_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = Db::open(&dir.path().join("state.db")).await.unwrap();
        let root = dir.path().join("archive");
        let archive = LocalArchive::new(&root, store.clone());
        let files = ["a", "b", "c"];
        let meeting = MeetingUpsert {
            meeting_record_id: "r1".into(),
            meeting_id: "m1".into(),
            meeting_code: "123".into(),
            userid: "u".into(),
            subject: "weekly".into(),
            media_start_time: UnixMs(1_000),
            state: 3.into(),
            record_type: 1,
            dir: "2024/01/01/123-weekly".into(),
            files: files
                .iter()
                .map(|id| FileUpsert {
                    record_file_id: (*id).into(),
                    record_start_time: 0,
                    record_end_time: 1,
                    record_size: 3,
                    path: format!("2024/01/01/123-weekly/{id}.mp4"),
                    download_address: None,
                    skip_rule: None,
                })
                .collect(),
        };
        store.upsert_meetings(&[meeting], UnixMs(0)).await.unwrap();
        for id in files {
            store.mark_archived(&(*id).into(), 3, "00").await.unwrap();
        }
        let quiet = Duration::from_secs(3600);
        let json = root.join("2024/01/01/123-weekly/meeting.json");
        let mut failed = HashMap::new();

        // Still within the burst: nothing written, the folder still marked.
        let during = write_quiet(&store, &archive, quiet, UnixMs::now(), &mut failed);
        assert_eq!(during.await.unwrap(), 0);
        assert!(!json.exists());
        assert_eq!(
            store.dirs_with_stale_meeting_json().await.unwrap(),
            ["2024/01/01/123-weekly"]
        );

        // Once quiet: one write, with the three files archived, and the mark gone.
        let after = UnixMs::now() + quiet + Duration::from_millis(1);
        let written = write_quiet(&store, &archive, quiet, after, &mut failed);
        assert_eq!(written.await.unwrap(), 1);
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let statuses: Vec<_> = value["meetings"][0]["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["record_file_id"].as_str().unwrap(),
                    f["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            statuses,
            [("a", "archived"), ("b", "archived"), ("c", "archived")]
        );
        assert!(
            store
                .dirs_with_stale_meeting_json()
                .await
                .unwrap()
                .is_empty()
        );
        let again = write_quiet(&store, &archive, quiet, after, &mut failed);
        assert_eq!(again.await.unwrap(), 0);
    }

    use crate::state::{FileKind, FileStatus};

    fn meeting(id: &str, files: &[&str]) -> MeetingRecord {
        MeetingRecord {
            meeting_record_id: id.into(),
            meeting_id: "9".into(),
            meeting_code: "123".into(),
            userid: "u".into(),
            subject: "s".into(),
            media_start_time: UnixMs(0),
            state: 3.into(),
            record_type: 1,
            dir: "d".into(),
            artifacts_checked_at: None,
            transcript_wait_ended_at: None,
            expired_at: None,
            files: files
                .iter()
                .map(|f| FileRecord {
                    record_file_id: (*f).into(),
                    key: Some((*f).into()),
                    kind: FileKind::Video,
                    file: format!("{f}.mp4"),
                    record_size: 1,
                    sha256: Some("aa".into()),
                    status: FileStatus::Archived,
                    archived_at: Some(UnixMs(1)),
                    deleted_in_cloud_at: None,
                    record_start_time: None,
                    record_end_time: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_rewrite_keeps_what_the_database_does_not_know() {
        let mut from_db = vec![meeting("m1", &["a"])];
        let on_disk = MeetingJson {
            schema: Some(MEETING_JSON_SCHEMA.into()),
            meetings: vec![meeting("m1", &["a", "pruned"]), meeting("m2", &["b"])],
        };
        carry_over(&mut from_db, on_disk);
        let files: Vec<(&str, &str)> = from_db
            .iter()
            .flat_map(|m| {
                m.files
                    .iter()
                    .map(|f| (m.meeting_record_id.as_str(), f.file.as_str()))
            })
            .collect();
        assert_eq!(
            files,
            [("m1", "a.mp4"), ("m1", "pruned.mp4"), ("m2", "b.mp4")]
        );
    }
}
