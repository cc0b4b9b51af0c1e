//! How `verify` reads the archive: the only door to a storage backend it uses.
//!
//! Verification needs three things from wherever the recordings live: the size and SHA-256
//! of one object (streamed, never buffered whole), the list of every object (to find what
//! the database does not know), and an atomic write of one small object (`SHA256SUMS`).
//! Keeping them behind [`ArchiveBackend`] means an S3 backend is one more `impl` (a ranged
//! GET stream, `ListObjectsV2`, a `PutObject`) and the classification, reports and exit
//! codes stay as they are.

use crate::storage::{LocalStorage, StorageError};
use sha2::{Digest as _, Sha256};
use std::future::Future;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Bytes read per call while hashing: large enough that syscalls do not dominate, small
/// enough that `--jobs` readers never hold much memory.
pub const READ_BUFFER: usize = 1 << 20;

/// What an archived object holds, as re-read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub size: u64,
    /// Lower-case hex, as the download recorded it.
    pub sha256: String,
}

/// Why an object could not be read: `NotFound` is a finding (`missing`), the rest say why
/// the file is `unreadable`.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Refused(#[from] crate::storage::UnsafePath),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl ReadError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// One object found under the archive root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Relative to the root, `/`-separated like the database's paths (lossy if the name
    /// is not UTF-8: such a name can never match a database path anyway).
    pub path: String,
    pub size: u64,
}

/// Everything under the root, and the folders that could not be read (each one is a
/// finding: what they hold cannot be vouched for).
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<ListedObject>,
    pub unreadable: Vec<(String, String)>,
}

/// A place recordings are archived in, seen from `verify`.
pub trait ArchiveBackend: Send + Sync {
    /// Streams the object at `relative` (a database path) and hashes it.
    fn digest(&self, relative: &str) -> impl Future<Output = Result<Digest, ReadError>> + Send;

    /// Every object under the root, sorted by path. An archive root that does not exist
    /// yet is empty, not an error: nothing was archived there.
    fn list(&self) -> impl Future<Output = Result<Listing, ReadError>> + Send;

    /// Writes a small object atomically: readers see the old content or the new, whole.
    fn put_small(
        &self,
        relative: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Where the archive is, for reports.
    fn describe(&self) -> String;
}

impl ArchiveBackend for LocalStorage {
    async fn digest(&self, relative: &str) -> Result<Digest, ReadError> {
        let path = layout_path(self, relative)?;
        // sha2 is CPU-bound and std reads block: both belong on the blocking pool, and the
        // caller bounds how many run at once (`--jobs`).
        tokio::task::spawn_blocking(move || hash_file(&path))
            .await
            .map_err(|e| ReadError::io("cannot hash", Path::new(relative), io::Error::other(e)))?
    }

    async fn list(&self) -> Result<Listing, ReadError> {
        let root = self.root().to_owned();
        tokio::task::spawn_blocking(move || walk(&root))
            .await
            .map_err(|e| ReadError::io("cannot list", Path::new(""), io::Error::other(e)))?
    }

    async fn put_small(&self, relative: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.write_small(relative, &bytes).await
    }

