//! `reindex`: the catalog rebuilt from the archive alone, with no API call, as restic
//! rebuilds its cache from the repository. Every folder's `meeting.json` (on disk or in
//! the bucket) is read and what it describes is recorded: meetings, files and artifacts,
//! their paths, sizes, SHA-256, when each was archived and deleted in the cloud; the
//! archive's layout comes from its marker. Into a new database, or adding what an
//! existing one lacks: what it knows is never changed, a disagreement is reported.
//!
//! A `meeting.json` that cannot be read or parsed is reported with its path and changes
//! nothing of its folder. Folders are applied in batches, one transaction each (a
//! transaction per folder would make 100,000 folders 100,000 fsyncs), and each folder's
//! outcome goes through [`Reindexer::folder_applied`], the one place where a per-folder
//! or per-file step is added (an index of transcripts, holds, an audit trail).

use super::{App, AppError};
use crate::archive::Archive;
use crate::archive::meeting_json;
use crate::domain::RecordFileId;
use crate::progress::{Planned, Progress};
use crate::state::catalog::{FolderOutcome, MeetingJson, ReindexFile, ReindexMeeting};
use crate::state::{Db, FileKind};
use crate::verify::classify::MEETING_JSON;
use futures::StreamExt;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Folders applied per transaction.
const BATCH: usize = 256;
/// `meeting.json` files read at once (a bucket answers each in a round trip).
const READS_IN_FLIGHT: usize = 16;

/// What a reindex found and recorded.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReindexReport {
    /// The archive root or `s3://bucket/prefix`.
    pub archive: String,
    /// The layout the archive's marker records (`None`: no marker).
    pub layout: Option<String>,
    /// `meeting.json` files read.
    pub folders: u64,
    pub meetings_added: u64,
    pub files_added: u64,
    /// Of `files_added`, those deleted in the cloud (the listing no longer shows them).
    pub deleted_in_cloud_added: u64,
    /// Files the database already knew, in agreement with their `meeting.json`.
    pub files_known: u64,
    /// What the database knows otherwise than the archive says: not applied.
    pub disagreements: Vec<String>,
    /// `meeting.json` files (or folders) that could not be read: (path, why). Nothing of
    /// their folder was recorded.
    pub unreadable: Vec<(String, String)>,
    pub interrupted: bool,
    /// Legal holds read back from the archive (`.wemeet-archiver/holds.json`) that the
    /// database lacked.
    pub holds_restored: u64,
    pub elapsed_ms: u64,
}

impl ReindexReport {
    /// Everything the archive describes is in the database, as described.
    pub fn passed(&self) -> bool {
        self.unreadable.is_empty() && self.disagreements.is_empty() && !self.interrupted
    }
}

/// One reindex of one archive into one database.
pub struct Reindexer<'a> {
    store: &'a Db,
    archive: &'a dyn Archive,
    progress: Progress,
    report: ReindexReport,
}

impl<'a> Reindexer<'a> {
    pub fn new(store: &'a Db, archive: &'a dyn Archive, progress: Progress) -> Self {
        Self {
            store,
            archive,
            progress,
            report: ReindexReport {
                archive: archive.describe(),
                ..ReindexReport::default()
            },
        }
    }

    /// Reads every `meeting.json` and records what the database lacks.
    pub async fn run(mut self, cancel: &CancellationToken) -> Result<ReindexReport, AppError> {
        let started = Instant::now();
        let jsons = self.list_meeting_jsons().await?;
        self.read_and_apply(jsons, cancel).await?;
        // What was said in the transcripts just recorded: searchable again (`search --text`).
        let filled = crate::transcripts::fill_index(self.store, self.archive).await?;
        if filled.indexed > 0 {
            tracing::info!(
                transcripts = filled.indexed,
                "transcripts indexed for search"
            );
        }
        self.restore_holds().await?;
        self.record_audit().await?;
        self.report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(self.report)
    }

