//! The jobs the CLI runs, bootable in-process by tests: open state, list, download, prune,
//! report.

mod expire;
mod reindex;
mod relayout;

pub use expire::{ExpireError, ExpireOutcome, ExpireReport};
pub use reindex::ReindexReport;
pub use relayout::RelayoutReport;

use crate::archive::marker::{self, Marker, MarkerError};
use crate::archive::{self, Archive, ArchiveError};
use crate::budget::{Budget, Priority};
use crate::census::{Census, ListError, WindowListing, split_windows};
use crate::client::{ApiClient, Budgets};
use crate::config::Config;
use crate::domain::Window;
use crate::errors::Class;
use crate::progress::Progress;
use crate::prune::{Mode, PruneError, PruneReport, Pruner};
use crate::state::{ArtifactsWanted, Db, DbError, FileKind, FileStatus};
use crate::time::UnixMs;
use crate::transfer::{Pool, PoolError, PoolReport, Replaced};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;
use wemeet_api::Endpoint;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "another wemeet-archiver process is using {0}; stop it first (or point this one at \
         another database.path)"
    )]
    Locked(PathBuf),
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the HTTP client")]
    Http(#[source] reqwest::Error),
    #[error("metrics.listen {listen}: cannot listen there")]
    MetricsListen {
        listen: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("webhook.listen {listen}: cannot listen there")]
    WebhookListen {
        listen: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A listing failed (after its retries), or the API refused in a way that no retry can
    /// fix (credentials, permission).
    #[error(transparent)]
    List(ListError),
    /// The transfers stopped: the API or the archive refused in a way only the admin can
    /// fix.
    #[error(transparent)]
    Pool(PoolError),
    /// The archive cannot be opened or written (S3 credentials, bucket policy, client
    /// setup).
    #[error(transparent)]
    Archive(ArchiveError),
    /// `prune` refused to run (`prune.enabled`), or the API stopped it.
    #[error(transparent)]
    Prune(PruneError),
    /// `expire` refused to run (`retention.keep`, `retention.expire`).
    #[error(transparent)]
    Expire(#[from] ExpireError),
    /// The archive's audit trail could not be read back into a new database.
    #[error(transparent)]
    Audit(Box<crate::audit::AuditError>),
    /// `storage.layout` is not the template the archive was made with.
    #[error(
        "storage.layout is `{configured}`, but this archive was laid out with `{recorded}`; \
         files never move by themselves: run `wemeet-archiver relayout --dry-run` to see \
         what would move and `wemeet-archiver relayout` to move them, or set \
         storage.layout back to `{recorded}`"
    )]
    LayoutChanged {
        recorded: String,
        configured: String,
    },
    /// The archive holds another account's recordings (its marker says so).
    #[error(
        "api.app_id is `{configured}`, but {archive} holds the recordings of AppId \
         `{recorded}` (see its {marker}); one archive never mixes two accounts: point \
         storage.path (or storage.s3.prefix) at another archive, or set api.app_id to \
         `{recorded}`",
        marker = crate::archive::marker::MARKER
    )]
    OtherAccount {
        archive: String,
        recorded: String,
        configured: String,
    },
    /// `reindex` could not list the archive's objects.
    #[error("cannot list {archive}")]
    ListArchive {
        archive: String,
        #[source]
        source: Box<archive::ReadError>,
    },
    /// The archive's marker cannot be read.
    #[error(transparent)]
    Marker(#[from] Box<MarkerError>),
    /// A `relayout` towards another template was interrupted.
    #[error(
        "a relayout to storage.layout `{target}` is unfinished, but storage.layout is \
         `{configured}`; set storage.layout to `{target}` and run `wemeet-archiver relayout` \
         again to finish it"
    )]
    RelayoutInProgress { target: String, configured: String },
    /// Two files would get one path under the new layout: nothing was moved.
    #[error(
        "storage.layout would put two files at `{0}` (names that are alike once made safe); \
         nothing was moved: add {{record_file_id}} to the file name of the template"
    )]
    RelayoutCollision(String),
}

// A database that failed under a job is the process's own, whichever job met it.

impl From<PruneError> for AppError {
    fn from(e: PruneError) -> Self {
        match e {
            PruneError::Db(e) => Self::Db(e),
            other => Self::Prune(other),
        }
    }
}

impl From<PoolError> for AppError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Db(e) => Self::Db(e),
            other => Self::Pool(other),
        }
    }
}

impl From<ListError> for AppError {
    fn from(e: ListError) -> Self {
        match e {
            ListError::Db(e) => Self::Db(e),
            other => Self::List(other),
        }
    }
}

