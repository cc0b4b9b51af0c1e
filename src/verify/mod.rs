//! `verify`: proves that the archive is complete and intact, file by file.
//!
//! Every archived file is re-read through the [`Archive`] and its size and SHA-256
//! compared with what the download recorded; files not archived are reported as pending or
//! failed; the archive is walked for what the database does not know (`extra`, leftover
//! `.part`). The verdicts ([`classify`]) become a report ([`report`]) and, on request, a
//! `SHA256SUMS` ([`sums`]) that lets anyone re-check the archive with coreutils alone.
//!
//! `verify` takes no lock and changes nothing but `files.verified_at` and the audit trail
//! (appended: the run and each problem it found), so it can run while
//! the daemon archives: findings that may be a transfer in flight are re-checked before
//! they are reported.

pub mod classify;
pub mod report;
pub mod sums;

pub use crate::archive::{ListedObject, Listing, ReadError};
pub use classify::{ReportRow, Status};
pub use report::{SCHEMA, Summary, VerifyReport};

use crate::archive::{self, Archive, ArchiveError};
use crate::config::Config;
use crate::errors::Class;
use crate::progress::{Planned, Progress};
use crate::state::verify::VerifyRow;
use crate::state::{Action, AuditEntry, Db, DbError, FileStatus};
use crate::time::UnixMs;
use chrono::{NaiveDate, TimeZone};
use classify::{
    Ignored, classify_archived, classify_listing, classify_unarchived, unreadable_entry,
};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `verified_at` is written every this many intact files, so an interrupted run of a
/// large archive still records the work it did (and `--sample` moves on from it).
const MARK_EVERY: usize = 500;
/// How often progress is logged during a long run.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Why the check could not run: no verdict on the archive was reached.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Usage(String),
    #[error(
        "no database at {0}: nothing was archived with this configuration (check \
         database.path; verify never creates one)"
    )]
    NoDatabase(PathBuf),
    #[error("cannot open the database {path}")]
    Database {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the archive")]
    Archive(#[source] ArchiveError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot list the archive")]
    List(#[source] ReadError),
    #[error("cannot write SHA256SUMS")]
    Manifest(#[source] ArchiveError),
    #[error("cannot write the report to {path}")]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl VerifyError {
    /// No verdict on the archive was reached, whatever stopped the check: whoever runs it
    /// must fix that first (the command line's usage error).
    pub fn class(&self) -> Class {
        Class::Stop
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub jobs: usize,
    /// Inclusive bounds on the meetings' `media_start_time`.
    pub since: Option<UnixMs>,
    pub until: Option<UnixMs>,
    pub sample_percent: Option<f64>,
    pub manifest: bool,
    /// The zone of the archive's date folders, to scope the walk to the range.
    pub timezone: chrono_tz::Tz,
    /// Counts the files and bytes re-read against those planned, for a display.
    pub progress: Progress,
}

impl VerifyOptions {
    /// The whole archive with one job per CPU.
    pub fn new(timezone: chrono_tz::Tz) -> Self {
        Self {
            jobs: Self::default_jobs(),
            since: None,
            until: None,
            sample_percent: None,
            manifest: false,
            timezone,
            progress: Progress::default(),
        }
    }

    /// One job per CPU: hashing is CPU-bound.
    pub fn default_jobs() -> usize {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    }

    fn is_partial(&self) -> bool {
        self.since.is_some() || self.until.is_some() || self.sample_percent.is_some()
    }
}

/// `verify` as the command runs it: the existing database (never a new one), the
/// configured archive, and the report.
pub async fn run(config: &Config, options: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    if let (Some(s), Some(u)) = (options.since, options.until)
        && u < s
    {
        return Err(VerifyError::Usage(
            "--until must not be before --since".into(),
        ));
    }
    let db = &config.database.path;
    match std::fs::metadata(db) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(VerifyError::NoDatabase(db.clone())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(VerifyError::NoDatabase(db.clone()));
        }
        Err(source) => {
            return Err(VerifyError::Database {
                path: db.clone(),
                source,
            });
        }
    }
    let store = Db::open(db).await?;
    verify_configured(config, &store, options).await
}

/// Checks the configured archive (the daemon's scrub and the CLI share this).
pub async fn verify_configured(
    config: &Config,
    store: &Db,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let storage = &config.storage;
    let archive = archive::open(
        &storage.path,
        storage.s3.as_ref(),
        config.download.checkpoint_bytes,
        store.clone(),
    )
    .map_err(VerifyError::Archive)?;
    let ignored = Ignored {
        paths: archive.companions(&config.database.path),
    };
    verify(store, archive.as_ref(), &ignored, options).await
}

/// Checks the archive in `backend` against `store`, records `verified_at` of the files
/// found intact, writes `SHA256SUMS` if asked, and returns the report.
pub async fn verify(
    store: &Db,
    backend: &dyn Archive,
    ignored: &Ignored,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    if options.manifest && options.is_partial() {
        return Err(VerifyError::Usage(
            "--manifest lists the whole archive: it cannot be combined with --since, --until or --sample".into(),
        ));
    }
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let jobs = options.jobs.max(1);
    let rows = store.files_to_verify(options.since, options.until).await?;
    let (archived, unarchived): (Vec<VerifyRow>, Vec<VerifyRow>) = rows
        .into_iter()
        .partition(|r| r.status == FileStatus::Archived);
    let archived_files = archived.len();
    let to_check = sample(archived, options.sample_percent);
    let checking = to_check.len();
    tracing::info!(files = checking, archived = archived_files, jobs, archive = %backend.describe(), "verifying");

    let mut files = Vec::with_capacity(checking + unarchived.len());
    let mut summary = Summary {
        archived_files: archived_files as u64,
        checked_files: checking as u64,
        jobs,
        ..Summary::default()
    };
    let progress = &options.progress;
    hash_archived(
        store,
        backend,
        to_check,
        jobs,
        progress,
        &mut files,
        &mut summary,
    )
    .await?;

    let scope = Scope::new(options);
    let (disk, unreadable) = walk_archive(store, backend, ignored, &scope).await?;
    files.extend(unarchived.iter().map(|row| {
        let on_disk = disk.on_disk.get(&row.path).copied().unwrap_or_default();
        classify_unarchived(row, on_disk)
    }));
    files.extend(disk.findings);
    files.extend(unreadable.iter().map(|(path, e)| unreadable_entry(path, e)));
    files.sort_by(|a, b| (&a.path, a.status).cmp(&(&b.path, b.status)));
    for f in &files {
        summary.count(f.status);
    }

    if options.manifest {
        write_manifest(backend, &files, summary.problems).await?;
    }

    summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    record_in_trail(store, backend, &summary, &files, options).await?;
    let rfc3339 = |t: Option<UnixMs>| t.and_then(UnixMs::to_rfc3339);
    Ok(VerifyReport {
        schema: SCHEMA,
        archive: backend.describe(),
        started_at: started_at.to_rfc3339(),
        finished_at: chrono::Utc::now().to_rfc3339(),
        since: rfc3339(options.since),
        until: rfc3339(options.until),
        sample_percent: options.sample_percent,
        passed: summary.problems == 0,
        summary,
        files,
    })
}

/// Records the run (its summary and scope) and each problem it found in the audit trail,
/// and writes the trail into the archive. A trail that cannot be written there (a
/// read-only archive) is only logged: the records wait in the database for the next run.
async fn record_in_trail(
    store: &Db,
    backend: &dyn Archive,
    summary: &Summary,
    files: &[ReportRow],
    options: &VerifyOptions,
) -> Result<(), VerifyError> {
    let mut entries = vec![AuditEntry::new(
        Action::Verified,
        serde_json::json!({
            "passed": summary.problems == 0,
            "summary": summary,
            "since": options.since,
            "until": options.until,
            "sample_percent": options.sample_percent,
        }),
    )];
    entries.extend(files.iter().filter(|f| f.status.is_problem()).map(|f| {
        let mut entry = AuditEntry::new(
            Action::Finding,
            serde_json::json!({
                "path": f.path,
                "status": f.status.as_str(),
                "detail": f.detail,
                "expected_sha256": f.expected_sha256,
                "actual_sha256": f.actual_sha256,
            }),
        );
        entry.record_file_id.clone_from(&f.record_file_id);
        entry
    }));
    store.record_audit_all(&entries).await?;
    crate::audit::write_trail_or_warn(store, backend).await;
    Ok(())
}

/// Re-reads the archived files `to_check`, `jobs` at once, into report rows, and records
/// `verified_at` of the intact ones as it goes.
async fn hash_archived(
    store: &Db,
    backend: &dyn Archive,
    to_check: Vec<VerifyRow>,
    jobs: usize,
    progress: &Progress,
    files: &mut Vec<ReportRow>,
    summary: &mut Summary,
) -> Result<(), VerifyError> {
    let checking = to_check.len();
    progress.plan(Planned {
        files: checking as u64,
        bytes: to_check
            .iter()
            .map(|r| r.archived_size.unwrap_or(r.record_size))
            .sum(),
    });
    let mut intact = Vec::new();
    let mut last_progress = Instant::now();
    let mut hashed = futures::stream::iter(to_check.into_iter().map(|row| async move {
        let read = backend.digest(&row.path).await;
        (row, read)
    }))
    .buffer_unordered(jobs);
    while let Some((row, read)) = hashed.next().await {
        let out = classify_archived(&row, read);
        summary.bytes_hashed += out.actual_size.unwrap_or(0);
        progress.bytes_done(out.actual_size.unwrap_or(0));
        progress.file_done();
        if out.status == Status::Ok {
            intact.push(row.record_file_id);
            if intact.len() >= MARK_EVERY {
                store.mark_verified(&intact, UnixMs::now()).await?;
                intact.clear();
            }
        } else {
            tracing::warn!(path = %out.path, status = %out.status, detail = out.detail.as_deref().unwrap_or(""), "archived file is not intact");
        }
        files.push(out);
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            tracing::info!(
                checked = files.len(),
                of = checking,
                bytes = summary.bytes_hashed,
                "verifying"
            );
        }
    }
    drop(hashed);
    store.mark_verified(&intact, UnixMs::now()).await?;
    Ok(())
}

/// Writes `SHA256SUMS` at the root: every file found intact, in `sha256sum -c` format.
async fn write_manifest(
    backend: &dyn Archive,
    files: &[ReportRow],
    problems: u64,
) -> Result<(), VerifyError> {
    let entries = files
        .iter()
        .filter(|f| f.status == Status::Ok)
        .filter_map(|f| Some((f.actual_sha256.as_deref()?, f.path.as_str())));
    let text = sums::render(entries);
    let lines = text.lines().count();
    backend
        .put_small(classify::SUMS_FILE, text.into_bytes().into())
        .await
        .map_err(VerifyError::Manifest)?;
    tracing::info!(
        files = lines,
        left_out = problems,
        "wrote {}",
        classify::SUMS_FILE
    );
    Ok(())
}

/// Picks the archived files a `--sample` run re-reads: the `ceil(n * p / 100)` verified
/// least recently (never verified first), so that a daily `--sample 5` covers the whole
/// archive in 20 days, and a file found damaged (its `verified_at` stays old) is picked
/// again until it is fixed. Deterministic: the same state gives the same sample.
fn sample(mut archived: Vec<VerifyRow>, percent: Option<f64>) -> Vec<VerifyRow> {
    let Some(p) = percent else {
        return archived;
    };
    let n = archived.len();
    let k = ((n as f64) * p / 100.0).ceil() as usize;
    archived.sort_by(|a, b| (a.verified_at, &a.path).cmp(&(b.verified_at, &b.path)));
    archived.truncate(k.min(n));
    archived
}

/// Lists the archive and sorts what it holds against the database. Findings that may be a
/// transfer in flight (a `.part` renamed meanwhile, a `meeting.json.tmp`) are confirmed by
/// a second listing, against rows read after it, before they are reported.
async fn walk_archive(
    store: &Db,
    backend: &dyn Archive,
    ignored: &Ignored,
    scope: &Scope,
) -> Result<(classify::DiskFindings, Vec<(String, String)>), VerifyError> {
    let listed = |listing: Listing| -> (Vec<ListedObject>, Vec<(String, String)>) {
        let objects = listing
            .objects
            .into_iter()
            .filter(|o| scope.contains(&o.path))
            .collect();
        let unreadable = listing
            .unreadable
            .into_iter()
            .filter(|(p, _)| scope.contains(p))
            .collect();
        (objects, unreadable)
    };
    let (objects, unreadable) = listed(backend.list().await.map_err(VerifyError::List)?);
    // Rows are read after the listing: a file listed on disk was created after its row.
    let known: HashMap<String, FileStatus> = store.file_paths().await?.into_iter().collect();
    let mut disk = classify_listing(&objects, &known, ignored);
    if !disk.findings.is_empty() {
        let (again, _) = listed(backend.list().await.map_err(VerifyError::List)?);
        let known: HashMap<String, FileStatus> = store.file_paths().await?.into_iter().collect();
        let confirmed: HashSet<(String, Status)> = classify_listing(&again, &known, ignored)
            .findings
            .into_iter()
            .map(|f| (f.path, f.status))
            .collect();
        disk.findings
            .retain(|f| confirmed.contains(&(f.path.clone(), f.status)));
    }
    Ok((disk, unreadable))
}

/// Which part of the archive tree a ranged run looks at: the `YYYY/MM/DD` folders whose
/// day overlaps the range (anything outside the date layout only in a full run). Files
/// the database knows are never extra whatever their date, so a generous edge costs
/// nothing but a look at a neighbouring day.
struct Scope {
    tz: chrono_tz::Tz,
    since: Option<UnixMs>,
    until: Option<UnixMs>,
}

impl Scope {
    fn new(options: &VerifyOptions) -> Self {
        Self {
            tz: options.timezone,
            since: options.since,
            until: options.until,
        }
    }

    fn contains(&self, path: &str) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let mut parts = path.split('/');
        let day = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(y), Some(m), Some(d), Some(_))
                if y.len() == 4 && m.len() == 2 && d.len() == 2 =>
            {
                match (y.parse(), m.parse(), d.parse()) {
                    (Ok(y), Ok(m), Ok(d)) => NaiveDate::from_ymd_opt(y, m, d),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(day) = day else {
            return false;
        };
        let start = self.midnight_ms(day);
        let end = self.midnight_ms(day.succ_opt().unwrap_or(day));
        self.since.is_none_or(|s| end > s) && self.until.is_none_or(|u| start <= u)
    }

    /// The start of `day` in the archive's zone (a day a day wider if that zone skips its
    /// midnight: the edge may be generous, never short).
    fn midnight_ms(&self, day: NaiveDate) -> UnixMs {
        let naive = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        UnixMs(self.tz.from_local_datetime(&naive).earliest().map_or_else(
            || naive.and_utc().timestamp_millis(),
            |t| t.timestamp_millis(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(since: Option<i64>, until: Option<i64>) -> VerifyOptions {
        VerifyOptions {
            since: since.map(UnixMs),
            until: until.map(UnixMs),
            ..VerifyOptions::new(chrono_tz::Asia::Shanghai)
        }
    }

    #[test]
    fn a_range_scopes_the_walk_to_its_date_folders() {
        // 2024-01-02 00:00 in Shanghai is 2024-01-01T16:00Z = 1_704_124_800 s
        let day = 1_704_124_800_000;
        let scope = Scope::new(&options(Some(day), Some(day + 86_400_000 - 1)));
        assert!(scope.contains("2024/01/02/x/y.mp4"));
        assert!(!scope.contains("2024/01/01/x/y.mp4"));
        assert!(!scope.contains("2024/01/03/x/y.mp4"));
        assert!(!scope.contains("stray.txt"));
        assert!(!scope.contains("2024/01/02"));
        let all = Scope::new(&options(None, None));
        assert!(all.contains("stray.txt"));
        let open_end = Scope::new(&options(Some(day), None));
        assert!(open_end.contains("2030/01/01/x/y.mp4"));
        assert!(!open_end.contains("2023/12/31/x/y.mp4"));
    }

    #[test]
    fn a_sample_takes_the_least_recently_verified_first() {
        let row = |path: &str, verified_at: Option<i64>| VerifyRow {
            record_file_id: path.into(),
            kind: crate::state::FileKind::Video,
            meeting_code: String::new(),
            subject: String::new(),
            meeting_state: 3.into(),
            media_start_time: UnixMs(0),
            path: path.into(),
            status: FileStatus::Archived,
            record_size: 0,
            archived_size: None,
            sha256: None,
            bytes_done: 0,
            attempts: 0,
            last_error: None,
            verified_at: verified_at.map(UnixMs),
            skip_rule: None,
        };
        let rows = vec![
            row("a", Some(5)),
            row("b", None),
            row("c", Some(1)),
            row("d", None),
        ];
        let ids = |rows: Vec<VerifyRow>| rows.into_iter().map(|r| r.path).collect::<Vec<_>>();
        assert_eq!(ids(sample(rows.clone(), Some(50.0))), ["b", "d"]);
        assert_eq!(ids(sample(rows.clone(), Some(60.0))), ["b", "d", "c"]);
        assert_eq!(ids(sample(rows.clone(), Some(0.1))), ["b"]);
        assert_eq!(sample(rows.clone(), Some(100.0)).len(), 4);
        assert_eq!(sample(rows, None).len(), 4);
    }
}
