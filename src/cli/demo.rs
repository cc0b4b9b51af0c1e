//! `demo`: the whole job against the built-in simulator, with no account and no network.
//!
//! It is the real code path (signed listing under the 10-per-minute budget, SQLite state,
//! streaming downloads with SHA-256) and ends by checking the archive against the
//! simulator's manifest, so a newcomer sees in one command what the tool promises.

use super::exit::Exit;
use anyhow::Context;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wemeet_archiver::app::App;
use wemeet_archiver::config::Config;
use wemeet_sim::SimConfig;

/// The simulated account's "now": fixed, so that a second demo run sees the same
/// meetings at the same dates and has nothing new to download.
const DEMO_NOW: i64 = 1_793_491_200; // 2026-11-01T00:00:00Z
const DEMO_DAYS: u32 = 90;

pub async fn run(dir: &Path) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let sim = wemeet_sim::start(
        SimConfig {
            start: Some(DEMO_NOW),
            days: DEMO_DAYS,
            meetings: 30,
            // Meetings still recording stay so for the demo's short life: they show how
            // pending meetings are reported, and the manifest stays what it was.
            transcode_delay: Duration::from_secs(3600),
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().expect("valid address"),
    )
    .await
    .context("cannot start the simulator")?;
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
         [database]\npath = \"state.db\"\n\n[download]\nworkers = 4\n",
        sim.base_url(),
        creds.app_id,
        creds.secret_id,
        creds.secret_key,
        creds.operator_id,
    );
    std::fs::write(&config_path, toml)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
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
    let started = std::time::Instant::now();
    let report = app
        .backfill(since, until, false, CancellationToken::new())
        .await?;
    print!("{}", super::render::backfill(&report, started.elapsed()));

    // Re-read every file the simulator says exists from the archive and compare it with
    // the simulator's own SHA-256.
    let manifest = sim.manifest();
    let archive = app.archive()?;
    let mut intact = 0;
    for entry in &manifest {
        let row = app.store.file(&entry.record_file_id).await?;
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
    println!(
        "next: wemeet-archiver --config {} status",
        config_path.display()
    );
    sim.shutdown().await;
    Ok(if intact == manifest.len() && report.complete() {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}
