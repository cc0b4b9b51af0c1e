//! `meeting.json` beside the recordings: the metadata of every meeting stored in a folder
//! (a recurring meeting can share one) and, per file, its size, SHA-256 and, once `prune`
//! deleted it from the cloud, when; never a sharing password nor a download address.
//!
//! Written by the transfer pool when a file is archived and by `prune` when one is deleted
//! in the cloud. Each change marks the folder's `meeting.json` as behind in the same
//! transaction (`json_dirty_at`), so a crash before the write is repaired by the next run.

use crate::archive::{Archive, ArchiveError, ReadError};
use crate::state::catalog::{FileRecord, MEETING_JSON_SCHEMA, MeetingJson, MeetingRecord};
use crate::state::{Store, StoreError};
use crate::time::UnixMs;

/// One process writes a given archive (the database lock says so), but inside it the pool
/// and `prune` may rewrite the same folder's file at once, and a local archive writes
/// through one temporary name per file: writes go one at a time, process-wide.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, thiserror::Error)]
pub enum MeetingJsonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("meeting.json cannot be rendered or parsed")]
    Json(#[from] serde_json::Error),
}

/// Rewrites `{dir}/meeting.json` from the database. Entries of the file being replaced
/// that the database does not know (files `reindex` has not brought back yet, after the
/// database was lost) are carried over: a rewrite never forgets what the archive holds.
pub(crate) async fn write(
    store: &Store,
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
                let keys: std::collections::HashSet<String> = known.files.iter().map(key).collect();
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
pub(crate) async fn rewrite_stale(store: &Store, archive: &dyn Archive) -> Result<(), StoreError> {
    for dir in store.dirs_with_stale_meeting_json().await? {
        if let Err(e) = write(store, archive, &dir).await {
            tracing::warn!(%dir, error = %crate::errors::chain(&e), "could not rewrite meeting.json");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{FileKind, FileStatus};
    use crate::time::UnixMs;

    fn meeting(id: &str, files: &[&str]) -> MeetingRecord {
        MeetingRecord {
            meeting_record_id: id.into(),
            meeting_id: "9".into(),
            meeting_code: "123".into(),
            userid: "u".into(),
            subject: "s".into(),
            media_start_time: UnixMs(0),
            state: 3,
            record_type: 1,
            dir: "d".into(),
            artifacts_checked_at: None,
            transcript_wait_ended_at: None,
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
