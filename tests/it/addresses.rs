//! Every recording, whatever its sharing settings: addresses from `/v1/addresses` just in
//! time, a listing that is a census (each window and page once), both budgets kept.

use crate::common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wemeet_api::{MAX_WINDOW_SECS, RECORDS_PAGE_SIZE as PAGE_SIZE};
use wemeet_archiver::FileStatus;
use wemeet_archiver::internals::split_windows;
use wemeet_sim::{ManifestEntry, SimConfig, SimStats};

/// The listing calls that list every window of `range` and each of its pages once: what
/// a backfill needs at the least (the simulator's bounds are inclusive, as ours are).
fn minimum_listing_calls(manifest: &[ManifestEntry], range: (i64, i64)) -> u64 {
    let mut starts: BTreeMap<&str, i64> = BTreeMap::new();
    for e in manifest {
        starts.insert(&e.meeting_record_id, e.media_start_time.div_euclid(1000));
    }
    split_windows(range.0, range.1)
        .into_iter()
        .map(|window| {
            let (start, end) = (window.start, window.end);
            assert!(end - start <= MAX_WINDOW_SECS);
            let n = starts
                .values()
                .filter(|&&t| (start..=end).contains(&t))
                .count() as u64;
            n.div_ceil(u64::from(PAGE_SIZE)).max(1)
        })
        .sum()
}

/// Asserts that the archiver made at most one address call per `what`, of which there
/// are `n`.
fn assert_address_calls_at_most(stats: &SimStats, n: usize, what: &str) {
    let calls = stats.address_calls;
    assert!(calls <= n as u64, "{calls} address calls for {n} {what}");
}

/// With sharing as it is in a company (most files have no address in the listing), a
/// backfill archives every transcoded file, byte for byte, within both endpoints' limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backfill_archives_every_file_whatever_its_sharing_settings() {
    let sim = start_sim(transcoded(40, 60).sizes(32 * KIB, 256 * KIB)).await;
    let manifest = sim.manifest();
    let hidden = manifest.iter().filter(|e| !e.listing_address).count();
    assert!(
        hidden * 2 > manifest.len(),
        "the listing must hide most addresses: {hidden} of {}",
        manifest.len()
    );
    let archiver = Archiver::new(&sim, "");
    let report = archiver.backfill_all(60).await;
    assert_eq!(report.archived_now as usize, manifest.len());
    assert_archive_matches(&archiver.archive(), &manifest);

    let stats = sim.stats();
    assert_within_rate_limit(&stats, 10);
    assert_eq!(stats.address_rate_limited, 0, "{stats:#?}");
    assert!(stats.address_max_calls_in_60s <= 50, "{stats:#?}");
    assert!(stats.address_calls > 0, "{stats:#?}");
    // The census lists each window and page once: no re-listing for addresses.
    let minimum = minimum_listing_calls(&manifest, full_range(60));
    assert_eq!(stats.api_calls, minimum, "{stats:#?}");
    // Only files without an address in the listing needed /v1/addresses: at most one
    // call per such meeting (none was slow enough for its address to age).
    let meetings: std::collections::BTreeSet<_> = manifest
        .iter()
        .filter(|e| !e.listing_address)
        .map(|e| e.meeting_record_id.as_str())
        .collect();
    assert_address_calls_at_most(&stats, meetings.len(), "meetings without listing addresses");
}

/// Addresses that live 3 s, transfers throttled to last more than five lifetimes, budgets
/// raised so the census runs ahead: everything is archived, the listing is read once, and
/// no transfer starts on an expired address.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_backfill_lists_each_page_once_and_never_starts_on_an_expired_address() {
    let ttl = Duration::from_secs(3);
    let bandwidth = 64 * KIB;
    let workers = 4;
    let sim = start_sim(SimConfig {
        address_ttl: ttl,
        bandwidth: Some(bandwidth),
        rate_limit_per_minute: 600,
        addresses_rate_limit_per_minute: 600,
        ..transcoded(30, 60).files(1..=2, 64 * KIB, 128 * KIB)
    })
    .await;
    let manifest = sim.manifest();
    let bytes: u64 = manifest.iter().map(|e| e.record_size).sum();
    let transfer_time = Duration::from_secs_f64(bytes as f64 / (workers * bandwidth) as f64);
    assert!(
        transfer_time >= ttl * 5,
        "the transfers must outlast five address lifetimes: {transfer_time:?}"
    );
    let archiver = Archiver::new(&sim, &format!("workers = {workers}\naddress_ttl = \"3s\""));
    add_api_keys(
        &archiver.config,
        "requests_per_minute = 600\naddresses_per_minute = 600",
    );
    let started = Instant::now();
    archiver.backfill_all(60).await;
    assert!(started.elapsed() >= ttl * 5);
    assert_archive_matches(&archiver.archive(), &manifest);

    let stats = sim.stats();
    let minimum = minimum_listing_calls(&manifest, full_range(60));
    assert!(
        stats.api_calls as f64 <= 1.2 * minimum as f64,
        "{} listing calls where {minimum} list every window and page once",
        stats.api_calls
    );
    assert_eq!(
        stats.expired_token_rejections, 0,
        "a transfer started on an expired address: {stats:#?}"
    );
    assert_address_calls_at_most(&stats, manifest.len(), "files");
}

/// Files `/v1/addresses` never gives an address for end `unavailable` with that reason,
/// in `status` and in `verify`; every other file is archived.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_without_any_address_are_unavailable_with_the_reason() {
    let sim = start_sim(SimConfig {
        shared_fraction: 0.0,
        no_address_fraction: 0.3,
        ..transcoded(12, 20).sizes(16 * KIB, 64 * KIB)
    })
    .await;
    let manifest = sim.manifest();
    let (ok, blocked): (Vec<_>, Vec<_>) = manifest.iter().partition(|e| e.downloadable);
    assert!(!blocked.is_empty() && !ok.is_empty(), "{manifest:#?}");
    let archiver = Archiver::new(&sim, "max_attempts = 2");
    let report = backfill(&archiver.config, full_range(20)).await;
    assert_eq!(report.archived_now as usize, ok.len(), "{report:#?}");
    assert_eq!(report.not_archived.len(), blocked.len(), "{report:#?}");
    for (path, status, reason) in &report.not_archived {
        assert_eq!(*status, FileStatus::Unavailable, "{path}");
        assert!(
            reason
                .as_deref()
                .is_some_and(|r| r.contains("/v1/addresses gives no download address")),
            "{path}: {reason:?}"
        );
    }
    let store = archiver.store().await;
    for e in &blocked {
        let row = store
            .file(&e.record_file_id.as_str().into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, FileStatus::Unavailable, "{row:?}");
    }
    drop(store);

    let status = run_configured(&archiver.config, &["status", "--json"], &[]).await;
    assert!(status.status.success());
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["files"]["unavailable"], blocked.len());
    let failures = json["failures"].as_array().unwrap();
    assert!(failures.iter().all(|f| {
        f["status"] == "unavailable"
            && f["reason"]
                .as_str()
                .unwrap()
                .contains("no download address")
    }));

    let verify = run_configured(&archiver.config, &["verify", "--format", "json"], &[]).await;
    assert_eq!(
        verify.status.code(),
        Some(1),
        "unavailable files leave the archive incomplete"
    );
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    let failed: Vec<_> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), blocked.len());
    for f in failed {
        let detail = f["detail"].as_str().unwrap();
        assert!(
            detail.contains("unavailable") && detail.contains("no download address"),
            "{detail}"
        );
    }
}