    fn describe(&self) -> String {
        self.root().display().to_string()
    }
}

/// A bucket: objects are streamed with GET and hashed as they arrive; the listing is the
/// bucket's (under the prefix). Uploads in progress are not objects, so S3 never has a
/// `partial` finding.
impl ArchiveBackend for crate::storage::s3::S3Storage {
    async fn digest(&self, relative: &str) -> Result<Digest, ReadError> {
        use futures::TryStreamExt;
        let unreadable = |e: StorageError| match e {
            StorageError::NotFound(_) => ReadError::NotFound,
            StorageError::UnsafePath(p) => ReadError::Refused(p),
            other => ReadError::io(
                "cannot read",
                Path::new(relative),
                io::Error::other(other.to_string()),
            ),
        };
        let key = self.key_of(relative).map_err(unreadable)?;
        let mut body = self.read(&key).await.map_err(unreadable)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(unreadable)? {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Digest {
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    async fn list(&self) -> Result<Listing, ReadError> {
        let objects = crate::storage::s3::S3Storage::list(self)
            .await
            .map_err(|e| {
                ReadError::io(
                    "cannot list",
                    Path::new(""),
                    io::Error::other(e.to_string()),
                )
            })?;
        Ok(Listing {
            objects: objects
                .into_iter()
                .map(|(path, size)| ListedObject { path, size })
                .collect(),
            unreadable: Vec::new(),
        })
    }

    async fn put_small(&self, relative: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let key = self.key_of(relative)?;
        self.put(&key, bytes.into(), None).await
    }

    fn describe(&self) -> String {
        crate::storage::s3::S3Storage::describe(self)
    }
}

/// Resolves through the storage layout so that a tampered database row cannot make
/// `verify` read (and report on) a file outside the archive root.
fn layout_path(storage: &LocalStorage, relative: &str) -> Result<PathBuf, ReadError> {
    match storage.path_of(relative) {
        Ok(p) => Ok(p),
        Err(StorageError::UnsafePath(e)) => Err(ReadError::Refused(e)),
        Err(other) => Err(ReadError::io(
            "cannot resolve",
            Path::new(relative),
            io::Error::other(other.to_string()),
        )),
    }
}

/// Size and SHA-256 of a local file, read in [`READ_BUFFER`] chunks.
pub fn hash_file(path: &Path) -> Result<Digest, ReadError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ReadError::NotFound),
        Err(e) => return Err(ReadError::io("cannot open", path, e)),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut size = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::io("cannot read", path, e)),
        }
    }
    Ok(Digest {
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Walks `root` without following symbolic links (a link to `/` must not make `verify`
/// walk the whole machine); links are listed as objects, so an unknown one is `extra`.
fn walk(root: &Path) -> Result<Listing, ReadError> {
    let mut listing = Listing::default();
    let mut stack = vec![(root.to_owned(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if rel.is_empty() && e.kind() == io::ErrorKind::NotFound => return Ok(listing),
            Err(e) if rel.is_empty() => return Err(ReadError::io("cannot list", &dir, e)),
            Err(e) => {
                listing
                    .unreadable
                    .push((rel, format!("cannot list folder: {e}")));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    listing
                        .unreadable
                        .push((rel.clone(), format!("cannot list folder: {e}")));
                    break;
                }
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push((entry.path(), child)),
                Ok(m) => listing.objects.push(ListedObject {
                    path: child,
                    size: m.len(),
                }),
                Err(e) => listing
                    .unreadable
                    .push((child, format!("cannot stat: {e}"))),
            }
        }
    }
    listing.objects.sort_by(|a, b| a.path.cmp(&b.path));
    listing.unreadable.sort();
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_backend_hashes_lists_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        let storage = LocalStorage::new(&root);
        assert!(
            storage.list().await.unwrap().objects.is_empty(),
            "a missing root is empty"
        );

        std::fs::create_dir_all(root.join("2024/01/02/x")).unwrap();
        std::fs::write(root.join("2024/01/02/x/a.mp4"), b"abc").unwrap();
        std::fs::write(root.join("top"), b"").unwrap();
        std::fs::write(dir.path().join("outside"), b"secret").unwrap();
        let d = storage.digest("2024/01/02/x/a.mp4").await.unwrap();
        assert_eq!(d.size, 3);
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(
            storage.digest("2024/nope.mp4").await,
            Err(ReadError::NotFound)
        ));
        assert!(matches!(
            storage.digest("../outside").await,
            Err(ReadError::Refused(_))
        ));
        assert!(matches!(
            storage.digest("2024/01").await,
            Err(ReadError::Io { .. })
        ));

        std::os::unix::fs::symlink(dir.path(), root.join("loop")).unwrap();
        let listing = storage.list().await.unwrap();
        let paths: Vec<&str> = listing.objects.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(paths, ["2024/01/02/x/a.mp4", "loop", "top"]);
        assert!(listing.unreadable.is_empty());
    }
}
