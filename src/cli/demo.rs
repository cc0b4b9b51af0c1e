//! `demo`: the whole job against the built-in simulator, with no account and no network.
//!
//! It is the real code path (signed listing under the 10-per-minute budget, SQLite state,
//! streaming downloads with SHA-256) and ends by checking the archive against the
//! simulator's manifest, so a newcomer sees in one command what the tool promises. Then it
//! runs the service for a moment: the simulator announces a new recording with a signed,
//! encrypted webhook event, and the service archives it seconds later. It ends with a
//! search of what was said in the archived transcripts.

use super::exit::Exit;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wemeet_archiver::App;
use wemeet_archiver::FileStatus;
use wemeet_archiver::Listeners;
use wemeet_archiver::config::Config;
use wemeet_sim::{SimConfig, SimHandle, SimWebhook};

/// The simulated account's "now": fixed, so that a second demo run sees the same
/// meetings at the same dates and has nothing new to download.
const DEMO_NOW: i64 = 1_793_491_200; // 2026-11-01T00:00:00Z
const DEMO_DAYS: u32 = 90;
/// The demo's webhook subscription: the simulator's, like its SecretKey (not secrets).
const DEMO_TOKEN: &str = "DemoTokenWemeetArchiver01";
const DEMO_AES_KEY: &str = "DemoEncodingAesKeyWemeetArchiver0123456789a";
/// How long the demo waits for the announced recording.
const ANNOUNCED_WITHIN: Duration = Duration::from_secs(90);

