//! `expire`: its flags, and the report rendered as a table or JSON.

use super::exit::{CliResult, Exit};
use super::human::Size;
use super::prune::Format;
use std::fmt::Write as _;
use std::path::Path;
use wemeet_archiver::App;
use wemeet_archiver::UnixMs;
use wemeet_archiver::config::Config;
use wemeet_archiver::{ExpireOutcome, ExpireReport};

#[derive(Debug, Clone, clap::Args)]
pub struct ExpireArgs {
    /// List the recordings past retention.keep that a real run would remove (and the held
    /// ones it would keep), remove nothing. Allowed without retention.expire.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(config: &Path, args: &ExpireArgs) -> CliResult {
    let app = App::open(Config::load(config)?).await?;
    let report = app.expire(args.dry_run).await?;
    print!("{}", render(&report, args.format));
    Ok(if report.count(ExpireOutcome::Failed) == 0 {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}

fn render(report: &ExpireReport, format: Format) -> String {
    if format == Format::Json {
        let mut s = serde_json::to_string_pretty(report).expect("plain data serialises");
        s.push('\n');
        return s;
    }
    let mut out = String::new();
    for row in &report.recordings {
        let r = &row.recording;
        let label = match row.outcome {
            ExpireOutcome::Expired => "expired",
            ExpireOutcome::WouldExpire => "would expire",
            ExpireOutcome::Held => "held",
            ExpireOutcome::Failed => "failed",
        };
        let bytes: i64 = r.files.iter().filter_map(|f| f.size).sum();
        let _ = writeln!(
            out,
            "{label:<13}  {}  {} {}  started {}, {} file(s), {}{}",
            r.meeting_record_id,
            r.meeting_code,
            r.subject,
            UnixMs::to_rfc3339(r.media_start_time).unwrap_or_default(),
            r.files.len(),
            Size::of(bytes),
            row.detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "retention.keep {}: recordings that started before {} are past it",
        report.keep, report.started_before
    );
    let held = report.count(ExpireOutcome::Held);
    if report.dry_run {
        let _ = writeln!(
            out,
            "dry run: nothing was removed; {} recording(s) would expire, {held} held",
            report.count(ExpireOutcome::WouldExpire)
        );
    } else {
        let _ = writeln!(
            out,
            "expired {} recording(s) from the archive, {held} held, {} failed",
            report.count(ExpireOutcome::Expired),
            report.count(ExpireOutcome::Failed)
        );
    }
    out
}
