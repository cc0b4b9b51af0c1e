//! What was said: the text of archived `txt` transcripts in the full-text index
//! (`state::transcripts`), put there as each transcript is archived and by
//! [`fill_index`] from the archive itself, and the lines of a text that hold a search's
//! words.
//!
//! Only `txt` transcripts are indexed. The `docx` and `pdf` ones hold the same words (the
//! API renders one transcript three ways), and extracting them would take a zip and XML
//! reader or a PDF parser for nothing the `txt` does not already say.

use crate::archive::{Archive, ArchiveError};
use crate::domain::RecordFileId;
use crate::state::{Db, DbError, FileKind, FileRow};
use futures::TryStreamExt;
use sha2::{Digest, Sha256};

/// A transcript larger than this is not indexed (the API's are a few hundred KiB at
/// most): reading it whole into memory is then not worth it.
pub const MAX_TEXT_BYTES: u64 = 64 * 1024 * 1024;

/// Why a transcript could not be indexed; the file itself stays archived.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot read {path} back from the archive")]
    Read {
        path: String,
        #[source]
        source: ArchiveError,
    },
    #[error("{path} is larger than {MAX_TEXT_BYTES} bytes: not indexed")]
    TooLarge { path: String },
    #[error(
        "{path} no longer holds the bytes archived (SHA-256 {found}, not {recorded}): run verify"
    )]
    Changed {
        path: String,
        found: String,
        recorded: String,
    },
}

/// Whether the index holds text of this file's kind: `txt` transcripts.
pub fn is_indexed(kind: FileKind, path: &str) -> bool {
    kind == FileKind::Transcript && path.ends_with(".txt")
}

/// Indexes the transcript just archived at `path` with `sha256` (re-read from the archive:
/// a few KiB, from the page cache on disk), replacing the text of an earlier copy. Not on
/// the transfer's path: its caller runs it after the file is archived.
pub async fn index_archived(
    store: &Db,
    archive: &dyn Archive,
    file: &FileRow,
    sha256: &str,
) -> Result<(), IndexError> {
    if !is_indexed(file.kind, &file.path) {
        return Ok(());
    }
    index_one(store, archive, &file.record_file_id, &file.path, sha256).await
}

async fn index_one(
    store: &Db,
    archive: &dyn Archive,
    record_file_id: &RecordFileId,
    path: &str,
    sha256: &str,
) -> Result<(), IndexError> {
    let read = |source| IndexError::Read {
        path: path.to_owned(),
        source,
    };
    let mut body = archive.read(path).await.map_err(read)?;
    let mut bytes = Vec::new();
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.try_next().await.map_err(read)? {
        if (bytes.len() + chunk.len()) as u64 > MAX_TEXT_BYTES {
            return Err(IndexError::TooLarge {
                path: path.to_owned(),
            });
        }
        hasher.update(&chunk);
        bytes.extend_from_slice(&chunk);
    }
    let found = hex::encode(hasher.finalize());
    if found != sha256 {
        return Err(IndexError::Changed {
            path: path.to_owned(),
            found,
            recorded: sha256.to_owned(),
        });
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    store.index_transcript(record_file_id, sha256, text).await?;
    Ok(())
}

/// What [`fill_index`] did.
#[derive(Debug, Default)]
pub struct FillReport {
    /// Transcripts read and indexed.
    pub indexed: u64,
    /// Rows dropped: their file is no longer archived with the bytes they were read from.
    pub dropped: u64,
    /// Transcripts that could not be indexed, with why (their files stay archived).
    pub failed: Vec<(String, IndexError)>,
}

/// Brings the index in step with the archive: drops the text of transcripts no longer
/// archived as they were, and reads and indexes every archived `txt` transcript it lacks.
/// Idempotent and cheap when nothing changed; what `reindex` runs after rebuilding the
/// database from the archive, and what an archive made before the index existed needs
/// once.
pub async fn fill_index(store: &Db, archive: &dyn Archive) -> Result<FillReport, DbError> {
    let mut report = FillReport {
        dropped: store.drop_stale_transcripts().await?,
        ..FillReport::default()
    };
    for t in store.unindexed_transcripts().await? {
        match index_one(store, archive, &t.record_file_id, &t.path, &t.sha256).await {
            Ok(()) => report.indexed += 1,
            Err(IndexError::Db(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(path = %t.path, error = %crate::errors::chain(&e), "transcript not indexed");
                report.failed.push((t.path, e));
            }
        }
    }
    Ok(report)
}

/// One line of a transcript that holds a searched word.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MatchedLine {
    /// 1 for the first line.
    pub line_no: usize,
    pub line: String,
    /// Byte ranges `[start, end)` of the line's UTF-8 that match a word, in order.
    pub offsets: Vec<(usize, usize)>,
}

/// The lines of `text` that hold any of `terms` (without regard to case), with where.
pub fn matched_lines(text: &str, terms: &[String]) -> Vec<MatchedLine> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let mut offsets: Vec<(usize, usize)> =
                terms.iter().flat_map(|t| find_all(line, t)).collect();
            if offsets.is_empty() {
                return None;
            }
            offsets.sort_unstable();
            offsets.dedup();
            Some(MatchedLine {
                line_no: i + 1,
                line: line.to_owned(),
                offsets,
            })
        })
        .collect()
}

/// Byte ranges of `line` where `term` is, character by character without regard to case
/// (as the index's trigram tokenizer folds them).
fn find_all(line: &str, term: &str) -> Vec<(usize, usize)> {
    let fold = |c: char| c.to_lowercase().next().unwrap_or(c);
    let term: Vec<char> = term.chars().map(fold).collect();
    if term.is_empty() {
        return Vec::new();
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + term.len() <= chars.len() {
        if chars[i..i + term.len()]
            .iter()
            .zip(&term)
            .all(|((_, c), t)| fold(*c) == *t)
        {
            let end = chars.get(i + term.len()).map_or(line.len(), |(at, _)| *at);
            out.push((chars[i].0, end));
            i += term.len();
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matched_lines_give_byte_offsets_of_every_word_without_regard_to_case() {
        let text =
            "[00:00:03] 张三: 预算超了\n[00:00:09] Bob: the SUPPLIER and the supplier\nnothing\n";
        let terms = vec!["预算".to_string(), "Supplier".to_string()];
        let lines = matched_lines(text, &terms);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line_no, 1);
        let (s, e) = lines[0].offsets[0];
        assert_eq!(&lines[0].line[s..e], "预算");
        let found: Vec<&str> = lines[1]
            .offsets
            .iter()
            .map(|(s, e)| &lines[1].line[*s..*e])
            .collect();
        assert_eq!(found, ["SUPPLIER", "supplier"]);
    }

    #[test]
    fn only_txt_transcripts_are_indexed() {
        assert!(is_indexed(FileKind::Transcript, "a/1.transcript.txt"));
        assert!(is_indexed(FileKind::Transcript, "a/1.transcript.2.txt"));
        assert!(!is_indexed(FileKind::Transcript, "a/1.transcript.docx"));
        assert!(!is_indexed(FileKind::Video, "a/1.txt"));
    }
}