impl AppError {
    /// `Stop`: only the admin can fix it (credentials, permission, the bucket, another
    /// process on the database, the archive's layout or account): the command line's
    /// usage error. Otherwise the job is incomplete and a later run goes on (`Retry`,
    /// or the class of what failed): a database that failed under it, a listing that
    /// failed after its retries.
    pub fn class(&self) -> Class {
        match self {
            Self::Db(_)
            | Self::Lock { .. }
            | Self::Http(_)
            | Self::MetricsListen { .. }
            | Self::WebhookListen { .. } => Class::Retry,
            Self::List(e) => e.class(),
            Self::Pool(e) => e.class(),
            Self::Prune(e) => e.class(),
            Self::Locked(_)
            | Self::Archive(_)
            | Self::LayoutChanged { .. }
            | Self::OtherAccount { .. }
            | Self::Marker(_)
            | Self::ListArchive { .. }
            | Self::RelayoutInProgress { .. }
            | Self::RelayoutCollision(_)
            | Self::Audit(_)
            | Self::Expire(_) => Class::Stop,
        }
    }
}

/// What a backfill did, and what is left to do.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BackfillReport {
    pub windows: usize,
    /// Windows that could not be listed, with the reason.
    pub failed_windows: Vec<String>,
    pub meetings_seen: u64,
    pub archived_now: u64,
    pub bytes_now: u64,
    /// Of `archived_now`, the files whose intact copy was already at their destination.
    pub adopted_now: u64,
    /// Copies found at a file's destination that were not the file, replaced.
    pub replaced: Vec<Replaced>,
    /// Files of the range that are not archived: (path, status, reason).
    pub not_archived: Vec<(String, FileStatus, Option<String>)>,
    /// Meetings still recording or transcoding: their files come later.
    pub pending_meetings: usize,
    pub interrupted: bool,
    /// The reindex that followed the listing, when the database knew no file of an
    /// existing archive (see [`App::open`]).
    pub reindexed: Option<ReindexReport>,
}

impl BackfillReport {
    /// Adds what the transfers of the run did.
    fn add_transfers(&mut self, pool: PoolReport) {
        self.archived_now = pool.archived;
        self.bytes_now = pool.bytes;
        self.adopted_now = pool.adopted;
        self.replaced = pool.replaced;
    }

    /// Everything the range holds is archived (pending meetings have no files yet).
    pub fn complete(&self) -> bool {
        self.failed_windows.is_empty()
            && self.not_archived.is_empty()
            && !self.interrupted
            && self.reindexed.as_ref().is_none_or(ReindexReport::passed)
    }
}

/// The open state of one process: database, its lock, budgets, clients.
pub struct App {
    pub config: Config,
    pub store: Db,
    pub(crate) api: Arc<ApiClient>,
    /// The process's one HTTP client, shared by the API client and the downloads.
    http: reqwest::Client,
    pub(crate) lister: Arc<Census>,
    /// What the jobs of this process count as they go, for the binary to draw.
    progress: Progress,
    /// The database held no file while the archive already had a marker (the database
    /// was lost, or this is a new machine): `backfill` and `run` reindex by themselves
    /// what their listing does not bring back (see [`App::open`]).
    pub(crate) over_existing_archive: bool,
    /// Held for the life of the process: two archivers on one database would both claim
    /// and write the same files.
    _lock: File,
}

impl App {
    /// Opens the state for a job that lists or writes files: refused (exit 2) when
    /// `storage.layout` is not the archive's (see `relayout`).
    ///
    /// The archive's marker says which account and layout it holds: another account's
    /// archive is refused, and a new database over an existing archive takes the layout
    /// from it (so a changed `storage.layout` is refused as with the old database). An
    /// archive without a marker gets one.
    ///
    /// A new database over an existing archive (a marker, no file known) is not refused:
    /// each listed file's intact copy is adopted by the pool (hashed, nothing downloaded),
    /// and `backfill` and `run` then reindex by themselves what the listing cannot bring
    /// back (the files deleted in the cloud, the days outside the range).
    pub async fn open(config: Config) -> Result<Self, AppError> {
        let mut app = Box::pin(Self::open_for_relayout(config)).await?;
        let archive = app.archive()?;
        // Boxed, as the write below: a bucket's requests make large futures, and every
        // job's future would carry them.
        let marker = Box::pin(app.check_account(archive.as_ref())).await?;
        app.over_existing_archive = marker.is_some() && !app.store.knows_any_file().await?;
        if marker.is_some() {
            // Before anything is appended: a new database continues the archive's trail.
            Box::pin(crate::audit::restore_trail(&app.store, archive.as_ref()))
                .await
                .map_err(|e| AppError::Audit(Box::new(e)))?;
        }
        if app.over_existing_archive {
            tracing::warn!(archive = %archive.describe(), "the database knows no file of this existing archive: intact copies are adopted, not downloaded, and the archive is reindexed after the listing");
        }
        if let Some(m) = &marker {
            // Recorded only if the database has no layout yet (a new database).
            app.store.archive_layout(&m.layout).await?;
        }
        let configured = app.config.storage.layout.template();
        let recorded = app.store.archive_layout(configured).await?;
        if recorded != configured {
            return Err(AppError::LayoutChanged {
                recorded,
                configured: configured.into(),
            });
        }
        if marker.is_none_or(|m| m.layout != configured) {
            Box::pin(app.write_marker(archive.as_ref(), configured)).await?;
        }
        Ok(app)
    }

