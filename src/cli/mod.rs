//! Command line: arguments, logging, signals; each command runs the library and renders
//! what it returns. Printing is allowed here and nowhere in the library.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod assets;
mod audit;
#[cfg(feature = "simulator")]
mod demo;
mod exit;
mod expire;
mod export;
mod hold;
mod human;
mod progress;
mod prune;
mod render;
mod search;
mod time;
mod verify;

use clap::{Parser, Subcommand};
use exit::{CliResult, Exit, Failure};
use indicatif::MultiProgress;
use progress::{Display, Job};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use wemeet_archiver::App;
use wemeet_archiver::Db;
use wemeet_archiver::UnixMs;
use wemeet_archiver::config::Config;

const DEFAULT_CONFIG: &str = "/etc/wemeet-archiver/config.toml";

#[derive(Debug, Parser)]
#[command(
    name = "wemeet-archiver",
    version,
    about = "Archives Tencent Meeting cloud recordings with SHA-256 checksums"
)]
struct Cli {
    /// Configuration file (TOML); see config/wemeet-archiver.example.toml.
    #[arg(long, global = true, env = "WEMEET_ARCHIVER_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Log format on standard error: `text`, `json`, or `auto` (text on a terminal, JSON
    /// otherwise, e.g. under systemd or cron).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run as a service until SIGTERM: poll for new recordings every poll.interval and
    /// archive them; with --since, also backfill older windows in the background.
    Run {
        /// Also backfill from this day (YYYY-MM-DD) or instant (RFC 3339).
        #[arg(long)]
        since: Option<String>,
    },
    /// List a date range, record every recording, download every transcoded file, exit.
    Backfill {
        /// First day (YYYY-MM-DD, in storage.timezone) or instant (RFC 3339).
        #[arg(long)]
        since: String,
        /// Last day, included (YYYY-MM-DD) or instant (RFC 3339); default: now.
        #[arg(long)]
        until: Option<String>,
        /// Give files that failed (or were unavailable) before a fresh set of attempts.
        #[arg(long)]
        retry_failed: bool,
        /// Draw no progress display (it is drawn only when standard error is a terminal).
        #[arg(long)]
        no_progress: bool,
    },
    /// Show meetings and files by state, bytes archived and failures.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every archived file against the database; report missing, damaged, extra
    /// and leftover files. Exit 0 intact, 1 problems found, 2 the check could not run.
    Verify(verify::VerifyArgs),
    /// Delete from the cloud, FOR GOOD, the files archived at least prune.after ago, each
    /// only once its archived copy was re-read and found intact. Needs prune.enabled; try
    /// --dry-run first. Exit 0 done, 1 a copy not intact (kept) or a deletion failed, 2
    /// not enabled or bad credentials.
    Prune(prune::PruneArgs),
    /// Move every archived file to its path under storage.layout, after the layout was
    /// changed (backfill and run refuse until then). Crash-safe: rerun it after a kill to
    /// finish. Exit 0 done, 2 bad configuration or a move that failed (rerun it).
    Relayout {
        /// List what would move, move nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rebuild the database from the archive alone, with no API call: read every
    /// meeting.json and record the meetings and files the database lacks (what it knows is
    /// never changed; disagreements are reported). Exit 0 done, 1 a meeting.json could not
    /// be read or disagrees with the database, 2 bad configuration or another account's
    /// archive.
    Reindex {
        /// Draw no progress display (it is drawn only when standard error is a terminal).
        #[arg(long)]
        no_progress: bool,
    },
    /// Find recordings by creator, subject, dates, meeting code and words said (in their
    /// archived transcripts). Exit 0 found, 1 none, 2 bad usage.
    Search(search::SearchArgs),
    /// Copy the recordings the same selectors find (video, artifacts, meeting.json) into
    /// DIR, each checked against its recorded SHA-256, with SHA256SUMS and manifest.json.
    /// Exit 0 all intact, 1 a copy refused (named), 2 bad usage or a non-empty DIR.
    Export(export::ExportArgs),
    /// Remove from the archive, FOR GOOD, the recordings that started longer than
    /// retention.keep ago, never a held one. Needs retention.expire; try --dry-run first.
    /// Exit 0 done, 1 a removal failed, 2 not enabled or no retention.keep.
    Expire(expire::ExpireArgs),
    /// The audit trail: check it (`audit verify`) or hand it to an auditor (`audit export`).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Legal holds: `hold add`, `hold release`, `hold list`.
    #[command(subcommand)]
    Hold(hold::HoldCommand),
    /// Run the built-in simulator of the Tencent Meeting API and download host.
    #[cfg(feature = "simulator")]
    Simulate(Box<wemeet_sim::SimulateArgs>),
    /// Archive a simulated account into DIR: no account, no network needed.
    #[cfg(feature = "simulator")]
    Demo {
        /// Where the demo writes its config, database and recordings.
        #[arg(long, default_value = "demo-archive")]
        dir: PathBuf,
    },
}

impl Command {
    /// The commands that draw a progress display, unless told not to.
    fn wants_progress(&self) -> bool {
        match self {
            Self::Backfill { no_progress, .. } => !no_progress,
            Self::Verify(args) => !args.no_progress,
            Self::Reindex { no_progress } => !no_progress,
            Self::Export(args) => !args.no_progress,
            _ => false,
        }
    }
}

pub fn main() -> ExitCode {
    if let Some(exit) = assets::requested() {
        return exit.into();
    }
    let cli = Cli::parse();
    let display = progress::wants(cli.command.wants_progress()).then(MultiProgress::new);
    init_logging(cli.log_format, display.clone());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Incomplete.into();
        }
    };
    match runtime.block_on(run(cli, display)) {
        Ok(exit) => exit.into(),
        Err(Failure { exit, error }) => {
            eprintln!("error: {error:#}");
            exit.into()
        }
    }
}

