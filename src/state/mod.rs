//! Persistent state in SQLite: meetings, files and their life (deletion in the cloud and
//! `[filter]` skips included), the API call logs, listed windows, the webhook's events, the
//! archive's layout.
//!
//! Every state transition is one statement or one `BEGIN IMMEDIATE` transaction, so that a
//! `kill -9` at any instant leaves either the old or the new state, never a mix. Upserts are
//! keyed by the API's own ids, so listing the same window twice changes nothing.

mod artifacts;
pub mod audit;
pub mod catalog;
mod events;
mod expiry;
mod facts;
mod files;
pub mod holds;
mod layout;
mod life;
mod meetings;
#[cfg(test)]
mod plans;
mod prune;
mod relayout;
mod skips;
mod status;
mod transcripts;
pub mod uploads;
pub mod verify;

pub use crate::domain::{FileKind, FileStatus};
pub use artifacts::ArtifactUpsert;
pub use audit::{Action, AuditEntry, AuditRecord, AuditSegment, RetentionStatus};
pub use events::{
    DueEvent, EventFile, EventOutcome, EventStatus, LagHistogram, NewEvent, Receipt, WebhookStatus,
};
pub use expiry::ExpiringRecording;
pub use facts::{DaemonFacts, DaemonStatus, Fact};
pub use files::{Checkpoint, FileRow, GivenAddress};
pub use holds::{Hold, HoldScope, ReleaseError};
pub use life::Exhaust;
pub use meetings::{FileUpsert, MeetingRow, MeetingUpsert};
pub use prune::{ArtifactsWanted, PruneCandidate};
pub use relayout::LaidOutFile;
pub use status::{StatusReport, ToDo};
pub use transcripts::Selectors;

use crate::domain::Window;
use crate::time::UnixMs;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use wemeet_api::Endpoint;

/// The database failed. Its message never repeats its cause (`source()` carries it): a
/// caller writes the chain (`errors::chain`, anyhow's `{:#}`).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the database directory {path}")]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database error")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A byte count as a column holds it: SQLite's integers are signed, sizes are not. The
/// one conversion of a size into SQL (reading one back is checked by `sqlx`'s `u64`);
/// no file reaches `i64::MAX` bytes.
pub(super) fn size_column(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// One logged API call.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ApiCall {
    pub at: UnixMs,
    /// `records`, `addresses` or `delete`.
    pub endpoint: String,
    /// `event`, `live`, `backfill`, `transfer`, `prune`.
    pub purpose: Option<String>,
    /// `ok`, or the error's label.
    pub outcome: Option<String>,
}