    /// The archive's marker, refused if it names another account than `api.app_id`.
    pub async fn check_account(&self, archive: &dyn Archive) -> Result<Option<Marker>, AppError> {
        let marker = marker::read(archive).await.map_err(Box::new)?;
        if let Some(m) = &marker
            && m.app_id != self.config.api.app_id
        {
            return Err(AppError::OtherAccount {
                archive: archive.describe(),
                recorded: m.app_id.clone(),
                configured: self.config.api.app_id.clone(),
            });
        }
        Ok(marker)
    }

    /// Records at the archive's root that it holds this account's recordings laid out
    /// with `layout`.
    pub(crate) async fn write_marker(
        &self,
        archive: &dyn Archive,
        layout: &str,
    ) -> Result<(), AppError> {
        marker::write(archive, &Marker::new(&self.config.api.app_id, layout))
            .await
            .map_err(AppError::Archive)
    }

    /// Opens the state whatever the archive's layout: only `relayout`, which moves the
    /// archive to the configured one, may work on an archive laid out otherwise.
    pub async fn open_for_relayout(config: Config) -> Result<Self, AppError> {
        let lock = lock_database(&config.database.path).await?;
        // Building the HTTP client reads the system's CA roots (hundreds of files): it
        // runs beside the database's opening and migrations instead of after them.
        let read_timeout = config.download.read_timeout;
        let http = tokio::task::spawn_blocking(move || crate::client::http_client(read_timeout));
        let store = Db::open(&config.database.path).await?;
        // One after the other: each prunes old calls, and SQLite takes one writer at a time.
        let budget = async |endpoint, limit| {
            Budget::load(store.clone(), endpoint, limit)
                .await
                .map(Arc::new)
        };
        let budgets = Budgets {
            records: budget(Endpoint::Records, config.api.requests_per_minute).await?,
            addresses: budget(Endpoint::Addresses, config.api.addresses_per_minute).await?,
            deletes: budget(Endpoint::Delete, config.api.deletes_per_minute).await?,
        };
        let http = http
            .await
            .expect("building the HTTP client does not panic")
            .map_err(AppError::Http)?;
        let api = Arc::new(ApiClient::new(config.api.clone(), budgets, http.clone()));
        let progress = Progress::default();
        let lister = Arc::new(
            Census::new(
                Arc::clone(&api),
                store.clone(),
                config.storage.layout.clone(),
                config.filter.clone(),
            )
            .with_progress(progress.clone()),
        );
        let refiltered = store.apply_filter(&config.filter).await?;
        if refiltered.skipped + refiltered.queued > 0 {
            tracing::info!(
                skipped = refiltered.skipped,
                queued = refiltered.queued,
                "[filter] applied to the files already listed"
            );
        }
        let app = Self {
            config,
            store,
            api,
            http,
            lister,
            progress,
            over_existing_archive: false,
            _lock: lock,
        };
        // Before anything is written: a bucket that cannot lock objects is refused.
        app.archive()?
            .check_promises()
            .await
            .map_err(AppError::Archive)?;
        Ok(app)
    }

    /// The counters of this process's jobs (windows, pages, files, bytes, transfers).
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The API call budgets: what each endpoint spent in the last minute.
    pub fn budgets(&self) -> &Budgets {
        self.api.budgets()
    }

    /// The configured archive.
    pub fn archive(&self) -> Result<Arc<dyn Archive>, AppError> {
        let storage = &self.config.storage;
        archive::open(
            &storage.path,
            storage.s3.as_ref(),
            self.config.download.checkpoint_bytes,
            self.store.clone(),
        )
        .map_err(AppError::Archive)
    }