/// Logs go to standard error; while a progress display is drawn there, above it.
fn init_logging(format: LogFormat, display: Option<MultiProgress>) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = EnvFilter::try_from_env("WEMEET_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let writer = match display {
        Some(multi) => BoxMakeWriter::new(progress::Above(multi)),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

/// Runs the command; `display` is where backfill and verify draw their progress, if at all.
async fn run(cli: Cli, display: Option<MultiProgress>) -> CliResult {
    match cli.command {
        Command::Backfill {
            since,
            until,
            retry_failed,
            no_progress: _,
        } => backfill(&cli.config, &since, until.as_deref(), retry_failed, display).await,
        Command::Status { json } => status(&cli.config, json).await,
        // Boxed: the service's future holds the whole open state (config, layout, filter).
        Command::Run { since } => Box::pin(run_daemon(&cli.config, since.as_deref())).await,
        Command::Verify(args) => verify::run(&Config::load(&cli.config)?, &args, display).await,
        Command::Prune(args) => prune::run(&cli.config, &args).await,
        Command::Relayout { dry_run } => relayout(&cli.config, dry_run).await,
        Command::Reindex { no_progress: _ } => reindex(&cli.config, display).await,
        Command::Search(args) => search::run(&Config::load(&cli.config)?, &args).await,
        Command::Export(args) => export::run(&Config::load(&cli.config)?, &args, display).await,
        Command::Expire(args) => expire::run(&cli.config, &args).await,
        Command::Audit(command) => audit::run(&cli.config, command).await,
        Command::Hold(command) => hold::run(&cli.config, command).await,
        #[cfg(feature = "simulator")]
        Command::Simulate(args) => simulate(*args).await,
        #[cfg(feature = "simulator")]
        Command::Demo { dir } => Box::pin(demo::run(&dir)).await.map_err(Failure::incomplete),
    }
}

async fn backfill(
    config: &Path,
    since: &str,
    until: Option<&str>,
    retry_failed: bool,
    display: Option<MultiProgress>,
) -> CliResult {
    let config = Config::load(config)?;
    let tz = config.storage.timezone;
    let since = time::parse_time(since, tz, false)
        .map_err(|e| Failure::usage(anyhow::anyhow!("--since: {e}")))?;
    let until = match until {
        Some(u) => time::parse_time(u, tz, true)
            .map_err(|e| Failure::usage(anyhow::anyhow!("--until: {e}")))?,
        None => UnixMs::now().as_secs(),
    };
    if until <= since {
        return Err(Failure::usage(anyhow::anyhow!(
            "--until must be after --since"
        )));
    }
    let app = App::open(config).await?;
    let display = display.map(|multi| {
        let job = Job::Backfill {
            store: app.store.clone(),
            budgets: app.budgets().clone(),
            listing_limit: app.config.api.requests_per_minute,
            addresses_limit: app.config.api.addresses_per_minute,
        };
        Display::start(&multi, app.progress().clone(), job)
    });
    let started = std::time::Instant::now();
    let report = app
        .backfill(since, until, retry_failed, shutdown_token())
        .await;
    if let Some(display) = display {
        display.finish().await;
    }
    let report = report?;
    print!("{}", render::backfill(&report, started.elapsed()));
    Ok(if report.complete() || report.interrupted {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}

async fn relayout(config: &Path, dry_run: bool) -> CliResult {
    let app = App::open_for_relayout(Config::load(config)?).await?;
    let report = app.relayout(dry_run).await?;
    print!("{}", render::relayout(&report));
    Ok(Exit::Ok)
}

async fn reindex(config: &Path, display: Option<MultiProgress>) -> CliResult {
    let app = App::open_for_relayout(Config::load(config)?).await?;
    let display = display.map(|multi| Display::start(&multi, app.progress().clone(), Job::Reindex));
    let report = app.reindex(&shutdown_token()).await;
    if let Some(display) = display {
        display.finish().await;
    }
    let report = report?;
    print!("{}", render::reindex(&report));
    Ok(if report.passed() {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}

async fn run_daemon(config: &Path, since: Option<&str>) -> CliResult {
    let config = Config::load(config)?;
    let since = since
        .map(|s| time::parse_time(s, config.storage.timezone, false))
        .transpose()
        .map_err(|e| Failure::usage(anyhow::anyhow!("--since: {e}")))?;
    let app = App::open(config).await?;
    app.run(since, shutdown_token()).await?;
    Ok(Exit::Ok)
}

async fn status(config: &Path, json: bool) -> CliResult {
    let config = Config::load(config)?;
    let store = Db::open(&config.database.path)
        .await
        .map_err(Failure::incomplete)?;
    let now = UnixMs::now();
    let report = store.status(now).await.map_err(Failure::incomplete)?;
    if json {
        // What the configuration promises beside what the database counts.
        let mut value = serde_json::to_value(&report).expect("plain data serialises");
        let retention = &config.retention;
        value["retention"]["mode"] = retention
            .mode
            .map_or_else(|| "none".to_owned(), |m| m.to_string())
            .into();
        value["retention"]["keep_s"] = retention.keep.map(|k| k.as_secs()).into();
        value["retention"]["expire"] = retention.expire.into();
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("plain data serialises")
        );
    } else {
        print!("{}", render::status(&report, &config, now));
    }
    Ok(Exit::Ok)
}

/// `simulate`: serves until Ctrl-C, after printing how to point the archiver at it.
#[cfg(feature = "simulator")]
async fn simulate(args: wemeet_sim::SimulateArgs) -> CliResult {
    let handle = wemeet_sim::start(args.to_config(), args.listen)
        .await
        .map_err(Failure::incomplete)?;
    println!("{}\nCtrl-C to stop.", handle.describe());
    tokio::signal::ctrl_c().await.map_err(Failure::incomplete)?;
    handle.shutdown().await;
    Ok(Exit::Ok)
}

/// Cancelled on SIGINT or SIGTERM: workers stop claiming, checkpoint and return.
fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping: checkpointing transfers in flight");
        child.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
