//! Streaming a download into an S3 multipart upload, one acknowledged part at a time.
//!
//! The body is cut into parts of the file's part size; each full part is uploaded by its
//! own task while the next one fills, and the task records the part (id, source range,
//! SHA-256 state after it) right after the bucket acknowledged it. The resume point is the
//! end of the first contiguous run of recorded parts: after a crash the download restarts
//! there with an HTTP Range request and the upload continues with the next part.
//!
//! Memory: the part being filled counts against `max_parts_in_flight`, so a transfer holds
//! at most `part_size × max_parts_in_flight` bytes (plus one HTTP chunk).
//!
//! A file no larger than one part is buffered whole and sent in one `PUT`, which carries
//! its SHA-256 as metadata; it has no resume point (it restarts from zero).

use super::{TransferError, hash_state};
use crate::config::{S3_MAX_PART_SIZE, S3_MAX_PARTS};
use crate::storage::s3::MAX_COPY_SIZE;
use crate::storage::{S3Storage, StorageError};
use crate::store::uploads::PartRow;
use crate::store::{FileRow, Store, StoreError};
use bytes::BytesMut;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a pausing transfer waits for parts already on their way: each one that lands
/// is a part the next run does not download again; past this, shutdown matters more.
const PAUSE_GRACE: Duration = Duration::from_secs(5);

const MIB: u64 = 1024 * 1024;

/// The part size for a file of `size` bytes: the configured one, or (for a file that
/// would need more than S3's 10,000 parts) the smallest whole number of MiB that fits.
pub(super) fn part_size_for(size: u64, configured: u64) -> Result<u64, StorageError> {
    let needed = size.div_ceil(S3_MAX_PARTS).div_ceil(MIB) * MIB;
    let part_size = configured.max(needed);
    if part_size > S3_MAX_PART_SIZE {
        return Err(StorageError::TooLarge { size });
    }
    Ok(part_size)
}

/// A file's multipart upload as found at the start of an attempt.
pub(super) struct ResumedUpload {
    upload_id: String,
    part_size: u64,
    completed: bool,
    /// Ids of the contiguous parts from part 0 (the resume offset is the end of the last).
    parts: BTreeMap<usize, String>,
}

/// Where an attempt on `row` starts in the bucket: the resume offset, the hash state there
/// (`None` at offset 0) and the upload to continue, if any.
pub(super) async fn resume_point(
    s3: &S3Storage,
    store: &Store,
    row: &FileRow,
) -> Result<(u64, Option<Sha256>, Option<ResumedUpload>), TransferError> {
    let id = &row.record_file_id;
    let size = row.record_size as u64;
    let Some(upload) = store.upload(id).await? else {
        return Ok((0, None, None));
    };
    let key = s3.key_of(&row.path)?;
    let part_size = upload.part_size as u64;
    if upload.object_key != key.as_ref() || part_size == 0 {
        // The prefix changed since: that upload can never become this file's object.
        tracing::info!(file = %id, key = %upload.object_key, "discarding an upload made for another key");
        if let Err(e) = s3
            .abort(&stored_key(&upload.object_key), &upload.upload_id)
            .await
        {
            tracing::warn!(file = %id, error = %e, "could not abort the old upload; a lifecycle rule will");
        }
        store.delete_upload(id).await?;
        store.forget_progress(id).await?;
        return Ok((0, None, None));
    }
    let mut parts = BTreeMap::new();
    let mut resume = (0, None);
    for part in store.upload_parts(id).await? {
        let index = parts.len() as u64;
        let start = index * part_size;
        let in_place = part.part_index as u64 == index
            && part.start_offset as u64 == start
            && part.end_offset as u64 == (start + part_size).min(size);
        let Some(hasher) = hash_state::restore(&part.hash_state).filter(|_| in_place) else {
            break;
        };
        parts.insert(index as usize, part.part_id);
        resume = (part.end_offset as u64, Some(hasher));
    }
    store.forget_parts_from(id, parts.len() as i64).await?;
    Ok((
        resume.0,
        resume.1,
        Some(ResumedUpload {
            upload_id: upload.upload_id,
            part_size,
            completed: upload.completed_at.is_some(),
            parts,
        }),
    ))
}

