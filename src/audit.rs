//! The audit trail's copy in the archive, and `audit verify`.
//!
//! The database holds the trail (`state::audit`); the archive carries a copy, so that it
//! holds its own history: segments of JSON lines under [`TRAIL_DIR`], each written whole
//! and atomically through [`Archive::put_small`] (temporary file, fsync, rename on disk; one
//! `PUT` in a bucket) and never rewritten with other content. A segment is claimed in the
//! database before it is written, so two processes never write overlapping ones.
//!
//! `audit verify` recomputes the chain from both copies and names the first record that
//! is missing, altered or out of order. On a local disk this detects, it does not
//! prevent: whoever can write the archive and the database can rewrite both.

use crate::archive::{Archive, ArchiveError, ReadError};
use crate::state::audit::GENESIS;
use crate::state::{AuditRecord, AuditSegment, Db, DbError};
use futures::TryStreamExt;

/// The folder of the program's own files at the archive root: a leading dot, which no
/// `storage.layout` field can produce (fields lose their leading dots), so no recording
/// can land there.
pub const RESERVED_DIR: &str = ".wemeet-archiver";
/// Where the segments of the trail go.
pub const TRAIL_DIR: &str = ".wemeet-archiver/audit";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// The archive could not take the trail's copy: the records stay in the database and
    /// are written by the next run.
    #[error("cannot write the audit trail into the archive")]
    Write(#[source] ArchiveError),
    #[error("cannot read the audit trail in the archive")]
    Read(#[source] ArchiveError),
    /// Over a lost database the archive's trail is read back before anything is appended;
    /// a segment that cannot be read must be looked at by a person first.
    #[error(
        "the archive's audit trail cannot be read back into a new database: {path}: {why}; \
         restore that file from a backup (or, knowingly, move the folder {TRAIL_DIR} aside \
         to start a new trail) and run again"
    )]
    Unreadable { path: String, why: String },
}

/// The path of the segment holding records `first..=last`.
pub fn segment_path(first: i64, last: i64) -> String {
    format!("{TRAIL_DIR}/{first:012}-{last:012}.jsonl")
}

/// Writes into the archive the records it does not hold yet; returns how many segments
/// were written.
pub async fn write_trail(store: &Db, archive: &dyn Archive) -> Result<usize, AuditError> {
    let segments = store.claim_audit_segments(segment_path).await?;
    for segment in &segments {
        let records = store
            .audit_records(segment.first_seq, segment.last_seq)
            .await?;
        let mut text = String::new();
        for record in &records {
            text.push_str(&record.to_line());
            text.push('\n');
        }
        archive
            .put_small(&segment.path, text.into_bytes().into())
            .await
            .map_err(AuditError::Write)?;
        store.mark_audit_segment_written(segment.first_seq).await?;
    }
    Ok(segments.len())
}

/// Over a new database (its trail empty) on an archive that carries a trail: the archive's
/// records, imported before anything is appended, so that the chain goes on where it
/// stopped and no new segment is ever written over an old one. Returns how many records
/// were imported (0 when the database has a trail, or the archive none).
pub async fn restore_trail(store: &Db, archive: &dyn Archive) -> Result<u64, AuditError> {
    if store.last_audit_record().await?.is_some() {
        return Ok(0);
    }
    let listing = archive.list().await.map_err(|e| AuditError::Unreadable {
        path: TRAIL_DIR.into(),
        why: crate::errors::chain(&e),
    })?;
    let mut paths: Vec<String> = listing
        .objects
        .into_iter()
        .map(|o| o.path)
        .filter(|p| p.starts_with(TRAIL_DIR) && p.ends_with(".jsonl"))
        .collect();
    // Zero-padded names: in the order of their first record.
    paths.sort();
    let mut records = Vec::new();
    let mut segments = Vec::new();
    for path in paths {
        let unreadable = |why: String| AuditError::Unreadable {
            path: path.clone(),
            why,
        };
        let bytes = read_all(archive, &path)
            .await
            .map_err(|e| unreadable(crate::errors::chain(&e)))?;
        let text = String::from_utf8(bytes).map_err(|e| unreadable(e.to_string()))?;
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let record: AuditRecord = serde_json::from_str(line)
                .map_err(|e| unreadable(format!("line {}: {e}", n + 1)))?;
            lines.push(record);
        }
        let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
            return Err(unreadable("an empty segment".into()));
        };
        segments.push((first.seq, last.seq, path.clone()));
        records.extend(lines);
    }
    if records.is_empty() {
        return Ok(0);
    }
    let imported = store.import_audit_trail(&records, &segments).await?;
    tracing::warn!(
        records = imported,
        "the database had no audit trail: the archive's was imported, and the chain goes on from it"
    );
    Ok(imported)
}

