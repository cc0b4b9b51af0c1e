//! A transfer's `.part` file, as the transfer sees it: chunks go into the feed, a disk
//! thread of its own hashes, writes and checkpoints them (`disk`), and the file is written
//! once that thread has made it durable under its final name.

use super::disk::{Disk, Outcome, Recorder};
use super::feed::{End, Feed};
use crate::archive::{ArchiveError, ArchiveWriter, Mismatch, Start, WriteError, Written};
use crate::state::{Db, FileRow};
use async_trait::async_trait;
use bytes::Bytes;
use std::io::{self, Seek};
use std::path::PathBuf;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A `.part` file checkpointed every `checkpoint_bytes`, written by its own thread.
pub(super) struct LocalWriter {
    size: u64,
    /// The final name, for [`Written::location`].
    dest: PathBuf,
    feed: Feed,
    /// The disk thread, until its outcome is taken.
    disk: Option<JoinHandle<Result<Outcome, WriteError>>>,
}

/// Where a writer's `.part` file is and how it is checkpointed.
pub(super) struct PartFile {
    pub(super) part: PathBuf,
    pub(super) dest: PathBuf,
    pub(super) checkpoint_bytes: u64,
}

impl LocalWriter {
    /// Opens the `.part` file of a `size`-byte file cut to `offset` bytes (creating it and
    /// its folders), so that what follows the last checkpoint is discarded, never trusted;
    /// `hasher` holds the hash of the bytes before `offset`. Starts its disk thread.
    pub(super) async fn open(
        files: PartFile,
        store: Db,
        row: &FileRow,
        start: Start,
    ) -> Result<Self, ArchiveError> {
        let (offset, size) = (start.offset, start.size);
        let part = files.part.clone();
        let dest = files.dest.clone();
        let file = tokio::task::spawn_blocking(move || open_part(&part, offset))
            .await
            .expect("opening does not panic")?;
        let disk = Disk {
            file,
            part: files.part,
            dest: files.dest,
            size,
            offset,
            hasher: start.hasher,
            checkpoint_bytes: files.checkpoint_bytes,
            recorder: Recorder {
                store,
                runtime: tokio::runtime::Handle::current(),
                record_file_id: row.record_file_id.clone(),
                etag: start.etag,
            },
        };
        let (feed, received) = Feed::new(offset);
        Ok(Self {
            size,
            dest,
            feed,
            disk: Some(tokio::task::spawn_blocking(move || disk.run(received))),
        })
    }

    /// The disk thread's outcome, once it has stopped.
    async fn outcome(&mut self) -> Result<Outcome, WriteError> {
        let Some(disk) = self.disk.take() else {
            return Err(Mismatch::WriterGone.into());
        };
        match disk.await {
            Ok(outcome) => outcome,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// Ends the feed with `end` and waits for the disk thread to carry it out.
    async fn end(&mut self, end: End) -> Result<Outcome, WriteError> {
        // If the thread has stopped, its outcome says why (a full disk, say).
        let _ = self.feed.end(end).await;
        self.outcome().await
    }

    /// The error that stopped the disk thread while bytes were still coming.
    async fn stopped(&mut self) -> WriteError {
        match self.outcome().await {
            Err(e) => e,
            Ok(outcome) => out_of_step("stopped early", &outcome),
        }
    }
}

/// The disk thread was not where `step` needed it.
fn out_of_step(step: &'static str, outcome: &Outcome) -> WriteError {
    Mismatch::OutOfStep {
        step,
        state: format!("{outcome:?}"),
    }
    .into()
}

/// Creates the folders and the `.part` file, cut to `offset` bytes and positioned there.
fn open_part(part: &std::path::Path, offset: u64) -> Result<std::fs::File, ArchiveError> {
    if let Some(dir) = part.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ArchiveError::io("cannot create folder", dir, e, 0))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(part)
        .map_err(|e| ArchiveError::io("cannot open", part, e, 0))?;
    file.set_len(offset)
        .map_err(|e| ArchiveError::io("cannot truncate", part, e, 0))?;
    file.seek(io::SeekFrom::Start(offset))
        .map_err(|e| ArchiveError::io("cannot seek", part, e, 0))?;
    Ok(file)
}

#[async_trait]
impl ArchiveWriter for LocalWriter {
    fn received(&self) -> u64 {
        self.feed.received()
    }

    async fn write(&mut self, chunk: Bytes, _cancel: &CancellationToken) -> Result<(), WriteError> {
        match self.feed.push(chunk).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.stopped().await),
        }
    }

    /// Everything received is written, synced and recorded (the resume point is then all
    /// of it); the writer takes nothing more.
    async fn pause(&mut self) -> Result<(), WriteError> {
        match self.end(End::Pause).await? {
            Outcome::Paused => Ok(()),
            outcome => Err(out_of_step("did not pause", &outcome)),
        }
    }

    async fn abandon(&mut self) {
        self.feed.close();
        // Whatever it says, it has stopped: nothing records progress after this.
        let _ = self.outcome().await;
    }

    async fn finish(&mut self, _cancel: &CancellationToken) -> Result<Written, WriteError> {
        let sha256 = match self.end(End::Finish).await? {
            Outcome::Finished(sha256) => sha256,
            outcome => {
                return Err(out_of_step("did not finish", &outcome));
            }
        };
        Ok(Written {
            size: self.size,
            sha256,
            location: self.dest.display().to_string(),
            held: false,
        })
    }
}
