//! `verify`: its flags, and the report rendered as a table, JSON or CSV (schema in the
//! README), printed or written atomically to `--output`.

use super::exit::{CliResult, Exit, Failure};
use super::human::{Size, Span};
use super::progress::{Display, Job};
use indicatif::MultiProgress;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use wemeet_archiver::Progress;
use wemeet_archiver::config::Config;
use wemeet_archiver::{
    ReportRow, VerifyError, VerifyOptions, VerifyReport, VerifyStatus as Status,
};

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
    /// Draw no progress display (it is drawn only when standard error is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// Report formats of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Every row that is not `ok`, then a summary: for a human.
    Table,
    /// One object with the summary and every row.
    Json,
    /// A header and one line per row, RFC 4180 quoting.
    Csv,
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

/// Every failure of the check itself is exit 2: no verdict on the archive was reached.
/// `display` is where the progress is drawn, if at all.
pub async fn run(config: &Config, args: &VerifyArgs, display: Option<MultiProgress>) -> CliResult {
    let tz = config.storage.timezone;
    let bound = |flag: &str, text: &str, end: bool| {
        super::time::bound(text, tz, end)
            .map_err(|e| Failure::usage(VerifyError::Usage(format!("{flag}: {e}"))))
    };
    let options = VerifyOptions {
        jobs: args.jobs.unwrap_or_else(VerifyOptions::default_jobs),
        since: args
            .since
            .as_deref()
            .map(|t| bound("--since", t, false))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|t| bound("--until", t, true))
            .transpose()?,
        sample_percent: args.sample,
        manifest: args.manifest,
        timezone: tz,
        progress: Progress::default(),
    };
    let display =
        display.map(|multi| Display::start(&multi, options.progress.clone(), Job::Verify));
    let report = wemeet_archiver::verify(config, &options).await;
    if let Some(display) = display {
        display.finish().await;
    }
    let report = report?;
    let text = render(&report, args.format);
    let printed = match &args.output {
        Some(path) => {
            write_atomically(path, text.as_bytes()).map_err(|source| {
                Failure::usage(VerifyError::Output {
                    path: path.clone(),
                    source,
                })
            })?;
            format!("{}report written to {}\n", summary(&report), path.display())
        }
        None => text,
    };
    let mut out = io::stdout().lock();
    out.write_all(printed.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| {
            Failure::usage(VerifyError::Output {
                path: "standard output".into(),
                source,
            })
        })?;
    Ok(if report.passed {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}

pub fn render(report: &VerifyReport, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(report).expect("plain data serialises");
            s.push('\n');
            s
        }
        Format::Csv => csv(&report.files),
    }
}

/// Escapes control characters: a stray file named with a newline must not forge a line
/// of the table.
fn printable(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars().flat_map(char::escape_default).collect()
    } else {
        s.to_string()
    }
}

/// One line per row that is not `ok`: `STATUS  PATH: DETAIL`, the status first so that
/// `grep` and the eye find it (paths vary in display width, so no column follows them).
fn table(report: &VerifyReport) -> String {
    let mut out = String::new();
    let rows: Vec<&ReportRow> = report
        .files
        .iter()
        .filter(|r| r.status != Status::Ok)
        .collect();
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<13}  {}: {}",
            r.status.as_str(),
            printable(&r.path),
            printable(r.detail.as_deref().unwrap_or("-"))
        );
    }
    if !rows.is_empty() {
        out.push('\n');
    }
    out.push_str(&summary(report));
    out
}

/// The few lines printed after the table, or alone when the report goes to `--output`.
fn summary(report: &VerifyReport) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let sampled = if s.checked_files < s.archived_files {
        format!(" (sample of {} archived)", s.archived_files)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "checked {} archived file(s){sampled}, {}, in {} with {} job(s)",
        s.checked_files,
        Size(s.bytes_hashed),
        Span::ms(s.elapsed_ms),
        s.jobs
    );
    let counts: Vec<String> = Status::ALL
        .iter()
        .map(|&st| format!("{} {}", s.of(st), st.as_str()))
        .collect();
    out.push_str(&counts.join(", "));
    out.push('\n');
    if report.passed {
        out.push_str(
            "result: intact: every archived file checked matches its recorded size and SHA-256\n",
        );
    } else {
        let _ = writeln!(out, "result: {} problem(s) found", s.problems);
    }
    out
}

/// The rows as RFC 4180 CSV, a header first; its columns are [`ReportRow`]'s fields.
fn csv(rows: &[ReportRow]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    if rows.is_empty() {
        // `serialize` writes the header with the first row; an empty report still has one.
        writer
            .write_record(ReportRow::columns())
            .expect("writing to memory cannot fail");
    }
    for row in rows {
        writer
            .serialize(row)
            .expect("writing to memory cannot fail");
    }
    let bytes = writer.into_inner().expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("the rows are UTF-8")
}

/// Writes `bytes` to `path` so that a reader (or a crash) never sees half a report: a
/// temporary file in the same folder, fsynced, renamed over the destination.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use wemeet_archiver::{VERIFY_SCHEMA as SCHEMA, VerifySummary as Summary};

    fn row(path: &str, status: Status, detail: Option<&str>) -> ReportRow {
        ReportRow {
            record_file_id: Some("1".into()),
            meeting_code: Some("2".into()),
            subject: Some("a, \"quoted\"\nsubject".into()),
            path: path.into(),
            expected_size: Some(3),
            actual_size: None,
            expected_sha256: None,
            actual_sha256: None,
            status,
            detail: detail.map(String::from),
            kind: Some(wemeet_archiver::FileKind::Video),
        }
    }

    fn report(files: Vec<ReportRow>) -> VerifyReport {
        let mut summary = Summary::default();
        for f in &files {
            summary.count(f.status);
        }
        VerifyReport {
            schema: SCHEMA,
            archive: "/a".into(),
            started_at: String::new(),
            finished_at: String::new(),
            since: None,
            until: None,
            sample_percent: None,
            passed: summary.problems == 0,
            summary,
            files,
        }
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let text = render(
            &report(vec![row("x/y.mp4", Status::Missing, Some("gone"))]),
            Format::Csv,
        );
        let mut lines = text.split_inclusive('\n');
        assert_eq!(
            lines.next().unwrap(),
            format!("{}\n", ReportRow::columns().join(","))
        );
        assert_eq!(
            lines.collect::<String>(),
            "1,2,\"a, \"\"quoted\"\"\nsubject\",x/y.mp4,3,,,,missing,gone,video\n"
        );
        assert_eq!(
            render(&report(Vec::new()), Format::Csv),
            format!("{}\n", ReportRow::columns().join(","))
        );
    }

    #[test]
    fn table_lists_all_but_ok_rows_with_escaped_names() {
        let r = report(vec![
            row("a.mp4", Status::Ok, None),
            row(
                "b\nc",
                Status::Extra,
                Some("no database row claims this file"),
            ),
        ]);
        let text = render(&r, Format::Table);
        assert!(!text.contains("a.mp4"), "{text}");
        assert!(
            text.starts_with("extra          b\\nc: no database row"),
            "{text}"
        );
        assert!(text.contains("1 ok, 0 missing"), "{text}");
        assert!(text.contains("result: 1 problem(s) found"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
        assert_eq!(json["schema"], SCHEMA);
        assert_eq!(json["files"][1]["status"], "extra");
        assert_eq!(json["files"][0]["actual_sha256"], serde_json::Value::Null);
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.csv");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
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
}
