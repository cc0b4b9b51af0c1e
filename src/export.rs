//! `export --to DIR`: the recordings a [`Query`] selects, copied out of the archive (disk
//! or bucket) with their artifacts and `meeting.json`, each hashed while it is copied and
//! checked against the SHA-256 recorded at download, then `SHA256SUMS` (for
//! `sha256sum -c`) and `manifest.json` beside them.
//!
//! Nothing is written outside `DIR`: each file goes to `{path}.part` inside `DIR`, is
//! fsynced, and is renamed to its archive path (relative, checked like every stored path)
//! only once its hash is right. A copy whose hash or size disagrees is deleted, named in
//! the report and left out of `SHA256SUMS`: what is handed over is exactly what was
//! archived.

use crate::archive::{Archive, ArchiveError, UnsafePath, layout};
use crate::domain::{MeetingRecordId, RecordFileId};
use crate::progress::{Planned, Progress};
use crate::search::{self, Query, SearchError};
use crate::state::{Db, DbError, FileKind, FileStatus, MeetingRow};
use crate::verify::sums;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The manifest's schema name; changes if a field changes meaning.
pub const SCHEMA: &str = "wemeet-archiver.export/1";
pub const SUMS: &str = "SHA256SUMS";
pub const MANIFEST: &str = "manifest.json";
const PART: &str = ".part";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "{0} is not empty: export into an empty (or new) folder, or add --resume to finish an \
         earlier export into it"
    )]
    NotEmpty(PathBuf),
    #[error("{0} exists and is not a folder")]
    NotADir(PathBuf),
    #[error("cannot {action} {path}")]
    Write {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ExportError {
    /// The caller's input must change (a non-empty folder, a bad query): nothing was copied.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::NotEmpty(_) | Self::NotADir(_) | Self::Search(SearchError::Usage(_))
        )
    }
}

fn write_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ExportError + use<> {
    let path = path.to_owned();
    move |source| ExportError::Write {
        action,
        path,
        source,
    }
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Copied, and its hash is the one recorded.
    Exported,
    /// `--resume`: already in `DIR` with the recorded size and hash.
    AlreadyExported,
    /// Not copied: the archived copy is not what was archived (or cannot be read).
    Refused,
    /// Not archived (still to download, failed, skipped): nothing to copy.
    NotArchived,
}

/// One file of the export.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportedFile {
    pub meeting_record_id: MeetingRecordId,
    /// `None` for a `meeting.json`.
    pub record_file_id: Option<RecordFileId>,
    /// `None` for a `meeting.json`.
    pub kind: Option<FileKind>,
    /// Relative to `DIR` (and to the archive root).
    pub path: String,
    pub size: Option<u64>,
    /// What was copied (for a `meeting.json`, which has no recorded hash, what was read).
    pub sha256: Option<String>,
    pub outcome: Outcome,
    /// Why it was refused, or its status when it is not archived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The export, as `manifest.json` holds it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    pub schema: &'static str,
    /// The archive copied from.
    pub archive: String,
    pub query: Query,
    pub exported_at: String,
    pub recordings: usize,
    pub files: Vec<ExportedFile>,
    /// The last record of the archive's audit trail when the export was made (`None`:
    /// the archive keeps no audit trail).
    pub last_audit_record: Option<serde_json::Value>,
}

impl ExportReport {
    /// Every selected file that is archived is in `DIR`, intact.
    pub fn complete(&self) -> bool {
        !self.files.iter().any(|f| f.outcome == Outcome::Refused)
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.files.iter().filter(|f| f.outcome == outcome).count()
    }
}

/// Where and how to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub to: PathBuf,
    /// Finish an earlier export into `to`: files already there intact are not copied again.
    pub resume: bool,
    /// Files and bytes copied against those planned, for a display.
    pub progress: Progress,
}

/// The last record of the audit trail, for the manifest: what the archive had been
/// through when the bundle was made (`audit verify` checks the chain up to it).
async fn last_audit_record(store: &Db) -> Result<Option<serde_json::Value>, DbError> {
    Ok(store
        .last_audit_record()
        .await?
        .map(|r| serde_json::to_value(r).expect("an audit record serialises")))
}

/// One file to copy: where it is, and what it must hash to (`None`: `meeting.json`,
/// rewritten by the archiver, has no recorded hash).
struct Planned1 {
    meeting_record_id: MeetingRecordId,
    record_file_id: Option<RecordFileId>,
    kind: Option<FileKind>,
    path: String,
    expected: Option<(u64, String)>,
}

