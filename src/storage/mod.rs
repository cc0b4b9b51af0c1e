//! The archive on local disk: durable writes under temporary names, then atomic renames.
//!
//! A recording is first written to `NAME.mp4.part` beside its destination (same file
//! system, so the final `rename` is atomic), fsynced, renamed, and the directory fsynced:
//! after a crash a file either has its final name with all its bytes, or is still a
//! `.part` that the next run resumes.

pub mod layout;

use std::io;
use std::path::{Path, PathBuf};
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;

pub use layout::UnsafePath;

/// Suffix of files being written; users recognise it from browsers and aria2.
pub const PART_SUFFIX: &str = ".part";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    UnsafePath(#[from] UnsafePath),
    #[error(
        "disk full writing {path}: {needed} more bytes are needed; free space (or raise the \
         quota) and the transfer resumes where it stopped"
    )]
    DiskFull { path: PathBuf, needed: u64 },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl StorageError {
    fn io(action: &'static str, path: &Path, source: io::Error, needed: u64) -> Self {
        // ENOSPC (28) and EDQUOT (122): nothing is wrong with the file, only with space.
        if matches!(source.raw_os_error(), Some(28 | 122)) {
            Self::DiskFull {
                path: path.to_owned(),
                needed,
            }
        } else {
            Self::Io {
                action,
                path: path.to_owned(),
                source,
            }
        }
    }

    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::DiskFull { .. })
    }
}

/// The archive root on a local (or mounted) file system.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

/// A `.part` file open for appending at a known offset.
#[derive(Debug)]
pub struct PartFile {
    file: File,
    path: PathBuf,
    len: u64,
}

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The final path of a stored relative path (refusing any escape from the root).
    pub fn path_of(&self, relative: &str) -> Result<PathBuf, StorageError> {
        Ok(layout::resolve(&self.root, relative)?)
    }

    pub fn part_path_of(&self, relative: &str) -> Result<PathBuf, StorageError> {
        let mut path = self.path_of(relative)?.into_os_string();
        path.push(PART_SUFFIX);
        Ok(path.into())
    }

    /// Length of the `.part` file of `relative`, if there is one.
    pub async fn part_len(&self, relative: &str) -> Result<Option<u64>, StorageError> {
        let path = self.part_path_of(relative)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io("cannot read", &path, e, 0)),
        }
    }

    /// Opens the `.part` file of `relative` cut to `offset` bytes (creating it and its
    /// folders), so that what follows the last checkpoint is discarded, never trusted.
    pub async fn open_part(&self, relative: &str, offset: u64) -> Result<PartFile, StorageError> {
        let path = self.part_path_of(relative)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| StorageError::io("cannot create folder", dir, e, 0))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .await
            .map_err(|e| StorageError::io("cannot open", &path, e, 0))?;
        file.set_len(offset)
            .await
            .map_err(|e| StorageError::io("cannot truncate", &path, e, 0))?;
        tokio::io::AsyncSeekExt::seek(&mut file, io::SeekFrom::Start(offset))
            .await
            .map_err(|e| StorageError::io("cannot seek", &path, e, 0))?;
        Ok(PartFile {
            file,
            path,
            len: offset,
        })
    }

    /// Makes the `.part` file durable and gives it its final name.
    pub async fn commit(&self, relative: &str, mut part: PartFile) -> Result<PathBuf, StorageError> {
        part.sync().await?;
        drop(part.file);
        let dest = self.path_of(relative)?;
        tokio::fs::rename(&part.path, &dest)
            .await
            .map_err(|e| StorageError::io("cannot rename", &part.path, e, 0))?;
        sync_dir(&dest).await?;
        Ok(dest)
    }

    /// Writes a small file atomically (temporary name, fsync, rename).
    pub async fn write_small(&self, relative: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let dest = self.path_of(relative)?;
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| StorageError::io("cannot create folder", dir, e, 0))?;
        }
        let mut tmp = dest.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let needed = bytes.len() as u64;
        let mut file = File::create(&tmp)
            .await
            .map_err(|e| StorageError::io("cannot create", &tmp, e, needed))?;
        file.write_all(bytes)
            .await
            .map_err(|e| StorageError::io("cannot write", &tmp, e, needed))?;
        file.sync_all()
            .await
            .map_err(|e| StorageError::io("cannot sync", &tmp, e, needed))?;
        drop(file);
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(|e| StorageError::io("cannot rename", &tmp, e, 0))?;
        sync_dir(&dest).await
    }
}

impl PartFile {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `bytes`; `remaining` is how much of the file is still to come (for the
    /// disk-full message).
    pub async fn append(&mut self, bytes: &[u8], remaining: u64) -> Result<(), StorageError> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| StorageError::io("cannot write", &self.path, e, remaining))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Flushes and `fsync`s the data written so far: only then may a checkpoint name it.
    pub async fn sync(&mut self) -> Result<(), StorageError> {
        self.file
            .flush()
            .await
            .map_err(|e| StorageError::io("cannot flush", &self.path, e, 0))?;
        self.file
            .sync_data()
            .await
            .map_err(|e| StorageError::io("cannot sync", &self.path, e, 0))
    }
}

/// fsyncs the folder holding `path`, so that a rename survives a power cut.
async fn sync_dir(path: &Path) -> Result<(), StorageError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all()))
        .await
        .map_err(|e| StorageError::Io {
            action: "cannot sync folder of",
            path: path.to_owned(),
            source: io::Error::other(e),
        })?
        .map_err(|e| StorageError::io("cannot sync folder of", path, e, 0))
}
