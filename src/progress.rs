//! A job's progress as data, for a display to draw: the census counts windows and pages,
//! the transfer pool files archived, bytes received and the transfers in flight, `verify`
//! files and bytes re-read against what it planned to read.
//!
//! Each counter is bumped where the work is already counted (a relaxed atomic add, so a
//! handle nobody reads costs next to nothing); a reader takes a [`Snapshot`]. What is left
//! to download is not counted here: the store says it ([`crate::state::Db::to_do`]).
//! Nothing here prints: the binary draws it on a terminal.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

/// A cheap, cloneable handle on one job's counters; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    windows: AtomicU64,
    windows_done: AtomicU64,
    pages: AtomicU64,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    planned: OnceLock<Planned>,
    next_transfer: AtomicU64,
    /// By start order, so that a display lists them in a stable order.
    transfers: Mutex<BTreeMap<u64, Arc<TransferCounters>>>,
}

#[derive(Debug)]
struct TransferCounters {
    path: String,
    size: u64,
    received: AtomicU64,
}

/// What a job knows up front it has to do (`verify`: the files it re-reads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Planned {
    pub files: u64,
    pub bytes: u64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Windows the listing covers, and those done with so far.
    pub windows: u64,
    pub windows_done: u64,
    /// Listing pages fetched, a window listed twice counted twice.
    pub pages: u64,
    /// Files archived (backfill) or re-read (verify) by this job.
    pub files_done: u64,
    /// Bytes received (backfill: a restarted transfer's bytes count again) or re-read.
    pub bytes_done: u64,
    pub planned: Option<Planned>,
    pub transfers: Vec<TransferSnapshot>,
}

/// One transfer in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferSnapshot {
    pub path: String,
    pub size: u64,
    /// Bytes the archive holds or has been handed, the resumed ones included.
    pub received: u64,
}

impl Progress {
    /// The listing of `windows` windows begins.
    pub fn listing(&self, windows: u64) {
        self.0.windows.store(windows, Relaxed);
    }

    /// One more window is done with: every page recorded, or given up on (the job's
    /// report names those).
    pub fn window_done(&self) {
        self.0.windows_done.fetch_add(1, Relaxed);
    }

    pub fn page_listed(&self) {
        self.0.pages.fetch_add(1, Relaxed);
    }

    /// One more file archived or re-read.
    pub fn file_done(&self) {
        self.0.files_done.fetch_add(1, Relaxed);
    }

    /// Bytes re-read (a transfer counts its own through `Transfer::received`).
    pub fn bytes_done(&self, bytes: u64) {
        self.0.bytes_done.fetch_add(bytes, Relaxed);
    }

    /// Says what the job will do in all; only the first call counts (one plan per job).
    pub fn plan(&self, planned: Planned) {
        let _ = self.0.planned.set(planned);
    }

    /// A transfer of `path` (`size` bytes, `received` of them already there) starts; it is
    /// listed in snapshots until the returned handle is dropped.
    pub fn transfer(&self, path: &str, size: u64, received: u64) -> Transfer {
        let id = self.0.next_transfer.fetch_add(1, Relaxed);
        let counters = Arc::new(TransferCounters {
            path: path.to_string(),
            size,
            received: AtomicU64::new(received),
        });
        self.transfers().insert(id, Arc::clone(&counters));
        Transfer {
            progress: self.clone(),
            id,
            counters,
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let c = &self.0;
        Snapshot {
            windows: c.windows.load(Relaxed),
            windows_done: c.windows_done.load(Relaxed),
            pages: c.pages.load(Relaxed),
            files_done: c.files_done.load(Relaxed),
            bytes_done: c.bytes_done.load(Relaxed),
            planned: c.planned.get().copied(),
            transfers: self
                .transfers()
                .values()
                .map(|t| TransferSnapshot {
                    path: t.path.clone(),
                    size: t.size,
                    received: t.received.load(Relaxed),
                })
                .collect(),
        }
    }

    fn transfers(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<TransferCounters>>> {
        // The map is consistent after any panic (one insert or remove at a time).
        self.0.transfers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A transfer in flight, from [`Progress::transfer`]; dropping it takes it off the list.
#[derive(Debug)]
#[must_use = "the transfer is listed only while this handle lives"]
pub struct Transfer {
    progress: Progress,
    id: u64,
    counters: Arc<TransferCounters>,
}

impl Transfer {
    /// `bytes` more were received (and handed to the archive).
    pub fn received(&self, bytes: u64) {
        self.counters.received.fetch_add(bytes, Relaxed);
        self.progress.0.bytes_done.fetch_add(bytes, Relaxed);
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.progress.transfers().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_transfers_are_listed_while_they_run() {
        let progress = Progress::default();
        let reader = progress.clone();
        progress.listing(3);
        progress.page_listed();
        progress.page_listed();
        progress.window_done();
        let first = progress.transfer("a.mp4", 10, 4);
        let second = progress.transfer("b.mp4", 7, 0);
        first.received(5);
        second.received(7);
        progress.file_done();
        drop(second);
        let snap = reader.snapshot();
        assert_eq!((snap.windows, snap.windows_done, snap.pages), (3, 1, 2));
        assert_eq!((snap.files_done, snap.bytes_done), (1, 12));
        assert_eq!(
            snap.transfers,
            [TransferSnapshot {
                path: "a.mp4".into(),
                size: 10,
                received: 9
            }]
        );
        drop(first);
        assert!(reader.snapshot().transfers.is_empty());
    }

    #[test]
    fn the_first_plan_counts() {
        let progress = Progress::default();
        assert_eq!(progress.snapshot().planned, None);
        progress.plan(Planned { files: 2, bytes: 9 });
        progress.plan(Planned { files: 5, bytes: 1 });
        progress.bytes_done(4);
        let snap = progress.snapshot();
        assert_eq!(snap.planned, Some(Planned { files: 2, bytes: 9 }));
        assert_eq!(snap.bytes_done, 4);
    }
}