    /// Every folder's `meeting.json` in the archive, with its size, planned as the work;
    /// what the listing could not read goes to the report.
    async fn list_meeting_jsons(&mut self) -> Result<Vec<(String, u64)>, AppError> {
        let listing = self
            .archive
            .list()
            .await
            .map_err(|source| AppError::ListArchive {
                archive: self.archive.describe(),
                source: Box::new(source),
            })?;
        self.report.unreadable.extend(listing.unreadable);
        let jsons: Vec<(String, u64)> = listing
            .objects
            .into_iter()
            .filter(|o| o.path.rsplit('/').next() == Some(MEETING_JSON) && o.path.contains('/'))
            .map(|o| (o.path, o.size))
            .collect();
        self.progress.plan(Planned {
            files: jsons.len() as u64,
            bytes: jsons.iter().map(|(_, size)| size).sum(),
        });
        Ok(jsons)
    }

    /// Reads `jsons` ([`READS_IN_FLIGHT`] at once) and applies them in batches of
    /// [`BATCH`] folders, until done or `cancel`.
    async fn read_and_apply(
        &mut self,
        jsons: Vec<(String, u64)>,
        cancel: &CancellationToken,
    ) -> Result<(), AppError> {
        let archive = self.archive;
        let mut reads = futures::stream::iter(jsons)
            .map(|(path, size)| async move {
                let read = meeting_json::read_bytes(archive, &path).await;
                (path, size, read)
            })
            .buffered(READS_IN_FLIGHT);
        let mut batch: Vec<(String, Vec<ReindexMeeting>)> = Vec::new();
        while let Some((path, size, read)) = reads.next().await {
            if cancel.is_cancelled() {
                self.report.interrupted = true;
                break;
            }
            self.report.folders += 1;
            self.progress.file_done();
            self.progress.bytes_done(size);
            let dir = path
                .rsplit_once('/')
                .map(|(d, _)| d.to_string())
                .unwrap_or_default();
            let parsed = match read {
                Ok(bytes) => parse(&dir, &bytes),
                Err(e) => Err(format!("cannot read: {}", crate::errors::chain(&e))),
            };
            match parsed {
                Ok(meetings) => batch.push((path, meetings)),
                Err(why) => {
                    tracing::error!(%path, error = %why, "meeting.json unreadable: nothing of its folder is recorded");
                    self.report.unreadable.push((path, why));
                }
            }
            if batch.len() >= BATCH {
                self.apply(std::mem::take(&mut batch)).await?;
            }
        }
        self.apply(batch).await
    }

    /// The legal holds the archive keeps: a held recording stays held over a lost database.
    async fn restore_holds(&mut self) -> Result<(), AppError> {
        match crate::holds::load_holds(self.archive).await {
            Ok(holds) => self.report.holds_restored = self.store.restore_holds(&holds).await?,
            Err(e) => {
                let why = crate::errors::chain(&e);
                tracing::error!(error = %why, "the archive's legal holds cannot be read: none restored");
                self.report
                    .unreadable
                    .push((crate::holds::HOLDS_FILE.into(), why));
            }
        }
        Ok(())
    }

    /// The `reindexed` record of the audit trail, with the report's counts.
    async fn record_audit(&self) -> Result<(), AppError> {
        let details = serde_json::json!({
            "folders": self.report.folders,
            "meetings_added": self.report.meetings_added,
            "files_added": self.report.files_added,
            "holds_restored": self.report.holds_restored,
            "disagreements": self.report.disagreements.len(),
            "unreadable": self.report.unreadable.len(),
        });
        self.store
            .record_audit(&crate::state::audit::AuditEntry::new(
                crate::state::audit::Action::Reindexed,
                details,
            ))
            .await?;
        Ok(())
    }

