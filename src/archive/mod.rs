//! Where recordings are archived, behind one abstraction: [`Archive`], with one
//! implementation per backend, each in its own folder (`local/`: a directory; `s3/`: an
//! S3-compatible bucket with multipart uploads). A transfer writes through it (a resume
//! point, a writer that checkpoints, a finish that makes the file durable), `verify`
//! reads through it (stream and hash an object, list the archive), and `meeting.json`
//! goes through its small puts. Nobody else matches on the backend.
//!
//! Both backends share the relative layout of `layout` and the checkpoint format of
//! `hash_state`; a third backend is one more folder and one more `impl`.

pub(crate) mod hash_state;
pub mod layout;
pub mod local;
pub mod marker;
pub(crate) mod meeting_json;
pub mod s3;

pub use layout::UnsafePath;

use crate::domain::RecordFileId;
use crate::errors::Class;
use crate::state::{Db, DbError, FileRow};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Suffix of files being written; users recognise it from browsers and aria2.
pub const PART_SUFFIX: &str = ".part";

/// Bytes read per call while hashing or streaming an object back: large enough that
/// syscalls do not dominate, small enough that `--jobs` readers never hold much memory.
pub const READ_BUFFER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    UnsafePath(#[from] UnsafePath),
    #[error(
        "disk full writing {path}: {needed} more bytes are needed; free space (or raise the \
         quota) and the transfer resumes where it stopped"
    )]
    DiskFull { path: PathBuf, needed: u64 },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("S3: {action} `{key}`")]
    S3 {
        action: &'static str,
        key: String,
        #[source]
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
    /// The client could not be built from the configuration (endpoint, credentials).
    #[error("cannot set up the S3 client")]
    Client(#[source] object_store::Error),
    #[error("cannot set up the S3 Object Lock client")]
    LockClient(#[source] reqwest::Error),
    /// A value meant for a header could not be one.
    #[error("cannot send `{value}` as the {header} header")]
    Header { header: &'static str, value: String },
    /// Creating an object answered 404: only a missing bucket explains that.
    #[error("the bucket `{bucket}` does not exist (or the endpoint is not its server)")]
    BucketNotFound { bucket: String },
    #[error("a {size}-byte file exceeds S3's largest object (10,000 parts of 5 GiB)")]
    TooLarge { size: u64 },
    #[error("`{0}` does not exist")]
    NotFound(String),
    /// `retention.mode` asks for S3 Object Lock, which a bucket gets only at creation.
    #[error(
        "retention.mode is \"{mode}\" but the bucket `{bucket}` does not have S3 Object Lock \
         enabled: create the bucket with Object Lock enabled (it cannot be turned on for most \
         existing buckets) and point storage.s3.bucket at it, or set retention.mode = \"none\""
    )]
    ObjectLockDisabled { bucket: String, mode: s3::LockMode },
    /// An Object Lock request (retention, legal hold) failed.
    #[error(transparent)]
    Lock(#[from] s3::LockError),
}

impl ArchiveError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error, needed: u64) -> Self {
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

    pub(crate) fn s3(
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

    /// What the writer of a file must do: wait for space (a full disk is not the file's
    /// fault: no attempt is spent), stop (only the admin can fix it: credentials, bucket
    /// policy, client settings; every transfer would fail the same way), or retry from
    /// the last checkpoint (network, 5xx after object_store's own retries, a vanished
    /// upload, a size mismatch, a file too large) until the file's attempts run out.
    pub fn class(&self) -> Class {
        match self {
            Self::DiskFull { .. } => Class::RetryLater,
            Self::Client(_)
            | Self::LockClient(_)
            | Self::Header { .. }
            | Self::BucketNotFound { .. }
            | Self::ObjectLockDisabled { .. } => Class::Stop,
            Self::S3 {
                source:
                    object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. },
                ..
            } => Class::Stop,
            _ => Class::Retry,
        }
    }
}

/// Why a writer stopped.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A checkpoint could not be recorded: the bytes may be durable, the resume point is not.
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("stopped by shutdown")]
    Cancelled,
    /// What was written does not add up to the file; the next attempt starts it over.
    #[error("{0}; restarting the file from zero")]
    Mismatch(Mismatch),
}

impl WriteError {
    /// The archive's class; the database stops everything; a shutdown is resumed by the
    /// next run; a mismatch is retried (from zero).
    pub fn class(&self) -> Class {
        match self {
            Self::Archive(e) => e.class(),
            Self::Db(_) => Class::Stop,
            Self::Cancelled => Class::RetryLater,
            Self::Mismatch(_) => Class::Retry,
        }
    }
}