    /// The download pool, writing to the configured archive.
    pub(crate) fn downloader(&self) -> Result<Arc<Pool>, AppError> {
        Ok(Arc::new(
            Pool::new(
                self.store.clone(),
                self.archive()?,
                Arc::clone(&self.api),
                self.http.clone(),
                self.config.download.clone(),
                self.config.poll.interval,
            )
            .with_progress(self.progress.clone()),
        ))
    }

    /// The prune job, on the configured archive.
    pub(crate) fn pruner(&self) -> Result<Pruner, AppError> {
        Ok(Pruner::new(
            self.store.clone(),
            self.archive()?,
            Arc::clone(&self.api),
            self.config.prune.clone(),
            ArtifactsWanted {
                audio: self.config.download.wants(FileKind::Audio),
                transcripts: self.config.download.wants(FileKind::Transcript),
            },
        ))
    }

    /// `prune [--dry-run]`: one run (see `Pruner::run`); a real one needs
    /// `prune.enabled`.
    pub async fn prune(
        &self,
        mode: Mode,
        cancel: CancellationToken,
    ) -> Result<PruneReport, AppError> {
        Ok(self.pruner()?.run(mode, &cancel).await?)
    }

    /// Lists `[since, until]` (UNIX seconds) window by window while the pool downloads what
    /// each page reveals: the queue is in SQLite, so the census may run ahead of the
    /// transfers, and the first transfer starts after the first page.
    pub async fn backfill(
        &self,
        since: i64,
        until: i64,
        retry_failed: bool,
        cancel: CancellationToken,
    ) -> Result<BackfillReport, AppError> {
        const BACKFILL: Listing = Listing {
            priority: Priority::Foreground,
            listed: "window listed",
            not_listed: "could not list window",
            stop_at_failure: false,
        };
        self.resume_interrupted().await?;
        if retry_failed {
            let n = self.store.retry_failed().await?;
            tracing::info!(files = n, "re-queued failed files");
        }
        let downloader = self.downloader()?;
        let listing_done = Arc::new(AtomicBool::new(false));
        let pool =
            tokio::spawn(Arc::clone(&downloader).run(Arc::clone(&listing_done), cancel.clone()));

        let windows = split_windows(since, until);
        self.progress.listing(windows.len() as u64);
        let mut listing = self.list_windows(&windows, &BACKFILL, &cancel);
        let listed = async {
            while listing.next().await?.is_some() {
                self.progress.window_done();
            }
            Ok::<_, AppError>(listing.listed)
        }
        .await;
        if listed.is_err() {
            // Credentials, permission, the database: the transfers stop too.
            cancel.cancel();
        }
        listing_done.store(true, Ordering::Release);
        self.store.wake_workers();
        let pool_result = pool
            .await
            .unwrap_or_else(|e| panic!("download pool panicked: {e}"));
        let listed = listed?;
        let mut report = BackfillReport {
            windows: windows.len(),
            failed_windows: listed.failed,
            meetings_seen: listed.meetings,
            interrupted: cancel.is_cancelled(),
            ..BackfillReport::default()
        };
        report.add_transfers(pool_result?);
        self.finish_backfill(&mut report, since, until, &cancel)
            .await?;
        Ok(report)
    }

    /// What a backfill leaves behind: the range's files not archived, the meetings still
    /// pending, the reindex over an existing archive, the audit trail in the archive.
    async fn finish_backfill(
        &self,
        report: &mut BackfillReport,
        since: i64,
        until: i64,
        cancel: &CancellationToken,
    ) -> Result<(), AppError> {
        report.not_archived = self
            .store
            .unarchived_in_range(UnixMs::from_secs(since), UnixMs::end_of_second(until))
            .await?
            .into_iter()
            .map(|f| (f.path, f.status, f.last_error))
            .collect();
        report.pending_meetings = self.store.pending_meetings().await?.len();
        if self.over_existing_archive && !report.interrupted {
            report.reindexed = Some(Box::pin(self.reindex(cancel)).await?);
        }
        crate::audit::write_trail_or_warn(&self.store, self.archive()?.as_ref()).await;
        Ok(())
    }

    /// Puts the transfers a killed or stopped process left in flight back in the queue:
    /// every job that transfers starts with it.
    pub(crate) async fn resume_interrupted(&self) -> Result<(), DbError> {
        let requeued = self.store.requeue_interrupted().await?;
        if requeued > 0 {
            tracing::info!(
                files = requeued,
                "resuming transfers interrupted by the last run"
            );
        }
        Ok(())
    }

