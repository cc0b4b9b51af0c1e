//! The archive's copy of the legal holds: `.wemeet-archiver/holds.json` at the root,
//! every hold in force or released, rewritten whole (temporary file, fsync, rename on disk;
//! one `PUT` in a bucket) after each change, so that an archive whose database was lost
//! still says what must be kept: `reindex` puts them back with [`load_holds`] and
//! `Db::restore_holds`.

use crate::archive::{Archive, ArchiveError};
use crate::state::{Db, DbError, Hold};
use futures::TryStreamExt;

/// Where the holds are kept in the archive.
pub const HOLDS_FILE: &str = ".wemeet-archiver/holds.json";
const SCHEMA: &str = "wemeet-archiver.holds/1";

#[derive(Debug, thiserror::Error)]
pub enum HoldsError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// The hold is recorded in the database; run `hold list` again once the archive can be
    /// written, which rewrites the file.
    #[error("cannot write {HOLDS_FILE} into the archive")]
    Write(#[source] ArchiveError),
    #[error("cannot read {HOLDS_FILE} in the archive")]
    Read(#[source] ArchiveError),
    #[error("{HOLDS_FILE} in the archive is not a list of holds: {0}")]
    Malformed(serde_json::Error),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct HoldsFile {
    schema: String,
    holds: Vec<Hold>,
}

/// Writes every hold of `store` into the archive.
pub async fn write_holds(store: &Db, archive: &dyn Archive) -> Result<(), HoldsError> {
    let file = HoldsFile {
        schema: SCHEMA.into(),
        holds: store.holds().await?,
    };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(HoldsError::Malformed)?;
    bytes.push(b'\n');
    archive
        .put_small(HOLDS_FILE, bytes.into())
        .await
        .map_err(HoldsError::Write)
}

/// The holds the archive records (none if it has no holds file): the loader `reindex`
/// calls to restore them.
pub async fn load_holds(archive: &dyn Archive) -> Result<Vec<Hold>, HoldsError> {
    let mut body = match archive.read(HOLDS_FILE).await {
        Ok(body) => body,
        Err(ArchiveError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(HoldsError::Read(e)),
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = body.try_next().await.map_err(HoldsError::Read)? {
        bytes.extend_from_slice(&chunk);
    }
    let file: HoldsFile = serde_json::from_slice(&bytes).map_err(HoldsError::Malformed)?;
    Ok(file.holds)
}
