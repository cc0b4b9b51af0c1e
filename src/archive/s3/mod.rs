//! The archive in an S3-compatible bucket: keys have the layout of the local archive
//! (`layout`) under `prefix`; each recording is a multipart upload whose acknowledged
//! parts are its checkpoints (`upload`), through the bucket's client (`bucket`).

mod bucket;
mod lock;
mod settings;
mod upload;

pub use bucket::S3Bucket;
pub use lock::{LockClient, LockError, LockMode};
pub use settings::{
    MAX_COPY_SIZE, ObjectLockPolicy, S3_MAX_PART_SIZE, S3_MIN_PART_SIZE, S3Config, S3Credentials,
    part_size_for,
};

use super::{Archive, ArchiveError, ListedObject, Listing, ReadError, Resume, WriteError};
use crate::domain::RecordFileId;
use crate::state::{Db, DbError, FileRow};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::sync::Arc;

/// A bucket (and key prefix) recordings are uploaded to.
#[derive(Debug, Clone)]
pub struct S3Archive {
    bucket: Arc<S3Bucket>,
    store: Db,
}

impl S3Archive {
    pub fn new(config: &S3Config, store: Db) -> Result<Self, ArchiveError> {
        Ok(Self {
            bucket: Arc::new(S3Bucket::new(config)?),
            store,
        })
    }
}

#[async_trait]
impl Archive for S3Archive {
    fn describe(&self) -> String {
        self.bucket.describe()
    }

    fn locate(&self, relative: &str) -> String {
        self.bucket
            .key_of(relative)
            .map_or_else(|_| relative.to_owned(), |key| key.to_string())
    }

    async fn presign(
        &self,
        relative: &str,
        expires: std::time::Duration,
    ) -> Result<Option<String>, ArchiveError> {
        let key = self.bucket.key_of(relative)?;
        Ok(Some(self.bucket.presigned_get(&key, expires).await?))
    }

    async fn resume(&self, file: &FileRow) -> Result<Resume, WriteError> {
        upload::resume(Arc::clone(&self.bucket), self.store.clone(), file).await
    }

    async fn discard(&self, record_file_id: &RecordFileId) -> Result<(), DbError> {
        upload::abort(&self.bucket, &self.store, record_file_id).await
    }

    /// Under `retention.mode` the object is retained from now (what it records happened
    /// before): its write + `keep`.
    async fn put_small(&self, relative: &str, bytes: Bytes) -> Result<(), ArchiveError> {
        let key = self.bucket.key_of(relative)?;
        self.bucket.put(&key, bytes, None).await?;
        self.bucket.retain(&key, crate::time::UnixMs::now()).await
    }

    async fn check_promises(&self) -> Result<(), ArchiveError> {
        self.bucket.require_object_lock().await
    }

    async fn set_legal_hold(&self, relative: &str, on: bool) -> Result<(), ArchiveError> {
        let key = self.bucket.key_of(relative)?;
        self.bucket.legal_hold(&key, on).await
    }

    async fn relocate(&self, from: &str, to: &str) -> Result<(), ArchiveError> {
        let (from, to) = (self.bucket.key_of(from)?, self.bucket.key_of(to)?);
        if self.bucket.head(&from).await?.is_some() {
            // A copy keeps the object's metadata (its sha256) and content type.
            self.bucket.copy(&from, &to).await?;
            self.bucket.carry_lock(&from, &to).await?;
            // Under Object Lock this only hides `from` behind a delete marker: its locked
            // version stays until its retention ends.
            self.bucket.delete(&from).await?;
        }
        Ok(())
    }

    async fn remove(&self, relative: &str) -> Result<(), ArchiveError> {
        let key = self.bucket.key_of(relative)?;
        self.bucket.delete(&key).await
    }

    async fn read(
        &self,
        relative: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ArchiveError>>, ArchiveError> {
        let key = self.bucket.key_of(relative)?;
        self.bucket.read(&key).await
    }

    async fn size_of(&self, relative: &str) -> Result<Option<u64>, ArchiveError> {
        let key = self.bucket.key_of(relative)?;
        Ok(self.bucket.head(&key).await?.map(|info| info.size))
    }

    /// The bucket's listing under the prefix. Uploads in progress are not objects yet,
    /// so a bucket never has a `partial` finding.
    async fn list(&self) -> Result<Listing, ReadError> {
        let objects = self.bucket.list().await?;
        Ok(Listing {
            objects: objects
                .into_iter()
                .map(|(path, size)| ListedObject { path, size })
                .collect(),
            unreadable: Vec::new(),
        })
    }
}
