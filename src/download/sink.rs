//! Where a transfer's bytes go, and what a checkpoint is there.
//!
//! The HTTP side of a transfer (`transfer.rs`: Range, If-Range, status and length checks)
//! is the same for every backend; what differs is where the bytes are made durable and
//! how a resume point is recorded. On local disk that is the `.part` file, fsynced every
//! `checkpoint_bytes`; in a bucket it is each acknowledged part of a multipart upload
//! (`s3_sink.rs`). Each sink owns the running SHA-256, because in a bucket the hash state
//! must be saved at part boundaries, which fall inside HTTP chunks.

use super::s3_sink::S3Sink;
use super::{TransferError, hash_state};
use crate::storage::{LocalStorage, PartFile};
use crate::store::{Checkpoint, FileRow, Store};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

pub(super) enum Sink {
    Local(LocalSink),
    S3(S3Sink),
}

impl Sink {
    /// Bytes of the file received so far (durable or not).
    pub(super) fn received(&self) -> u64 {
        match self {
            Self::Local(s) => s.part.len(),
            Self::S3(s) => s.received(),
        }
    }

    pub(super) async fn write(
        &mut self,
        chunk: Bytes,
        cancel: &CancellationToken,
    ) -> Result<(), TransferError> {
        match self {
            Self::Local(s) => s.write(&chunk).await,
            Self::S3(s) => s.write(&chunk, cancel).await,
        }
    }

    /// Records what is durable as the resume point, before the attempt stops (shutdown,
    /// a dropped connection, a short body).
    pub(super) async fn pause(&mut self) -> Result<(), TransferError> {
        match self {
            Self::Local(s) => s.checkpoint().await,
            Self::S3(s) => {
                s.pause().await;
                Ok(())
            }
        }
    }

    /// Stops work still in flight, so that nothing records progress after the caller
    /// forgets it (the file restarts from zero).
    pub(super) async fn abandon(&mut self) {
        if let Self::S3(s) = self {
            s.abandon().await;
        }
    }

    /// Makes the file durable under its final name, checks it and marks it archived;
    /// returns its SHA-256 (lowercase hex).
    pub(super) async fn finish(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<String, TransferError> {
        match self {
            Self::Local(s) => s.finish().await,
            Self::S3(s) => s.finish(cancel).await,
        }
    }
}

/// A `.part` file checkpointed every `checkpoint_bytes`.
pub(super) struct LocalSink {
    storage: LocalStorage,
    store: Store,
    record_file_id: String,
    path: String,
    size: u64,
    etag: Option<String>,
    checkpoint_bytes: u64,
    part: PartFile,
    hasher: Sha256,
    durable: u64,
}

impl LocalSink {
    /// Opens the `.part` file of `row` cut to `offset` (`hasher` holds the hash of the bytes
    /// before it); `etag` is the download's, recorded with every checkpoint for `If-Range`.
    pub(super) async fn open(
        storage: &LocalStorage,
        store: &Store,
        row: &FileRow,
        offset: u64,
        hasher: Sha256,
        etag: Option<String>,
        checkpoint_bytes: u64,
    ) -> Result<Self, TransferError> {
        Ok(Self {
            part: storage.open_part(&row.path, offset).await?,
            storage: storage.clone(),
            store: store.clone(),
            record_file_id: row.record_file_id.clone(),
            path: row.path.clone(),
            size: row.record_size as u64,
            etag,
            checkpoint_bytes,
            hasher,
            durable: offset,
        })
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), TransferError> {
        // After a failed write the file may hold a torn tail: the last checkpoint stays the
        // resume point and the tail is cut when the file is reopened.
        self.part.append(chunk, self.size - self.part.len()).await?;
        self.hasher.update(chunk);
        if self.part.len() - self.durable >= self.checkpoint_bytes {
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// Makes the bytes written so far durable, then records them as the resume point.
    async fn checkpoint(&mut self) -> Result<(), TransferError> {
        self.part.sync().await?;
        self.store
            .save_checkpoint(
                &self.record_file_id,
                &Checkpoint {
                    bytes_done: self.part.len() as i64,
                    etag: self.etag.clone(),
                    hash_state: Some(hash_state::save(&self.hasher)),
                },
            )
            .await?;
        self.durable = self.part.len();
        Ok(())
    }

    async fn finish(&mut self) -> Result<String, TransferError> {
        let sha256 = hex::encode(self.hasher.clone().finalize());
        self.storage.commit(&self.path, &mut self.part).await?;
        self.store
            .mark_archived(&self.record_file_id, self.size as i64, &sha256)
            .await?;
        Ok(sha256)
    }
}