    async fn apply(&mut self, batch: Vec<(String, Vec<ReindexMeeting>)>) -> Result<(), AppError> {
        if batch.is_empty() {
            return Ok(());
        }
        let folders: Vec<Vec<ReindexMeeting>> = batch.iter().map(|(_, m)| m.clone()).collect();
        let outcomes = self.store.apply_meeting_jsons(&folders).await?;
        for ((path, meetings), outcome) in batch.iter().zip(outcomes) {
            self.folder_applied(path, meetings, outcome);
        }
        Ok(())
    }

    /// Counts one folder's outcome and reports its disagreements. The hook point for a
    /// per-folder or per-file step of a reindex: `outcome.added_keys` are the files just
    /// recorded, `meetings` what the folder's `meeting.json` describes.
    fn folder_applied(&mut self, path: &str, meetings: &[ReindexMeeting], outcome: FolderOutcome) {
        let r = &mut self.report;
        r.meetings_added += outcome.meetings_added;
        r.files_added += outcome.files_added;
        r.files_known += outcome.files_known;
        r.deleted_in_cloud_added += meetings
            .iter()
            .flat_map(|m| &m.files)
            .filter(|f| {
                f.record.kind == FileKind::Video
                    && f.record.deleted_in_cloud_at.is_some()
                    && outcome.added_keys.contains(&f.key)
            })
            .count() as u64;
        for d in outcome.disagreements {
            tracing::warn!(%path, disagreement = %d, "the database and meeting.json disagree; the database is left as it is");
            r.disagreements.push(d);
        }
    }
}

/// A folder's `meeting.json`, ready to record: every file's key resolved and its path
/// joined to the folder it was found in (the archive is the truth about where it is).
fn parse(dir: &str, bytes: &[u8]) -> Result<Vec<ReindexMeeting>, String> {
    let doc: MeetingJson = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(doc.meetings.len());
    for mut meeting in doc.meetings {
        meeting.dir = dir.to_string();
        let videos: std::collections::HashMap<&str, &str> = meeting
            .files
            .iter()
            .filter(|f| f.kind == FileKind::Video)
            .map(|f| (f.record_file_id.as_str(), f.file.as_str()))
            .collect();
        let mut files = Vec::with_capacity(meeting.files.len());
        for f in &meeting.files {
            if f.file.is_empty() || f.file.contains('/') || f.file == ".." {
                return Err(format!("file `{}` is not a name in its folder", f.file));
            }
            let key = match (&f.key, f.kind) {
                (Some(key), _) => key.clone(),
                (None, FileKind::Video) => f.record_file_id.clone(),
                (None, _) => artifact_key_from_name(videos.get(f.record_file_id.as_str()), f)
                    .ok_or_else(|| format!("cannot tell which artifact `{}` is", f.file))?,
            };
            files.push(ReindexFile {
                parent_file_id: (f.kind != FileKind::Video).then(|| f.record_file_id.clone()),
                path: format!("{dir}/{}", f.file),
                key,
                record: f.clone(),
            });
        }
        out.push(ReindexMeeting { meeting, files });
    }
    Ok(out)
}

/// The key of an artifact listed by a schema-1 `meeting.json` (which did not write it),
/// from its name beside its video's (see `archive::layout::artifact_path`).
fn artifact_key_from_name(
    video_file: Option<&&str>,
    f: &crate::state::catalog::FileRecord,
) -> Option<RecordFileId> {
    use crate::archive::layout::{Artifact, artifact_key};
    let stem = video_file?.strip_suffix(".mp4")?;
    let rest = f.file.strip_prefix(stem)?;
    let artifact = match f.kind {
        FileKind::Audio if rest == ".m4a" => Artifact::Audio,
        FileKind::Transcript => {
            let rest = rest.strip_prefix(".transcript.")?;
            match rest.split_once('.') {
                Some((nth, file_type)) => Artifact::Transcript {
                    file_type,
                    nth: nth.parse().ok()?,
                },
                None => Artifact::Transcript {
                    file_type: rest,
                    nth: 1,
                },
            }
        }
        _ => return None,
    };
    Some(artifact_key(f.record_file_id.as_str(), artifact))
}