pub async fn run(dir: &Path) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Where the service will listen for the simulator's events: bound now, on a port the
    // system picks, and handed to the service when it starts.
    let webhook = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen for the webhook on 127.0.0.1")?;
    let webhook_addr = webhook.local_addr()?;
    let sim = start_sim(webhook_addr).await?;
    let config_path = write_config(dir, &sim, webhook_addr)?;
    let config = Config::load(&config_path)?;
    println!(
        "demo: simulator at {}; archiving {} days of a simulated account into {}",
        sim.base_url(),
        DEMO_DAYS,
        config.storage.path.display()
    );

    let since = DEMO_NOW - i64::from(DEMO_DAYS + 1) * 86_400;
    let until = DEMO_NOW + 86_400;
    let app = App::open(config).await?;
    let started = Instant::now();
    let report = app
        .backfill(since, until, false, CancellationToken::new())
        .await?;
    print!("{}", super::render::backfill(&report, started.elapsed()));
    let intact = check_manifest(&app, &sim).await?;
    let announced = webhook_fast_path(&app, &sim, webhook).await?;
    search_example(&app, &config_path).await?;
    println!(
        "next: wemeet-archiver --config {} status",
        config_path.display()
    );
    sim.shutdown().await;
    Ok(if intact && report.complete() && announced {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}

/// The simulated account, posting its webhook events to `webhook`.
async fn start_sim(webhook: SocketAddr) -> anyhow::Result<SimHandle> {
    let config = SimConfig {
        start: Some(DEMO_NOW),
        days: DEMO_DAYS,
        meetings: 30,
        // Meetings still recording stay so for the demo's short life: they show how
        // pending meetings are reported, and the manifest stays what it was.
        transcode_delay: Duration::from_secs(3600),
        // Transcripts there at once, so that the closing search has them all.
        late_transcript_fraction: 0.0,
        webhook: Some(SimWebhook {
            url: format!("http://{webhook}/webhook"),
            token: DEMO_TOKEN.into(),
            aes_key: Some(DEMO_AES_KEY.into()),
            early: Duration::ZERO,
            repeat: 0,
        }),
        ..SimConfig::default()
    };
    let listen = "127.0.0.1:0".parse().expect("valid address");
    wemeet_sim::start(config, listen)
        .await
        .context("cannot start the simulator")
}

/// Writes `dir/wemeet-archiver.toml` for `sim`, its webhook at `webhook`; returns its path.
fn write_config(dir: &Path, sim: &SimHandle, webhook: SocketAddr) -> anyhow::Result<PathBuf> {
    let creds = sim.credentials();
    let config_path = dir.join("wemeet-archiver.toml");
    let sdk_line = creds
        .sdk_id
        .as_ref()
        .map(|s| format!("sdk_id = \"{s}\"\n"))
        .unwrap_or_default();
    let toml = format!(
        "# Written by `wemeet-archiver demo`: points at the in-process simulator.\n\
         [api]\nbase_url = \"{}\"\napp_id = \"{}\"\n{sdk_line}secret_id = \"{}\"\n\
         secret_key = \"{}\"\noperator_id = \"{}\"\n\n\
         [storage]\npath = \"recordings\"\ntimezone = \"Asia/Shanghai\"\n\n\
         [database]\npath = \"state.db\"\n\n[download]\nworkers = 4\n\
         artifacts = [\"video\", \"transcript\"]\n\n\
         [webhook]\nlisten = \"{webhook}\"\ntoken = \"{DEMO_TOKEN}\"\n\
         encoding_aes_key = \"{DEMO_AES_KEY}\"\n",
        sim.base_url(),
        creds.app_id,
        creds.secret_id,
        creds.secret_key,
        creds.operator_id,
    );
    std::fs::write(&config_path, toml)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    Ok(config_path)
}

/// Re-reads every file the simulator says exists from the archive and compares it with
/// the simulator's own SHA-256; true when all are there and intact.
async fn check_manifest(app: &App, sim: &SimHandle) -> anyhow::Result<bool> {
    let manifest = sim.manifest();
    let archive = app.archive()?;
    let mut intact = 0;
    for entry in &manifest {
        let row = app
            .store
            .file(&entry.record_file_id.as_str().into())
            .await?;
        let on_disk = match row {
            Some(row) => archive.digest(&row.path).await.ok(),
            None => None,
        }
        .is_some_and(|d| d.size == entry.record_size && d.sha256 == entry.sha256);
        if on_disk {
            intact += 1;
        } else {
            println!("MISSING OR DIFFERENT: {}", entry.record_file_id);
        }
    }
    println!(
        "{intact}/{} files of the simulated account are in {} with the manifest's SHA-256",
        manifest.len(),
        app.config.storage.path.display()
    );
    let hidden = manifest.iter().filter(|e| !e.listing_address).count();
    println!(
        "{hidden} of them have no address in the listing (their owner did not share them or \
         allow downloads): their addresses came from GET /v1/addresses"
    );
    Ok(intact == manifest.len())
}

/// Searches the transcripts just archived for a word a few meetings said, as
/// `search --text 预算 --limit 3` prints it.
async fn search_example(app: &App, config_path: &Path) -> anyhow::Result<()> {
    let query = wemeet_archiver::Query {
        text: vec!["预算".into()],
        limit: Some(3),
        ..Default::default()
    };
    let archive = app.archive()?;
    let found = wemeet_archiver::search(&app.store, archive.as_ref(), &query, None).await?;
    println!(
        "demo: what was said is searchable; wemeet-archiver --config {} search --text 预算 --limit 3",
        config_path.display()
    );
    print!(
        "{}",
        super::search::table(&found, app.config.storage.timezone, false)
    );
    Ok(())
}

/// Runs the service, its webhook on `webhook`, while the simulator announces a new
/// recording by its webhook event; true once the recording is archived.
async fn webhook_fast_path(
    app: &App,
    sim: &SimHandle,
    webhook: TcpListener,
) -> anyhow::Result<bool> {
    println!(
        "demo: running the service; the simulator announces a new recording with a signed, \
         encrypted recording.completed event (polls are 5 minutes apart)"
    );
    let cancel = CancellationToken::new();
    let announced = async {
        let archived = announce(app, sim).await;
        cancel.cancel();
        archived
    };
    let listeners = Listeners {
        webhook: Some(webhook),
        metrics: None,
    };
    let (ran, archived) = tokio::join!(app.run_on(None, listeners, cancel.clone()), announced);
    ran?;
    archived
}

async fn announce(app: &App, sim: &SimHandle) -> anyhow::Result<bool> {
    let meeting = sim.add_meeting("webhook demo", &[2 << 20], Duration::from_secs(2));
    let deadline = Instant::now() + ANNOUNCED_WITHIN;
    while Instant::now() < deadline {
        let event = sim
            .webhook_deliveries()
            .into_iter()
            .find(|d| d.meeting_record_id == meeting && d.status == Some(200));
        let files = app.store.files_of_meeting(&meeting.as_str().into()).await?;
        let done = !files.is_empty() && files.iter().all(|f| f.status == FileStatus::Archived);
        if let Some(event) = event.filter(|_| done) {
            let archived = files.iter().filter_map(|f| f.archived_at).max();
            let lag_ms = archived.map_or(0, |t| t.as_millis()) - event.sent_at_ms;
            if lag_ms < 0 {
                println!("webhook: the announced recording was archived by an earlier demo run");
            } else {
                println!(
                    "webhook: the announced recording was archived {:.1} s after its event",
                    lag_ms as f64 / 1000.0
                );
            }
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "webhook: the announced recording was not archived within {} s",
        ANNOUNCED_WITHIN.as_secs()
    );
    Ok(false)
}