/// How what a writer made of a file does not add up to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("{written} bytes were written of a {size}-byte file")]
    Short { written: u64, size: u64 },
    #[error("the file's writer has already stopped")]
    WriterGone,
    /// The writer's thread was not where the step needed it (`state`: where it was).
    #[error("the file's writer {step} ({state})")]
    OutOfStep { step: &'static str, state: String },
    /// The hash of a part (`what`: "part") or of the file was lost with its task.
    #[error("the {what}'s hash was not computed")]
    HashLost { what: &'static str },
    #[error("{uploaded} of {count} parts were uploaded")]
    PartsMissing { uploaded: usize, count: usize },
    #[error("the bucket holds sha256 metadata {stored} for a {sha256} upload")]
    StoredHash { stored: String, sha256: String },
}

impl From<Mismatch> for WriteError {
    fn from(m: Mismatch) -> Self {
        Self::Mismatch(m)
    }
}

/// What an archived object holds, as re-read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub size: u64,
    /// Lower-case hex, as the download recorded it.
    pub sha256: String,
}

/// Why an object could not be read back: `NotFound` is a finding (`missing`), the rest
/// say why it is `unreadable`.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Refused(#[from] UnsafePath),
    /// Reading failed (an I/O error, the bucket): the file is `unreadable`.
    #[error(transparent)]
    Archive(ArchiveError),
}

impl From<ArchiveError> for ReadError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::NotFound(_) => Self::NotFound,
            ArchiveError::UnsafePath(p) => Self::Refused(p),
            other => Self::Archive(other),
        }
    }
}

/// One object found in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Relative to the root, `/`-separated like the database's paths (lossy if the name
    /// is not UTF-8: such a name can never match a database path anyway).
    pub path: String,
    pub size: u64,
}

/// Everything in the archive, and the folders that could not be read (each one is a
/// finding: what they hold cannot be vouched for).
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<ListedObject>,
    pub unreadable: Vec<(String, String)>,
}

/// A place recordings are archived in.
#[async_trait]
pub trait Archive: Send + Sync + std::fmt::Debug {
    /// The archive root or `s3://bucket/prefix`, for messages and reports.
    fn describe(&self) -> String;

    /// Where the next attempt at `file` starts: the bytes already durable (a `.part`
    /// file's last checkpoint, an upload's contiguous parts) and their hash.
    async fn resume(&self, file: &FileRow) -> Result<Resume, WriteError>;

    /// Frees what a file that will not be retried holds (an upload's parts); its
    /// checkpoint is forgotten.
    async fn discard(&self, record_file_id: &RecordFileId) -> Result<(), DbError>;

    /// Writes a small object whole and atomically (readers see the old or the new one).
    async fn put_small(&self, relative: &str, bytes: Bytes) -> Result<(), ArchiveError>;

    /// Moves what is stored at `from` to `to` (`relayout`): a local rename (a `.part`
    /// file goes with it), or an S3 copy then delete. Idempotent: with nothing at `from`
    /// there is nothing to do, so a move repeated after a crash finds it done.
    async fn relocate(&self, from: &str, to: &str) -> Result<(), ArchiveError>;

    /// Removes `relative` if it is there (the `meeting.json` a relayout left behind).
    async fn remove(&self, relative: &str) -> Result<(), ArchiveError>;

    /// Checks, before a command writes, that the archive can keep what the configuration
    /// promises: a bucket with `retention.mode` must have S3 Object Lock enabled.
    async fn check_promises(&self) -> Result<(), ArchiveError> {
        Ok(())
    }

    /// Puts (`on`) or lifts the S3 legal hold of the object at `relative` (a held
    /// recording's). Nothing on local disk, where no file can be made immutable; nothing
    /// in a bucket without `retention.mode` (legal holds need Object Lock).
    async fn set_legal_hold(&self, _relative: &str, _on: bool) -> Result<(), ArchiveError> {
        Ok(())
    }