/// [`write_trail`] for the end of a job: a failure is only logged, since the records wait
/// in the database and the next job writes them.
pub async fn write_trail_or_warn(store: &Db, archive: &dyn Archive) {
    if let Err(e) = write_trail(store, archive).await {
        tracing::warn!(error = %crate::errors::chain(&e), "the audit trail stays in the database until the next run");
    }
}

/// What is wrong with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    Missing,
    Altered,
    OutOfOrder,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Altered => "altered",
            Self::OutOfOrder => "out of order",
        }
    }
}

/// The first record found wrong, and in which copy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub seq: i64,
    pub kind: ProblemKind,
    /// `archive` (with the segment's path) or `database`.
    pub copy: String,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "record {} is {} in the {}: {}",
            self.seq,
            self.kind.as_str(),
            self.copy,
            self.detail
        )
    }
}

/// The outcome of `audit verify`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrailCheck {
    /// Records in the database.
    pub records: i64,
    /// Records read back from the archive's copy.
    pub in_archive: i64,
    pub segments: usize,
    pub problem: Option<Problem>,
}

impl TrailCheck {
    pub fn passed(&self) -> bool {
        self.problem.is_none()
    }
}

/// Recomputes the chain from the database's copy and the archive's, segment by segment,
/// and records the outcome for `status`. Records not in a segment yet (a write that
/// failed) are checked in the database only.
pub async fn verify_trail(store: &Db, archive: &dyn Archive) -> Result<TrailCheck, AuditError> {
    let segments = store.audit_segments().await?;
    let last = store.last_audit_record().await?.map_or(0, |r| r.seq);
    let mut check = TrailCheck {
        records: last,
        in_archive: 0,
        segments: segments.len(),
        problem: None,
    };
    let mut prev = GENESIS.to_owned();
    let mut next = 1;
    let mut ranges: Vec<(i64, i64, Option<&AuditSegment>)> = segments
        .iter()
        .map(|s| (s.first_seq, s.last_seq, Some(s)))
        .collect();
    let covered = segments.last().map_or(0, |s| s.last_seq);
    if last > covered {
        ranges.push((covered + 1, last, None));
    }
    for (first, end, segment) in ranges {
        let db = store.audit_records(first, end).await?;
        let mut problems = Vec::new();
        if first != next {
            problems.push(Problem {
                seq: next,
                kind: ProblemKind::Missing,
                copy: "database".into(),
                detail: format!("the segments jump from record {} to {first}", next - 1),
            });
        }
        problems.extend(check_database(&db, first, end, &prev));
        if let Some(segment) = segment {
            let (problem, read) = check_segment(archive, segment, &db).await?;
            check.in_archive += read;
            problems.extend(problem);
        }
        if let Some(first_problem) = problems.into_iter().min_by_key(|p| p.seq) {
            check.problem = Some(first_problem);
            break;
        }
        prev = db.last().map_or(prev, |r| r.hash.clone());
        next = end + 1;
    }
    store
        .record_audit_check(
            check.passed(),
            check.records,
            check.problem.as_ref().map(ToString::to_string).as_deref(),
        )
        .await?;
    Ok(check)
}

/// The first problem of the database's records `first..=end`, chained after `prev`.
fn check_database(db: &[AuditRecord], first: i64, end: i64, prev: &str) -> Option<Problem> {
    let problem = |seq, kind, detail: &str| Problem {
        seq,
        kind,
        copy: "database".into(),
        detail: detail.into(),
    };
    let mut prev = prev;
    for (expected, record) in (first..=end).zip(db) {
        if record.seq != expected {
            return Some(problem(
                expected,
                ProblemKind::Missing,
                "no row has this sequence",
            ));
        }
        if record.computed_hash() != record.hash {
            return Some(problem(
                expected,
                ProblemKind::Altered,
                "its content does not match its hash",
            ));
        }
        if record.prev != prev {
            return Some(problem(
                expected,
                ProblemKind::Altered,
                "its previous hash is not the hash of the record before it",
            ));
        }
        prev = &record.hash;
    }
    let rows = i64::try_from(db.len()).unwrap_or(i64::MAX);
    (rows < end - first + 1).then(|| {
        problem(
            first + rows,
            ProblemKind::Missing,
            "no row has this sequence",
        )
    })
}

