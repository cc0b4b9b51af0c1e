//! A local transfer's disk thread: it hashes each batch the receiving side (`feed`) sends
//! and appends it to the `.part` file with plain `writev`s, so that SHA-256, the copy into
//! the page cache and the file system run beside the network instead of between two reads.
//!
//! Every `checkpoint_bytes` it hands the offset and the hash state there to a syncer thread,
//! which `fdatasync`s the file and only then records the checkpoint in SQLite: a checkpoint
//! never names a byte that is not on disk. Writing goes on during the `fdatasync` (the file
//! system does not hold writers back meanwhile), so the disk works while the network does,
//! instead of after it. At most one sync runs at a time: the next checkpoint waits for it,
//! which keeps at most two checkpoints' worth of written bytes unsynced.

use super::feed::{End, Message};
use super::sync_dir_now;
use crate::archive::{ArchiveError, Mismatch, WriteError, hash_state};
use crate::domain::RecordFileId;
use crate::state::{Checkpoint, Db};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};
use tokio::runtime::Handle;
use tokio::sync::mpsc::Receiver;

/// How a disk thread ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The feed closed without a last message (the attempt was abandoned or dropped):
    /// nothing more was recorded after the checkpoints already made.
    Closed,
    /// Everything received is durable and recorded as the resume point.
    Paused,
    /// Everything is durable under the final name: the file's SHA-256 (lowercase hex).
    Finished(String),
}

/// Records checkpoints in the store from a thread outside the runtime.
pub(super) struct Recorder {
    pub(super) store: Db,
    pub(super) runtime: Handle,
    pub(super) record_file_id: RecordFileId,
    pub(super) etag: Option<String>,
}

impl Recorder {
    fn record(&self, bytes_done: u64, hasher: &Sha256) -> Result<(), WriteError> {
        let checkpoint = Checkpoint {
            bytes_done,
            etag: self.etag.clone(),
            hash_state: Some(hash_state::save(hasher)),
        };
        self.runtime.block_on(
            self.store
                .save_checkpoint(&self.record_file_id, &checkpoint),
        )?;
        Ok(())
    }
}

/// The open `.part` file of one transfer, cut to `offset` bytes whose hash is `hasher`.
pub(super) struct Disk {
    pub(super) file: File,
    pub(super) part: PathBuf,
    pub(super) dest: PathBuf,
    pub(super) size: u64,
    pub(super) offset: u64,
    pub(super) hasher: Sha256,
    pub(super) checkpoint_bytes: u64,
    pub(super) recorder: Recorder,
}

impl Disk {
    /// Writes what `feed` sends until its last message (or until it closes); a write that
    /// fails (a full disk) ends the thread with its error and leaves the last checkpoint as
    /// the resume point.
    pub(super) fn run(self, mut feed: Receiver<Message>) -> Result<Outcome, WriteError> {
        let Self {
            file,
            part,
            dest,
            size,
            offset,
            mut hasher,
            checkpoint_bytes,
            recorder,
        } = self;
        let mut len = offset;
        std::thread::scope(|scope| {
            let mut syncer = None;
            let mut asked = offset;
            let last = loop {
                match feed.blocking_recv() {
                    Some(Message::Data(batch)) => {
                        for chunk in &batch {
                            hasher.update(chunk);
                        }
                        write_all(&file, &batch).map_err(|e| {
                            ArchiveError::io("cannot write", &part, e, size.saturating_sub(len))
                        })?;
                        len += batch.iter().map(|c| c.len() as u64).sum::<u64>();
                        if len - asked >= checkpoint_bytes {
                            let syncer = syncer.get_or_insert_with(|| {
                                Syncer::spawn(scope, &file, &part, &recorder)
                            });
                            if !syncer.ask(len, &hasher) {
                                break None; // it stopped on an error, which its join returns
                            }
                            asked = len;
                        }
                    }
                    Some(Message::End(end)) => break Some(end),
                    None => break None,
                }
            };
            drop(feed);
            if let Some(syncer) = syncer {
                syncer.join()?;
            }
            let sync = |file: &File| {
                file.sync_data()
                    .map_err(|e| ArchiveError::io("cannot sync", &part, e, 0))
            };
            match last {
                None => Ok(Outcome::Closed),
                Some(End::Pause) => {
                    sync(&file)?;
                    recorder.record(len, &hasher)?;
                    Ok(Outcome::Paused)
                }
                Some(End::Finish) => {
                    sync(&file)?;
                    if len != size {
                        return Err(Mismatch::Short { written: len, size }.into());
                    }
                    let sha256 = hex::encode(hasher.clone().finalize());
                    std::fs::rename(&part, &dest)
                        .map_err(|e| ArchiveError::io("cannot rename", &part, e, 0))?;
                    sync_dir_now(&dest)?;
                    Ok(Outcome::Finished(sha256))
                }
            }
        })
    }
}

/// Appends every chunk of `batch` with as few `writev`s as the kernel allows.
fn write_all(mut file: &File, batch: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The thread that makes checkpoints durable, then records them.
struct Syncer<'scope> {
    asks: SyncSender<(u64, Sha256)>,
    thread: ScopedJoinHandle<'scope, Result<(), WriteError>>,
}

impl<'scope> Syncer<'scope> {
    fn spawn<'env>(
        scope: &'scope Scope<'scope, 'env>,
        file: &'env File,
        part: &'env Path,
        recorder: &'env Recorder,
    ) -> Self {
        // A rendezvous: a checkpoint is taken only once the previous one is recorded.
        let (asks, checkpoints) = sync_channel::<(u64, Sha256)>(0);
        let thread = scope.spawn(move || {
            for (offset, hasher) in checkpoints {
                file.sync_data()
                    .map_err(|e| ArchiveError::io("cannot sync", part, e, 0))?;
                recorder.record(offset, &hasher)?;
            }
            Ok(())
        });
        Self { asks, thread }
    }

    /// Hands over the checkpoint at `offset` (waiting for the previous one to be recorded);
    /// false if the syncer stopped on an error.
    fn ask(&self, offset: u64, hasher: &Sha256) -> bool {
        self.asks.send((offset, hasher.clone())).is_ok()
    }

    /// Waits for the last checkpoint handed over to be recorded; its error if one failed.
    fn join(self) -> Result<(), WriteError> {
        drop(self.asks);
        self.thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}
