//! `search`: the recordings that hold every given selector (creator, subject, dates,
//! meeting code, words said), one result per recording with its files and, for words,
//! the transcript lines that say them. `export` selects with the same [`Query`].

use crate::archive::{Archive, ArchiveError};
use crate::domain::{MeetingRecordId, RecordFileId};
use crate::state::{Db, DbError, FileKind, FileStatus, MeetingRow, Selectors};
use crate::time::UnixMs;
use crate::transcripts::{MatchedLine, matched_lines};
use regex::Regex;
use std::collections::HashSet;
use std::time::Duration;

/// What to find; every selector given must hold.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Query {
    /// The meeting's creator (`userid`), exactly.
    pub user: Option<String>,
    /// A regular expression searched anywhere in the subject.
    #[serde(serialize_with = "as_pattern")]
    pub subject: Option<Regex>,
    /// Inclusive bounds on the meeting's media start.
    pub since: Option<UnixMs>,
    pub until: Option<UnixMs>,
    /// The meeting code, exactly.
    pub code: Option<String>,
    /// Words every one of which the recording's transcripts must say (anywhere, without
    /// regard to case).
    pub text: Vec<String>,
    /// At most this many recordings, the earliest first.
    pub limit: Option<usize>,
}

fn as_pattern<S: serde::Serializer>(re: &Option<Regex>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_some(&re.as_ref().map(Regex::as_str))
}

/// A query that cannot be run as given: the caller's input must change.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Db(#[from] DbError),
    /// A presigned link could not be made (`--urls`).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// One recording found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recording {
    pub meeting_record_id: MeetingRecordId,
    pub meeting_id: String,
    pub meeting_code: String,
    pub userid: String,
    pub subject: String,
    /// ms since the epoch.
    pub media_start_time: UnixMs,
    pub files: Vec<FoundFile>,
    /// With words: the lines of its transcripts that say them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transcript_lines: Vec<TranscriptLines>,
}

/// One file of a found recording.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FoundFile {
    /// A video's id, or an artifact's key (`{video}/audio`, `{video}/transcript/txt`).
    pub record_file_id: RecordFileId,
    pub kind: FileKind,
    pub status: FileStatus,
    /// Bytes archived (announced, while not archived).
    pub size: i64,
    /// Relative to the archive root.
    pub path: String,
    /// The file on disk, or the object's key in the bucket.
    pub location: String,
    pub sha256: Option<String>,
    /// A presigned GET link (with `--urls`, archived files in a bucket only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The lines of one transcript that say a searched word.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TranscriptLines {
    pub record_file_id: RecordFileId,
    pub path: String,
    pub lines: Vec<MatchedLine>,
}

impl Query {
    /// Refuses what can only be a mistake: bounds the wrong way round, a zero limit.
    pub fn check(&self) -> Result<(), SearchError> {
        if let (Some(s), Some(u)) = (self.since, self.until)
            && u < s
        {
            return Err(SearchError::Usage(
                "--until must not be before --since".into(),
            ));
        }
        if self.limit == Some(0) {
            return Err(SearchError::Usage("--limit must be 1 or more".into()));
        }
        Ok(())
    }

    /// Splits `--text` into the words that must all be said.
    pub fn words(text: &str) -> Result<Vec<String>, SearchError> {
        let words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        if words.is_empty() {
            return Err(SearchError::Usage(
                "--text needs at least one word (e.g. --text 预算)".into(),
            ));
        }
        Ok(words)
    }
}

/// The recordings `query` selects (without their files): what `export` copies too.
pub async fn select(store: &Db, query: &Query) -> Result<Vec<MeetingRow>, SearchError> {
    query.check()?;
    let mut said: Option<HashSet<MeetingRecordId>> = None;
    for word in &query.text {
        let found = store.recordings_saying(word).await?;
        said = Some(match said {
            None => found,
            Some(before) => before.intersection(&found).cloned().collect(),
        });
        if said.as_ref().is_some_and(HashSet::is_empty) {
            return Ok(Vec::new());
        }
    }
    let selectors = Selectors {
        userid: query.user.as_deref(),
        meeting_code: query.code.as_deref(),
        since: query.since,
        until: query.until,
    };
    let rows = store.select_recordings(&selectors).await?;
    Ok(rows
        .into_iter()
        .filter(|r| {
            said.as_ref()
                .is_none_or(|s| s.contains(&r.meeting_record_id))
        })
        .filter(|r| {
            query
                .subject
                .as_ref()
                .is_none_or(|re| re.is_match(&r.subject))
        })
        .take(query.limit.unwrap_or(usize::MAX))
        .collect())
}

/// Runs `query`: each recording with its files (and presigned links valid for `urls`,
/// when the archive has them) and the transcript lines that say its words.
pub async fn search(
    store: &Db,
    archive: &dyn Archive,
    query: &Query,
    urls: Option<Duration>,
) -> Result<Vec<Recording>, SearchError> {
    let mut out = Vec::new();
    for r in select(store, query).await? {
        let mut files = Vec::new();
        for f in store.recording_files(&r.meeting_record_id).await? {
            let url = match urls {
                Some(expires) if f.status == FileStatus::Archived => {
                    archive.presign(&f.path, expires).await?
                }
                _ => None,
            };
            files.push(FoundFile {
                location: archive.locate(&f.path),
                record_file_id: f.record_file_id,
                kind: f.kind,
                status: f.status,
                size: f.size,
                path: f.path,
                sha256: f.sha256,
                url,
            });
        }
        let mut transcript_lines = Vec::new();
        if !query.text.is_empty() {
            for t in store.recording_texts(&r.meeting_record_id).await? {
                let lines = matched_lines(&t.body, &query.text);
                if !lines.is_empty() {
                    transcript_lines.push(TranscriptLines {
                        record_file_id: t.record_file_id,
                        path: t.path,
                        lines,
                    });
                }
            }
        }
        out.push(Recording {
            meeting_record_id: r.meeting_record_id,
            meeting_id: r.meeting_id,
            meeting_code: r.meeting_code,
            userid: r.userid,
            subject: r.subject,
            media_start_time: r.media_start_time,
            files,
            transcript_lines,
        });
    }
    Ok(out)
}
