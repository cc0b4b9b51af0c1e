//! Bench-only: runs the archiver's own download pool (`wemeet_archiver::internals::Pool`) against
//! arbitrary URLs, e.g. files served by nginx on loopback, so that the archiver can be
//! measured without the simulator (which generates its bytes on the fly and can be the
//! bottleneck).
//!
//! The archiver only downloads what the API listed; here each URL becomes a listed file
//! (one meeting each, its URL as the listing's fresh address) in a fresh database, then the
//! same `Pool` the `backfill` command uses streams, hashes, checkpoints, fsyncs and
//! renames them. Nothing but the listing is replaced.
//!
//! ```text
//! cargo bench --bench fetch_url -- --config FILE [--workers N] URL...
//! ```
//!
//! `FILE` is an ordinary archiver config (its `[api]` table is never called; `[storage]`
//! and `[download]` are used as they are). Prints one JSON line: files, bytes, seconds,
//! and the SHA-256 of each file.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program: it prints its result

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use wemeet_api::Endpoint;
use wemeet_archiver::Budgets;
use wemeet_archiver::UnixMs;
use wemeet_archiver::config::Config;
use wemeet_archiver::internals::ApiClient;
use wemeet_archiver::internals::Budget;
use wemeet_archiver::internals::Pool;
use wemeet_archiver::internals::{FileUpsert, MeetingUpsert};
use wemeet_archiver::{Db, FileStatus};

struct Args {
    config: PathBuf,
    workers: Option<usize>,
    urls: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut config = None;
    let mut workers = None;
    let mut urls = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config = args.next().map(PathBuf::from),
            "--workers" => {
                let n = args.next().ok_or("--workers needs a number")?;
                workers = Some(n.parse().map_err(|_| format!("bad --workers {n}"))?);
            }
            // `cargo bench` passes `--bench` to every bench target.
            "--bench" => {}
            url if url.starts_with("http://") || url.starts_with("https://") => {
                urls.push(url.to_string());
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Args {
        config: config.ok_or("--config FILE is required")?,
        workers,
        urls,
    })
}

/// The size the host announces, as the API's `record_size` would.
async fn size_of(http: &reqwest::Client, url: &str) -> Result<u64, String> {
    let response = http
        .head(url)
        .send()
        .await
        .map_err(|e| format!("HEAD {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("HEAD {url}: HTTP {}", response.status()));
    }
    response
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("HEAD {url}: no Content-Length"))
}

async fn run(args: Args) -> Result<String, String> {
    let mut config = Config::load(&args.config).map_err(|e| e.to_string())?;
    if let Some(n) = args.workers {
        config.download.workers = n;
    }
    let store = Db::open(&config.database.path)
        .await
        .map_err(|e| e.to_string())?;
    let now = UnixMs::now();
    let meetings = listed(&args.urls, now).await?;
    store
        .upsert_meetings(&meetings, now)
        .await
        .map_err(|e| e.to_string())?;
    let pool = Arc::new(pool(&config, &store).await?);

    let started = Instant::now();
    let report = pool
        .run(
            Arc::new(AtomicBool::new(true)),
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();

    let sha256 = archived(&store).await?;
    Ok(serde_json::json!({
        "files": report.archived,
        "bytes": report.bytes,
        "seconds": seconds,
        "workers": config.download.workers,
        "sha256": sha256,
    })
    .to_string())
}

/// Each URL as the listing would have given it: one meeting with one file, the URL as its
/// fresh download address and the size its host announces.
async fn listed(urls: &[String], now: UnixMs) -> Result<Vec<MeetingUpsert>, String> {
    let http = reqwest::Client::new();
    let mut meetings = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let size = size_of(&http, url).await?;
        let dir = format!("bench/{i:04}");
        meetings.push(MeetingUpsert {
            meeting_record_id: format!("bench-meeting-{i}").into(),
            meeting_id: format!("{i}"),
            meeting_code: format!("{i}"),
            userid: "bench".into(),
            subject: "bench".into(),
            media_start_time: now,
            state: 3.into(),
            record_type: 0,
            dir: dir.clone(),
            files: vec![FileUpsert {
                record_file_id: format!("bench-file-{i}").into(),
                record_start_time: now.as_millis(),
                record_end_time: now.as_millis(),
                record_size: size,
                path: format!("{dir}/bench-file-{i}.mp4"),
                download_address: Some(wemeet_api::Secret::new(url)),
                skip_rule: None,
            }],
        });
    }
    Ok(meetings)
}

/// The pool `backfill` runs, over the configured archive, with the API's budgets (the
/// addresses are fresh, just "listed", so /v1/addresses is never called).
async fn pool(config: &Config, store: &Db) -> Result<Pool, String> {
    let budget = |endpoint, limit| {
        let store = store.clone();
        async move {
            Budget::load(store, endpoint, limit)
                .await
                .map(Arc::new)
                .map_err(|e| e.to_string())
        }
    };
    let budgets = Budgets {
        records: budget(Endpoint::Records, config.api.requests_per_minute).await?,
        addresses: budget(Endpoint::Addresses, config.api.addresses_per_minute).await?,
        deletes: budget(Endpoint::Delete, config.api.deletes_per_minute).await?,
    };
    let http = wemeet_archiver::internals::http_client(config.download.read_timeout)
        .map_err(|e| e.to_string())?;
    let api = ApiClient::new(config.api.clone(), budgets, http.clone());
    let archive = wemeet_archiver::open_archive(
        &config.storage.path,
        config.storage.s3.as_ref(),
        config.download.checkpoint_bytes,
        store.clone(),
    )
    .map_err(|e| e.to_string())?;
    Ok(Pool::new(
        store.clone(),
        archive,
        Arc::new(api),
        http,
        config.download.clone(),
        config.poll.interval,
    ))
}

/// `{path, sha256}` of every file, or an error naming those not archived.
async fn archived(store: &Db) -> Result<Vec<serde_json::Value>, String> {
    let files = store.all_files().await.map_err(|e| e.to_string())?;
    let failed: Vec<_> = files
        .iter()
        .filter(|f| f.status != FileStatus::Archived)
        .map(|f| {
            format!(
                "{}: {}",
                f.path,
                f.last_error.as_deref().unwrap_or(f.status.as_str())
            )
        })
        .collect();
    if !failed.is_empty() {
        return Err(format!("not archived: {failed:?}"));
    }
    Ok(files
        .iter()
        .map(|f| serde_json::json!({ "path": f.path, "sha256": f.sha256 }))
        .collect())
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEMEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("fetch_url: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // The same runtime as the CLI's (`tokio::runtime::Runtime::new()`: one worker per CPU).
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fetch_url: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
