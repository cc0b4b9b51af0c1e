//! `export --to DIR`: the selected recordings copied out, checked, with `SHA256SUMS` and
//! `manifest.json`; a summary, and every refused copy named.

use super::exit::{CliResult, Exit, Failure};
use super::human::Size;
use super::progress::{Display, Job};
use super::search::Selection;
use indicatif::MultiProgress;
use std::path::PathBuf;
use wemeet_archiver::Progress;
use wemeet_archiver::config::Config;
use wemeet_archiver::{ExportOptions, ExportOutcome as Outcome};

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// The folder to export into: new or empty (created if missing).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Finish an earlier export into DIR: files already there intact are not copied again.
    #[arg(long)]
    pub resume: bool,
    /// Draw no progress display (it is drawn only when standard error is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

pub async fn run(config: &Config, args: &ExportArgs, display: Option<MultiProgress>) -> CliResult {
    let query = args.selection.query(config.storage.timezone)?;
    let (store, archive) = super::search::open(config).await?;
    let options = ExportOptions {
        to: args.to.clone(),
        resume: args.resume,
        progress: Progress::default(),
    };
    let display =
        display.map(|multi| Display::start(&multi, options.progress.clone(), Job::Export));
    let report = wemeet_archiver::export(&store, archive.as_ref(), &query, &options).await;
    if let Some(display) = display {
        display.finish().await;
    }
    let report = report.map_err(|e| {
        if e.is_usage() {
            Failure::usage(e)
        } else {
            Failure::incomplete(e)
        }
    })?;
    for f in report
        .files
        .iter()
        .filter(|f| f.outcome == Outcome::Refused)
    {
        println!(
            "refused  {}: {}",
            f.path,
            f.detail.as_deref().unwrap_or_default()
        );
    }
    let bytes: u64 = report
        .files
        .iter()
        .filter(|f| matches!(f.outcome, Outcome::Exported | Outcome::AlreadyExported))
        .filter_map(|f| f.size)
        .sum();
    println!(
        "{} recording(s) into {}: {} file(s) exported, {} already there intact, {} refused, {} not archived; {}",
        report.recordings,
        args.to.display(),
        report.count(Outcome::Exported),
        report.count(Outcome::AlreadyExported),
        report.count(Outcome::Refused),
        report.count(Outcome::NotArchived),
        Size(bytes),
    );
    println!(
        "check it with: cd {} && sha256sum -c {}",
        args.to.display(),
        wemeet_archiver::SUMS
    );
    Ok(if report.complete() {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}
