//! `backfill` end to end: everything archived intact, within the rate budget, idempotent.

use crate::common::*;
use std::time::Duration;
use wemeet_archiver::FileStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backfill_of_90_days_archives_every_manifest_file_intact() {
    // The meetings still recording stay so while the test runs: the manifest taken before
    // the backfill is what it must archive.
    let an_hour = Duration::from_secs(3600);
    let sim = start_sim(meetings(64, 95).with(|c| c.transcode_delay = an_hour)).await;
    let manifest = sim.manifest();
    let archiver = Archiver::new(&sim, "");
    let report = archiver.backfill_all(95).await;

    assert!(
        manifest.len() >= 64,
        "dataset too small: {}",
        manifest.len()
    );
    assert_eq!(report.archived_now as usize, manifest.len());
    let archive = archiver.archive();
    assert_archive_matches(&archive, &manifest);

    // The database agrees with the disk: one row per file, archived with the same hash.
    let rows = archiver.store().await.all_files().await.unwrap();
    assert_eq!(rows.len(), manifest.len());
    for entry in &manifest {
        let row = rows
            .iter()
            .find(|r| r.record_file_id == entry.record_file_id)
            .unwrap();
        assert_eq!(row.status, FileStatus::Archived);
        assert_eq!(row.sha256.as_deref(), Some(entry.sha256.as_str()));
        assert_eq!(row.archived_size, Some(entry.record_size));
    }

    // meeting.json beside the recordings: metadata, never a password or an address.
    let jsons: Vec<_> = files_under(&archive)
        .into_iter()
        .filter(|p| p.file_name().unwrap() == "meeting.json")
        .collect();
    assert!(!jsons.is_empty());
    let mut secrets = sim.passwords();
    secrets.extend(sim.issued_tokens());
    for json in jsons {
        let text = std::fs::read_to_string(archive.join(&json)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            value["meetings"][0]["meeting_record_id"].is_string(),
            "{text}"
        );
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{json:?} holds a secret");
        }
        assert!(
            !text.contains("token=") && !text.contains("password"),
            "{text}"
        );
    }

    assert_within_rate_limit(&sim.stats(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_backfill_downloads_nothing_again() {
    let sim = start_sim(meetings(12, 20)).await;
    let archiver = Archiver::new(&sim, "");
    let first = backfill(&archiver.config, full_range(20)).await;
    assert!(first.archived_now > 0);
    let served = sim.stats().bytes_served;

    let second = backfill(&archiver.config, full_range(20)).await;
    assert_eq!(second.archived_now, 0);
    assert!(second.complete(), "{second:#?}");
    assert_eq!(
        sim.stats().bytes_served,
        served,
        "bytes were downloaded again"
    );
    let rows = archiver.store().await.all_files().await.unwrap();
    assert_eq!(rows.len(), sim.manifest().len());
    assert_archive_matches(&archiver.archive(), &sim.manifest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_address_is_refreshed_and_its_403_body_never_saved() {
    // Every file's first address is already expired when listed: the download host
    // answers 403 with an XML body, and the archiver must re-list to get a fresh one.
    let sim = start_sim(transcoded(6, 10).with(|c| c.stale_addresses_first = 1)).await;
    let archiver = Archiver::new(&sim, "");
    archiver.backfill_all(10).await;
    let stats = sim.stats();
    assert!(stats.expired_token_rejections > 0, "{stats:#?}");
    assert_archive_matches(&archiver.archive(), &sim.manifest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_whose_address_never_works_fail_without_saving_the_error_body() {
    let sim = start_sim(transcoded(2, 5).with(|c| c.stale_addresses_first = 1000)).await;
    let archiver = Archiver::new(&sim, "max_attempts = 2");
    let report = backfill(&archiver.config, full_range(5)).await;
    assert!(!report.complete());
    assert_eq!(report.not_archived.len(), sim.manifest().len());
    for (path, status, reason) in &report.not_archived {
        assert_eq!(*status, FileStatus::Failed, "{path}");
        assert!(
            reason.as_deref().unwrap_or("").contains("refused"),
            "{reason:?}"
        );
    }
    // Nothing was written: no recording, no partial file holding an XML error.
    let archive = archiver.archive();
    for file in files_under(&archive) {
        let bytes = std::fs::read(archive.join(&file)).unwrap();
        assert!(
            !bytes.windows(7).any(|w| w == b"<Error>"),
            "{file:?} holds an error body"
        );
        assert!(
            file.file_name().unwrap() == "meeting.json",
            "{file:?} should not exist"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_subjects_stay_inside_the_archive_root() {
    // The hostile subjects come first in the dataset.
    let sim = start_sim(transcoded(10, 30)).await;
    let archiver = Archiver::new(&sim, "");
    archiver.backfill_all(30).await;
    let subjects: Vec<String> = sim.manifest().iter().map(|e| e.subject.clone()).collect();
    for hostile in ["../../etc/passwd", "a/b\\c", "CON", "line1\nline2", "a\0b"] {
        assert!(
            subjects.iter().any(|s| s == hostile),
            "dataset lacks {hostile:?}"
        );
    }
    assert!(subjects.iter().any(|s| s.chars().count() == 300));
    // Only the config, the database (and its WAL/lock) and the archive are in the folder.
    let mut top: Vec<String> = std::fs::read_dir(archiver.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    top.retain(|n| !n.starts_with("state.db"));
    assert_eq!(top, ["archive", "config.toml"]);
    for file in files_under(&archiver.archive()) {
        let name = file.to_str().unwrap();
        assert!(!name.contains(".."), "{name}");
        assert!(!name.chars().any(char::is_control), "{name:?}");
        for part in file.iter() {
            assert!(part.len() <= 255, "{name}");
        }
    }
    assert_archive_matches(&archiver.archive(), &sim.manifest());
}

/// Runs at the real limit of 10 calls per minute, so it takes over a minute: two backfills
/// in a row (the second a new `App`, as after a restart) need 14 listing calls together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_exceeds_ten_calls_per_minute_across_restarts() {
    let days = 7 * 31 - 5; // 7 windows of 31 days each half
    let sim = start_sim(transcoded(14, days * 2).sizes(KIB, 64 * KIB)).await;
    let archiver = Archiver::new(&sim, "");
    let (since, until) = full_range(days * 2);
    let middle = since + i64::from(days) * 86_400;
    let started = std::time::Instant::now();
    let first = backfill(&archiver.config, (since, middle)).await;
    let second = backfill(&archiver.config, (middle, until)).await;
    assert!(first.complete() && second.complete());
    let stats = sim.stats();
    assert!(
        stats.api_calls > 10,
        "the test must need more than one minute of budget: {stats:#?}"
    );
    assert_within_rate_limit(&stats, 10);
    assert!(started.elapsed() >= Duration::from_secs(60));
    assert_archive_matches(&archiver.archive(), &sim.manifest());
}
