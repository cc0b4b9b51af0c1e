//! The worker pool: `download.workers` transfers at once, each retried, given a fresh
//! address just in time (`addresses`) and resumed until its file is archived or its
//! attempts run out.

mod addresses;
mod hash_state;
mod s3_sink;
mod sink;
mod transfer;

pub use transfer::{TransferError, address_is_fresh};

use crate::api::{ApiClient, ApiError, ErrorClass, backoff};
use crate::config::DownloadConfig;
use crate::storage::{Storage, StorageError};
use crate::store::{FileRow, FileStatus, Store, StoreError};
use addresses::Addresses;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often an idle worker looks for new work while the listing still runs.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// An error that stops every worker: the admin must fix something first.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The API refused in a way only the admin can fix (credentials, permission).
    #[error(transparent)]
    Api(ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bucket refused the credentials or the operation (see `StorageError::is_fatal`).
    #[error(transparent)]
    Storage(StorageError),
}

/// What the pool did in this run.
#[derive(Debug, Default, Clone, Copy)]
pub struct PoolReport {
    pub archived: u64,
    pub bytes: u64,
}

pub struct Downloader {
    http: reqwest::Client,
    store: Store,
    storage: Storage,
    addresses: Addresses,
    config: DownloadConfig,
    archived: AtomicU64,
    bytes: AtomicU64,
    /// Observed bytes per second of one transfer (moving average), to tell whether an
    /// address will outlive the transfer about to start on it.
    throughput: std::sync::Mutex<Option<f64>>,
    meeting_json_lock: tokio::sync::Mutex<()>,
}