impl App {
    /// `reindex`: records what the archive describes and the database lacks (see the
    /// module). Refused (exit 2) on another account's archive; the archive's layout is
    /// taken from its marker when the database has none.
    pub async fn reindex(&self, cancel: &CancellationToken) -> Result<ReindexReport, AppError> {
        let archive = self.archive()?;
        let marker = self.check_account(archive.as_ref()).await?;
        // Before the `reindexed` record is appended: the archive's trail goes on.
        Box::pin(crate::audit::restore_trail(&self.store, archive.as_ref()))
            .await
            .map_err(|e| AppError::Audit(Box::new(e)))?;
        let mut layout_disagreement = None;
        if let Some(m) = &marker {
            let recorded = self.store.archive_layout(&m.layout).await?;
            if recorded != m.layout {
                layout_disagreement = Some(format!(
                    "layout: the database records `{recorded}`, the archive's marker `{}`",
                    m.layout
                ));
            }
        }
        let mut report = Reindexer::new(&self.store, archive.as_ref(), self.progress().clone())
            .run(cancel)
            .await?;
        report.layout = marker.map(|m| m.layout);
        report.disagreements.extend(layout_disagreement);
        tracing::info!(
            folders = report.folders,
            meetings_added = report.meetings_added,
            files_added = report.files_added,
            files_known = report.files_known,
            unreadable = report.unreadable.len(),
            disagreements = report.disagreements.len(),
            "reindexed the archive"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_1_meeting_json_is_read_with_its_artifacts_keys_derived_from_their_names() {
        let v1 = br#"{"meetings": [{"meeting_record_id": "m1", "meeting_id": "9", "meeting_code": "123",
            "userid": "u", "subject": "s", "media_start_time": 1000, "state": 3, "record_type": 1,
            "dir": "somewhere/else", "files": [
              {"record_file_id": "v1", "kind": "video", "file": "v1.mp4", "record_size": 10,
               "sha256": "aa", "status": "archived", "deleted_in_cloud_at": null},
              {"record_file_id": "v1", "kind": "audio", "file": "v1.m4a", "record_size": 5,
               "sha256": "bb", "status": "archived", "deleted_in_cloud_at": null},
              {"record_file_id": "v1", "kind": "transcript", "file": "v1.transcript.2.txt",
               "record_size": 3, "sha256": "cc", "status": "archived", "deleted_in_cloud_at": 7}]}]}"#;
        let meetings = parse("2026/01/02/123-s", v1).unwrap();
        assert_eq!(
            meetings[0].meeting.dir, "2026/01/02/123-s",
            "where it was found"
        );
        let keys: Vec<(&str, &str, Option<&str>)> = meetings[0]
            .files
            .iter()
            .map(|f| {
                (
                    f.key.as_str(),
                    f.path.as_str(),
                    f.parent_file_id.as_ref().map(|p| p.as_str()),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("v1", "2026/01/02/123-s/v1.mp4", None),
                ("v1/audio", "2026/01/02/123-s/v1.m4a", Some("v1")),
                (
                    "v1/transcript/txt/2",
                    "2026/01/02/123-s/v1.transcript.2.txt",
                    Some("v1")
                ),
            ]
        );
    }

    #[test]
    fn a_file_name_that_leaves_its_folder_is_refused() {
        let bad =
            br#"{"schema": "wemeet-archiver.meeting/2", "meetings": [{"meeting_record_id": "m1",
            "meeting_id": "9", "meeting_code": "123", "userid": "u", "subject": "s",
            "media_start_time": 1000, "state": 3, "record_type": 1, "dir": "d", "files": [
              {"record_file_id": "v1", "kind": "video", "file": "../../etc/passwd",
               "record_size": 10, "sha256": "aa", "status": "archived"}]}]}"#;
        assert!(parse("d", bad).unwrap_err().contains("../../etc/passwd"));
        assert!(parse("d", b"{\"meetings\": [").is_err());
    }
}
