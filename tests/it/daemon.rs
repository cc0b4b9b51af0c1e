//! `run`, the service: live polling, priorities, just-in-time addresses, metrics (its
//! systemd units: package.rs).

use crate::common::*;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};
use wemeet_archiver::Listeners;
use wemeet_archiver::UnixMs;
use wemeet_archiver::{Db, FileStatus};
use wemeet_sim::{SimConfig, SimHandle};

fn now_ms() -> i64 {
    UnixMs::now().as_millis()
}

/// Waits until every manifest file is archived in the database, or panics after `limit`.
async fn wait_archived(store: &Db, sim: &SimHandle, limit: Duration) {
    wait_until(limit, Duration::from_millis(200), async || {
        let want = sim.manifest().len();
        let rows = store.all_files().await.unwrap();
        let done = rows
            .iter()
            .filter(|f| f.status == FileStatus::Archived)
            .count();
        if want > 0 && done == want {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(format!("{done}/{want} archived after {limit:?}: {rows:#?}"))
        }
    })
    .await;
}

/// Scaled limit: polls every 2 s cannot fit in 10 calls per minute, so both the simulator
/// and the archiver allow 60 per minute here; the test asserts the simulator never saw more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_archives_each_new_recording_within_two_poll_intervals_and_serves_metrics() {
    let interval = Duration::from_secs(2);
    let transcode = Duration::from_secs(4);
    let sim = start_live_sim(SimConfig {
        arrivals: 3,
        arrival_every: Duration::from_secs(3),
        transcode_delay: transcode,
        rate_limit_per_minute: 60,
        // Sharing off everywhere: every address comes from /v1/addresses.
        shared_fraction: 0.0,
        ..transcoded(2, 1)
    })
    .await;
    let metrics = local_listener().await;
    let port = port_of(&metrics);
    let archiver = Archiver::new(
        &sim,
        &format!(
            "\n[poll]\ninterval = \"2s\"\nlookback = \"2d\"\n[metrics]\nlisten = \"127.0.0.1:{port}\""
        ),
    );
    add_api_keys(&archiver.config, "requests_per_minute = 60");

    let listeners = Listeners {
        metrics: Some(metrics),
        webhook: None,
    };
    let (cancel, daemon) = run_in_process(&archiver.config, None, listeners).await;
    let store = archiver.store().await;
    // 3 arrivals, 3 s apart, each transcoded 4 s after it starts.
    tokio::time::sleep(Duration::from_secs(13)).await;
    wait_archived(&store, &sim, Duration::from_secs(10)).await;

    let rows: HashMap<String, i64> = store
        .all_files()
        .await
        .unwrap()
        .into_iter()
        .map(|f| {
            (
                f.record_file_id.to_string(),
                f.archived_at.map_or(i64::MAX, UnixMs::as_millis),
            )
        })
        .collect();
    let manifest = sim.manifest();
    let arrived: Vec<_> = manifest
        .iter()
        .filter(|e| e.media_start_time > now_ms() - 60_000)
        .collect();
    assert!(
        arrived.len() >= 3,
        "the arrivals are missing: {manifest:#?}"
    );
    for entry in arrived {
        let transcoded_at = entry.media_start_time + transcode.as_millis() as i64;
        let lag = rows[&entry.record_file_id] - transcoded_at;
        assert!(
            lag <= 2 * interval.as_millis() as i64 + 1000,
            "{} archived {lag} ms after it was transcoded",
            entry.record_file_id
        );
    }

    // The metrics endpoint, read by a Prometheus text-format parser.
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&body, name, labels).unwrap_or_else(|| panic!("{name} missing in:\n{body}"))
    };
    assert_eq!(
        value("wemeet_files", &[("status", "archived")]),
        manifest.len() as f64
    );
    let ok_calls = value(
        "wemeet_api_calls_total",
        &[("endpoint", "records"), ("outcome", "ok")],
    );
    assert!(ok_calls >= 3.0, "{ok_calls} in {body}");
    let address_calls = value(
        "wemeet_api_calls_total",
        &[("endpoint", "addresses"), ("outcome", "ok")],
    );
    assert!(address_calls >= 1.0, "{address_calls} in {body}");
    for endpoint in ["records", "addresses"] {
        value("wemeet_api_budget_used", &[("endpoint", endpoint)]);
    }
    assert!(value("wemeet_last_successful_poll_timestamp_seconds", &[]) > 1.7e9);
    for name in [
        "wemeet_archived_bytes",
        "wemeet_transfers_in_flight",
        "wemeet_oldest_address_age_seconds",
    ] {
        value(name, &[]);
    }
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    cancel.cancel();
    daemon.await.unwrap();
    assert_within_rate_limit(&sim.stats(), 60);
}

