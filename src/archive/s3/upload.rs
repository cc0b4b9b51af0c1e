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
//!
//! SHA-256 stays off the receive path: each dispatched part is hashed on the blocking pool,
//! after the part before it (one stream's hash is sequential), while the next part is
//! received; the part's task records it only once its hash state is known.

use super::{MAX_COPY_SIZE, S3Bucket, part_size_for};
use crate::archive::{
    ArchiveError, ArchiveWriter, Mismatch, OpenWriter, Resume, Start, WriteError, Written,
    hash_state,
};
use crate::domain::{MeetingRecordId, RecordFileId};
use crate::state::uploads::PartRow;
use crate::state::{Db, DbError, FileRow};
use crate::time::UnixMs;
use async_trait::async_trait;
use bytes::Bytes;
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

/// A file's multipart upload as found at the start of an attempt.
struct ResumedUpload {
    upload_id: String,
    part_size: u64,
    completed: bool,
    /// Ids of the contiguous parts from part 0 (the resume offset is the end of the last).
    parts: BTreeMap<usize, String>,
}

/// Where an attempt on `row` starts in the bucket: the end of the contiguous parts of its
/// upload (with the hash state there), or byte 0.
pub(super) async fn resume(
    s3: Arc<S3Bucket>,
    store: Db,
    row: &FileRow,
) -> Result<Resume, WriteError> {
    let (offset, hasher, upload) = resume_point(&s3, &store, row).await?;
    let writer = Box::new(UploadWriter {
        s3,
        store,
        file: row.clone(),
        upload,
    });
    let etag = row.etag.clone().filter(|_| offset > 0);
    Ok(Resume::new(
        offset,
        hasher.unwrap_or_else(Sha256::new),
        etag,
        writer,
    ))
}

