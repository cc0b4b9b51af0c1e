//! The archive's marker: a small file at its root saying which account (AppId) and which
//! `storage.layout` it holds, so that the archive describes itself without the database
//! (`reindex` takes the layout from it) and two accounts never mix in one archive (a
//! configuration of another AppId pointed at it is refused).

use super::{Archive, ArchiveError, ReadError};
use futures::TryStreamExt;

/// The marker's name at the archive root (under the prefix in a bucket).
pub const MARKER: &str = "wemeet-archive.json";

const SCHEMA: &str = "wemeet-archiver.archive/1";

/// What the marker records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    pub schema: String,
    /// The account whose recordings the archive holds (`api.app_id`).
    pub app_id: String,
    /// The `storage.layout` template its paths are rendered with.
    pub layout: String,
}

impl Marker {
    pub fn new(app_id: &str, layout: &str) -> Self {
        Self {
            schema: SCHEMA.into(),
            app_id: app_id.into(),
            layout: layout.into(),
        }
    }
}

/// Why the marker could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error("cannot read {MARKER} in {archive}")]
    Read {
        archive: String,
        #[source]
        source: ReadError,
    },
    #[error(
        "{MARKER} in {archive} is not an archive marker; restore it from a backup or \
         remove it (the next run writes it again)"
    )]
    Corrupt {
        archive: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The archive's marker; `None` for an archive that has none yet.
pub async fn read(archive: &dyn Archive) -> Result<Option<Marker>, MarkerError> {
    let read_err = |source| MarkerError::Read {
        archive: archive.describe(),
        source,
    };
    let mut body = match archive.read(MARKER).await.map_err(ReadError::from) {
        Ok(body) => body,
        Err(ReadError::NotFound) => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| read_err(ReadError::from(e)))?
    {
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| MarkerError::Corrupt {
            archive: archive.describe(),
            source,
        })
}

/// Writes the marker, atomically.
pub async fn write(archive: &dyn Archive, marker: &Marker) -> Result<(), ArchiveError> {
    let json = serde_json::to_vec_pretty(marker).expect("plain data serialises");
    archive.put_small(MARKER, json.into()).await
}
