//! `verify`: proves that the archive is complete and intact, file by file.
//!
//! Every archived file is re-read through an [`ArchiveBackend`] and its size and SHA-256
//! compared with what the download recorded; files not archived are reported as pending or
//! failed; the archive is walked for what the database does not know (`extra`, leftover
//! `.part`). The verdicts ([`classify`]) become a report ([`report`]) and, on request, a
//! `SHA256SUMS` ([`sums`]) that lets anyone re-check the archive with coreutils alone.
//!
//! `verify` takes no lock and changes nothing but `files.verified_at`, so it can run while
//! the daemon archives: findings that may be a transfer in flight are re-checked before
//! they are reported.

pub mod backend;
pub mod classify;
pub mod report;
pub mod sums;

pub use backend::{ArchiveBackend, Digest, ListedObject, Listing, ReadError};
pub use classify::{ReportRow, Status};
pub use report::{Format, Summary, VerifyReport};

use crate::config::Config;
use crate::storage::{Storage, StorageError};
use crate::store::verify::VerifyRow;
use crate::store::{Store, StoreError, now_ms};
use chrono::{NaiveDate, TimeZone};
use classify::{
    Ignored, classify_archived, classify_listing, classify_unarchived, unreadable_entry,
};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every archived file checked is intact, and nothing failed (pending files allowed).
pub const EXIT_INTACT: u8 = 0;
/// At least one problem: missing, size_mismatch, hash_mismatch, unreadable, extra,
/// partial or failed.
pub const EXIT_PROBLEMS: u8 = 1;
/// The check could not run (bad configuration or usage, no database, unreadable root,
/// report not writable): nothing can be concluded.
pub const EXIT_CANNOT_CHECK: u8 = 2;

/// `verified_at` is written every this many intact files, so an interrupted run of a
/// large archive still records the work it did (and `--sample` moves on from it).
const MARK_EVERY: usize = 500;
/// How often progress is logged during a long run.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Usage(String),
    #[error(
        "no database at {0}: nothing was archived with this configuration (check \
         database.path; verify never creates one)"
    )]
    NoDatabase(PathBuf),
    #[error("cannot open the database {path}: {source}")]
    Database {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the archive: {0}")]
    Storage(StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot list the archive: {0}")]
    List(ReadError),
    #[error("cannot write SHA256SUMS: {0}")]
    Manifest(StorageError),
    #[error("cannot write the report to {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `wemeet-archiver verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Report format: `table` lists what is not ok and a summary; `json` and `csv` have one
    /// row per file (schema in the README).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the report to FILE atomically instead of standard output (the summary is
    /// still printed).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write SHA256SUMS at the archive root, listing every file found intact, for
    /// `cd ROOT && sha256sum -c SHA256SUMS`. It describes the whole archive, so it cannot
    /// be combined with --since, --until or --sample.
    #[arg(long, conflicts_with_all = ["since", "until", "sample"])]
    pub manifest: bool,
    /// Files hashed at once [default: the number of CPUs].
    #[arg(long, value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Only meetings whose media started on or after this day (YYYY-MM-DD, in
    /// storage.timezone) or instant (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only meetings whose media started on or before this day (included) or instant.
    #[arg(long)]
    pub until: Option<String>,
    /// Re-read only PERCENT (0 < PERCENT <= 100) of the archived files: those verified
    /// least recently, never-verified first, so repeated runs cover the whole archive.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub sample: Option<f64>,
}

fn parse_jobs(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not a number of jobs (1 or more)")),
    }
}

fn parse_percent(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => Err(format!("`{text}` is not a percentage in (0, 100]")),
    }
}

/// What to check, once the command line is resolved.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub jobs: usize,
    /// Bounds on the meeting's `media_start_time`, ms, inclusive.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub sample_percent: Option<f64>,
    pub manifest: bool,
    /// The zone of the archive's date folders, to scope the walk to the range.
    pub timezone: chrono_tz::Tz,
}