/// A key as recorded in `uploads.object_key` (made by `S3Storage::key_of`, so it parses).
fn stored_key(key: &str) -> ObjectPath {
    ObjectPath::parse(key).unwrap_or_else(|_| ObjectPath::from(key))
}

/// What a part task needs, shared by all of one transfer's tasks.
struct Target {
    s3: Arc<S3Storage>,
    store: Store,
    record_file_id: String,
    key: ObjectPath,
    /// The download's ETag, recorded with each checkpoint for `If-Range`.
    etag: Option<String>,
    /// `None`: a single `PUT` at the end.
    upload_id: Option<String>,
}

pub(super) struct S3Sink {
    target: Arc<Target>,
    size: u64,
    part_size: u64,
    max_in_flight: usize,
    hasher: Sha256,
    received: u64,
    /// The upload was completed by an earlier attempt: only the checks are left.
    completed: bool,
    next_index: usize,
    buf: BytesMut,
    in_flight: JoinSet<Result<(usize, String), TransferError>>,
    parts: BTreeMap<usize, String>,
}

impl S3Sink {
    /// Continues `resumed` from `offset` (a part boundary), or starts a new upload (or a
    /// single `PUT` for a file no larger than a part) when there is none.
    pub(super) async fn open(
        s3: &Arc<S3Storage>,
        store: &Store,
        row: &FileRow,
        offset: u64,
        hasher: Sha256,
        etag: Option<String>,
        resumed: Option<ResumedUpload>,
    ) -> Result<Self, TransferError> {
        let size = row.record_size as u64;
        let key = s3.key_of(&row.path)?;
        let (upload_id, part_size, completed, parts) = match resumed {
            Some(up) => {
                // A restart from zero keeps the upload and overwrites its parts.
                let parts = if offset == 0 {
                    BTreeMap::new()
                } else {
                    up.parts
                };
                (Some(up.upload_id), up.part_size, up.completed, parts)
            }
            None if size <= s3.part_size() => (None, size, false, BTreeMap::new()),
            None => {
                let part_size = part_size_for(size, s3.part_size())?;
                if part_size > s3.part_size() {
                    tracing::info!(
                        file = %row.record_file_id, part_size,
                        "parts are larger than storage.s3.part_size: S3 allows 10,000 parts"
                    );
                }
                // A crash right after this leaves an upload nobody knows: the bucket's
                // lifecycle rule for incomplete uploads removes it (see the README).
                let upload_id = s3.create_upload(&key).await?;
                store
                    .start_upload(&row.record_file_id, &upload_id, key.as_ref(), part_size)
                    .await?;
                (Some(upload_id), part_size, false, BTreeMap::new())
            }
        };
        Ok(Self {
            target: Arc::new(Target {
                s3: Arc::clone(s3),
                store: store.clone(),
                record_file_id: row.record_file_id.clone(),
                key,
                etag,
                upload_id,
            }),
            size,
            part_size,
            max_in_flight: s3.max_parts_in_flight(),
            hasher,
            received: offset,
            completed,
            next_index: (offset / part_size.max(1)) as usize,
            buf: BytesMut::new(),
            in_flight: JoinSet::new(),
            parts,
        })
    }

    pub(super) fn received(&self) -> u64 {
        self.received
    }

    /// Source byte range of part `index`.
    fn range(&self, index: usize) -> (u64, u64) {
        let start = index as u64 * self.part_size;
        (start, (start + self.part_size).min(self.size))
    }