/// What is wrong with one record of a segment: its sequence, the kind and the detail.
type Finding = (i64, ProblemKind, String);

/// The first problem of one segment of the archive's copy, compared line by line with the
/// database's records; and how many lines it held.
async fn check_segment(
    archive: &dyn Archive,
    segment: &AuditSegment,
    db: &[AuditRecord],
) -> Result<(Option<Problem>, i64), AuditError> {
    let problem = |(seq, kind, detail): Finding| Problem {
        seq,
        kind,
        copy: format!("archive ({})", segment.path),
        detail,
    };
    let Some(text) = read_segment(archive, &segment.path).await? else {
        let gone = format!(
            "the segment of records {}..={} is gone",
            segment.first_seq, segment.last_seq
        );
        return Ok((
            Some(problem((segment.first_seq, ProblemKind::Missing, gone))),
            0,
        ));
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let parsed: Vec<Option<AuditRecord>> =
        lines.iter().map(|l| serde_json::from_str(l).ok()).collect();
    let read = i64::try_from(lines.len()).unwrap_or(i64::MAX);
    let found = first_line_problem(&parsed, segment.first_seq, db)
        .or_else(|| length_problem(segment, read));
    Ok((found.map(problem), read))
}

/// A segment's text; `None` when it is gone from the archive.
async fn read_segment(archive: &dyn Archive, path: &str) -> Result<Option<String>, AuditError> {
    match read_all(archive, path).await {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(ReadError::NotFound) => Ok(None),
        Err(ReadError::Refused(e)) => Err(AuditError::Read(e.into())),
        Err(ReadError::Archive(e)) => Err(AuditError::Read(e)),
    }
}

/// The first line of a segment starting at record `first` that is not a record, not
/// intact, not in its place, or not the database's record.
fn first_line_problem(
    parsed: &[Option<AuditRecord>],
    first: i64,
    db: &[AuditRecord],
) -> Option<Finding> {
    for (i, record) in parsed.iter().enumerate() {
        let expected = first + i64::try_from(i).unwrap_or(i64::MAX);
        let Some(record) = record else {
            return Some((
                expected,
                ProblemKind::Altered,
                "its line is not a record".into(),
            ));
        };
        if record.computed_hash() != record.hash {
            return Some((
                expected,
                ProblemKind::Altered,
                "its content does not match its hash".into(),
            ));
        }
        if record.seq != expected {
            let later = parsed[i..].iter().flatten().any(|r| r.seq == expected);
            let (kind, detail) = if later {
                (
                    ProblemKind::OutOfOrder,
                    format!("record {} stands in its place", record.seq),
                )
            } else {
                (
                    ProblemKind::Missing,
                    format!("record {} follows record {}", record.seq, expected - 1),
                )
            };
            return Some((expected, kind, detail));
        }
        if matches!(db.iter().find(|r| r.seq == expected), Some(row) if row != record) {
            return Some((
                expected,
                ProblemKind::Altered,
                "it differs from the database's record".into(),
            ));
        }
    }
    None
}

/// A segment that holds fewer or more lines than the records it was written with.
fn length_problem(segment: &AuditSegment, read: i64) -> Option<Finding> {
    let expected = segment.last_seq - segment.first_seq + 1;
    match read.cmp(&expected) {
        std::cmp::Ordering::Less => Some((
            segment.first_seq + read,
            ProblemKind::Missing,
            "the segment ends before it".into(),
        )),
        std::cmp::Ordering::Greater => Some((
            segment.last_seq + 1,
            ProblemKind::Altered,
            "the segment holds more records than were written to it".into(),
        )),
        std::cmp::Ordering::Equal => None,
    }
}

async fn read_all(archive: &dyn Archive, path: &str) -> Result<Vec<u8>, ReadError> {
    let mut body = archive.read(path).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.try_next().await? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
