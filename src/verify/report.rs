//! The verification report and its three renderings: a table for the admin, JSON and CSV
//! for scripts and spreadsheets. JSON and CSV carry the same columns; their schema is
//! documented in the README ("Verifying the archive") and only ever grows.

use super::classify::{ReportRow, Status};
use std::io::{self, Write};
use std::path::Path;

/// Identifies the JSON layout, so that a consumer can refuse one it does not know.
pub const SCHEMA: &str = "wemeet-archiver.verify/1";

/// The CSV header: the columns of [`ReportRow`], in order.
pub const CSV_COLUMNS: [&str; 10] = [
    "record_file_id",
    "meeting_code",
    "subject",
    "path",
    "expected_size",
    "actual_size",
    "expected_sha256",
    "actual_sha256",
    "status",
    "detail",
];

/// How many rows got each verdict, and how much work it took.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub ok: u64,
    pub missing: u64,
    pub size_mismatch: u64,
    pub hash_mismatch: u64,
    pub unreadable: u64,
    pub extra: u64,
    pub partial: u64,
    pub pending: u64,
    pub failed: u64,
    /// Rows whose verdict is a problem (everything but `ok` and `pending`).
    pub problems: u64,
    /// Archived files in the range, and how many of them were re-read (fewer with
    /// `--sample`).
    pub archived_files: u64,
    pub checked_files: u64,
    pub bytes_hashed: u64,
    pub elapsed_ms: u64,
    pub jobs: usize,
}

impl Summary {
    pub fn count(&mut self, status: Status) {
        let slot = match status {
            Status::Ok => &mut self.ok,
            Status::Missing => &mut self.missing,
            Status::SizeMismatch => &mut self.size_mismatch,
            Status::HashMismatch => &mut self.hash_mismatch,
            Status::Unreadable => &mut self.unreadable,
            Status::Extra => &mut self.extra,
            Status::Partial => &mut self.partial,
            Status::Pending => &mut self.pending,
            Status::Failed => &mut self.failed,
        };
        *slot += 1;
        if status.is_problem() {
            self.problems += 1;
        }
    }

    pub fn of(&self, status: Status) -> u64 {
        match status {
            Status::Ok => self.ok,
            Status::Missing => self.missing,
            Status::SizeMismatch => self.size_mismatch,
            Status::HashMismatch => self.hash_mismatch,
            Status::Unreadable => self.unreadable,
            Status::Extra => self.extra,
            Status::Partial => self.partial,
            Status::Pending => self.pending,
            Status::Failed => self.failed,
        }
    }
}

/// Everything one `verify` run found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub schema: &'static str,
    /// The archive root (or, for another backend, its description).
    pub archive: String,
    /// RFC 3339.
    pub started_at: String,
    pub finished_at: String,
    /// The `--since`/`--until` bounds on media start time (RFC 3339), if any.
    pub since: Option<String>,
    pub until: Option<String>,
    pub sample_percent: Option<f64>,
    /// True when no row is a problem: the exit status is 0.
    pub passed: bool,
    pub summary: Summary,
    /// Sorted by path.
    pub files: Vec<ReportRow>,
}

impl VerifyReport {
    pub fn problems(&self) -> impl Iterator<Item = &ReportRow> {
        self.files.iter().filter(|r| r.status.is_problem())
    }
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
        out.push_str(&format!(
            "{:<13}  {}: {}\n",
            r.status.as_str(),
            printable(&r.path),
            printable(r.detail.as_deref().unwrap_or("-"))
        ));
    }
    if !rows.is_empty() {
        out.push('\n');
    }
    out.push_str(&summary_text(report));
    out
}

/// The few lines printed after the table, or alone when the report goes to `--output`.
pub fn summary_text(report: &VerifyReport) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let sampled = if s.checked_files < s.archived_files {
        format!(" (sample of {} archived)", s.archived_files)
    } else {
        String::new()
    };
    out.push_str(&format!(
        "checked {} archived file(s){sampled}, {} bytes, in {:.1} s with {} job(s)\n",
        s.checked_files,
        s.bytes_hashed,
        s.elapsed_ms as f64 / 1000.0,
        s.jobs
    ));
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
        out.push_str(&format!("result: {} problem(s) found\n", s.problems));
    }
    out
}

fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn csv(rows: &[ReportRow]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for r in rows {
        let opt_num = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        let fields = [
            r.record_file_id.clone().unwrap_or_default(),
            r.meeting_code.clone().unwrap_or_default(),
            r.subject.clone().unwrap_or_default(),
            r.path.clone(),
            opt_num(r.expected_size),
            opt_num(r.actual_size),
            r.expected_sha256.clone().unwrap_or_default(),
            r.actual_sha256.clone().unwrap_or_default(),
            r.status.as_str().to_string(),
            r.detail.clone().unwrap_or_default(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, f);
        }
        out.push('\n');
    }
    out
}

/// Writes `bytes` to `path` so that a reader (or a crash) never sees half a report: a
/// temporary file in the same folder, fsynced, renamed over the destination.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
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
            format!("{}\n", CSV_COLUMNS.join(","))
        );
        assert_eq!(
            lines.collect::<String>(),
            "1,2,\"a, \"\"quoted\"\"\nsubject\",x/y.mp4,3,,,,missing,gone\n"
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
}