/// At the real limit of 10 calls per minute, with a backlog of 13 backfill windows: the
/// first call is the live poll, live polls come every interval (each waits at most one
/// spacing of 6.1 s behind a backfill call already admitted), and the transfers' address
/// calls (every first address is stale, so each file needs one more) go to their own
/// budget and never delay a poll. A new recording is archived within two intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_polls_are_not_starved_by_a_backfill_backlog_nor_by_address_calls() {
    let sim = start_live_sim(SimConfig {
        stale_addresses_first: 1,
        max_file_size: 256 * KIB,
        ..transcoded(3, 400)
    })
    .await;
    let archiver = Archiver::new(&sim, "\n[poll]\ninterval = \"20s\"\nlookback = \"1d\"");
    let started = now_ms();
    let since = started / 1000 - 400 * 86_400;
    let (cancel, daemon) =
        run_in_process(&archiver.config, Some(since), Listeners::default()).await;
    // A meeting that is transcoded after the first live poll: the second poll finds it.
    let fresh = sim.add_meeting("live one", &[300_000], Duration::from_secs(2));
    tokio::time::sleep(Duration::from_secs(50)).await;
    cancel.cancel();
    daemon.await.unwrap();

    let store = archiver.store().await;
    let calls = store.api_call_log(UnixMs(started)).await.unwrap();
    let listing: Vec<_> = calls.iter().filter(|c| c.endpoint == "records").collect();
    let at = |purpose: &str| -> Vec<i64> {
        listing
            .iter()
            .filter(|c| c.purpose.as_deref() == Some(purpose))
            .map(|c| c.at.as_millis() - started)
            .collect()
    };
    let (live, backfill) = (at("live"), at("backfill"));
    assert_eq!(
        listing[0].purpose.as_deref(),
        Some("live"),
        "the first call was not the live poll: {calls:#?}"
    );
    assert!(
        backfill.len() >= 3,
        "the backfill made no progress: live {live:?} backfill {backfill:?}"
    );
    assert!(live.len() >= 3, "{live:?}");
    // Each poll is due `interval` after the previous one began; it may wait one spacing
    // behind an admitted backfill call, plus the poll's own bookkeeping.
    let (interval, spacing) = (Duration::from_secs(20), Duration::from_millis(6100));
    let slack = 2_000;
    for pair in live.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap <= (interval + spacing).as_millis() as i64 + slack,
            "live polls {gap} ms apart: {live:?}"
        );
    }
    let addresses = calls.iter().filter(|c| c.endpoint == "addresses").count();
    assert!(addresses > 0, "no address call happened: {calls:#?}");
    assert!(
        listing
            .iter()
            .all(|c| c.purpose.as_deref() != Some("transfer")),
        "a transfer spent listing budget: {calls:#?}"
    );
    let files = store
        .files_of_meeting(&fresh.as_str().into())
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].status, FileStatus::Archived, "{files:#?}");
    // Seen by the second live poll (~20 s), then archived with a fresh address at once.
    let archived = files[0].archived_at.map_or(i64::MAX, UnixMs::as_millis) - started;
    assert!(
        archived <= (2 * interval + spacing).as_millis() as i64 + slack,
        "archived after {archived} ms"
    );
    let stats = sim.stats();
    assert_within_rate_limit(&stats, 10);
    assert_eq!(stats.address_rate_limited, 0, "{stats:#?}");
}

/// At every start, the service's first listing call is its live poll, even with a
/// backfill backlog waiting (three restarts in a row).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_live_poll_goes_first_at_every_start() {
    let dataset = transcoded(2, 200).sizes(KIB, 64 * KIB);
    let sim = start_live_sim(dataset.with(|c| c.rate_limit_per_minute = 60)).await;
    let archiver = Archiver::new(&sim, "\n[poll]\ninterval = \"1h\"\nlookback = \"1d\"");
    add_api_keys(&archiver.config, "requests_per_minute = 60");
    let store = archiver.store().await;
    for run in 0..3 {
        let started = now_ms();
        let since = started / 1000 - 200 * 86_400;
        let (cancel, daemon) =
            run_in_process(&archiver.config, Some(since), Listeners::default()).await;
        let limit = Duration::from_secs(20);
        let listing = wait_until(limit, Duration::from_millis(100), async || {
            let listing: Vec<_> = store
                .api_call_log(UnixMs(started))
                .await
                .unwrap()
                .into_iter()
                .filter(|c| c.endpoint == "records")
                .collect();
            if listing
                .iter()
                .any(|c| c.purpose.as_deref() == Some("backfill"))
            {
                ControlFlow::Break(listing)
            } else {
                ControlFlow::Continue(format!("run {run}: no backfill call: {listing:#?}"))
            }
        })
        .await;
        cancel.cancel();
        daemon.await.unwrap();
        assert_eq!(
            listing[0].purpose.as_deref(),
            Some("live"),
            "run {run}: {listing:#?}"
        );
    }
}

