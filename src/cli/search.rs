//! `search`: its selectors (shared with `export`), and the recordings found as a table,
//! JSON or CSV.

use super::exit::{CliResult, Exit, Failure};
use super::human::Size;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::Duration;
use wemeet_archiver::Archive;
use wemeet_archiver::Db;
use wemeet_archiver::UnixMs;
use wemeet_archiver::config::Config;
use wemeet_archiver::{Query, Recording, SearchError};

/// Which recordings: every selector given must hold.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// The creator's userid, exactly.
    #[arg(long, value_name = "USERID")]
    pub user: Option<String>,
    /// A regular expression (Rust `regex` syntax) searched anywhere in the subject;
    /// `(?i)` ignores case.
    #[arg(long, value_name = "REGEX")]
    pub subject: Option<String>,
    /// Media started on or after this day (YYYY-MM-DD, in storage.timezone) or instant
    /// (RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Media started on or before this day (included) or instant.
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// The meeting code, exactly.
    #[arg(long, value_name = "MEETING_CODE")]
    pub code: Option<String>,
    /// Words the archived transcripts must say, every one (anywhere, without regard to
    /// case; a word of one or two characters such as 预算 too).
    #[arg(long, value_name = "WORDS")]
    pub text: Option<String>,
    /// At most N recordings, the earliest first.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl Selection {
    /// The query these flags ask for, dates read in `tz`.
    pub fn query(&self, tz: chrono_tz::Tz) -> Result<Query, Failure> {
        let usage = |e: String| Failure::usage(SearchError::Usage(e));
        let bound = |flag: &str, text: &Option<String>, end: bool| {
            text.as_deref()
                .map(|t| super::time::bound(t, tz, end).map_err(|e| usage(format!("{flag}: {e}"))))
                .transpose()
        };
        let subject = self
            .subject
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| usage(format!("--subject is not a regular expression: {e}")))?;
        let text = match &self.text {
            Some(t) => Query::words(t).map_err(Failure::usage)?,
            None => Vec::new(),
        };
        let query = Query {
            user: self.user.clone(),
            subject,
            since: bound("--since", &self.since, false)?,
            until: bound("--until", &self.until, true)?,
            code: self.code.clone(),
            text,
            limit: self.limit,
        };
        query.check().map_err(Failure::usage)?;
        Ok(query)
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// `table`: each recording, its files and the lines said, words marked; `json`: one
    /// object (the lines with their byte offsets); `csv`: one line per file.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// With a bucket: add to each archived file a presigned GET link that expires after
    /// DURATION (e.g. 1h, 7d; at most 7 days, S3's limit).
    #[arg(long, value_name = "DURATION", value_parser = parse_urls)]
    pub urls: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// The longest a SigV4 presigned URL may live.
const MAX_URL_LIFE: Duration = Duration::from_secs(7 * 24 * 3600);

fn parse_urls(text: &str) -> Result<Duration, String> {
    match wemeet_archiver::config::parse_duration(text) {
        Some(d) if !d.is_zero() && d <= MAX_URL_LIFE => Ok(d),
        _ => Err(format!(
            "`{text}` is not a duration between 1s and 7d (e.g. 1h, 2d)"
        )),
    }
}

/// The existing database and the configured archive (never a new database: a search of
/// one would find nothing and hide a wrong `database.path`).
pub async fn open(config: &Config) -> Result<(Db, Arc<dyn Archive>), Failure> {
    let db = &config.database.path;
    if !db.is_file() {
        return Err(Failure::usage(anyhow::anyhow!(
            "no database at {} (database.path): nothing has been archived with this configuration",
            db.display()
        )));
    }
    let store = Db::open(db).await.map_err(Failure::incomplete)?;
    let archive = super::audit::open_archive(config, &store)?;
    Ok((store, archive))
}

pub async fn run(config: &Config, args: &SearchArgs) -> CliResult {
    let tz = config.storage.timezone;
    let query = args.selection.query(tz)?;
    if args.urls.is_some() && config.storage.s3.is_none() {
        return Err(Failure::usage(anyhow::anyhow!(
            "--urls needs a bucket (storage.backend = \"s3\"): files on disk have no links"
        )));
    }
    let (store, archive) = open(config).await?;
    let found = wemeet_archiver::search(&store, archive.as_ref(), &query, args.urls)
        .await
        .map_err(|e| match e {
            SearchError::Usage(_) => Failure::usage(e),
            other => Failure::incomplete(other),
        })?;
    let text = match args.format {
        Format::Table => table(&found, tz, std::io::stdout().is_terminal()),
        Format::Json => json(&found, &query, archive.as_ref(), tz),
        Format::Csv => csv(&found, tz),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Failure::incomplete)?;
    Ok(if found.is_empty() {
        Exit::Incomplete
    } else {
        Exit::Ok
    })
}