    pub(super) async fn write(
        &mut self,
        mut chunk: &[u8],
        cancel: &CancellationToken,
    ) -> Result<(), TransferError> {
        if self.target.upload_id.is_none() {
            self.buf.extend_from_slice(chunk);
            self.hasher.update(chunk);
            self.received += chunk.len() as u64;
            return Ok(());
        }
        while !chunk.is_empty() {
            let (start, end) = self.range(self.next_index);
            let len = (end - start) as usize;
            if self.buf.is_empty() {
                // The part about to fill takes a slot too: that is what bounds memory.
                if let Err(e) = self.reap(self.max_in_flight - 1, Some(cancel)).await {
                    return Err(self.fail(e).await);
                }
                self.buf.reserve(len);
            }
            let (now, later) = chunk.split_at((len - self.buf.len()).min(chunk.len()));
            self.buf.extend_from_slice(now);
            self.hasher.update(now);
            self.received += now.len() as u64;
            chunk = later;
            if self.buf.len() == len {
                self.dispatch(start, end);
            }
        }
        Ok(())
    }

    /// Uploads the full buffer as the next part, in its own task.
    fn dispatch(&mut self, start: u64, end: u64) {
        let index = self.next_index;
        self.next_index += 1;
        let data = self.buf.split().freeze();
        let hash_state = hash_state::save(&self.hasher);
        let target = Arc::clone(&self.target);
        self.in_flight.spawn(async move {
            let upload_id = target.upload_id.as_deref().unwrap_or_default();
            let part_id = target
                .s3
                .put_part(&target.key, upload_id, index, data)
                .await?;
            let part = PartRow {
                part_index: index as i64,
                part_id,
                start_offset: start as i64,
                end_offset: end as i64,
                hash_state,
            };
            target
                .store
                .save_part(&target.record_file_id, &part, target.etag.as_deref())
                .await?;
            Ok((index, part.part_id))
        });
    }

    /// Waits until at most `limit` parts are in flight, collecting their ids; the first
    /// failed part is the error.
    async fn reap(
        &mut self,
        limit: usize,
        cancel: Option<&CancellationToken>,
    ) -> Result<(), TransferError> {
        while self.in_flight.len() > limit {
            let joined = match cancel {
                Some(cancel) => tokio::select! {
                    joined = self.in_flight.join_next() => joined,
                    () = cancel.cancelled() => return Err(TransferError::Cancelled),
                },
                None => self.in_flight.join_next().await,
            };
            match joined {
                Some(Ok(Ok((index, id)))) => {
                    self.parts.insert(index, id);
                }
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Some(Err(_)) | None => {}
            }
        }
        Ok(())
    }

    /// Lets the parts on their way land (each records itself), for at most
    /// [`PAUSE_GRACE`]; the part being filled is dropped: the next attempt downloads it again.
    pub(super) async fn pause(&mut self) {
        let _ = tokio::time::timeout(PAUSE_GRACE, async {
            while let Some(joined) = self.in_flight.join_next().await {
                if let Ok(Err(e)) = joined {
                    tracing::debug!(file = %self.target.record_file_id, error = %e, "a part did not land");
                }
            }
        })
        .await;
        self.abandon().await;
    }

    pub(super) async fn abandon(&mut self) {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        self.buf = BytesMut::new();
    }

    /// What a failed part means for the file: a vanished upload cannot be continued, so it
    /// is forgotten and the next attempt starts a new one from zero; otherwise the parts
    /// still on their way may land and become the resume point.
    async fn fail(&mut self, error: TransferError) -> TransferError {
        if !matches!(
            error,
            TransferError::Storage(StorageError::UploadGone { .. })
        ) {
            self.pause().await;
            return error;
        }
        self.abandon().await;
        tracing::warn!(file = %self.target.record_file_id, key = %self.target.key, "the upload is gone from the bucket; starting the file over");
        match self.forget_upload().await {
            Ok(()) => error,
            Err(e) => e,
        }
    }

    async fn forget_upload(&self) -> Result<(), TransferError> {
        let id = &self.target.record_file_id;
        self.target.store.delete_upload(id).await?;
        self.target.store.forget_progress(id).await?;
        Ok(())
    }