impl VerifyOptions {
    /// The whole archive with one job per CPU.
    pub fn new(timezone: chrono_tz::Tz) -> Self {
        Self {
            jobs: default_jobs(),
            since_ms: None,
            until_ms: None,
            sample_percent: None,
            manifest: false,
            timezone,
        }
    }

    fn is_partial(&self) -> bool {
        self.since_ms.is_some() || self.until_ms.is_some() || self.sample_percent.is_some()
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Runs `verify` as the CLI does: prints (or writes) the report and returns the exit code.
pub async fn run(config: &Config, args: &VerifyArgs) -> Result<u8, VerifyError> {
    let tz = config.storage.timezone;
    let bound = |flag: &str, text: &str, end: bool| -> Result<i64, VerifyError> {
        let secs = crate::cli::parse_time(text, tz, end)
            .map_err(|e| VerifyError::Usage(format!("{flag}: {e}")))?;
        // A day given as --until is included up to its last millisecond; an instant is
        // included with its whole second.
        let is_day = NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok();
        Ok(match (end, is_day) {
            (false, _) => secs * 1000,
            (true, true) => secs * 1000 - 1,
            (true, false) => secs * 1000 + 999,
        })
    };
    let options = VerifyOptions {
        jobs: args.jobs.unwrap_or_else(default_jobs),
        since_ms: args
            .since
            .as_deref()
            .map(|t| bound("--since", t, false))
            .transpose()?,
        until_ms: args
            .until
            .as_deref()
            .map(|t| bound("--until", t, true))
            .transpose()?,
        sample_percent: args.sample,
        manifest: args.manifest,
        timezone: tz,
    };
    if let (Some(s), Some(u)) = (options.since_ms, options.until_ms)
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
    let store = Store::open(db).await?;
    let report = verify_configured(config, &store, &options).await?;

    let text = report::render(&report, args.format);
    match &args.output {
        Some(path) => {
            report::write_atomically(path, text.as_bytes()).map_err(|source| {
                VerifyError::Output {
                    path: path.clone(),
                    source,
                }
            })?;
            let summary = format!(
                "{}report written to {}\n",
                report::summary_text(&report),
                path.display()
            );
            print_stdout(&summary)?;
        }
        None => print_stdout(&text)?,
    }
    Ok(if report.passed {
        EXIT_INTACT
    } else {
        EXIT_PROBLEMS
    })
}

fn print_stdout(text: &str) -> Result<(), VerifyError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| VerifyError::Output {
            path: "standard output".into(),
            source,
        })
}

/// Checks the configured archive (the daemon's scrub and the CLI share this).
pub async fn verify_configured(
    config: &Config,
    store: &Store,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    match Storage::open(&config.storage).map_err(VerifyError::Storage)? {
        Storage::Local(local) => {
            let ignored = Ignored {
                paths: database_files_under(local.root(), &config.database.path),
            };
            verify(store, &local, &ignored, options).await
        }
        // The database never lives in a bucket: nothing to ignore there.
        Storage::S3(s3) => verify(store, s3.as_ref(), &Ignored::default(), options).await,
    }
}

