//! `meeting.json` beside the recordings: the metadata of every meeting stored in a folder
//! (a recurring meeting can share one) and, per file, its size and SHA-256; never a
//! sharing password nor a download address.

use super::Downloader;
use crate::archive::ArchiveError;
use crate::state::StoreError;
use crate::time::UnixMs;

#[derive(Debug, thiserror::Error)]
pub(super) enum MeetingJsonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("cannot render meeting.json")]
    Json(#[from] serde_json::Error),
}

impl Downloader {
    /// Rewrites `{dir}/meeting.json` from the database. Writes are serialised: two
    /// workers finishing files of one folder would otherwise share its temporary file.
    pub(super) async fn write_meeting_json(&self, dir: &str) -> Result<(), MeetingJsonError> {
        let _one_at_a_time = self.meeting_json_lock.lock().await;
        let read_at = UnixMs::now();
        let mut meetings = Vec::new();
        for m in self.store.meetings_in_dir(dir).await? {
            let files: Vec<_> = self
                .store
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
                    })
                })
                .collect();
            let mut value = serde_json::to_value(&m)?;
            value["files"] = files.into();
            meetings.push(value);
        }
        let json = serde_json::to_vec_pretty(&serde_json::json!({ "meetings": meetings }))?;
        self.archive
            .put_small(&format!("{dir}/meeting.json"), json.into())
            .await?;
        self.store.meeting_json_written(dir, read_at).await?;
        Ok(())
    }
}