/// The resume offset, the hash state there (`None` at offset 0) and the upload to
/// continue, if any.
async fn resume_point(
    s3: &S3Bucket,
    store: &Db,
    row: &FileRow,
) -> Result<(u64, Option<Sha256>, Option<ResumedUpload>), WriteError> {
    let id = &row.record_file_id;
    let size = row.record_size;
    let Some(upload) = store.upload(id).await? else {
        return Ok((0, None, None));
    };
    let key = s3.key_of(&row.path)?;
    let part_size = upload.part_size;
    if upload.object_key != key.as_ref() || part_size == 0 {
        // The prefix changed since: that upload can never become this file's object.
        tracing::info!(file = %id, key = %upload.object_key, "discarding an upload made for another key");
        if let Err(e) = s3
            .abort(&stored_key(&upload.object_key), &upload.upload_id)
            .await
        {
            tracing::warn!(file = %id, error = %crate::errors::chain(&e), "could not abort the old upload; a lifecycle rule will");
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
        let in_place = part.part_index == index
            && part.start_offset == start
            && part.end_offset == (start + part_size).min(size);
        let Some(hasher) = hash_state::restore(&part.hash_state).filter(|_| in_place) else {
            break;
        };
        parts.insert(index as usize, part.part_id);
        resume = (part.end_offset, Some(hasher));
    }
    store.forget_parts_from(id, parts.len() as u64).await?;
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

/// A key as recorded in `uploads.object_key` (made by `S3Bucket::key_of`, so it parses).
fn stored_key(key: &str) -> ObjectPath {
    ObjectPath::parse(key).unwrap_or_else(|_| ObjectPath::from(key))
}

/// What a part task needs, shared by all of one transfer's tasks.
struct Target {
    s3: Arc<S3Bucket>,
    store: Db,
    record_file_id: RecordFileId,
    /// The recording's, for its legal holds.
    meeting_record_id: MeetingRecordId,
    /// The recording's start: its objects are retained until this + `retention.keep`.
    media_start_time: UnixMs,
    key: ObjectPath,
    /// The download's ETag, recorded with each checkpoint for `If-Range`.
    etag: Option<String>,
    /// `None`: a single `PUT` at the end.
    upload_id: Option<String>,
}

pub(super) struct S3Writer {
    target: Arc<Target>,
    size: u64,
    part_size: u64,
    max_in_flight: usize,
    /// The hash of every byte before the part being filled.
    hash: Hash,
    received: u64,
    /// The upload was completed by an earlier attempt: only the checks are left.
    completed: bool,
    next_index: usize,
    buf: BytesMut,
    in_flight: JoinSet<Result<(usize, String), WriteError>>,
    parts: BTreeMap<usize, String>,
}

/// Opens (or continues) the upload of one file.
struct UploadWriter {
    s3: Arc<S3Bucket>,
    store: Db,
    file: FileRow,
    upload: Option<ResumedUpload>,
}

#[async_trait]
impl OpenWriter for UploadWriter {
    async fn open(self: Box<Self>, start: Start) -> Result<Box<dyn ArchiveWriter>, WriteError> {
        let Self {
            s3,
            store,
            file,
            upload,
        } = *self;
        Ok(Box::new(
            S3Writer::open(&s3, &store, &file, start, upload).await?,
        ))
    }
}

impl S3Writer {
    /// Continues `resumed` from the start's offset (a part boundary), or starts a new
    /// upload (or a single `PUT` for a file no larger than a part) when there is none.
    async fn open(
        s3: &Arc<S3Bucket>,
        store: &Db,
        row: &FileRow,
        start: Start,
        resumed: Option<ResumedUpload>,
    ) -> Result<Self, WriteError> {
        let (offset, size) = (start.offset, start.size);
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
                let part_size =
                    part_size_for(size, s3.part_size()).ok_or(ArchiveError::TooLarge { size })?;
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
                meeting_record_id: row.meeting_record_id.clone(),
                media_start_time: row.media_start_time,
                key,
                etag: start.etag,
                upload_id,
            }),
            size,
            part_size,
            max_in_flight: s3.max_parts_in_flight(),
            hash: Hash::Ready(start.hasher),
            received: offset,
            completed,
            next_index: (offset / part_size.max(1)) as usize,
            buf: BytesMut::new(),
            in_flight: JoinSet::new(),
            parts,
        })
    }

    /// Source byte range of part `index`.
    fn range(&self, index: usize) -> (u64, u64) {
        let start = index as u64 * self.part_size;
        (start, (start + self.part_size).min(self.size))
    }

    async fn append(
        &mut self,
        mut chunk: &[u8],
        cancel: &CancellationToken,
    ) -> Result<(), WriteError> {
        if self.target.upload_id.is_none() {
            self.buf.extend_from_slice(chunk);
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
        let (hashed, hash_state) = tokio::sync::oneshot::channel();
        let previous = std::mem::replace(&mut self.hash, Hash::Ready(Sha256::new()));
        let part = data.clone();
        self.hash = Hash::Running(tokio::spawn(async move {
            let hasher = previous.wait().await?;
            let hasher = hash_on_blocking_pool(hasher, part).await;
            let _ = hashed.send(hash_state::save(&hasher));
            Some(hasher)
        }));
        let target = Arc::clone(&self.target);
        self.in_flight.spawn(async move {
            let upload_id = target.upload_id.as_deref().unwrap_or_default();
            let part_id = target
                .s3
                .put_part(&target.key, upload_id, index, data)
                .await?;
            let hash_state = hash_state
                .await
                .map_err(|_| Mismatch::HashLost { what: "part" })?;
            let part = PartRow {
                part_index: index as u64,
                part_id,
                start_offset: start,
                end_offset: end,
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
    ) -> Result<(), WriteError> {
        while self.in_flight.len() > limit {
            let joined = match cancel {
                Some(cancel) => tokio::select! {
                    joined = self.in_flight.join_next() => joined,
                    () = cancel.cancelled() => return Err(WriteError::Cancelled),
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
    async fn let_parts_land(&mut self) {
        let _ = tokio::time::timeout(PAUSE_GRACE, async {
            while let Some(joined) = self.in_flight.join_next().await {
                if let Ok(Err(e)) = joined {
                    tracing::debug!(file = %self.target.record_file_id, error = %crate::errors::chain(&e), "a part did not land");
                }
            }
        })
        .await;
        self.stop_parts().await;
    }

    async fn stop_parts(&mut self) {
        if let Hash::Running(hashing) = &self.hash {
            hashing.abort();
        }
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        self.buf = BytesMut::new();
    }

    /// What a failed part means for the file: a vanished upload cannot be continued, so it
    /// is forgotten and the next attempt starts a new one from zero; otherwise the parts
    /// still on their way may land and become the resume point.
    async fn fail(&mut self, error: WriteError) -> WriteError {
        if !matches!(error, WriteError::Archive(ArchiveError::UploadGone { .. })) {
            self.let_parts_land().await;
            return error;
        }
        self.stop_parts().await;
        tracing::warn!(file = %self.target.record_file_id, key = %self.target.key, "the upload is gone from the bucket; starting the file over");
        match self.forget_upload().await {
            Ok(()) => error,
            Err(e) => e,
        }
    }

    async fn forget_upload(&self) -> Result<(), WriteError> {
        let id = &self.target.record_file_id;
        self.target.store.delete_upload(id).await?;
        self.target.store.forget_progress(id).await?;
        Ok(())
    }

    async fn complete(&mut self, cancel: &CancellationToken) -> Result<Written, WriteError> {
        match self.finish_inner(cancel).await {
            Ok(written) => Ok(written),
            Err(e @ WriteError::Archive(ArchiveError::SizeMismatch { .. })) => {
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

    /// Makes the object whole (the last parts, or the single `PUT`), checks it, and locks
    /// it as `retention` asks before it counts as written.
    async fn finish_inner(&mut self, cancel: &CancellationToken) -> Result<Written, WriteError> {
        let whole = match &self.target.upload_id {
            // A single PUT: the buffer is the file.
            None => Some(std::mem::take(&mut self.buf).freeze()),
            Some(_) => None,
        };
        let hash = std::mem::replace(&mut self.hash, Hash::Ready(Sha256::new()));
        let mut hasher = hash
            .wait()
            .await
            .ok_or(Mismatch::HashLost { what: "file" })?;
        if let Some(data) = &whole {
            hasher = hash_on_blocking_pool(hasher, data.clone()).await;
        }
        let sha256 = hex::encode(hasher.finalize());
        let metadata = match whole {
            Some(data) => {
                let target = &self.target;
                target.s3.put(&target.key, data, Some(&sha256)).await?;
                true
            }
            None => self.complete_upload(&sha256, cancel).await?,
        };
        self.check_object(&sha256, metadata).await?;
        let held = self.lock_object().await?;
        Ok(Written {
            size: self.size,
            sha256,
            location: self.target.key.to_string(),
            held,
        })
    }

    /// Completes the multipart upload (unless an earlier attempt did) and gives the object
    /// its `sha256` metadata; returns whether it could (S3 copies at most 5 GiB at once).
    async fn complete_upload(
        &mut self,
        sha256: &str,
        cancel: &CancellationToken,
    ) -> Result<bool, WriteError> {
        let target = Arc::clone(&self.target);
        let (s3, key) = (&target.s3, &target.key);
        if !self.completed {
            self.reap(0, Some(cancel)).await?;
            let count = self.size.div_ceil(self.part_size) as usize;
            if !self.parts.keys().copied().eq(0..count) {
                return Err(Mismatch::PartsMissing {
                    uploaded: self.parts.len(),
                    count,
                }
                .into());
            }
            let parts = std::mem::take(&mut self.parts).into_values().collect();
            let upload_id = target.upload_id.as_deref().unwrap_or_default();
            s3.complete(key, upload_id, parts).await?;
            target
                .store
                .mark_upload_completed(&target.record_file_id)
                .await?;
            self.completed = true;
        }
        let metadata = self.size <= MAX_COPY_SIZE;
        if metadata {
            s3.set_sha256(key, sha256).await?;
        } else {
            tracing::warn!(
                file = %target.record_file_id, %key,
                "objects over 5 GiB cannot be given sha256 metadata after their upload \
                 (S3 copies at most 5 GiB at once); the hash is in the database and \
                 meeting.json"
            );
        }
        Ok(metadata)
    }

    /// The object as the bucket holds it now: the announced size, and no other hash than
    /// `sha256` in its metadata (`metadata`: it was given one).
    async fn check_object(&self, sha256: &str, metadata: bool) -> Result<(), WriteError> {
        let (s3, key) = (&self.target.s3, &self.target.key);
        match s3.head(key).await? {
            Some(info) if info.size == self.size => match info.sha256 {
                Some(stored) if stored != sha256 => Err(Mismatch::StoredHash {
                    stored,
                    sha256: sha256.to_string(),
                }
                .into()),
                None if metadata => {
                    tracing::warn!(
                        file = %self.target.record_file_id, %key,
                        "the bucket dropped the sha256 metadata; the hash is in the database"
                    );
                    Ok(())
                }
                _ => Ok(()),
            },
            other => Err(ArchiveError::SizeMismatch {
                key: key.to_string(),
                got: other.map_or(0, |i| i.size),
                expected: self.size,
            }
            .into()),
        }
    }

    /// Retains the object (and puts a legal hold on it if its recording is held) before
    /// it counts as written: a failure here is retried like the upload. Returns whether
    /// it is held.
    async fn lock_object(&self) -> Result<bool, WriteError> {
        let target = &self.target;
        target
            .s3
            .retain(&target.key, target.media_start_time)
            .await?;
        let held = !target
            .store
            .holds_on(&target.meeting_record_id)
            .await?
            .is_empty();
        if held {
            target.s3.legal_hold(&target.key, true).await?;
        }
        Ok(held)
    }
}

#[async_trait]
impl ArchiveWriter for S3Writer {
    fn received(&self) -> u64 {
        self.received
    }

    async fn write(&mut self, chunk: Bytes, cancel: &CancellationToken) -> Result<(), WriteError> {
        self.append(&chunk, cancel).await
    }

    async fn pause(&mut self) -> Result<(), WriteError> {
        self.let_parts_land().await;
        Ok(())
    }

    async fn abandon(&mut self) {
        self.stop_parts().await;
    }

    async fn finish(&mut self, cancel: &CancellationToken) -> Result<Written, WriteError> {
        self.complete(cancel).await
    }
}

/// A running SHA-256: known, or being computed for the parts dispatched so far.
enum Hash {
    Ready(Sha256),
    /// `None` if a part's hashing was stopped (the writer is being torn down).
    Running(tokio::task::JoinHandle<Option<Sha256>>),
}

impl Hash {
    async fn wait(self) -> Option<Sha256> {
        match self {
            Self::Ready(hasher) => Some(hasher),
            Self::Running(hashing) => match hashing.await {
                Ok(hasher) => hasher,
                Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Err(_) => None,
            },
        }
    }
}

/// `hasher` continued over `data`, on the blocking pool (SHA-256 is CPU-bound: about 1 GB/s
/// on a core, which the receive loop must not spend).
async fn hash_on_blocking_pool(mut hasher: Sha256, data: Bytes) -> Sha256 {
    tokio::task::spawn_blocking(move || {
        hasher.update(&data);
        hasher
    })
    .await
    .expect("hashing does not panic")
}

/// Aborts the upload of a file that will not be retried (its attempts ran out), so its
/// parts stop costing storage; failures are only logged: the lifecycle rule is the net.
pub(super) async fn abort(
    s3: &S3Bucket,
    store: &Db,
    record_file_id: &RecordFileId,
) -> Result<(), DbError> {
    let Some(upload) = store.upload(record_file_id).await? else {
        return Ok(());
    };
    let key = stored_key(&upload.object_key);
    match s3.abort(&key, &upload.upload_id).await {
        Ok(()) => {
            tracing::info!(file = %record_file_id, %key, "aborted the upload of a failed file");
        }
        Err(e) => {
            tracing::warn!(file = %record_file_id, %key, error = %crate::errors::chain(&e), "could not abort the upload of a failed file");
        }
    }
    store.delete_upload(record_file_id).await?;
    store.forget_progress(record_file_id).await?;
    Ok(())
}