/// Addresses that live 6 s and one worker paced at 1 MiB/s: later files' addresses expire
/// while they wait in the queue. Each is fetched again from `/v1/addresses` just before its
/// transfer (never by listing again), and no transfer starts on an expired address.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn addresses_expiring_in_the_queue_are_fetched_again_just_in_time() {
    let sim = start_sim(SimConfig {
        address_ttl: Duration::from_secs(6),
        bandwidth: Some(MIB),
        shared_fraction: 1.0,
        download_allowed_fraction: 1.0,
        ..transcoded(6, 10).files(1..=1, 1536 * KIB, 1536 * KIB)
    })
    .await;
    let archiver = Archiver::new(&sim, "workers = 1\naddress_ttl = \"6s\"");
    let started = now_ms();
    archiver.backfill_all(10).await;
    assert_archive_matches(&archiver.archive(), &sim.manifest());
    let store = archiver.store().await;
    let calls = store.api_call_log(UnixMs(started)).await.unwrap();
    let count = |endpoint: &str| calls.iter().filter(|c| c.endpoint == endpoint).count();
    assert_eq!(
        count("records"),
        1,
        "the listing was read again: {calls:#?}"
    );
    let addresses = count("addresses");
    assert!(addresses >= 1, "no address expired: make the files bigger");
    assert!(addresses < 6, "{addresses} address calls for 6 files");
    assert_eq!(
        sim.stats().expired_token_rejections,
        0,
        "a transfer started on an expired address"
    );
}

/// The real binary under a fake systemd: READY=1 once started, STOPPING=1 on SIGTERM, exit 0
/// within 10 s; the next run resumes from the checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_notifies_systemd_exits_0_and_the_next_run_resumes() {
    let sim = start_live_sim(SimConfig {
        bandwidth: Some(2 * MIB),
        ..transcoded(3, 1).files(2..=2, 3 * MIB, 4 * MIB)
    })
    .await;
    let archiver = Archiver::new(
        &sim,
        "workers = 2\ncheckpoint_bytes = 1048576\n\n[poll]\ninterval = \"30s\"\nlookback = \"2d\"",
    );
    let socket_path = archiver.dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let spawn = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wemeet-archiver"))
            .args(["--config", archiver.config.to_str().unwrap(), "run"])
            .env("NOTIFY_SOCKET", &socket_path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut messages = String::new();
    let mut buf = vec![0u8; 4096];
    let mut read_until =
        async |socket: &tokio::net::UnixDatagram, want: &str, messages: &mut String| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !messages.contains(want) {
                let left = deadline.saturating_duration_since(Instant::now());
                let n = tokio::time::timeout(left, socket.recv(&mut buf))
                    .await
                    .unwrap_or_else(|_| panic!("no {want} in {messages:?}"))
                    .unwrap();
                messages.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        };

    let child = spawn();
    read_until(&socket, "READY=1", &mut messages).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sim.stats().bytes_served > 0, "no transfer in flight");
    assert_eq!(sigterm(child.id().unwrap()), 0);
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exited within 10 s")
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    read_until(&socket, "STOPPING=1", &mut messages).await;
    assert!(messages.contains("STATUS="), "{messages}");

    let mut child = spawn();
    wait_archived(&archiver.store().await, &sim, Duration::from_secs(30)).await;
    child.start_kill().unwrap();
    assert_archive_matches(&archiver.archive(), &sim.manifest());
    let size: u64 = sim.manifest().iter().map(|e| e.record_size).sum();
    // Resumed from the SIGTERM checkpoints: at most a chunk per transfer fetched twice.
    assert!(
        sim.stats().bytes_served <= size + 2 * 2 * CHUNK,
        "{:#?}",
        sim.stats()
    );
}

/// `[verify] interval`: the daemon re-reads the archive on its own and reports damage in
/// its metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_periodic_scrub_finds_a_damaged_file_and_exports_it() {
    let sim = start_live_sim(transcoded(3, 1)).await;
    let archiver = Archiver::new(
        &sim,
        "\n[poll]\ninterval = \"1h\"\nlookback = \"2d\"\n[verify]\ninterval = \"1s\"",
    );
    let (cancel, daemon) = run_in_process(&archiver.config, None, Listeners::default()).await;
    let store = archiver.store().await;
    wait_archived(&store, &sim, Duration::from_secs(30)).await;
    let victim = store.all_files().await.unwrap().remove(0);
    let path = archiver.archive().join(&victim.path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(300),
        async || {
            let text = metrics_of(&store).await;
            if text.contains("wemeet_scrub_files{status=\"hash_mismatch\"} 1") {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(format!("the scrub never reported the damage:\n{text}"))
            }
        },
    )
    .await;
    cancel.cancel();
    daemon.await.unwrap();
}