    pub(super) async fn finish(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<String, TransferError> {
        match self.finish_inner(cancel).await {
            Ok(sha256) => Ok(sha256),
            Err(e @ TransferError::Storage(StorageError::SizeMismatch { .. })) => {
                // The completed object is not the recording: the next attempt uploads it
                // again, under a new upload (this one is spent).
                match self.forget_upload().await {
                    Ok(()) => Err(e),
                    Err(store) => Err(store),
                }
            }
            Err(e) => Err(self.fail(e).await),
        }
    }

    async fn finish_inner(&mut self, cancel: &CancellationToken) -> Result<String, TransferError> {
        let target = Arc::clone(&self.target);
        let (s3, key) = (&target.s3, &target.key);
        let sha256 = hex::encode(self.hasher.clone().finalize());
        let mut metadata = true;
        match &target.upload_id {
            None => {
                let data = std::mem::take(&mut self.buf).freeze();
                s3.put(key, data, Some(&sha256)).await?;
            }
            Some(upload_id) => {
                if !self.completed {
                    self.reap(0, Some(cancel)).await?;
                    let count = self.size.div_ceil(self.part_size) as usize;
                    if !self.parts.keys().copied().eq(0..count) {
                        return Err(TransferError::Inconsistent(format!(
                            "{} of {count} parts were uploaded",
                            self.parts.len()
                        )));
                    }
                    let parts = std::mem::take(&mut self.parts).into_values().collect();
                    s3.complete(key, upload_id, parts).await?;
                    target
                        .store
                        .mark_upload_completed(&target.record_file_id)
                        .await?;
                    self.completed = true;
                }
                metadata = self.size <= MAX_COPY_SIZE;
                if metadata {
                    s3.set_sha256(key, &sha256).await?;
                } else {
                    tracing::warn!(
                        file = %target.record_file_id, %key,
                        "objects over 5 GiB cannot be given sha256 metadata after their upload \
                         (S3 copies at most 5 GiB at once); the hash is in the database and \
                         meeting.json"
                    );
                }
            }
        }
        let got = s3.head(key).await?;
        match got {
            Some(info) if info.size == self.size => match info.sha256 {
                Some(stored) if stored != sha256 => {
                    return Err(TransferError::Inconsistent(format!(
                        "the bucket holds sha256 metadata {stored} for a {sha256} upload"
                    )));
                }
                None if metadata => tracing::warn!(
                    file = %target.record_file_id, %key,
                    "the bucket dropped the sha256 metadata; the hash is in the database"
                ),
                _ => {}
            },
            other => {
                return Err(StorageError::SizeMismatch {
                    key: key.to_string(),
                    got: other.map_or(0, |i| i.size),
                    expected: self.size,
                }
                .into());
            }
        }
        target
            .store
            .mark_archived(&target.record_file_id, self.size as i64, &sha256)
            .await?;
        if target.upload_id.is_some() {
            target.store.delete_upload(&target.record_file_id).await?;
        }
        Ok(sha256)
    }
}

/// Aborts the upload of a file that will not be retried (its attempts ran out), so its
/// parts stop costing storage; failures are only logged: the lifecycle rule is the net.
pub(super) async fn abort_upload(
    s3: &S3Storage,
    store: &Store,
    record_file_id: &str,
) -> Result<(), StoreError> {
    let Some(upload) = store.upload(record_file_id).await? else {
        return Ok(());
    };
    let key = stored_key(&upload.object_key);
    match s3.abort(&key, &upload.upload_id).await {
        Ok(()) => {
            tracing::info!(file = %record_file_id, %key, "aborted the upload of a failed file")
        }
        Err(e) => {
            tracing::warn!(file = %record_file_id, %key, error = %e, "could not abort the upload of a failed file")
        }
    }
    store.delete_upload(record_file_id).await?;
    store.forget_progress(record_file_id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_grows_only_when_10000_parts_are_not_enough() {
        let configured = 64 * MIB;
        assert_eq!(part_size_for(3 * MIB, configured).unwrap(), configured);
        assert_eq!(
            part_size_for(10_000 * configured, configured).unwrap(),
            configured
        );
        let big = 10_000 * configured + 1;
        let grown = part_size_for(big, configured).unwrap();
        assert_eq!(grown, configured + MIB);
        assert!(big.div_ceil(grown) <= S3_MAX_PARTS);
        assert!(part_size_for(u64::MAX / 2, configured).is_err());
    }
}