/// A handle to the state database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
    /// The one connection every write of this process goes through (claims, checkpoints,
    /// archived marks, failures, addresses, listing pages, `meeting.json` marks, the call
    /// log...): writers wait their turn in this pool's queue and are woken as soon as the
    /// connection is free, instead of contending for SQLite's write lock, whose busy
    /// handler sleeps 1, 2, 5, 10 ms... between tries. Reads use `pool` (WAL: they never
    /// wait for a writer). Another process (`status`, an admin's `verify`) still meets
    /// this one at SQLite's lock, under `busy_timeout`.
    writer: SqlitePool,
    /// Wakes idle workers of this process when files are queued or put back.
    queue: Arc<Notify>,
    /// Taken by a worker claiming a file: the workers woken together by one queued page
    /// then claim one after the other here, instead of racing for SQLite's write lock,
    /// whose busy handler sleeps 1, 2, 5, 10 ms... between tries.
    claims: Arc<tokio::sync::Mutex<()>>,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an "archived" row must survive a power cut, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", CACHE_SIZE);
        let pool = connect(options.clone(), READERS).await?;
        // sqlx takes no lock around SQLite migrations: two processes opening a new database
        // at once (the service starting while an admin runs `status`) would both apply
        // them, and the second fails on "table already exists". One exclusive transaction
        // around the whole run makes the second wait for the first, then find nothing to do.
        let mut tx = pool.begin_with("BEGIN EXCLUSIVE").await?;
        migrate(&mut tx).await?;
        tx.commit().await?;
        // The writer keeps its temporary files in memory. An INSERT or UPDATE inside a
        // transaction keeps a statement journal of the pages it changes, so that it can be
        // undone alone; once one outgrew 64 KiB, SQLite moved it to a file in /var/tmp for
        // the rest of the transaction and every later statement wrote each page it changed
        // there (`reindex` of 10k files: 263k `pwrite`s, 7k now). The writer's statements
        // change a few pages each and its sorts are small; the readers' big sorts keep files.
        let writer = connect(options.pragma("temp_store", "memory"), 1).await?;
        Ok(Self {
            pool,
            writer,
            queue: Arc::default(),
            claims: Arc::default(),
        })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection and waits until they are: dropping the last handle closes
    /// them too, but in the background, so a caller that removes or replaces the database
    /// files next (a test losing its database) must wait here first.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// The one write connection (see [`Db`]'s `writer`). Never hold a transaction on it
    /// while waiting for another write through it: there is only one.
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Completes when files may have been queued (or the listing ended) since it was
    /// created: `enable` it before looking at the queue, so no wake-up is lost.
    pub fn queue_changed(&self) -> Notified<'_> {
        self.queue.notified()
    }

    /// Wakes every idle worker of this process to look at the queue again.
    pub fn wake_workers(&self) {
        self.queue.notify_waiters();
    }

    /// Records one call to `endpoint` about to be sent, and why (`event`, `live`,
    /// `backfill`, `transfer`); returns its id for [`Db::set_call_outcome`].
    pub async fn record_api_call(
        &self,
        at: UnixMs,
        endpoint: Endpoint,
        purpose: &str,
    ) -> Result<i64, DbError> {
        let id = sqlx::query_scalar(
            "INSERT INTO api_calls (at_ms, endpoint, purpose) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(at)
        .bind(endpoint.as_str())
        .bind(purpose)
        .fetch_one(&self.writer)
        .await?;
        Ok(id)
    }

    pub async fn set_call_outcome(&self, id: i64, outcome: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE api_calls SET outcome = ? WHERE id = ?")
            .bind(outcome)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Send times of the calls to `endpoint` made at or after `since`, oldest first.
    pub async fn api_calls_since(
        &self,
        endpoint: Endpoint,
        since: UnixMs,
    ) -> Result<Vec<UnixMs>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT at_ms FROM api_calls WHERE endpoint = ? AND at_ms >= ? ORDER BY at_ms",
        )
        .bind(endpoint.as_str())
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The calls sent at or after `since`, oldest first.
    pub async fn api_call_log(&self, since: UnixMs) -> Result<Vec<ApiCall>, DbError> {
        Ok(sqlx::query_as(
            "SELECT at_ms AS at, endpoint, purpose, outcome FROM api_calls WHERE at_ms >= ?
             ORDER BY at_ms, id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Drops call-log rows older than `before_ms`; they no longer constrain the budget.
    pub async fn prune_api_calls(&self, before: UnixMs) -> Result<(), DbError> {
        sqlx::query("DELETE FROM api_calls WHERE at_ms < ?")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Whether `window` was listed completely at or after `after`.
    pub async fn window_listed_after(
        &self,
        window: Window,
        after: UnixMs,
    ) -> Result<bool, DbError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM windows WHERE start_time = ? AND end_time = ? AND listed_at >= ?",
        )
        .bind(window.start)
        .bind(window.end)
        .bind(after)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Remembers that every page of `window` was listed.
    pub async fn mark_window_listed(
        &self,
        window: Window,
        pages: i64,
        meetings: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO windows (start_time, end_time, listed_at, pages, meetings)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (start_time, end_time) DO UPDATE SET
               listed_at = excluded.listed_at, pages = excluded.pages,
               meetings = excluded.meetings",
        )
        .bind(window.start)
        .bind(window.end)
        .bind(UnixMs::now())
        .bind(pages)
        .bind(meetings)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}

/// Connections for reads (writes go through the one `writer`).
const READERS: u32 = 4;

/// SQLite's page cache of each connection: 512 KiB (negative: KiB, not pages). SQLite's
/// default, 2 MiB, times five connections filled up as the database outgrew it: a backfill
/// of 100k meetings peaked 2.3 MiB higher with it (issue 21's growth benchmark). Every
/// statement on the hot path seeks an index, touching a few pages; the rest is in the
/// operating system's cache.
const CACHE_SIZE: &str = "-512";

/// Opens the pool. Turning a new database to WAL needs an exclusive lock that SQLite does
/// not wait for (`busy_timeout` does not apply to it), so a second process opening the file
/// at that instant gets "database is locked": it tries again for a few seconds.
async fn connect(options: SqliteConnectOptions, connections: u32) -> Result<SqlitePool, DbError> {
    const BUSY_RETRIES: u32 = 50;
    let mut tries = 0;
    loop {
        match SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options.clone())
            .await
        {
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("5") && tries < BUSY_RETRIES =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// The migrations of `migrations/`, applied on `conn`. `run_direct` is the form sqlx keeps
/// for a connection borrowed from a transaction (`run` trips rustc's "Acquire is not general
/// enough" there).
async fn migrate(conn: &mut sqlx::SqliteConnection) -> Result<(), DbError> {
    sqlx::migrate!("./migrations")
        .run_direct(None, conn, false)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn processes_opening_a_new_database_at_once_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let opens: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { super::Db::open(&path).await.map(drop) })
            })
            .collect();
        for open in opens {
            open.await
                .unwrap()
                .expect("every open migrates or finds the schema");
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use wemeet_api::Secret;

    /// A transcoded meeting `id` whose media started at `start_ms`, in the folder `dir`, as
    /// a listing page gives it: `files` are 10-byte videos, with an address or not.
    pub fn listed(id: &str, start_ms: i64, dir: &str, files: &[(&str, bool)]) -> MeetingUpsert {
        MeetingUpsert {
            meeting_record_id: id.into(),
            meeting_id: format!("m{id}"),
            meeting_code: format!("code{id}"),
            userid: "u".into(),
            subject: format!("subject {id}"),
            media_start_time: UnixMs(start_ms),
            state: 3.into(),
            record_type: 1,
            dir: dir.into(),
            files: files
                .iter()
                .map(|(f, addressed)| FileUpsert {
                    record_file_id: (*f).into(),
                    record_start_time: start_ms,
                    record_end_time: start_ms + 1,
                    record_size: 10,
                    path: format!("{dir}/{f}.mp4"),
                    download_address: addressed.then(|| Secret::new("https://example.invalid/x")),
                    skip_rule: None,
                })
                .collect(),
        }
    }

    /// A real SQLite database in a temporary directory (kept alive by the returned guard).
    pub async fn temp_store() -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Db::open(&dir.path().join("state.db")).await.unwrap();
        (store, dir)
    }
}