/// Copies what `query` selects from `archive` into `options.to` and writes `SHA256SUMS`
/// and `manifest.json` there. A refused copy is in the report, not an error.
pub async fn export(
    store: &Db,
    archive: &dyn Archive,
    query: &Query,
    options: &ExportOptions,
) -> Result<ExportReport, ExportError> {
    let recordings = search::select(store, query).await?;
    prepare(&options.to, options.resume)?;
    let (plan, mut files) = plan_copies(store, &recordings).await?;
    options.progress.plan(Planned {
        files: plan.len() as u64,
        bytes: plan
            .iter()
            .filter_map(|p| p.expected.as_ref().map(|e| e.0))
            .sum(),
    });
    for p in plan {
        let done = copy_one(archive, &options.to, &p, options.resume, &options.progress).await?;
        options.progress.file_done();
        files.push(done);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let report = ExportReport {
        schema: SCHEMA,
        archive: archive.describe(),
        query: query.clone(),
        exported_at: chrono::Utc::now().to_rfc3339(),
        recordings: recordings.len(),
        files,
        last_audit_record: last_audit_record(store).await?,
    };
    write_sums_and_manifest(&options.to, &report).await?;
    Ok(report)
}

/// The files of `recordings` to copy (each archived file, and the `meeting.json` of each
/// folder holding one), and those that are not archived, reported as such.
async fn plan_copies(
    store: &Db,
    recordings: &[MeetingRow],
) -> Result<(Vec<Planned1>, Vec<ExportedFile>), ExportError> {
    let mut not_archived = Vec::new();
    let mut plan = Vec::new();
    let mut dirs = BTreeSet::new();
    for r in recordings {
        let mut any_archived = false;
        for f in store.recording_files(&r.meeting_record_id).await? {
            match (f.status, f.sha256) {
                (FileStatus::Archived, Some(sha)) => {
                    any_archived = true;
                    plan.push(Planned1 {
                        meeting_record_id: f.meeting_record_id,
                        record_file_id: Some(f.record_file_id),
                        kind: Some(f.kind),
                        path: f.path,
                        expected: Some((u64::try_from(f.size).unwrap_or(0), sha)),
                    });
                }
                (status, _) => not_archived.push(ExportedFile {
                    meeting_record_id: f.meeting_record_id,
                    record_file_id: Some(f.record_file_id),
                    kind: Some(f.kind),
                    path: f.path,
                    size: None,
                    sha256: None,
                    outcome: Outcome::NotArchived,
                    detail: Some(status.as_str().into()),
                }),
            }
        }
        // A folder gets its meeting.json with its first archived file.
        if any_archived && dirs.insert(r.dir.clone()) {
            plan.push(Planned1 {
                meeting_record_id: r.meeting_record_id.clone(),
                record_file_id: None,
                kind: None,
                path: format!("{}/meeting.json", r.dir),
                expected: None,
            });
        }
    }
    Ok((plan, not_archived))
}

/// `SHA256SUMS` of the files in `dir` intact, then `manifest.json`, each written whole.
async fn write_sums_and_manifest(dir: &Path, report: &ExportReport) -> Result<(), ExportError> {
    let sums = sums::render(report.files.iter().filter_map(|f| match f.outcome {
        Outcome::Exported | Outcome::AlreadyExported => {
            f.sha256.as_deref().map(|h| (h, f.path.as_str()))
        }
        _ => None,
    }));
    write_whole(dir, SUMS, sums.as_bytes()).await?;
    let mut json = serde_json::to_vec_pretty(report).expect("plain data serialises");
    json.push(b'\n');
    write_whole(dir, MANIFEST, &json).await
}

/// Creates `dir` (and its parents) if needed; refuses a non-empty one unless resuming.
fn prepare(dir: &Path, resume: bool) -> Result<(), ExportError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if !resume && entries.next().is_some() {
                return Err(ExportError::NotEmpty(dir.to_owned()));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(write_error("create", dir))
        }
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            Err(ExportError::NotADir(dir.to_owned()))
        }
        Err(e) => Err(write_error("read", dir)(e)),
    }
}

/// Copies one file, or says why not. Only writing into `DIR` failing is an error.
async fn copy_one(
    archive: &dyn Archive,
    to: &Path,
    p: &Planned1,
    resume: bool,
    progress: &Progress,
) -> Result<ExportedFile, ExportError> {
    let mut out = ExportedFile {
        meeting_record_id: p.meeting_record_id.clone(),
        record_file_id: p.record_file_id.clone(),
        kind: p.kind,
        path: p.path.clone(),
        size: p.expected.as_ref().map(|e| e.0),
        sha256: p.expected.as_ref().map(|e| e.1.clone()),
        outcome: Outcome::Exported,
        detail: None,
    };
    let copied = match layout::resolve(to, &p.path) {
        Err(UnsafePath(path)) => Copied::Refused(format!("unsafe path {path:?}")),
        Ok(dest) => {
            if resume
                && let Some((size, sha)) = &p.expected
                && intact(&dest, *size, sha).await
            {
                progress.bytes_done(*size);
                out.outcome = Outcome::AlreadyExported;
                return Ok(out);
            }
            copy_checked(archive, p, &dest, progress).await?
        }
    };
    match copied {
        Copied::Intact(size, sha256) => {
            out.size = Some(size);
            out.sha256 = Some(sha256);
        }
        Copied::Refused(why) => {
            out.outcome = Outcome::Refused;
            out.detail = Some(why);
        }
    }
    Ok(out)
}

