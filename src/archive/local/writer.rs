//! A transfer's `.part` file: appended, hashed, checkpointed, committed.

use super::sync_dir;
use crate::archive::{ArchiveError, ArchiveWriter, WriteError, hash_state};
use crate::state::{Checkpoint, FileRow, Store};
use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io;
use std::path::PathBuf;
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// A `.part` file checkpointed every `checkpoint_bytes`.
pub(super) struct LocalWriter {
    store: Store,
    record_file_id: String,
    part: PathBuf,
    dest: PathBuf,
    file: File,
    size: u64,
    etag: Option<String>,
    checkpoint_bytes: u64,
    hasher: Sha256,
    /// Bytes in the `.part` file, and how many of them are durable.
    len: u64,
    durable: u64,
}

impl LocalWriter {
    /// Opens the `.part` file of a `size`-byte file cut to `offset` bytes (creating it and its folders), so that
    /// what follows the last checkpoint is discarded, never trusted; `hasher` holds the
    /// hash of the bytes before `offset`.
    #[allow(clippy::too_many_arguments)] // the parts of one resume point, taken apart once
    pub(super) async fn open(
        part: PathBuf,
        dest: PathBuf,
        store: Store,
        row: &FileRow,
        size: u64,
        offset: u64,
        hasher: Sha256,
        etag: Option<String>,
    ) -> Result<Self, ArchiveError> {
        if let Some(dir) = part.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| ArchiveError::io("cannot create folder", dir, e, 0))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&part)
            .await
            .map_err(|e| ArchiveError::io("cannot open", &part, e, 0))?;
        file.set_len(offset)
            .await
            .map_err(|e| ArchiveError::io("cannot truncate", &part, e, 0))?;
        tokio::io::AsyncSeekExt::seek(&mut file, io::SeekFrom::Start(offset))
            .await
            .map_err(|e| ArchiveError::io("cannot seek", &part, e, 0))?;
        Ok(Self {
            store,
            record_file_id: row.record_file_id.clone(),
            part,
            dest,
            file,
            size,
            etag,
            checkpoint_bytes: super::DEFAULT_CHECKPOINT_BYTES,
            hasher,
            len: offset,
            durable: offset,
        })
    }

    pub(super) fn checkpoint_every(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }

    /// Flushes and `fsync`s the data written so far: only then may a checkpoint name it.
    async fn sync(&mut self) -> Result<(), ArchiveError> {
        self.file
            .flush()
            .await
            .map_err(|e| ArchiveError::io("cannot flush", &self.part, e, 0))?;
        self.file
            .sync_data()
            .await
            .map_err(|e| ArchiveError::io("cannot sync", &self.part, e, 0))
    }

    /// Makes the bytes written so far durable, then records them as the resume point.
    async fn checkpoint(&mut self) -> Result<(), WriteError> {
        self.sync().await?;
        self.store
            .save_checkpoint(
                &self.record_file_id,
                &Checkpoint {
                    bytes_done: self.len as i64,
                    etag: self.etag.clone(),
                    hash_state: Some(hash_state::save(&self.hasher)),
                },
            )
            .await?;
        self.durable = self.len;
        Ok(())
    }
}

#[async_trait]
impl ArchiveWriter for LocalWriter {
    fn received(&self) -> u64 {
        self.len
    }

    async fn write(&mut self, chunk: Bytes, _cancel: &CancellationToken) -> Result<(), WriteError> {
        // After a failed write the file may hold a torn tail: the last checkpoint stays the
        // resume point and the tail is cut when the file is reopened.
        let remaining = self.size.saturating_sub(self.len);
        self.file
            .write_all(&chunk)
            .await
            .map_err(|e| ArchiveError::io("cannot write", &self.part, e, remaining))?;
        self.len += chunk.len() as u64;
        self.hasher.update(&chunk);
        if self.len - self.durable >= self.checkpoint_bytes {
            self.checkpoint().await?;
        }
        Ok(())
    }

    async fn pause(&mut self) -> Result<(), WriteError> {
        self.checkpoint().await
    }

    async fn abandon(&mut self) {}

    async fn finish(&mut self, _cancel: &CancellationToken) -> Result<String, WriteError> {
        let sha256 = hex::encode(self.hasher.clone().finalize());
        self.sync().await?;
        tokio::fs::rename(&self.part, &self.dest)
            .await
            .map_err(|e| ArchiveError::io("cannot rename", &self.part, e, 0))?;
        sync_dir(&self.dest).await?;
        self.store
            .mark_archived(&self.record_file_id, self.size as i64, &sha256)
            .await?;
        Ok(sha256)
    }
}