    /// Streams the object at `relative` in chunks of at most `READ_BUFFER`, never
    /// holding it whole (recordings are gigabytes).
    async fn read(
        &self,
        relative: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ArchiveError>>, ArchiveError>;

    /// Size and SHA-256 of the object at `relative`, re-read now.
    async fn digest(&self, relative: &str) -> Result<Digest, ReadError> {
        use futures::TryStreamExt;
        let mut body = self.read(relative).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.try_next().await? {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Digest {
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// The size of the complete object at `relative` (never a `.part` file or an upload
    /// in progress); `None` if there is none.
    async fn size_of(&self, relative: &str) -> Result<Option<u64>, ArchiveError>;

    /// Where `relative` is, for people: the file's path on disk, or the object's key in
    /// the bucket.
    fn locate(&self, relative: &str) -> String;

    /// A link anyone can GET `relative` with for `expires` (a presigned URL), if the
    /// backend has such links (a bucket does; a directory does not: `None`).
    async fn presign(
        &self,
        _relative: &str,
        _expires: std::time::Duration,
    ) -> Result<Option<String>, ArchiveError> {
        Ok(None)
    }

    /// Every object, sorted by path. An archive that does not exist yet is empty.
    async fn list(&self) -> Result<Listing, ReadError>;

    /// Paths in the archive that belong there without being recordings: the database and
    /// its companions, when it lives under a local root.
    fn companions(&self, _database: &Path) -> HashSet<String> {
        HashSet::new()
    }
}

/// The durable start of one attempt at one file: the bytes already durable (their count
/// and hash, and the download's ETag when they were written) and how the backend goes on
/// from there.
pub struct Resume {
    offset: u64,
    hasher: Sha256,
    etag: Option<String>,
    writer: Box<dyn OpenWriter>,
}

impl Resume {
    fn new(offset: u64, hasher: Sha256, etag: Option<String>, writer: Box<dyn OpenWriter>) -> Self {
        Self {
            offset,
            hasher,
            etag,
            writer,
        }
    }

    /// Bytes of the file already durable.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The download's ETag when the bytes were written, for `If-Range`.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The host sent the whole file (it ignored the range, or the file changed): start at
    /// byte 0, keeping what the backend can reuse (an upload).
    pub fn restarted(self) -> Self {
        Self {
            offset: 0,
            hasher: Sha256::new(),
            etag: None,
            ..self
        }
    }

    /// A writer continuing at [`Resume::offset`] of a file of `size` bytes (the listing's
    /// `record_size`, or what an artifact's first response announced), recording `etag`
    /// with its checkpoints.
    pub async fn open(
        self,
        etag: Option<String>,
        size: u64,
    ) -> Result<Box<dyn ArchiveWriter>, WriteError> {
        let start = Start {
            offset: self.offset,
            hasher: self.hasher,
            etag,
            size,
        };
        self.writer.open(start).await
    }
}

/// Where a writer starts: at `offset` of a `size`-byte file, `hasher` holding the hash of
/// the bytes before `offset`, `etag` (the download's) recorded with its checkpoints.
struct Start {
    offset: u64,
    hasher: Sha256,
    etag: Option<String>,
    size: u64,
}

/// How a backend opens a writer at a resume point.
#[async_trait]
trait OpenWriter: Send {
    async fn open(self: Box<Self>, start: Start) -> Result<Box<dyn ArchiveWriter>, WriteError>;
}

/// What a writer made durable: its `finish` returns it, and the transfer records the file
/// as archived from it (`Db::mark_archived`), so a backend writes bytes and says so, nothing
/// more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes under the final name: the size the API announced (checked before `finish`
    /// returns).
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    /// Where the copy is, for people: its path on disk, or its object's key.
    pub location: String,
    /// The backend put a legal hold on it already (a held recording's object in a
    /// bucket with `retention.mode`).
    pub held: bool,
}

/// Where one transfer's bytes go: hashed, made durable checkpoint by checkpoint, and
/// given their final name (or object) only when all of them are there.
#[async_trait]
pub trait ArchiveWriter: Send {
    /// Bytes of the file received so far (durable or not).
    fn received(&self) -> u64;

    async fn write(&mut self, chunk: Bytes, cancel: &CancellationToken) -> Result<(), WriteError>;

    /// Records what is durable as the resume point, before the attempt stops (shutdown,
    /// a dropped connection, a short body).
    async fn pause(&mut self) -> Result<(), WriteError>;

    /// Stops work still in flight, so that nothing records progress after the caller
    /// forgets it (the file restarts from zero).
    async fn abandon(&mut self);

    /// Makes the file durable under its final name and checks it; returns what was written
    /// (the caller marks it archived).
    async fn finish(&mut self, cancel: &CancellationToken) -> Result<Written, WriteError>;
}

/// Opens the configured archive: `s3` when a bucket is configured, else the directory
/// `root`, checkpointed every `checkpoint_bytes` (a bucket's checkpoints are its parts).
/// Checkpoints and uploads are recorded in `store`.
pub fn open(
    root: &Path,
    s3: Option<&s3::S3Config>,
    checkpoint_bytes: u64,
    store: Db,
) -> Result<Arc<dyn Archive>, ArchiveError> {
    Ok(match s3 {
        Some(config) => Arc::new(s3::S3Archive::new(config, store)?),
        None => Arc::new(local::LocalArchive::new(root, store).with_checkpoints(checkpoint_bytes)),
    })
}
