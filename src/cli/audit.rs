//! `audit verify` and `audit export`: the audit trail checked in both its copies, and
//! handed to an auditor as JSON lines or CSV.

use super::exit::{CliResult, Exit, Failure};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use wemeet_archiver::config::Config;
use wemeet_archiver::{Archive, TrailCheck, verify_trail, write_trail};
use wemeet_archiver::{AuditRecord, Db};

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain from the archive's copy and the database's; name the
    /// first record missing, altered or out of order. Exit 0 intact, 1 a problem found,
    /// 2 the check could not run.
    Verify {
        /// `table` for a person, `json` for scripts.
        #[arg(long, value_enum, default_value_t = VerifyFormat::Table)]
        format: VerifyFormat,
    },
    /// Print the trail (from the database): JSON lines exactly as the archive holds them,
    /// or CSV.
    Export {
        /// Records made at or after this day (YYYY-MM-DD, in storage.timezone) or instant.
        #[arg(long)]
        since: Option<String>,
        /// Records made at or before this day (included) or instant.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One record per line, as in the archive (each line's hash can be recomputed).
    Json,
    /// seq, at, action, meeting_record_id, record_file_id, details (JSON), prev, hash.
    Csv,
}

/// The database and the archive of `config`, for the commands that change no recording.
pub async fn open(config: &Config) -> Result<(Db, Arc<dyn Archive>), Failure> {
    let store = Db::open(&config.database.path)
        .await
        .map_err(Failure::usage)?;
    let archive = open_archive(config, &store)?;
    // `hold` and `audit verify` write into the archive: a bucket that cannot lock
    // objects under `retention.mode` is refused first.
    archive.check_promises().await.map_err(Failure::usage)?;
    Ok((store, archive))
}

/// The configured archive, over `store` (a refused configuration is a usage error).
pub fn open_archive(config: &Config, store: &Db) -> Result<Arc<dyn Archive>, Failure> {
    wemeet_archiver::open_archive(
        &config.storage.path,
        config.storage.s3.as_ref(),
        config.download.checkpoint_bytes,
        store.clone(),
    )
    .map_err(Failure::usage)
}

pub async fn run(config: &Path, command: AuditCommand) -> CliResult {
    let config = Config::load(config)?;
    let (store, archive) = open(&config).await?;
    match command {
        AuditCommand::Verify { format } => {
            // Records not in the archive yet (a job whose write failed) are written
            // first, so the check covers the whole trail.
            write_trail(&store, archive.as_ref())
                .await
                .map_err(Failure::usage)?;
            let check = verify_trail(&store, archive.as_ref())
                .await
                .map_err(Failure::usage)?;
            print!("{}", render_check(&check, format));
            Ok(if check.passed() {
                Exit::Ok
            } else {
                Exit::Incomplete
            })
        }
        AuditCommand::Export {
            since,
            until,
            format,
        } => {
            let tz = config.storage.timezone;
            let bound = |t: Option<String>, end: bool, flag: &str| {
                t.map(|t| super::time::bound(&t, tz, end))
                    .transpose()
                    .map_err(|e| Failure::usage(anyhow::anyhow!("{flag}: {e}")))
            };
            let since = bound(since, false, "--since")?;
            let until = bound(until, true, "--until")?;
            let records = store
                .audit_records_between(since, until)
                .await
                .map_err(Failure::usage)?;
            print!("{}", render_records(&records, format)?);
            Ok(Exit::Ok)
        }
    }
}

fn render_check(check: &TrailCheck, format: VerifyFormat) -> String {
    match format {
        VerifyFormat::Json => {
            let mut s = serde_json::to_string_pretty(check).expect("plain data serialises");
            s.push('\n');
            s
        }
        VerifyFormat::Table => {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "{} record(s) in the database, {} read back from {} segment(s) in the archive",
                check.records, check.in_archive, check.segments
            );
            match &check.problem {
                None => {
                    let _ = writeln!(out, "the audit trail is intact: every hash and link checks");
                }
                Some(p) => {
                    let _ = writeln!(out, "{p}");
                }
            }
            out
        }
    }
}

fn render_records(records: &[AuditRecord], format: ExportFormat) -> Result<String, Failure> {
    match format {
        ExportFormat::Json => {
            let mut out = String::new();
            for r in records {
                out.push_str(&r.to_line());
                out.push('\n');
            }
            Ok(out)
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let csv = |e: csv::Error| Failure::incomplete(e);
            w.write_record([
                "seq",
                "at",
                "action",
                "meeting_record_id",
                "record_file_id",
                "details",
                "prev",
                "hash",
            ])
            .map_err(csv)?;
            for r in records {
                w.write_record([
                    r.seq.to_string().as_str(),
                    &r.at,
                    &r.action,
                    r.meeting_record_id.as_deref().unwrap_or(""),
                    r.record_file_id.as_deref().unwrap_or(""),
                    &r.details.to_string(),
                    &r.prev,
                    &r.hash,
                ])
                .map_err(csv)?;
            }
            let bytes = w
                .into_inner()
                .map_err(|e| Failure::incomplete(e.into_error()))?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
    }
}
