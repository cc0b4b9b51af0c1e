//! Where recordings are archived: a local directory or an S3-compatible bucket, with the
//! same relative layout (`layout`) in both.
//!
//! On local disk a recording is first written to `NAME.mp4.part` beside its destination
//! (same file system, so the final `rename` is atomic), fsynced, renamed, and the directory
//! fsynced: after a crash a file either has its final name with all its bytes, or is still a
//! `.part` that the next run resumes. In a bucket it is a multipart upload whose parts are
//! the checkpoints (`s3`); the object appears only when the upload is completed.
//!
//! The download code streams into either through its sinks (`download::sink`); what both
//! backends share, [`Storage`], is what the rest of the program needs: small whole-object
//! writes (`meeting.json`) and streaming reads (`verify`).

pub mod layout;
pub mod s3;

use crate::config::StorageConfig;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use layout::UnsafePath;
pub use s3::S3Storage;

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
    #[error("S3: {action} `{key}`: {source}")]
    S3 {
        action: &'static str,
        key: String,
        source: object_store::Error,
    },
    /// The bucket no longer knows the upload (aborted behind our back, or expired by a
    /// lifecycle rule): its parts are lost and the file starts over with a new upload.
    #[error("the multipart upload of `{key}` is gone from the bucket; the file starts over")]
    UploadGone { key: String },
    #[error("`{key}` holds {got} bytes in the bucket where {expected} were uploaded")]
    SizeMismatch {
        key: String,
        got: u64,
        expected: u64,
    },
    #[error("cannot set up the S3 client: {0}")]
    Client(String),
    /// Creating an object answered 404: only a missing bucket explains that.
    #[error("the bucket `{bucket}` does not exist (or the endpoint is not its server)")]
    BucketNotFound { bucket: String },
    #[error("a {size}-byte file exceeds S3's largest object (10,000 parts of 5 GiB)")]
    TooLarge { size: u64 },
    #[error("`{0}` does not exist")]
    NotFound(String),
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

    fn s3(
        action: &'static str,
        key: &object_store::path::Path,
        source: object_store::Error,
    ) -> Self {
        Self::S3 {
            action,
            key: key.to_string(),
            source,
        }
    }

    /// Not the file's fault: the transfer waits for space without spending an attempt.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::DiskFull { .. })
    }

    /// Only the admin can fix it (credentials, bucket policy, client settings): every
    /// transfer would fail the same way, so the pool stops instead of failing each file.
    /// Everything else (network, 5xx after object_store's own retries, a vanished upload,
    /// a size mismatch, a file too large) is retried by the next attempt, from the last
    /// checkpoint, until the file's attempts run out.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Client(_) | Self::BucketNotFound { .. } => true,
            Self::S3 { source, .. } => matches!(
                source,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            ),
            _ => false,
        }
    }
}

/// The archive, wherever it is.
#[derive(Debug, Clone)]
pub enum Storage {
    Local(LocalStorage),
    S3(Arc<S3Storage>),
}

impl Storage {
    pub fn open(config: &StorageConfig) -> Result<Self, StorageError> {
        Ok(match &config.s3 {
            Some(s3) => Self::S3(Arc::new(S3Storage::new(s3)?)),
            None => Self::Local(LocalStorage::new(&config.path)),
        })
    }

    /// The archive root or `s3://bucket/prefix`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Local(local) => local.root().display().to_string(),
            Self::S3(s3) => s3.describe(),
        }
    }

    /// Writes a small object whole and atomically (readers see the old or the new one).
    pub async fn write_small(&self, relative: &str, bytes: &[u8]) -> Result<(), StorageError> {
        match self {
            Self::Local(local) => local.write_small(relative, bytes).await,
            Self::S3(s3) => {
                let key = s3.key_of(relative)?;
                s3.put(&key, Bytes::copy_from_slice(bytes), None).await
            }
        }
    }

    /// Size of the archived object at `relative`; `None` if there is none.
    pub async fn len(&self, relative: &str) -> Result<Option<u64>, StorageError> {
        match self {
            Self::Local(local) => {
                let path = local.path_of(relative)?;
                match tokio::fs::metadata(&path).await {
                    Ok(m) if m.is_file() => Ok(Some(m.len())),
                    Ok(_) => Ok(None),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(StorageError::io("cannot read", &path, e, 0)),
                }
            }
            Self::S3(s3) => Ok(s3.head(&s3.key_of(relative)?).await?.map(|o| o.size)),
        }
    }

    /// Streams the bytes of the archived object at `relative` in chunks of at most 1 MiB,
    /// never holding it whole (recordings are gigabytes); a missing object is
    /// [`StorageError::NotFound`].
    pub async fn read(
        &self,
        relative: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, StorageError>>, StorageError> {
        match self {
            Self::Local(local) => {
                let path = local.path_of(relative)?;
                let file = match File::open(&path).await {
                    Ok(file) => file,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(StorageError::NotFound(relative.to_string()));
                    }
                    Err(e) => return Err(StorageError::io("cannot open", &path, e, 0)),
                };
                Ok(
                    stream::try_unfold((file, path), |(mut file, path)| async move {
                        let mut buf = Vec::with_capacity(1 << 20);
                        let n = (&mut file)
                            .take(1 << 20)
                            .read_to_end(&mut buf)
                            .await
                            .map_err(|e| StorageError::io("cannot read", &path, e, 0))?;
                        Ok((n > 0).then(|| (Bytes::from(buf), (file, path))))
                    })
                    .boxed(),
                )
            }
            Self::S3(s3) => s3.read(&s3.key_of(relative)?).await,
        }
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
    pub async fn commit(
        &self,
        relative: &str,
        part: &mut PartFile,
    ) -> Result<PathBuf, StorageError> {
        part.sync().await?;
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
