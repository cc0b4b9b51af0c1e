//! `prune`: its flags, and the report rendered as a table or JSON (schema in the README).

use super::exit::{self, CliResult};
use super::human::Size;
use std::fmt::Write as _;
use std::path::Path;
use wemeet_archiver::App;
use wemeet_archiver::config::Config;
use wemeet_archiver::{PruneMode as Mode, PruneOutcome as Outcome, PruneReport};

#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Re-read and check every candidate exactly as a real run does, delete nothing, and
    /// print what would be deleted. Allowed without prune.enabled.
    #[arg(long)]
    pub dry_run: bool,
    /// Report format: `table` for a person, `json` for scripts (schema in the README).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// The report's form, `prune`'s and `expire`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per file (per recording for `expire`), then a summary.
    Table,
    /// One object with the summary and every file (every recording for `expire`).
    Json,
}

pub async fn run(config: &Path, args: &PruneArgs) -> CliResult {
    let app = App::open(Config::load(config)?).await?;
    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Delete
    };
    let report = app.prune(mode, super::shutdown_token()).await?;
    print!("{}", render(&report, args.format));
    Ok(exit::of_prune(&report))
}

pub fn render(report: &PruneReport, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(report).expect("plain data serialises");
            s.push('\n');
            s
        }
    }
}

/// One line per file (the outcome first, for `grep` and the eye), then a summary.
fn table(report: &PruneReport) -> String {
    let mut out = String::new();
    for r in &report.files {
        let label = match r.outcome {
            Outcome::WouldDelete => "would delete",
            Outcome::AlreadyDeleted => "already deleted",
            other => other.as_str(),
        };
        match r.outcome {
            Outcome::Held => {
                let _ = writeln!(
                    out,
                    "{label:<15}  {}: {}; stays in the cloud",
                    r.path,
                    r.detail.as_deref().unwrap_or("on legal hold")
                );
            }
            Outcome::Refused | Outcome::Failed => {
                let _ = writeln!(
                    out,
                    "{label:<15}  {}: {}: {}",
                    r.path,
                    r.check.as_str(),
                    r.detail.as_deref().unwrap_or("-")
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "{label:<15}  {}  {}, archived {}",
                    r.path,
                    Size(r.size),
                    r.archived_at
                );
            }
        }
    }
    if !report.files.is_empty() {
        out.push('\n');
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "{} file(s) due (archived before {}), {} checked against their recorded size and SHA-256",
        s.candidates, report.archived_before, s.checked
    );
    if report.dry_run {
        let _ = writeln!(
            out,
            "dry run: nothing was deleted; {} file(s) would be deleted from the cloud ({})",
            s.would_delete,
            Size(s.bytes_would_free)
        );
    } else {
        let _ = writeln!(
            out,
            "deleted {} file(s) from the cloud, {} freed",
            s.deleted + s.already_deleted,
            Size(s.bytes_freed)
        );
        if s.already_deleted > 0 {
            let _ = writeln!(
                out,
                "{} of them were deleted before (an answer lost to a crash, or the console) \
                 and are now recorded",
                s.already_deleted
            );
        }
    }
    if s.held > 0 {
        let _ = writeln!(
            out,
            "held {} file(s): their recording is under a legal hold; they stay in the cloud",
            s.held
        );
    }
    if s.refused > 0 {
        let _ = writeln!(
            out,
            "refused {} file(s): their archived copy is not intact; they stay in the cloud",
            s.refused
        );
    }
    if s.failed > 0 {
        let _ = writeln!(
            out,
            "failed {} file(s): the API did not delete them",
            s.failed
        );
    }
    if let Some(why) = &report.stopped {
        let _ = writeln!(out, "stopped early: {why}");
    }
    if report.interrupted {
        out.push_str("interrupted: run prune again to go on\n");
    }
    if s.left_for_next_run > 0 {
        let _ = writeln!(
            out,
            "{} file(s) due are left for the next run (prune.max_per_run)",
            s.left_for_next_run
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wemeet_archiver::VerifyStatus as Status;
    use wemeet_archiver::{PRUNE_SCHEMA as SCHEMA, PruneRow, PruneSummary};

    fn report(dry_run: bool, rows: Vec<PruneRow>) -> PruneReport {
        PruneReport {
            schema: SCHEMA,
            archive: "/a".into(),
            dry_run,
            started_at: String::new(),
            finished_at: String::new(),
            archived_before: "2026-10-01T00:00:00+00:00".into(),
            interrupted: false,
            stopped: None,
            summary: PruneSummary {
                candidates: rows.len() as u64,
                checked: rows.len() as u64,
                would_delete: 1,
                refused: 1,
                bytes_would_free: 7,
                ..PruneSummary::default()
            },
            files: rows,
        }
    }

    fn row(path: &str, check: Status, outcome: Outcome, detail: Option<&str>) -> PruneRow {
        PruneRow {
            record_file_id: "1".into(),
            meeting_code: "2".into(),
            subject: "s".into(),
            path: path.into(),
            size: 7,
            archived_at: "2026-09-01T00:00:00+00:00".into(),
            check,
            outcome,
            detail: detail.map(String::from),
        }
    }

    #[test]
    fn a_dry_run_table_says_what_would_go_and_what_is_refused_by_name() {
        let r = report(
            true,
            vec![
                row("a.mp4", Status::Ok, Outcome::WouldDelete, None),
                row(
                    "b.mp4",
                    Status::HashMismatch,
                    Outcome::Refused,
                    Some("content differs"),
                ),
            ],
        );
        let text = render(&r, Format::Table);
        assert!(
            text.starts_with(
                "would delete     a.mp4  7 B, archived 2026-09-01T00:00:00+00:00\n\
                 refused          b.mp4: hash_mismatch: content differs\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("dry run: nothing was deleted; 1 file(s) would be deleted"),
            "{text}"
        );
        assert!(text.contains("refused 1 file(s)"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
        assert_eq!(json["schema"], SCHEMA);
        assert_eq!(json["files"][1]["outcome"], "refused");
        assert_eq!(json["files"][1]["check"], "hash_mismatch");
        assert_eq!(json["files"][0]["outcome"], "would_delete");
        assert_eq!(exit::of_prune(&r), exit::Exit::Incomplete);
    }
}