/// Checks the archive in `backend` against `store`, records `verified_at` of the files
/// found intact, writes `SHA256SUMS` if asked, and returns the report.
pub async fn verify<B: ArchiveBackend>(
    store: &Store,
    backend: &B,
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
    let rows = store
        .files_to_verify(options.since_ms, options.until_ms)
        .await?;
    let (archived, unarchived): (Vec<VerifyRow>, Vec<VerifyRow>) =
        rows.into_iter().partition(|r| r.status == "archived");
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
        if out.status == Status::Ok {
            intact.push(row.record_file_id);
            if intact.len() >= MARK_EVERY {
                store.mark_verified(&intact, now_ms()).await?;
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
    store.mark_verified(&intact, now_ms()).await?;

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
        let entries = files
            .iter()
            .filter(|f| f.status == Status::Ok)
            .filter_map(|f| Some((f.actual_sha256.as_deref()?, f.path.as_str())));
        let text = sums::render(entries);
        let lines = text.lines().count();
        backend
            .put_small(classify::SUMS_FILE, text.into_bytes())
            .await
            .map_err(VerifyError::Manifest)?;
        tracing::info!(
            files = lines,
            left_out = summary.problems,
            "wrote {}",
            classify::SUMS_FILE
        );
    }

    summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let rfc3339 = |ms: Option<i64>| {
        ms.and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339())
    };
    Ok(VerifyReport {
        schema: report::SCHEMA,
        archive: backend.describe(),
        started_at: started_at.to_rfc3339(),
        finished_at: chrono::Utc::now().to_rfc3339(),
        since: rfc3339(options.since_ms),
        until: rfc3339(options.until_ms),
        sample_percent: options.sample_percent,
        passed: summary.problems == 0,
        summary,
        files,
    })
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
async fn walk_archive<B: ArchiveBackend>(
    store: &Store,
    backend: &B,
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
    let known: HashMap<String, String> = store.file_paths().await?.into_iter().collect();
    let mut disk = classify_listing(&objects, &known, ignored);
    if !disk.findings.is_empty() {
        let (again, _) = listed(backend.list().await.map_err(VerifyError::List)?);
        let known: HashMap<String, String> = store.file_paths().await?.into_iter().collect();
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
    since_ms: Option<i64>,
    until_ms: Option<i64>,
}

impl Scope {
    fn new(options: &VerifyOptions) -> Self {
        Self {
            tz: options.timezone,
            since_ms: options.since_ms,
            until_ms: options.until_ms,
        }
    }

    fn contains(&self, path: &str) -> bool {
        if self.since_ms.is_none() && self.until_ms.is_none() {
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
        self.since_ms.is_none_or(|s| end > s) && self.until_ms.is_none_or(|u| start <= u)
    }

    /// The start of `day` in the archive's zone (a day a day wider if that zone skips its
    /// midnight: the edge may be generous, never short).
    fn midnight_ms(&self, day: NaiveDate) -> i64 {
        let naive = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        self.tz.from_local_datetime(&naive).earliest().map_or_else(
            || naive.and_utc().timestamp_millis(),
            |t| t.timestamp_millis(),
        )
    }
}

/// The database and its companions, as paths relative to the archive root when the
/// database lives under it (a config may put both in one folder): they are not extra.
pub fn database_files_under(root: &Path, db: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    let parent = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let (Ok(root), Ok(parent), Some(name)) =
        (root.canonicalize(), parent.canonicalize(), db.file_name())
    else {
        return out;
    };
    let Ok(dir) = parent.strip_prefix(&root) else {
        return out;
    };
    for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
        let mut file = name.to_os_string();
        file.push(suffix);
        out.insert(dir.join(file).to_string_lossy().into_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(since_ms: Option<i64>, until_ms: Option<i64>) -> VerifyOptions {
        VerifyOptions {
            since_ms,
            until_ms,
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
            meeting_code: String::new(),
            subject: String::new(),
            meeting_state: 3,
            media_start_time: 0,
            path: path.into(),
            status: "archived".into(),
            record_size: 0,
            archived_size: None,
            sha256: None,
            bytes_done: 0,
            attempts: 0,
            last_error: None,
            verified_at,
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

    #[test]
    fn flags_are_validated() {
        assert_eq!(parse_percent("12.5"), Ok(12.5));
        assert_eq!(parse_percent("100%"), Ok(100.0));
        for bad in ["0", "-1", "100.1", "NaN", "x"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_jobs("3"), Ok(3));
        assert!(parse_jobs("0").is_err());
    }

    #[test]
    fn the_database_is_ignored_only_when_it_lives_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        std::fs::create_dir_all(root.join("db")).unwrap();
        let under = database_files_under(&root, &root.join("db/state.db"));
        assert!(under.contains("db/state.db") && under.contains("db/state.db-wal"));
        assert!(under.contains("db/state.db.lock") && under.contains("db/state.db-shm"));
        assert!(database_files_under(&root, &dir.path().join("state.db")).is_empty());
    }
}
