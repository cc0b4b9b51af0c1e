//! Turning what the database recorded and what the archive holds into report rows.
//!
//! Pure functions over plain data, so that every verdict can be tested without a disk.

use crate::archive::{Digest, ListedObject, PART_SUFFIX, ReadError};
use crate::domain::{MeetingState, RecordFileId};
use crate::state::verify::VerifyRow;
use crate::state::{FileKind, FileStatus};
use std::collections::{HashMap, HashSet};

/// The verdict on one file. The serialised names are part of the report schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Archived, and its size and SHA-256 are those recorded at download time.
    Ok,
    /// Archived, but no file is at its path.
    Missing,
    SizeMismatch,
    /// Same size, different content: bit rot, or an edit.
    HashMismatch,
    /// Archived, but reading it failed (permissions, I/O error, a folder in its place).
    Unreadable,
    /// On disk, but no database row claims it.
    Extra,
    /// A `.part` file that no transfer will resume.
    Partial,
    /// Listed, not downloaded yet (queued or transferring): expected, not a problem.
    Pending,
    /// Given up on (`failed`, or `unavailable`: `/v1/addresses` gives no address for it).
    Failed,
    /// Left out by `[filter]` on purpose (the detail names the rule): not a problem.
    Skipped,
}

impl Status {
    pub const ALL: [Self; 10] = [
        Self::Ok,
        Self::Missing,
        Self::SizeMismatch,
        Self::HashMismatch,
        Self::Unreadable,
        Self::Extra,
        Self::Partial,
        Self::Pending,
        Self::Failed,
        Self::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "missing",
            Self::SizeMismatch => "size_mismatch",
            Self::HashMismatch => "hash_mismatch",
            Self::Unreadable => "unreadable",
            Self::Extra => "extra",
            Self::Partial => "partial",
            Self::Pending => "pending",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// Whether this verdict means the archive is not complete and intact (exit 1).
    /// Pending files are work in progress that the daemon finishes by itself; a failed
    /// file will never be archived without the admin, so it counts; a skipped one is what
    /// the admin asked for.
    pub fn is_problem(self) -> bool {
        !matches!(self, Self::Ok | Self::Pending | Self::Skipped)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the report (the schema of `--format json|csv`; `None` is JSON `null` and
/// an empty CSV field).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportRow {
    pub record_file_id: Option<RecordFileId>,
    pub meeting_code: Option<String>,
    pub subject: Option<String>,
    /// Relative to the archive root, `/`-separated.
    pub path: String,
    pub expected_size: Option<u64>,
    pub actual_size: Option<u64>,
    pub expected_sha256: Option<String>,
    pub actual_sha256: Option<String>,
    pub status: Status,
    pub detail: Option<String>,
    /// `video`, `audio` or `transcript` (empty for what no database row claims).
    pub kind: Option<FileKind>,
}

impl ReportRow {
    /// The columns of the CSV report: the fields, in order, as serde names them. Read
    /// from the header a CSV writer puts above a row, so that they cannot drift from the
    /// rows (an empty report still needs them).
    pub fn columns() -> Vec<String> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer
            .serialize(Self::found("", None, Status::Extra, String::new()))
            .expect("writing to memory cannot fail");
        let bytes = writer.into_inner().expect("writing to memory cannot fail");
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let header = reader.headers().expect("the header was just written");
        header.iter().map(String::from).collect()
    }

    /// A row for a database file, with what the database expects of it.
    fn of(row: &VerifyRow, status: Status) -> Self {
        let archived = row.status == FileStatus::Archived;
        Self {
            record_file_id: Some(row.record_file_id.clone()),
            meeting_code: Some(row.meeting_code.clone()),
            subject: Some(row.subject.clone()),
            path: row.path.clone(),
            expected_size: Some(if archived {
                row.archived_size.unwrap_or(row.record_size)
            } else {
                row.record_size
            }),
            actual_size: None,
            expected_sha256: if archived { row.sha256.clone() } else { None },
            actual_sha256: None,
            status,
            detail: None,
            kind: Some(row.kind),
        }
    }

    /// A row for something on disk that no database file accounts for.
    fn found(path: &str, size: Option<u64>, status: Status, detail: String) -> Self {
        Self {
            record_file_id: None,
            meeting_code: None,
            subject: None,
            path: path.to_string(),
            expected_size: None,
            actual_size: size,
            expected_sha256: None,
            actual_sha256: None,
            status,
            detail: Some(detail),
            kind: None,
        }
    }
}

/// The verdict on an archived file from what re-reading it gave.
pub fn classify_archived(row: &VerifyRow, read: Result<Digest, ReadError>) -> ReportRow {
    let mut out = ReportRow::of(row, Status::Ok);
    match read {
        Err(ReadError::NotFound) => {
            out.status = Status::Missing;
            out.detail = Some("no file at this path".into());
        }
        Err(e) => {
            out.status = Status::Unreadable;
            out.detail = Some(crate::errors::chain(&e));
        }
        Ok(digest) => {
            out.actual_size = Some(digest.size);
            out.actual_sha256 = Some(digest.sha256);
            let actual_sha = out.actual_sha256.as_deref();
            if out.expected_size != Some(digest.size) {
                out.status = Status::SizeMismatch;
                out.detail = Some(format!(
                    "{} bytes recorded at download, {} bytes now",
                    out.expected_size
                        .map_or_else(|| "?".into(), |s| s.to_string()),
                    digest.size
                ));
            } else if out.expected_sha256.is_none() {
                out.status = Status::HashMismatch;
                out.detail = Some("no SHA-256 was recorded at download time".into());
            } else if out.expected_sha256.as_deref() != actual_sha {
                out.status = Status::HashMismatch;
                out.detail = Some("content differs from the SHA-256 recorded at download".into());
            }
        }
    }
    out
}

/// What the archive folder holds for a file that is not archived (yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnDisk {
    /// Length of its `.part` file.
    pub part: Option<u64>,
    /// Length of a file with its final name.
    pub complete: Option<u64>,
}

/// A meeting's state in a file's detail: `in state N` for a number not known here.
fn state_name(state: MeetingState) -> String {
    match state {
        MeetingState::Other(code) => format!("in state {code}"),
        known => known.to_string(),
    }
}

/// The verdict on a file that is not archived: `pending` if the daemon will get to it,
/// `skipped` if `[filter]` leaves it out, `failed` if only the admin can; the details say
/// where it stands and why.
pub fn classify_unarchived(row: &VerifyRow, disk: OnDisk) -> ReportRow {
    let verdict = match row.status {
        FileStatus::Skipped => Status::Skipped,
        s if s.is_pending() => Status::Pending,
        _ => Status::Failed,
    };
    let mut out = ReportRow::of(row, verdict);
    let mut detail = vec![match row.status {
        FileStatus::Queued | FileStatus::Transferring => format!(
            "{} (meeting {})",
            row.status.as_str(),
            state_name(row.meeting_state)
        ),
        FileStatus::Unavailable => "unavailable: the API gives no download address for it, or \
                                    refused it; `backfill --retry-failed` asks again"
            .into(),
        FileStatus::Failed => format!(
            "failed after {} attempt(s); `backfill --retry-failed` tries again",
            row.attempts
        ),
        FileStatus::Archived => "archived".into(),
        FileStatus::Skipped => format!(
            "skipped by {}",
            row.skip_rule.as_deref().unwrap_or("[filter]")
        ),
    }];
    if let Some(len) = disk.part {
        detail.push(format!(
            "{len} of {} bytes in {PART_SUFFIX} file",
            row.record_size
        ));
    }
    if let Some(len) = disk.complete {
        out.actual_size = Some(len);
        detail.push(format!(
            "a {len}-byte file has its final name but is not recorded as archived"
        ));
    }
    if let Some(e) = &row.last_error {
        detail.push(format!("last error: {e}"));
    }
    out.detail = Some(detail.join("; "));
    out
}

/// Files that belong in the archive root without being recordings.
#[derive(Debug, Default, Clone)]
pub struct Ignored {
    /// Relative paths (the database and its companions, when they live under the root).
    pub paths: HashSet<String>,
}

/// The name of the per-meeting metadata file the downloader writes beside recordings.
pub const MEETING_JSON: &str = "meeting.json";
/// The checksum list `--manifest` writes at the root (the archive's marker,
/// `archive::marker::MARKER`, is at the root too).
pub const SUMS_FILE: &str = "SHA256SUMS";

impl Ignored {
    fn contains(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        name == MEETING_JSON
            || path == SUMS_FILE
            || path == crate::archive::marker::MARKER
            || path
                .strip_prefix(crate::audit::RESERVED_DIR)
                .is_some_and(|rest| rest.starts_with('/'))
            || self.paths.contains(path)
    }
}

/// What the listing says about files of the database, and what it found beyond them.
#[derive(Debug, Default)]
pub struct DiskFindings {
    /// `extra` and `partial` rows.
    pub findings: Vec<ReportRow>,
    /// What is on disk for each database path (keyed by the file's path).
    pub on_disk: HashMap<String, OnDisk>,
}

/// Sorts every listed object into "a database file", "a resumable `.part`", "ignored",
/// or a finding. `known` maps every database path (not only those being verified) to its
/// status, so a file of a meeting outside `--since/--until` is never called extra.
pub fn classify_listing(
    objects: &[ListedObject],
    known: &HashMap<String, FileStatus>,
    ignored: &Ignored,
) -> DiskFindings {
    let mut out = DiskFindings::default();
    for obj in objects {
        if ignored.contains(&obj.path) {
            continue;
        }
        if known.contains_key(&obj.path) {
            out.on_disk.entry(obj.path.clone()).or_default().complete = Some(obj.size);
            continue;
        }
        let Some(owner) = obj.path.strip_suffix(PART_SUFFIX) else {
            out.findings.push(ReportRow::found(
                &obj.path,
                Some(obj.size),
                Status::Extra,
                "no database row claims this file".into(),
            ));
            continue;
        };
        match known.get(owner) {
            // A transfer resumes from it (queued/transferring), or would after
            // `--retry-failed`: it is a detail of that file's row, not a finding.
            Some(status) if *status != FileStatus::Archived => {
                out.on_disk.entry(owner.to_string()).or_default().part = Some(obj.size);
            }
            Some(status) => out.findings.push(ReportRow::found(
                &obj.path,
                Some(obj.size),
                Status::Partial,
                format!(
                    "leftover partial download: its file is already {}",
                    status.as_str()
                ),
            )),
            None => out.findings.push(ReportRow::found(
                &obj.path,
                Some(obj.size),
                Status::Partial,
                "partial download that no database row claims".into(),
            )),
        }
    }
    out
}

/// A folder or entry the listing could not read: what it holds is unknown.
pub fn unreadable_entry(path: &str, error: &str) -> ReportRow {
    ReportRow::found(path, None, Status::Unreadable, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn status(name: &str) -> FileStatus {
        FileStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .unwrap()
    }

    fn row(name: &str) -> VerifyRow {
        let status = status(name);
        VerifyRow {
            record_file_id: "f1".into(),
            kind: FileKind::Video,
            meeting_code: "123".into(),
            subject: "Weekly".into(),
            meeting_state: 3.into(),
            media_start_time: crate::time::UnixMs(0),
            path: "2024/01/02/123-Weekly/f1.mp4".into(),
            status,
            record_size: 3,
            archived_size: (status == FileStatus::Archived).then_some(3),
            sha256: (status == FileStatus::Archived).then(|| SHA.into()),
            bytes_done: 0,
            attempts: 2,
            last_error: None,
            verified_at: None,
            skip_rule: (status == FileStatus::Skipped)
                .then(|| "filter.min_size: 3 B < 1 MB".into()),
        }
    }

    fn digest(size: u64, sha: &str) -> Result<Digest, ReadError> {
        Ok(Digest {
            size,
            sha256: sha.into(),
        })
    }

    #[test]
    fn archived_files_are_ok_only_when_size_and_hash_match() {
        let r = row("archived");
        let ok = classify_archived(&r, digest(3, SHA));
        assert_eq!(ok.status, Status::Ok);
        assert_eq!((ok.expected_size, ok.actual_size), (Some(3), Some(3)));
        assert_eq!(ok.actual_sha256.as_deref(), Some(SHA));
        assert_eq!(ok.detail, None);

        let other = "0".repeat(64);
        assert_eq!(
            classify_archived(&r, digest(3, &other)).status,
            Status::HashMismatch
        );
        // A size difference is the more telling verdict, even though the hash differs too.
        let short = classify_archived(&r, digest(2, &other));
        assert_eq!(short.status, Status::SizeMismatch);
        assert_eq!(short.actual_size, Some(2));
        assert_eq!(
            classify_archived(&r, Err(ReadError::NotFound)).status,
            Status::Missing
        );
        let io = ReadError::Archive(crate::archive::ArchiveError::Io {
            action: "cannot read",
            path: PathBuf::from("/a/f1.mp4"),
            source: std::io::Error::other("Input/output error"),
        });
        let bad = classify_archived(&r, Err(io));
        assert_eq!(bad.status, Status::Unreadable);
        assert!(bad.detail.unwrap().contains("Input/output error"));

        let mut no_hash = row("archived");
        no_hash.sha256 = None;
        assert_eq!(
            classify_archived(&no_hash, digest(3, SHA)).status,
            Status::HashMismatch
        );
        // The size recorded at download wins over the listed size.
        let mut resized = row("archived");
        resized.record_size = 99;
        assert_eq!(
            classify_archived(&resized, digest(3, SHA)).status,
            Status::Ok
        );
    }

    #[test]
    fn files_not_archived_are_pending_or_failed_with_their_story() {
        let mut queued = row("queued");
        queued.last_error = Some("connection reset".into());
        let p = classify_unarchived(
            &queued,
            OnDisk {
                part: Some(1),
                complete: None,
            },
        );
        assert_eq!(p.status, Status::Pending);
        assert!(!p.status.is_problem());
        let detail = p.detail.unwrap();
        assert!(detail.contains("queued (meeting transcoded)"), "{detail}");
        assert!(detail.contains("1 of 3 bytes in .part"), "{detail}");
        assert!(detail.contains("connection reset"), "{detail}");
        assert_eq!(p.expected_sha256, None);

        let f = classify_unarchived(&row("failed"), OnDisk::default());
        assert_eq!(f.status, Status::Failed);
        assert!(f.status.is_problem());
        assert!(f.detail.unwrap().contains("2 attempt(s)"));
        let u = classify_unarchived(&row("unavailable"), OnDisk::default());
        assert_eq!(u.status, Status::Failed);
        assert!(u.detail.unwrap().contains("no download address"));
    }

    #[test]
    fn the_listing_finds_extra_and_leftover_partial_files() {
        let known: HashMap<String, FileStatus> = [
            ("d/a.mp4", "archived"),
            ("d/q.mp4", "queued"),
            ("d/t.mp4", "transferring"),
            ("d/f.mp4", "failed"),
        ]
        .into_iter()
        .map(|(p, s)| (p.to_string(), status(s)))
        .collect();
        let ignored = Ignored {
            paths: ["state.db", "state.db-wal"]
                .into_iter()
                .map(String::from)
                .collect(),
        };
        let objects: Vec<ListedObject> = [
            "SHA256SUMS",
            "SHA256SUMS.tmp",
            "d/a.mp4",
            "d/a.mp4.part",
            "d/meeting.json",
            "d/meeting.json.tmp",
            "d/q.mp4.part",
            "d/t.mp4.part",
            "d/f.mp4.part",
            "d/zz.mp4.part",
            "d/stray.txt",
            "state.db",
            "state.db-wal",
            "sub/state.db",
        ]
        .into_iter()
        .map(|p| ListedObject {
            path: p.into(),
            size: 7,
        })
        .collect();
        let out = classify_listing(&objects, &known, &ignored);
        let found: Vec<(&str, Status)> = out
            .findings
            .iter()
            .map(|r| (r.path.as_str(), r.status))
            .collect();
        assert_eq!(
            found,
            [
                ("SHA256SUMS.tmp", Status::Extra),
                ("d/a.mp4.part", Status::Partial),
                ("d/meeting.json.tmp", Status::Extra),
                ("d/zz.mp4.part", Status::Partial),
                ("d/stray.txt", Status::Extra),
                ("sub/state.db", Status::Extra),
            ]
        );
        assert_eq!(out.on_disk["d/a.mp4"].complete, Some(7));
        for p in ["d/q.mp4", "d/t.mp4", "d/f.mp4"] {
            assert_eq!(out.on_disk[p].part, Some(7), "{p}");
        }
    }

    #[test]
    fn a_skipped_file_names_its_rule_and_is_no_problem() {
        let s = classify_unarchived(&row("skipped"), OnDisk::default());
        assert_eq!(s.status, Status::Skipped);
        assert!(!s.status.is_problem());
        assert_eq!(
            s.detail.as_deref(),
            Some("skipped by filter.min_size: 3 B < 1 MB")
        );
    }

    #[test]
    fn status_names_are_the_documented_ones() {
        let names: Vec<String> = Status::ALL
            .iter()
            .map(|s| {
                serde_json::to_value(s)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "ok",
                "missing",
                "size_mismatch",
                "hash_mismatch",
                "unreadable",
                "extra",
                "partial",
                "pending",
                "failed",
                "skipped"
            ]
        );
        for s in Status::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
