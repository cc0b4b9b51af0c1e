//! `meeting.json` beside the recordings: the metadata of every meeting stored in a folder
//! (a recurring meeting can share one) and, per file, its size, SHA-256 and, once `prune`
//! deleted it from the cloud, when; never a sharing password nor a download address.
//!
//! Written by the transfer pool when a file is archived, by `prune` when one is deleted
//! in the cloud, and by `expire` when a recording's files leave the archive
//! (`expired_at`). Each change marks the folder's `meeting.json` as behind in the same
//! transaction (`json_dirty_at`), so a crash before the write is repaired by the next run.

use crate::archive::{Archive, ArchiveError};
use crate::state::{Store, StoreError};
use crate::time::UnixMs;

/// One process writes a given archive (the database lock says so), but inside it the pool
/// and `prune` may rewrite the same folder's file at once, and a local archive writes
/// through one temporary name per file: writes go one at a time, process-wide.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, thiserror::Error)]
pub(crate) enum MeetingJsonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("cannot render meeting.json")]
    Json(#[from] serde_json::Error),
}

/// Rewrites `{dir}/meeting.json` from the database.
pub(crate) async fn write(
    store: &Store,
    archive: &dyn Archive,
    dir: &str,
) -> Result<(), MeetingJsonError> {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let read_at = UnixMs::now();
    let mut meetings = Vec::new();
    for m in store.meetings_in_dir(dir).await? {
        let files: Vec<_> = store
            .files_of_meeting(&m.meeting_record_id)
            .await?
            .into_iter()
            .map(|f| {
                serde_json::json!({
                    "record_file_id": f.parent_file_id.as_ref().unwrap_or(&f.record_file_id),
                    "kind": f.kind,
                    "file": f.path.rsplit('/').next(),
                    "record_size": f.record_size,
                    "sha256": f.sha256,
                    "status": f.status,
                    "deleted_in_cloud_at": f.deleted_in_cloud_at,
                })
            })
            .collect();
        let mut value = serde_json::to_value(&m)?;
        value["files"] = files.into();
        if let Some(at) = store.expired_at(&m.meeting_record_id).await? {
            // `expire` removed its files from the archive past `retention.keep`.
            value["expired_at"] = serde_json::to_value(at)?;
        }
        meetings.push(value);
    }
    let json = serde_json::to_vec_pretty(&serde_json::json!({ "meetings": meetings }))?;
    archive
        .put_small(&format!("{dir}/meeting.json"), json.into())
        .await?;
    store.meeting_json_written(dir, read_at).await?;
    Ok(())
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
