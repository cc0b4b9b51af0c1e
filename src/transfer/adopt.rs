//! Adopting, never downloading again, an intact copy already at a file's destination: a
//! database rebuilt over an existing archive costs one read of the archive, not one
//! download of it.
//!
//! Before a transfer asks for an address, the file's destination (the path of the current
//! layout on disk, the key in a bucket) is looked at. A complete copy of the expected size
//! is read and hashed; if its SHA-256 is the one the folder's `meeting.json` records, the
//! file becomes `archived` with it, untouched. Without a record, a video whose copy has
//! the size the listing announces is adopted with the hash just computed, and that is
//! said: logged, and counted by `status`. Any other copy is never adopted: the file is
//! downloaded to `.part` as always, and replaces the copy only once complete and checked
//! (the run's report names it).

use super::Pool;
use super::meeting_json;
use crate::archive::ReadError;
use crate::domain::RecordFileId;
use crate::state::catalog::FileRecord;
use crate::state::{DbError, FileKind, FileRow, FileStatus};

/// What was found at a file's destination.
pub(super) enum Adoption {
    /// The copy there is the file: archived, nothing downloaded.
    Adopted,
    /// Nothing there: download as usual.
    Absent,
    /// A copy that is not the file (and why): downloaded again, replacing it when done.
    Replace(String),
}

impl Pool {
    /// Looks at `row`'s destination and adopts an intact copy (see the module's doc).
    pub(super) async fn adopt(&self, row: &FileRow) -> Result<Adoption, DbError> {
        if row.bytes_done > 0 {
            // A transfer (a replacement, maybe) is under way: it goes on.
            return Ok(Adoption::Absent);
        }
        let Some(found) = self.copy_size(row).await else {
            return Ok(Adoption::Absent);
        };
        let record = match meeting_json::read(self.archive.as_ref(), &row.dir).await {
            Ok(doc) => doc.and_then(|doc| doc.file(&row.record_file_id).cloned()),
            Err(e) => {
                tracing::warn!(path = %row.path, dir = %row.dir, error = %crate::errors::chain(&e), "meeting.json unreadable: the copy is checked without it");
                None
            }
        }
        .filter(|f: &FileRecord| f.status == FileStatus::Archived && f.sha256.is_some());
        let expected = match &record {
            Some(r) if row.size_known && r.record_size != row.record_size => {
                return Ok(Adoption::Replace(format!(
                    "meeting.json records {} bytes, the listing announces {}",
                    r.record_size, row.record_size
                )));
            }
            Some(r) => r.record_size,
            None if row.kind == FileKind::Video && row.size_known => row.record_size,
            None => {
                return Ok(Adoption::Replace(
                    "no size or SHA-256 recorded to check it against".into(),
                ));
            }
        };
        if found != expected {
            return Ok(Adoption::Replace(format!(
                "{found} bytes where {expected} are expected"
            )));
        }
        let digest = match self.archive.digest(&row.path).await {
            Ok(d) => d,
            Err(ReadError::NotFound) => return Ok(Adoption::Absent),
            Err(e) => return Ok(Adoption::Replace(format!("unreadable: {e}"))),
        };
        if digest.size != expected {
            return Ok(Adoption::Replace(format!(
                "{} bytes where {expected} are expected",
                digest.size
            )));
        }
        let size = expected;
        match record {
            Some(r) if r.sha256.as_deref() == Some(digest.sha256.as_str()) => {
                self.store
                    .mark_adopted(
                        &row.record_file_id,
                        size,
                        &digest.sha256,
                        Some((r.archived_at, r.deleted_in_cloud_at)),
                    )
                    .await?;
                tracing::info!(file = %row.record_file_id, path = %row.path, bytes = size, sha256 = %digest.sha256, "adopted: the copy in the archive is intact; nothing downloaded");
                if row.kind == FileKind::Video {
                    self.queue_recorded_artifacts(row).await?;
                }
                Ok(Adoption::Adopted)
            }
            Some(_) => Ok(Adoption::Replace(
                "content differs from the SHA-256 meeting.json records".into(),
            )),
            None => {
                self.store
                    .mark_adopted(&row.record_file_id, size, &digest.sha256, None)
                    .await?;
                tracing::warn!(file = %row.record_file_id, path = %row.path, bytes = size, sha256 = %digest.sha256, "adopted without a recorded SHA-256: meeting.json does not list this file; its size is the listed one and its hash is the one computed now");
                Ok(Adoption::Adopted)
            }
        }
    }

    /// The size of the copy at `row`'s path, if there is one. One that cannot be looked at
    /// is downloaded: the transfer's own attempt meets (and classifies) the error again.
    async fn copy_size(&self, row: &FileRow) -> Option<u64> {
        match self.archive.size_of(&row.path).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(file = %row.record_file_id, path = %row.path, error = %crate::errors::chain(&e), "could not look at the copy at this path; downloading");
                None
            }
        }
    }

    /// The audio track and transcripts `meeting.json` records for an adopted video become
    /// rows of their own (queued, their size known), when they are archived at all: their
    /// copies are then adopted the same way, without asking `/v1/addresses` for them.
    async fn queue_recorded_artifacts(&self, video: &FileRow) -> Result<(), DbError> {
        if !self.artifacts.any() {
            return Ok(());
        }
        let Ok(Some(doc)) = meeting_json::read(self.archive.as_ref(), &video.dir).await else {
            return Ok(());
        };
        if let Some(meeting) = doc
            .meetings
            .iter()
            .find(|m| m.meeting_record_id == video.meeting_record_id)
        {
            self.store.restore_artifact_checks(meeting).await?;
        }
        let wanted = |kind| match kind {
            FileKind::Audio => self.artifacts.audio,
            FileKind::Transcript => self.artifacts.transcripts,
            FileKind::Video => false,
        };
        let artifacts: Vec<(RecordFileId, String, FileRecord)> = doc
            .meetings
            .iter()
            .flat_map(|m| &m.files)
            .filter(|f| f.record_file_id == video.record_file_id && wanted(f.kind))
            .filter_map(|f| {
                let key = f.key.clone()?;
                Some((key, format!("{}/{}", video.dir, f.file), f.clone()))
            })
            .collect();
        if !artifacts.is_empty() {
            self.store
                .queue_recorded_artifacts(&video.record_file_id, &artifacts)
                .await?;
        }
        Ok(())
    }
}
