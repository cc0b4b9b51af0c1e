//! The worker pool: `download.workers` transfers at once, each given a fresh address just
//! in time (`addresses`), judged before a byte is written (`response`), streamed into the
//! archive (`attempt`), retried by the program's retry policy and resumed from its last
//! checkpoint until its file is archived or its attempts run out.
//!
//! Idle workers wait on the store's queue notification (files queued, a claimed file put
//! back, the listing done), not on a timer: a one-file backfill ends when its file does.

mod addresses;
mod adopt;
mod attempt;
mod response;

use crate::archive::meeting_json;
pub use attempt::TransferError;

use crate::archive::{Archive, Written};
use crate::client::ApiClient;
use crate::config::TransferConfig;
use crate::domain::RecordFileId;
use crate::errors::Class;
use crate::progress::Progress;
use crate::state::{Db, DbError, Exhaust, FileKind, FileRow, FileStatus};
use crate::time::UnixMs;
use addresses::{Addresses, ArtifactPolicy};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// An error that stops every worker.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// An attempt met what only the admin can fix (credentials, a permission, the
    /// bucket's policy): every transfer would fail alike.
    #[error(transparent)]
    Stopped(TransferError),
}

impl PoolError {
    /// Nothing goes on without the database; anything else is the stopping attempt's.
    pub fn class(&self) -> Class {
        match self {
            Self::Db(_) => Class::Stop,
            Self::Stopped(e) => e.class(),
        }
    }
}

/// A failed attempt that stops the pool: the database's failure is the pool's own.
impl From<TransferError> for PoolError {
    fn from(e: TransferError) -> Self {
        e.database().map_or_else(Self::Stopped, Self::Db)
    }
}

/// What the pool did in this run.
#[derive(Debug, Default, Clone)]
pub struct PoolReport {
    /// Files archived, adopted ones included.
    pub archived: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Files whose intact copy was found at their destination: nothing downloaded.
    pub adopted: u64,
    /// Copies found at a file's destination that were not the file, replaced by a fresh
    /// download once it was complete and checked.
    pub replaced: Vec<Replaced>,
}

/// A copy at a file's destination that was replaced, and why it was not adopted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replaced {
    pub path: String,
    pub reason: String,
}

pub struct Pool {
    http: reqwest::Client,
    store: Db,
    archive: Arc<dyn Archive>,
    addresses: Addresses,
    artifacts: ArtifactPolicy,
    /// How long after a look at a meeting's artifacts it may be looked at again (for a
    /// transcript that is not there yet): the service's poll interval.
    recheck: Duration,
    config: TransferConfig,
    archived: AtomicU64,
    bytes: AtomicU64,
    adopted: AtomicU64,
    /// Copies not adopted, by file, until their replacement is archived; then reported.
    replacing: std::sync::Mutex<std::collections::HashMap<RecordFileId, String>>,
    replaced: std::sync::Mutex<Vec<Replaced>>,
    /// Files archived, bytes received, transfers in flight: for a display.
    progress: Progress,
    /// Observed bytes per second of one transfer (moving average), to tell whether an
    /// address will outlive the transfer about to start on it.
    throughput: std::sync::Mutex<Option<f64>>,
    /// Transfers paused by a full disk, in all: a pause leaves no trace in the database
    /// (no attempt is spent), so the service's `/metrics` counts them here.
    disk_full_pauses: prometheus_client::metrics::counter::Counter,
    /// Wakes the writer of `meeting.json` (a file was archived: its folder is behind).
    folder_changed: tokio::sync::Notify,
}

