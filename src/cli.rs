//! Command line: arguments, logging, signals, exit codes.

use crate::app::{App, AppError, BackfillReport};
use crate::config::{Config, ConfigError};
use crate::simulator;
use chrono::{DateTime, NaiveDate, TimeZone};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Everything in the range is archived.
pub const EXIT_OK: u8 = 0;
/// Some files are not archived (failed, unavailable, or a window could not be listed).
pub const EXIT_INCOMPLETE: u8 = 1;
/// Bad configuration, usage or credentials: nothing was changed.
pub const EXIT_USAGE: u8 = 2;

const DEFAULT_CONFIG: &str = "/etc/wemeet-archiver/config.toml";

#[derive(Debug, Parser)]
#[command(
    name = "wemeet-archiver",
    version,
    about = "Archives Tencent Meeting cloud recordings with SHA-256 checksums"
)]
pub struct Cli {
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
        /// Give files that failed before a fresh set of attempts.
        #[arg(long)]
        retry_failed: bool,
    },
    /// Show meetings and files by state, bytes archived and failures.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every archived file against the database; report missing, damaged, extra
    /// and leftover files. Exit 0 intact, 1 problems found, 2 the check could not run.
    Verify(crate::verify::VerifyArgs),
    /// Run the built-in simulator of the Tencent Meeting API and download host.
    Simulate(Box<simulator::SimulateArgs>),
    /// Archive a simulated account into DIR: no account, no network needed.
    Demo {
        /// Where the demo writes its config, database and recordings.
        #[arg(long, default_value = "demo-archive")]
        dir: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INCOMPLETE);
        }
    };
    runtime.block_on(run(cli))
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("WEMEET_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Backfill {
            since,
            until,
            retry_failed,
        } => backfill(&cli.config, &since, until.as_deref(), retry_failed).await,
        Command::Status { json } => status(&cli.config, json).await,
        Command::Run { since } => run_daemon(&cli.config, since.as_deref()).await,
        Command::Verify(args) => verify(&cli.config, &args).await,
        Command::Simulate(args) => simulator::run_standalone(*args)
            .await
            .map(|()| EXIT_OK)
            .map_err(|e| (EXIT_INCOMPLETE, e)),
        Command::Demo { dir } => crate::demo::run(&dir)
            .await
            .map_err(|e| (EXIT_INCOMPLETE, e)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err((code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

type CliResult = Result<u8, (u8, anyhow::Error)>;

fn load_config(path: &Path) -> Result<Config, (u8, anyhow::Error)> {
    Config::load(path).map_err(|e: ConfigError| (EXIT_USAGE, e.into()))
}

/// Maps an error of the job to its exit code: what the admin must fix is a usage error.
fn app_error(e: AppError) -> (u8, anyhow::Error) {
    let code = match e {
        AppError::Fatal(_) | AppError::Locked(_) | AppError::Storage(_) => EXIT_USAGE,
        _ => EXIT_INCOMPLETE,
    };
    (code, e.into())
}

async fn backfill(
    config: &Path,
    since: &str,
    until: Option<&str>,
    retry_failed: bool,
) -> CliResult {
    let config = load_config(config)?;
    let tz = config.storage.timezone;
    let since =
        parse_time(since, tz, false).map_err(|e| (EXIT_USAGE, anyhow::anyhow!("--since: {e}")))?;
    let until = match until {
        Some(u) => {
            parse_time(u, tz, true).map_err(|e| (EXIT_USAGE, anyhow::anyhow!("--until: {e}")))?
        }
        None => chrono::Utc::now().timestamp(),
    };
    if until <= since {
        return Err((EXIT_USAGE, anyhow::anyhow!("--until must be after --since")));
    }
    let app = App::open(config).await.map_err(app_error)?;
    let report = app
        .backfill(since, until, retry_failed, shutdown_token())
        .await
        .map_err(app_error)?;
    print_report(&report);
    Ok(if report.complete() || report.interrupted {
        EXIT_OK
    } else {
        EXIT_INCOMPLETE
    })
}

async fn run_daemon(config: &Path, since: Option<&str>) -> CliResult {
    let config = load_config(config)?;
    let since = since
        .map(|s| parse_time(s, config.storage.timezone, false))
        .transpose()
        .map_err(|e| (EXIT_USAGE, anyhow::anyhow!("--since: {e}")))?;
    let app = App::open(config).await.map_err(app_error)?;
    app.run(since, shutdown_token()).await.map_err(app_error)?;
    Ok(EXIT_OK)
}

/// Prints what a backfill did and what is left, for the admin reading the terminal.
pub fn print_report(report: &BackfillReport) {
    println!(
        "listed {} window(s), {} meeting(s); archived {} file(s), {} bytes in this run",
        report.windows, report.meetings_seen, report.archived_now, report.bytes_now
    );
    if report.pending_meetings > 0 {
        println!(
            "{} meeting(s) still recording or transcoding: their files are archived by a later run",
            report.pending_meetings
        );
    }
    if report.interrupted {
        println!("interrupted: run the same command again to resume from the checkpoints");
    }
    for w in &report.failed_windows {
        println!("window not listed: {w}");
    }
    if !report.not_archived.is_empty() {
        println!("{} file(s) not archived:", report.not_archived.len());
        for (path, status, reason) in &report.not_archived {
            println!(
                "  {status:<12} {path}: {}",
                reason.as_deref().unwrap_or("-")
            );
        }
    }
}

/// Every failure of the check itself is exit 2: no verdict on the archive was reached.
async fn verify(config: &Path, args: &crate::verify::VerifyArgs) -> CliResult {
    let config = load_config(config)?;
    crate::verify::run(&config, args)
        .await
        .map_err(|e| (crate::verify::EXIT_CANNOT_CHECK, e.into()))
}

async fn status(config: &Path, json: bool) -> CliResult {
    let config = load_config(config)?;
    let store = crate::store::Store::open(&config.database.path)
        .await
        .map_err(|e| (EXIT_INCOMPLETE, e.into()))?;
    let report = store
        .status(crate::store::now_ms())
        .await
        .map_err(|e| (EXIT_INCOMPLETE, e.into()))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("plain data serialises")
        );
        return Ok(EXIT_OK);
    }
    println!("meetings: {}", counts(&report.meetings));
    println!("files:    {}", counts(&report.files));
    println!(
        "archived: {} bytes; still to download: {} bytes",
        report.bytes_archived, report.bytes_pending
    );
    // RFC 3339 of a time in ms, or "-".
    let when = |ms: Option<i64>| {
        ms.and_then(DateTime::from_timestamp_millis)
            .map_or_else(|| "-".into(), |t| t.to_rfc3339())
    };
    println!(
        "windows listed: {} (last at {})",
        report.windows_listed,
        when(report.last_listing_at)
    );
    println!(
        "API calls in the last 60 s: {} listing (of {}), {} addresses (of {})",
        report.api_calls_last_60s,
        config.api.requests_per_minute,
        report.address_calls_last_60s,
        config.api.addresses_per_minute
    );
    let d = &report.daemon;
    if d.next_poll_at.is_some() {
        println!(
            "daemon: last complete poll {}, next poll {}",
            when(d.last_poll_ok_at),
            when(d.next_poll_at)
        );
    }
    if let (Some(done), Some(total)) = (d.backfill_windows_done, d.backfill_windows_total) {
        println!("background backfill: {done}/{total} windows listed");
    }
    if let Some(p) = &d.oldest_pending {
        println!(
            "oldest pending file: {} ({}, waiting since {})",
            p.path,
            p.status,
            when(Some(p.waiting_since))
        );
    }
    if !d.failures_by_reason.is_empty() {
        println!("failures by reason:");
        for (reason, n) in &d.failures_by_reason {
            println!("  {n:>5}  {reason}");
        }
    }
    match report.files_verified {
        0 => println!("verified: never (run `wemeet-archiver verify`)"),
        n => println!(
            "verified: {n} archived file(s) found intact (oldest check {}, newest {})",
            when(report.oldest_verified_at),
            when(report.newest_verified_at)
        ),
    }
    if !report.uploads.is_empty() {
        println!("uploads in progress ({}):", report.uploads.len());
        for u in &report.uploads {
            println!(
                "  {} {} of {} bytes in {} part(s), since {}",
                u.path,
                u.bytes_uploaded,
                u.record_size,
                u.parts,
                when(Some(u.created_at))
            );
        }
    }
    if !report.failures.is_empty() {
        println!("not archivable ({}):", report.failures.len());
        for f in &report.failures {
            println!(
                "  {:<12} {} after {} attempt(s): {}",
                f.status,
                f.path,
                f.attempts,
                f.reason.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(EXIT_OK)
}

fn counts(map: &std::collections::BTreeMap<String, i64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `YYYY-MM-DD` is a day in `tz` (its start, or with `end_of_day` the start of the next
/// day, so `--until 2024-03-31` includes the 31st); anything else must be RFC 3339.
pub fn parse_time(text: &str, tz: chrono_tz::Tz, end_of_day: bool) -> Result<i64, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if end_of_day {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        return tz
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.timestamp())
            .ok_or_else(|| format!("{text} has no midnight in {tz}"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|_| format!("`{text}` is neither YYYY-MM-DD nor an RFC 3339 time"))
}

/// Cancelled on SIGINT or SIGTERM: workers stop claiming, checkpoint and return.
pub fn shutdown_token() -> CancellationToken {
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
    fn dates_are_days_in_the_archive_time_zone() {
        let sh = chrono_tz::Asia::Shanghai;
        // 2024-01-01 00:00 in Shanghai is 2023-12-31 16:00 UTC
        assert_eq!(parse_time("2024-01-01", sh, false), Ok(1_704_038_400));
        assert_eq!(
            parse_time("2024-01-01", sh, true),
            Ok(1_704_038_400 + 86_400)
        );
        assert_eq!(
            parse_time("2024-01-01T00:00:00Z", sh, false),
            Ok(1_704_067_200)
        );
        assert!(parse_time("yesterday", sh, false).is_err());
    }

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