/// What became of one copy into `DIR`.
enum Copied {
    /// In place, with its size and SHA-256.
    Intact(u64, String),
    /// Not in `DIR` (nothing left of it there), and why.
    Refused(String),
}

/// Copies `p` into `{dest}.part`, checks it against what was recorded at download, and
/// renames it to `dest` only if it agrees.
async fn copy_checked(
    archive: &dyn Archive,
    p: &Planned1,
    dest: &Path,
    progress: &Progress,
) -> Result<Copied, ExportError> {
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(write_error("create", parent))?;
    }
    let mut part = dest.to_owned().into_os_string();
    part.push(PART);
    let part = PathBuf::from(part);
    let (size, sha256) = match copy_hashing(archive, &p.path, &part, progress).await {
        Ok(c) => c,
        Err(Copy::Read(e)) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Ok(Copied::Refused(format!(
                "cannot read the archived copy: {}",
                crate::errors::chain(&e)
            )));
        }
        Err(Copy::Write(e)) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(write_error("write", &part)(e));
        }
    };
    if let Some(why) = p.expected.as_ref().and_then(|e| mismatch(size, &sha256, e)) {
        let _ = tokio::fs::remove_file(&part).await;
        return Ok(Copied::Refused(why));
    }
    tokio::fs::rename(&part, dest)
        .await
        .map_err(write_error("rename into place", dest))?;
    if let Some(parent) = dest.parent() {
        sync_dir(parent).await?;
    }
    Ok(Copied::Intact(size, sha256))
}

/// How a copy of `size` bytes hashing to `sha256` differs from what was recorded at
/// download, if it does.
fn mismatch(
    size: u64,
    sha256: &str,
    (recorded_size, recorded_sha): &(u64, String),
) -> Option<String> {
    if size != *recorded_size {
        Some(format!(
            "the archived copy holds {size} bytes, not {recorded_size} as recorded at download"
        ))
    } else if sha256 != recorded_sha {
        Some(format!(
            "the archived copy's SHA-256 is {sha256}, not {recorded_sha} as recorded at download"
        ))
    } else {
        None
    }
}

enum Copy {
    Read(ArchiveError),
    Write(io::Error),
}

/// Streams `relative` from the archive into `part`, hashing, and fsyncs it; returns its
/// size and SHA-256.
async fn copy_hashing(
    archive: &dyn Archive,
    relative: &str,
    part: &Path,
    progress: &Progress,
) -> Result<(u64, String), Copy> {
    let mut body = archive.read(relative).await.map_err(Copy::Read)?;
    let mut file = tokio::fs::File::create(part).await.map_err(Copy::Write)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.try_next().await.map_err(Copy::Read)? {
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(Copy::Write)?;
        size += chunk.len() as u64;
        progress.bytes_done(chunk.len() as u64);
    }
    file.sync_all().await.map_err(Copy::Write)?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Whether `path` holds `size` bytes hashing to `sha256` (an earlier export's copy).
async fn intact(path: &Path, size: u64, sha256: &str) -> bool {
    match tokio::fs::metadata(path).await {
        Ok(m) if m.is_file() && m.len() == size => {}
        _ => return false,
    }
    let path = path.to_owned();
    let found = tokio::task::spawn_blocking(move || -> io::Result<String> {
        use std::io::Read as _;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0; crate::archive::READ_BUFFER];
        loop {
            match file.read(&mut buf)? {
                0 => return Ok(hex::encode(hasher.finalize())),
                n => hasher.update(&buf[..n]),
            }
        }
    })
    .await;
    matches!(found, Ok(Ok(h)) if h == sha256)
}

/// Writes `DIR/name` whole: a temporary name in `DIR`, fsync, rename.
async fn write_whole(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ExportError> {
    let dest = dir.join(name);
    let tmp = dir.join(format!("{name}{PART}"));
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(write_error("create", &tmp))?;
    file.write_all(bytes)
        .await
        .map_err(write_error("write", &tmp))?;
    file.sync_all().await.map_err(write_error("sync", &tmp))?;
    tokio::fs::rename(&tmp, &dest)
        .await
        .map_err(write_error("rename into place", &dest))?;
    sync_dir(dir).await
}

async fn sync_dir(dir: &Path) -> Result<(), ExportError> {
    let file = tokio::fs::File::open(dir)
        .await
        .map_err(write_error("open", dir))?;
    file.sync_all().await.map_err(write_error("sync", dir))
}