impl Pool {
    /// `http` is the process's HTTP client ([`crate::client::http_client`], with
    /// `download.read_timeout`); a meeting's artifacts are looked for again at most every
    /// `recheck`.
    pub fn new(
        store: Db,
        archive: Arc<dyn Archive>,
        api: Arc<ApiClient>,
        http: reqwest::Client,
        config: TransferConfig,
        recheck: Duration,
    ) -> Self {
        tracing::info!(archive = %archive.describe(), "recordings go to");
        let artifacts = ArtifactPolicy {
            audio: config.wants(FileKind::Audio),
            transcripts: config.wants(FileKind::Transcript),
            wait: config.artifact_wait,
        };
        Self {
            http,
            addresses: Addresses::new(api, store.clone(), artifacts),
            artifacts,
            recheck,
            store,
            archive,
            config,
            archived: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            adopted: AtomicU64::new(0),
            replacing: std::sync::Mutex::default(),
            replaced: std::sync::Mutex::default(),
            progress: Progress::default(),
            throughput: std::sync::Mutex::new(None),
            disk_full_pauses: Default::default(),
            folder_changed: tokio::sync::Notify::new(),
        }
    }

    /// The count of transfers paused by a full disk (clones share it), for `/metrics`.
    pub fn disk_full_pauses(&self) -> prometheus_client::metrics::counter::Counter {
        self.disk_full_pauses.clone()
    }

    /// Counts into `progress` (a job's display) instead of a handle nobody reads.
    pub fn with_progress(self, progress: Progress) -> Self {
        Self { progress, ..self }
    }

    /// Runs `download.workers` workers until the queue is empty and `listing_done` is set,
    /// or until `cancel` fires (then every transfer in flight checkpoints and stops). Set
    /// `listing_done` with [`Db::wake_workers`] after it, so idle workers see it.
    pub async fn run(
        self: Arc<Self>,
        listing_done: Arc<AtomicBool>,
        cancel: CancellationToken,
    ) -> Result<PoolReport, PoolError> {
        // A crash between archiving a file and writing its meeting.json left that folder's
        // meeting.json behind (and maybe a meeting.json.tmp): bring them up to date first.
        meeting_json::rewrite_stale(&self.store, self.archive.as_ref()).await?;
        // meeting.json is written once per burst of changes to its folder, beside the
        // workers, rather than by each worker after each file.
        let stop_json = CancellationToken::new();
        let json_writer = tokio::spawn({
            let this = Arc::clone(&self);
            let stop = stop_json.clone();
            async move {
                meeting_json::write_when_quiet(
                    &this.store,
                    this.archive.as_ref(),
                    &this.folder_changed,
                    &stop,
                )
                .await
            }
        });
        // Transcripts archived before the index existed, or whose indexing failed: two
        // queries when there are none.
        crate::transcripts::fill_index(&self.store, self.archive.as_ref()).await?;
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.config.workers {
            let this = Arc::clone(&self);
            let done = Arc::clone(&listing_done);
            let cancel = cancel.clone();
            workers.spawn(async move { this.work(&done, &cancel).await });
        }
        let mut first_error = None;
        while let Some(joined) = workers.join_next().await {
            let result = joined.unwrap_or_else(|e| panic!("download worker panicked: {e}"));
            if let Err(e) = result {
                // A fatal error (bad credentials, database gone) stops the others too.
                cancel.cancel();
                first_error.get_or_insert(e);
            }
        }
        stop_json.cancel();
        let json_written = json_writer
            .await
            .unwrap_or_else(|e| panic!("meeting.json writer panicked: {e}"));
        if let Err(e) = json_written {
            first_error.get_or_insert(e.into());
        }
        if first_error.is_none() {
            // The folders of the last burst, and one that could not be written meanwhile
            // (a full disk), get written now.
            meeting_json::rewrite_stale(&self.store, self.archive.as_ref()).await?;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(PoolReport {
                archived: self.archived.load(Ordering::Relaxed),
                bytes: self.bytes.load(Ordering::Relaxed),
                adopted: self.adopted.load(Ordering::Relaxed),
                replaced: std::mem::take(
                    &mut *self.replaced.lock().unwrap_or_else(|e| e.into_inner()),
                ),
            }),
        }
    }

    async fn work(
        &self,
        listing_done: &AtomicBool,
        cancel: &CancellationToken,
    ) -> Result<(), PoolError> {
        while !cancel.is_cancelled() {
            // Registered before looking, so a file queued after the look still wakes us.
            let queued = self.store.queue_changed();
            tokio::pin!(queued);
            queued.as_mut().enable();
            // Read the flag before claiming: work queued before it was set is then seen.
            let done = listing_done.load(Ordering::Acquire);
            if let Some(row) = self.store.claim_next().await? {
                self.process(row, cancel).await?;
                continue;
            }
            if self.look_for_artifacts().await? {
                continue;
            }
            if done {
                break;
            }
            tokio::select! {
                () = queued => {}
                () = cancel.cancelled() => {}
            }
        }
        Ok(())
    }