    /// Lists `windows` one after the other, as `how` says, until `cancel`: each
    /// [`Windows::next`] lists one.
    pub(crate) fn list_windows<'a>(
        &'a self,
        windows: &'a [Window],
        how: &'a Listing,
        cancel: &'a CancellationToken,
    ) -> Windows<'a> {
        Windows {
            lister: &self.lister,
            windows: windows.iter(),
            how,
            cancel,
            listed: ListedWindows::default(),
        }
    }
}

/// A listing of windows under way (see [`App::list_windows`]).
pub(crate) struct Windows<'a> {
    lister: &'a Census,
    windows: std::slice::Iter<'a, Window>,
    how: &'a Listing,
    cancel: &'a CancellationToken,
    /// What the windows listed so far did.
    pub(crate) listed: ListedWindows,
}

impl Windows<'_> {
    /// Lists the next window: its listing, or why it could not be listed (the listing
    /// failed after its retries: logged at error level and kept in `listed.failed`).
    /// `None` once every window is done with, or the listing stopped (cancelled, or at a
    /// failure with `stop_at_failure`). An error no retry can fix (credentials,
    /// permission, the database) is returned.
    pub(crate) async fn next(&mut self) -> Result<Option<Result<WindowListing, String>>, AppError> {
        let stopped = self.how.stop_at_failure && !self.listed.failed.is_empty();
        let Some(&window) = self.windows.next().filter(|_| !stopped) else {
            return Ok(None);
        };
        let outcome = tokio::select! {
            r = self.lister.list_window(window, self.how.priority) => r,
            () = self.cancel.cancelled() => {
                self.listed.cancelled = true;
                return Ok(None);
            }
        };
        match outcome {
            Ok(w) => {
                let (pages, meetings, files) = (w.pages, w.meetings, w.files);
                let Window { start, end } = window;
                tracing::info!(start, end, pages, meetings, files, "{}", self.how.listed);
                self.listed.meetings += w.meetings;
                Ok(Some(Ok(w)))
            }
            Err(e) if e.class() == Class::Stop => Err(e.into()),
            Err(e) => {
                let error = crate::errors::chain(&e);
                let Window { start, end } = window;
                tracing::error!(start, end, %error, "{}", self.how.not_listed);
                self.listed.failed.push(format!("{window}: {error}"));
                Ok(Some(Err(error)))
            }
        }
    }

    /// Lists every window left; what they did.
    pub(crate) async fn all(mut self) -> Result<ListedWindows, AppError> {
        while self.next().await?.is_some() {}
        Ok(self.listed)
    }
}

/// How [`App::list_windows`] lists: at which priority, what it logs, whether a window
/// that cannot be listed ends the listing.
pub(crate) struct Listing {
    pub(crate) priority: Priority,
    /// The log line of a window listed.
    pub(crate) listed: &'static str,
    /// The log line (error level) of a window that could not be listed.
    pub(crate) not_listed: &'static str,
    /// A live poll fails as a whole and is retried at the next interval; a backfill goes
    /// on with the next window and reports the ones it could not list.
    pub(crate) stop_at_failure: bool,
}

/// What [`App::list_windows`] did.
#[derive(Debug, Default)]
pub(crate) struct ListedWindows {
    /// Meetings seen in the windows listed.
    pub(crate) meetings: u64,
    /// The windows that could not be listed, with why: `start..end: error`.
    pub(crate) failed: Vec<String>,
    /// Stopped by the cancellation before the last window.
    pub(crate) cancelled: bool,
}

/// Takes an exclusive advisory lock beside the database.
///
/// A lock that is busy is tried again for a moment before the answer is `Locked`: a
/// process that another thread of this one is starting holds a copy of the lock's
/// descriptor between its fork and its exec (close-on-exec closes it only then), so a
/// lock released an instant ago can still look taken. A second archiver on the same
/// database keeps it far longer than that and is still refused.
async fn lock_database(db: &std::path::Path) -> Result<File, AppError> {
    const TRIES: u32 = 40;
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
    let mut path = db.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| AppError::Lock {
            path: path.clone(),
            source,
        })?;
    }
    let file = File::create(&path).map_err(|source| AppError::Lock {
        path: path.clone(),
        source,
    })?;
    let mut tries = 1;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if tries < TRIES => {
                tries += 1;
                tokio::time::sleep(PAUSE).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(AppError::Locked(db.to_owned())),
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(AppError::Lock { path, source });
            }
        }
    }
}