impl Downloader {
    pub fn new(
        store: Store,
        storage: Storage,
        api: Arc<ApiClient>,
        config: DownloadConfig,
    ) -> Result<Self, reqwest::Error> {
        // No whole-request timeout: a multi-GB body legitimately takes long; a read timeout
        // catches a stalled connection. No decompression: offsets must be raw bytes.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(config.read_timeout)
            .user_agent(concat!("wemeet-archiver/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(reqwest::Error::without_url)?;
        tracing::info!(archive = %storage.describe(), "recordings go to");
        Ok(Self {
            http,
            addresses: Addresses::new(api, store.clone()),
            store,
            storage,
            config,
            archived: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            throughput: std::sync::Mutex::new(None),
            meeting_json_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Runs `download.workers` workers until the queue is empty and `listing_done` is set,
    /// or until `cancel` fires (then every transfer in flight checkpoints and stops).
    pub async fn run(
        self: Arc<Self>,
        listing_done: Arc<AtomicBool>,
        cancel: CancellationToken,
    ) -> Result<PoolReport, PoolError> {
        // A crash between archiving a file and writing its meeting.json left that folder's
        // meeting.json behind (and maybe a meeting.json.tmp): bring them up to date first.
        for dir in self.store.dirs_with_stale_meeting_json().await? {
            if let Err(e) = self.write_meeting_json(&dir).await {
                tracing::warn!(%dir, error = %e, "could not rewrite meeting.json");
            }
        }
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
        match first_error {
            Some(e) => Err(e),
            None => Ok(PoolReport {
                archived: self.archived.load(Ordering::Relaxed),
                bytes: self.bytes.load(Ordering::Relaxed),
            }),
        }
    }

    async fn work(
        &self,
        listing_done: &AtomicBool,
        cancel: &CancellationToken,
    ) -> Result<(), PoolError> {
        while !cancel.is_cancelled() {
            // Read the flag before claiming: work queued before it was set is then seen.
            let done = listing_done.load(Ordering::Acquire);
            match self.store.claim_next().await? {
                Some(row) => self.process(row, cancel).await?,
                None if done => break,
                None => {
                    tokio::select! {
                        () = tokio::time::sleep(IDLE_POLL) => {}
                        () = cancel.cancelled() => {}
                    }
                }
            }
        }
        Ok(())
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

    /// Drives one claimed file to `archived` or `failed`, or back to the queue on shutdown.
    async fn process(&self, claimed: FileRow, cancel: &CancellationToken) -> Result<(), PoolError> {
        let id = claimed.record_file_id;
        loop {
            let Some(row) = self.store.file(&id).await? else {
                return Ok(());
            };
            let started = std::time::Instant::now();
            let error = match self.attempt(&row, cancel).await {
                Ok(sha256) => {
                    let fetched = (row.record_size - row.bytes_done.max(0)).max(0) as u64;
                    self.observe_throughput(fetched, started.elapsed());
                    tracing::info!(file = %id, path = %row.path, bytes = row.record_size, %sha256, "archived");
                    self.archived.fetch_add(1, Ordering::Relaxed);
                    self.bytes
                        .fetch_add(row.record_size as u64, Ordering::Relaxed);
                    if let Err(e) = self.write_meeting_json(&row.dir).await {
                        tracing::warn!(file = %id, error = %e, "could not write meeting.json");
                    }
                    return Ok(());
                }
                Err(TransferError::Cancelled) => {
                    self.store.release(&id, None).await?;
                    return Ok(());
                }
                Err(TransferError::Store(e)) => return Err(e.into()),
                Err(TransferError::Storage(e)) if e.is_fatal() => {
                    // Credentials or the bucket's policy: every transfer would fail alike.
                    self.store.release(&id, Some(&e.to_string())).await?;
                    return Err(PoolError::Storage(e));
                }
                Err(TransferError::Storage(e)) if e.is_disk_full() => {
                    // Not the file's fault: pause without spending an attempt, and say why
                    // where `status` shows it.
                    tracing::error!(file = %id, error = %e, "transfer paused");
                    self.store.note_error(&id, &e.to_string()).await?;
                    tokio::select! {
                        () = tokio::time::sleep(self.config.disk_full_retry) => {}
                        () = cancel.cancelled() => {}
                    }
                    continue;
                }
                Err(e @ TransferError::AddressRejected(_)) => {
                    // Revoked or expired early: the next attempt must fetch a new one.
                    self.store.forget_address(&id).await?;
                    e
                }
                Err(TransferError::Api(e)) if e.class() == ErrorClass::Fatal => {
                    self.store.release(&id, Some(&e.to_string())).await?;
                    return Err(PoolError::Api(e));
                }
                Err(e) => e,
            };
            // What the API says cannot be downloaded is `unavailable`, not `failed`: an
            // explicit refusal at once, a missing address once the attempts ran out.
            let (exhausted, now) = match &error {
                TransferError::Api(e) if e.class() == ErrorClass::GiveUp => {
                    (FileStatus::Unavailable, true)
                }
                TransferError::NoAddress => (FileStatus::Unavailable, false),
                _ => (FileStatus::Failed, false),
            };
            let status = self
                .store
                .record_failure(
                    &id,
                    &error.to_string(),
                    self.config.max_attempts,
                    exhausted,
                    now,
                )
                .await?;
            if status != FileStatus::Transferring {
                if status == FileStatus::Unavailable {
                    tracing::error!(file = %id, path = %row.path, error = %error, "the API gives no way to download this file");
                } else {
                    tracing::error!(file = %id, path = %row.path, error = %error, "giving up on this file");
                }
                if let Storage::S3(s3) = &self.storage {
                    // Its parts would cost storage until a lifecycle rule expired them;
                    // `--retry-failed` starts it over anyway.
                    s3_sink::abort_upload(s3, &self.store, &id).await?;
                }
                return Ok(());
            }
            let delay = backoff(row.attempts as u32 + 1);
            tracing::warn!(file = %id, error = %error, retry_in_ms = delay.as_millis() as u64, "transfer failed; will retry");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => {
                    self.store.release(&id, None).await?;
                    return Ok(());
                }
            }
        }
    }

    /// Writes `meeting.json` beside the recordings: the metadata of every meeting stored in
    /// that folder (a recurring meeting can share one), never passwords nor addresses.
    ///
    /// Writes are serialised: two workers finishing files of one folder would otherwise
    /// share its temporary file.
    async fn write_meeting_json(&self, dir: &str) -> Result<(), Box<dyn std::error::Error>> {
        let _one_at_a_time = self.meeting_json_lock.lock().await;
        let read_at = crate::store::now_ms();
        let mut meetings = Vec::new();
        for m in self.store.meetings_in_dir(dir).await? {
            let files: Vec<_> = self
                .store
                .files_of_meeting(&m.meeting_record_id)
                .await?
                .into_iter()
                .map(|f| {
                    serde_json::json!({
                        "record_file_id": f.record_file_id,
                        "file": f.path.rsplit('/').next(),
                        "record_size": f.record_size,
                        "sha256": f.sha256,
                        "status": f.status,
                    })
                })
                .collect();
            let mut value = serde_json::to_value(&m)?;
            value["files"] = files.into();
            meetings.push(value);
        }
        let json = serde_json::to_vec_pretty(&serde_json::json!({ "meetings": meetings }))?;
        self.storage
            .write_small(&format!("{dir}/meeting.json"), &json)
            .await?;
        self.store.meeting_json_written(dir, read_at).await?;
        Ok(())
    }
}