    /// Looks at one meeting whose artifacts are due for a look, if any; true if it did.
    async fn look_for_artifacts(&self) -> Result<bool, PoolError> {
        if !self.artifacts.any() {
            return Ok(false);
        }
        let due = self
            .store
            .claim_artifact_check(self.artifacts.transcripts, UnixMs::now() - self.recheck)
            .await?;
        let Some(meeting) = due else {
            return Ok(false);
        };
        let Err(e) = self.addresses.look_for_artifacts(&meeting).await else {
            return Ok(true);
        };
        match e.class() {
            Class::Stop => return Err(TransferError::from(e).into()),
            Class::GiveUp => {
                // The API refuses the meeting (gone, say): nothing to look for there.
                tracing::warn!(%meeting, error = %crate::errors::chain(&e), "no artifacts to look for");
            }
            Class::Retry | Class::RetryLater | Class::RefreshAddress => {
                tracing::warn!(%meeting, error = %crate::errors::chain(&e), "could not look for artifacts; trying again later");
                self.store.release_artifact_check(&meeting).await?;
            }
        }
        Ok(true)
    }

    /// How long `bytes` take at the observed throughput (zero before anything was observed).
    fn time_needed(&self, bytes: u64) -> Duration {
        let rate = *self.throughput.lock().unwrap_or_else(|e| e.into_inner());
        rate.filter(|r| *r > 0.0).map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64(bytes as f64 / r)
        })
    }

    fn observe_throughput(&self, bytes: u64, took: Duration) {
        if bytes < 1024 * 1024 || took.is_zero() {
            return; // too small to say anything about the network
        }
        let sample = bytes as f64 / took.as_secs_f64();
        let mut rate = self.throughput.lock().unwrap_or_else(|e| e.into_inner());
        *rate = Some(rate.map_or(sample, |r| 0.7 * r + 0.3 * sample));
    }

    /// Drives one claimed file to `archived`, `failed` or `unavailable`, or back to the
    /// queue on shutdown.
    async fn process(&self, claimed: FileRow, cancel: &CancellationToken) -> Result<(), PoolError> {
        match self.adopt(&claimed).await {
            Ok(adopt::Adoption::Adopted) => {
                self.adopted.fetch_add(1, Ordering::Relaxed);
                self.archived.fetch_add(1, Ordering::Relaxed);
                self.progress.file_done();
                return Ok(());
            }
            Ok(adopt::Adoption::Absent) => {}
            Ok(adopt::Adoption::Replace(reason)) => {
                tracing::warn!(file = %claimed.record_file_id, path = %claimed.path, %reason, "the copy at this path is not the file: downloading it again; it replaces the copy once complete and checked");
                self.replacing
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(claimed.record_file_id.clone(), reason);
            }
            Err(e) => return Err(e.into()),
        }
        let id = claimed.record_file_id;
        let mut delays = crate::retry::transfer_delays();
        loop {
            let Some(row) = self.store.file(&id).await? else {
                return Ok(());
            };
            let started = std::time::Instant::now();
            let error = match self.attempt(&row, cancel).await {
                Ok(written) => {
                    let fetched = row.record_size.saturating_sub(row.bytes_done);
                    self.observe_throughput(fetched, started.elapsed());
                    self.archived_one(&row, &written).await;
                    return Ok(());
                }
                Err(e) => e,
            };
            let error = match self.triage(&row, error, cancel).await? {
                Triage::Done => return Ok(()),
                Triage::Again => continue,
                Triage::Failed(error) => error,
            };
            let reason = crate::errors::chain(&error);
            // What the API says cannot be downloaded is `unavailable`, not `failed`: an
            // explicit refusal at once, a missing address once the attempts ran out.
            let exhaust = match error.class() {
                Class::GiveUp => Exhaust::AtOnce,
                _ => Exhaust::After(self.config.max_attempts),
            };
            let status = self
                .store
                .record_failure(&id, &reason, error.exhausted(), exhaust)
                .await?;
            if status != FileStatus::Transferring {
                if status == FileStatus::Unavailable {
                    tracing::error!(file = %id, path = %row.path, error = %reason, "the API gives no way to download this file");
                } else {
                    tracing::error!(file = %id, path = %row.path, error = %reason, "giving up on this file");
                }
                // What a half-written copy holds (an upload's parts) would cost storage
                // until a lifecycle rule expired it; `--retry-failed` starts it over.
                self.archive.discard(&id).await?;
                return Ok(());
            }
            let delay = delays.next().unwrap_or(Duration::from_secs(60));
            tracing::warn!(file = %id, error = %reason, retry_in_ms = delay.as_millis() as u64, "transfer failed; will retry");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => {
                    self.store.release(&id, None).await?;
                    return Ok(());
                }
            }
        }
    }

    /// Sorts a failed attempt: stop (shutdown, or an error only the admin can fix), try
    /// again without spending an attempt (a full disk), or count it as a failure.
    async fn triage(
        &self,
        row: &FileRow,
        error: TransferError,
        cancel: &CancellationToken,
    ) -> Result<Triage, PoolError> {
        let id = &row.record_file_id;
        if error.is_shutdown() {
            self.store.release(id, None).await?;
            return Ok(Triage::Done);
        }
        match error.class() {
            Class::Stop => {
                // The database failed: nothing more is written.
                let error = match error.database() {
                    Ok(db) => return Err(db.into()),
                    Err(error) => error,
                };
                // Every transfer would fail alike: the file goes back with why, the pool
                // stops.
                self.store
                    .release(id, Some(&crate::errors::chain(&error)))
                    .await?;
                Err(error.into())
            }
            Class::RetryLater => {
                // Not the file's fault (a full disk): pause without spending an attempt,
                // and say why where `status` shows it.
                let reason = crate::errors::chain(&error);
                tracing::error!(file = %id, error = %reason, "transfer paused");
                self.store.note_error(id, &reason).await?;
                self.disk_full_pauses.inc();
                tokio::select! {
                    () = tokio::time::sleep(self.config.disk_full_retry) => {}
                    () = cancel.cancelled() => {}
                }
                Ok(Triage::Again)
            }
            Class::RefreshAddress => {
                // Revoked or expired early: the next attempt must fetch a new one.
                self.store.forget_address(id).await?;
                Ok(Triage::Failed(error))
            }
            Class::Retry | Class::GiveUp => Ok(Triage::Failed(error)),
        }
    }

    async fn archived_one(&self, row: &FileRow, written: &Written) {
        let sha256 = &written.sha256;
        tracing::info!(file = %row.record_file_id, path = %row.path, location = %written.location, bytes = written.size, %sha256, "archived");
        self.archived.fetch_add(1, Ordering::Relaxed);
        self.progress.file_done();
        let replacing = self
            .replacing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&row.record_file_id);
        if let Some(reason) = replacing {
            tracing::warn!(file = %row.record_file_id, path = %row.path, %reason, "replaced the copy that was at this path");
            self.replaced
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Replaced {
                    path: row.path.clone(),
                    reason,
                });
        }
        self.bytes.fetch_add(row.record_size, Ordering::Relaxed);
        // Its folder was marked behind with the file: the writer takes it from there.
        self.folder_changed.notify_one();
        // After the file counts as archived: a failure here leaves it for the next fill.
        if let Err(e) =
            crate::transcripts::index_archived(&self.store, self.archive.as_ref(), row, sha256)
                .await
        {
            tracing::warn!(file = %row.record_file_id, error = %crate::errors::chain(&e), "transcript not indexed; the next fill of the index retries");
        }
    }
}

/// What a failed attempt leads to.
enum Triage {
    /// Nothing more to do with this file now.
    Done,
    /// Try again at once, without counting an attempt.
    Again,
    /// Count the attempt; retry after a backoff or give up.
    Failed(TransferError),
}
