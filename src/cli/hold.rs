//! `hold add|release|list`: legal holds, kept in the database and in the archive
//! (`.wemeet-archiver/holds.json`), each change recorded in the audit trail.

use super::exit::{CliResult, Exit, Failure};
use std::fmt::Write as _;
use std::path::Path;
use wemeet_archiver::UnixMs;
use wemeet_archiver::config::Config;
use wemeet_archiver::{Hold, HoldScope, ReleaseError};

#[derive(Debug, clap::Subcommand)]
pub enum HoldCommand {
    /// Place a legal hold: the recordings it covers are never expired, pruned from the
    /// cloud, moved or rewritten until it is released.
    Add(AddArgs),
    /// Release hold HOLD_ID (`hold list` shows the ids); recordings still covered by
    /// another hold stay held.
    Release {
        #[arg(value_name = "HOLD_ID")]
        id: i64,
    },
    /// Every hold, in force or released.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["meeting", "user", "since"])))]
pub struct AddArgs {
    /// One recording, by its meeting_record_id.
    #[arg(long, value_name = "MEETING_RECORD_ID")]
    meeting: Option<String>,
    /// Every recording created by this userid.
    #[arg(long, value_name = "USERID")]
    user: Option<String>,
    /// Every recording that started from this day (YYYY-MM-DD, in storage.timezone) or
    /// instant; needs --until.
    #[arg(long, requires = "until")]
    since: Option<String>,
    /// ...to this day (included) or instant.
    #[arg(long, requires = "since")]
    until: Option<String>,
    /// Why (the matter, the request): kept with the hold and in the audit trail.
    #[arg(long)]
    reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

pub async fn run(config: &Path, command: HoldCommand) -> CliResult {
    let config = Config::load(config)?;
    let (store, archive) = super::audit::open(&config).await?;
    let changed = match command {
        HoldCommand::Add(args) => {
            let scope = scope(&args, config.storage.timezone)?;
            if args.reason.trim().is_empty() {
                return Err(Failure::usage(anyhow::anyhow!(
                    "--reason must say why the recordings are held"
                )));
            }
            let hold = store
                .add_hold(&scope, &args.reason)
                .await
                .map_err(Failure::incomplete)?;
            println!("hold {} placed on {}: {}", hold.id, hold.scope, hold.reason);
            hold
        }
        HoldCommand::Release { id } => {
            let hold = store.release_hold(id).await.map_err(|e| match e {
                ReleaseError::Db(e) => Failure::incomplete(e),
                other => Failure::usage(other),
            })?;
            println!("hold {} on {} released", hold.id, hold.scope);
            hold
        }
        HoldCommand::List { format } => {
            let holds = store.holds().await.map_err(Failure::incomplete)?;
            print!("{}", render(&holds, format));
            return Ok(Exit::Ok);
        }
    };
    // Under `retention.mode` each archived object of a recording held now carries an S3
    // legal hold, lifted when the last hold on it is released.
    let (objects, on) = match changed.released_at {
        None => (store.objects_of_hold(changed.id, false).await, true),
        Some(_) => (store.objects_of_hold(changed.id, true).await, false),
    };
    let objects = objects.map_err(Failure::incomplete)?;
    for path in &objects {
        archive.set_legal_hold(path, on).await.map_err(|e| {
            Failure::incomplete(anyhow::Error::new(e).context(format!(
                "hold {} is recorded in the database, but the S3 legal hold of `{path}` (and \
                 of the objects after it) could not be {}: fix the bucket's access, then set \
                 it by hand (aws s3api put-object-legal-hold)",
                changed.id,
                if on { "set" } else { "lifted" }
            )))
        })?;
    }
    // The database has the change; the archive's copies follow. A failure here leaves
    // them behind until the next change or job writes them: say so, exit 1.
    wemeet_archiver::write_holds(&store, archive.as_ref())
        .await
        .map_err(|e| {
            Failure::incomplete(
                anyhow::Error::new(e)
                    .context(format!("hold {} is recorded in the database", changed.id)),
            )
        })?;
    wemeet_archiver::write_trail(&store, archive.as_ref())
        .await
        .map_err(Failure::incomplete)?;
    Ok(Exit::Ok)
}

fn scope(args: &AddArgs, tz: chrono_tz::Tz) -> Result<HoldScope, Failure> {
    Ok(
        match (&args.meeting, &args.user, &args.since, &args.until) {
            (Some(m), ..) => HoldScope::Meeting {
                meeting_record_id: m.as_str().into(),
            },
            (None, Some(u), ..) => HoldScope::User { userid: u.clone() },
            (None, None, Some(since), Some(until)) => {
                let bound = |t: &str, end: bool, flag: &str| {
                    super::time::bound(t, tz, end)
                        .map_err(|e| Failure::usage(anyhow::anyhow!("{flag}: {e}")))
                };
                let (since, until) = (
                    bound(since, false, "--since")?,
                    bound(until, true, "--until")?,
                );
                if until < since {
                    return Err(Failure::usage(anyhow::anyhow!(
                        "--until must not be before --since"
                    )));
                }
                HoldScope::Range { since, until }
            }
            _ => {
                return Err(Failure::usage(anyhow::anyhow!(
                    "give --meeting, --user, or --since with --until"
                )));
            }
        },
    )
}

fn render(holds: &[Hold], format: ListFormat) -> String {
    match format {
        ListFormat::Json => {
            let mut s = serde_json::to_string_pretty(holds).expect("plain data serialises");
            s.push('\n');
            s
        }
        ListFormat::Table => {
            let mut out = String::new();
            let time = |t: UnixMs| t.to_rfc3339().unwrap_or_default();
            for h in holds {
                let state = h.released_at.map_or_else(
                    || "in force".to_owned(),
                    |t| format!("released {}", time(t)),
                );
                let _ = writeln!(
                    out,
                    "{:>4}  {:<40}  placed {}  {state}  {}",
                    h.id,
                    h.scope.to_string(),
                    time(h.created_at),
                    h.reason
                );
            }
            if holds.is_empty() {
                out.push_str("no holds\n");
            }
            out
        }
    }
}