/// `2026-03-02 10:30:00 +08:00`, in the archive's zone.
fn local(t: UnixMs, tz: chrono_tz::Tz) -> String {
    in_zone(t, tz, "%Y-%m-%d %H:%M:%S %:z")
}

fn in_zone(t: UnixMs, tz: chrono_tz::Tz, format: &str) -> String {
    chrono::DateTime::from_timestamp_millis(t.as_millis())
        .map(|u| u.with_timezone(&tz).format(format).to_string())
        .unwrap_or_default()
}

/// Each recording, its files, and the lines said with the words marked (bold and
/// underlined on a terminal, `**word**` otherwise), then how many.
pub fn table(found: &[Recording], tz: chrono_tz::Tz, terminal: bool) -> String {
    let (on, off) = if terminal {
        ("\x1b[1;4m", "\x1b[0m")
    } else {
        ("**", "**")
    };
    let mut out = String::new();
    for r in found {
        let _ = writeln!(
            out,
            "{}  {}  {}  code {}  ({})",
            local(r.media_start_time, tz),
            r.userid,
            r.subject.escape_debug(),
            r.meeting_code,
            r.meeting_record_id
        );
        for f in &r.files {
            let _ = writeln!(
                out,
                "    {:<10}  {:>9}  {:<11}  {}",
                f.kind.as_str(),
                Size(u64::try_from(f.size).unwrap_or(0)).to_string(),
                f.status.as_str(),
                f.location
            );
            if let Some(url) = &f.url {
                let _ = writeln!(out, "        {url}");
            }
        }
        for t in &r.transcript_lines {
            for l in &t.lines {
                let mut marked = String::new();
                let mut at = 0;
                for (s, e) in &l.offsets {
                    marked.push_str(&l.line[at..*s]);
                    let _ = write!(marked, "{on}{}{off}", &l.line[*s..*e]);
                    at = *e;
                }
                marked.push_str(&l.line[at..]);
                let _ = writeln!(out, "    > {}:{}  {marked}", t.path, l.line_no);
            }
        }
    }
    let _ = writeln!(out, "{} recording(s)", found.len());
    out
}

/// A recording with its start in the archive's zone, for JSON.
#[derive(serde::Serialize)]
struct Shown<'a> {
    start: String,
    #[serde(flatten)]
    recording: &'a Recording,
}

fn json(found: &[Recording], query: &Query, archive: &dyn Archive, tz: chrono_tz::Tz) -> String {
    let recordings: Vec<Shown> = found
        .iter()
        .map(|r| Shown {
            start: in_zone(r.media_start_time, tz, "%Y-%m-%dT%H:%M:%S%:z"),
            recording: r,
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&serde_json::json!({
        "schema": "wemeet-archiver.search/1",
        "archive": archive.describe(),
        "query": query,
        "count": found.len(),
        "recordings": recordings,
    }))
    .expect("plain data serialises");
    s.push('\n');
    s
}

/// One line per file, RFC 4180 quoting.
fn csv(found: &[Recording], tz: chrono_tz::Tz) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let header = [
        "meeting_record_id",
        "start",
        "userid",
        "subject",
        "meeting_code",
        "record_file_id",
        "kind",
        "size",
        "status",
        "location",
        "sha256",
        "url",
    ];
    writer
        .write_record(header)
        .expect("writing to memory cannot fail");
    for r in found {
        let start = local(r.media_start_time, tz);
        for f in &r.files {
            let size = f.size.to_string();
            writer
                .write_record([
                    r.meeting_record_id.as_str(),
                    &start,
                    &r.userid,
                    &r.subject,
                    &r.meeting_code,
                    f.record_file_id.as_str(),
                    f.kind.as_str(),
                    &size,
                    f.status.as_str(),
                    &f.location,
                    f.sha256.as_deref().unwrap_or(""),
                    f.url.as_deref().unwrap_or(""),
                ])
                .expect("writing to memory cannot fail");
        }
    }
    String::from_utf8(writer.into_inner().expect("writing to memory cannot fail"))
        .expect("the rows are UTF-8")
}
