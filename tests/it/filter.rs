//! `[filter]` end to end: exactly the matching files of the simulator's manifest are
//! archived, the rest is `skipped` with its rule, and a filter changed between two runs
//! takes effect on the stored rows without listing again.

use crate::common::*;
use regex::Regex;
use std::collections::BTreeSet;
use std::path::Path;
use wemeet_archiver::App;
use wemeet_archiver::FileStatus;
use wemeet_archiver::config::Config;
use wemeet_archiver::internals::FileRow;
use wemeet_sim::ManifestEntry;

const DAYS: u32 = 20;

/// The files to download (videos only: the default `download.artifacts`), by id.
fn ids<'a>(entries: impl IntoIterator<Item = &'a ManifestEntry>) -> BTreeSet<String> {
    entries
        .into_iter()
        .map(|e| e.record_file_id.clone())
        .collect()
}

fn with_status(rows: &[FileRow], status: FileStatus) -> BTreeSet<String> {
    rows.iter()
        .filter(|r| r.status == status)
        .map(|r| r.record_file_id.to_string())
        .collect()
}

/// Replaces the `[filter]` table of the config at `path` (or adds one) with `lines`.
fn set_filter(path: &Path, lines: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let base = text.split("\n[filter]\n").next().unwrap();
    std::fs::write(path, format!("{base}\n[filter]\n{lines}\n")).unwrap();
}

/// The recordings under `root` by id (their file names), `meeting.json` aside.
fn archived_on_disk(root: &Path) -> BTreeSet<String> {
    files_under(root)
        .iter()
        .filter_map(|p| p.file_name()?.to_str()?.strip_suffix(".mp4"))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_by_user_subject_and_size_archive_exactly_the_matching_files() {
    let sim = start_sim(transcoded(30, DAYS).files(1..=3, 256 * KIB, 2 * MIB)).await;
    let manifest = sim.manifest();
    let archiver = Archiver::new(&sim, "");
    set_filter(
        &archiver.config,
        "users = [\"zhangsan\", \"lisi\", \"wangwu\"]\nexclude_subject = \"(?i)sync|周会\"\n\
         min_size = \"1 MiB\"",
    );
    let subject = Regex::new("(?i)sync|周会").unwrap();
    let users = ["zhangsan", "lisi", "wangwu"];
    // The first rule each file fails, in the filter's order.
    let expected_rule = |e: &ManifestEntry| {
        if !users.contains(&e.userid.as_str()) {
            Some("filter.users")
        } else if subject.is_match(&e.subject) {
            Some("filter.exclude_subject")
        } else if e.record_size < MIB {
            Some("filter.min_size")
        } else {
            None
        }
    };
    let wanted = ids(manifest.iter().filter(|e| expected_rule(e).is_none()));
    // The dataset exercises every rule and leaves something to archive.
    for rule in ["filter.users", "filter.exclude_subject", "filter.min_size"] {
        assert!(
            manifest.iter().any(|e| expected_rule(e) == Some(rule)),
            "no file fails {rule}"
        );
    }
    assert!(!wanted.is_empty());

    let report = archiver.backfill_all(DAYS).await;
    assert_eq!(report.archived_now as usize, wanted.len());
    assert_eq!(archived_on_disk(&archiver.archive()), wanted);
    assert_archive_matches(
        &archiver.archive(),
        &manifest
            .iter()
            .filter(|e| wanted.contains(&e.record_file_id))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let rows = archiver.store().await.all_files().await.unwrap();
    assert_eq!(with_status(&rows, FileStatus::Archived), wanted);
    for e in &manifest {
        let row = rows
            .iter()
            .find(|r| r.record_file_id == e.record_file_id)
            .unwrap();
        match expected_rule(e) {
            None => assert_eq!(row.status, FileStatus::Archived, "{row:?}"),
            Some(rule) => {
                assert_eq!(row.status, FileStatus::Skipped, "{row:?}");
                let why = row.skip_rule.as_deref().unwrap();
                assert!(why.starts_with(&format!("{rule}: ")), "{why}");
            }
        }
    }
    let small = rows
        .iter()
        .find(|r| {
            r.skip_rule
                .as_deref()
                .unwrap_or("")
                .starts_with("filter.min_size")
        })
        .unwrap();
    assert_eq!(
        small.skip_rule.as_deref().unwrap(),
        format!("filter.min_size: {} B < 1 MiB", small.record_size)
    );

    // `status` counts them, `verify` says why, and neither calls them a problem.
    let skipped = manifest.len() - wanted.len();
    let status = run_configured(&archiver.config, &["status", "--json"], &[]).await;
    assert!(status.status.success());
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["files"]["skipped"], skipped);
    let verify = run_configured(&archiver.config, &["verify", "--format", "json"], &[]).await;
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["summary"]["skipped"], skipped);
    assert_eq!(report["summary"]["ok"], wanted.len());
    for f in report["files"].as_array().unwrap() {
        if f["status"] == "skipped" {
            let detail = f["detail"].as_str().unwrap();
            assert!(detail.starts_with("skipped by filter."), "{detail}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn record_types_and_min_duration_skip_uploads_and_short_test_calls() {
    let sim = start_sim(transcoded(30, DAYS).sizes(64 * KIB, 256 * KIB).with(|c| {
        c.short_fraction = 0.3;
        c.uploaded_fraction = 0.3;
    }))
    .await;
    let manifest = sim.manifest();
    let archiver = Archiver::new(&sim, "");
    // List uploads too (the default lists cloud recordings only), then keep them out.
    add_api_keys(&archiver.config, "record_type = 0");
    set_filter(
        &archiver.config,
        "record_types = [\"cloud\"]\nmin_duration = \"1m\"",
    );
    let expected_rule = |e: &ManifestEntry| {
        if e.record_end_time - e.record_start_time < 60_000 {
            Some("filter.min_duration")
        } else if e.record_type != 0 {
            Some("filter.record_types")
        } else {
            None
        }
    };
    for rule in ["filter.min_duration", "filter.record_types"] {
        assert!(manifest.iter().any(|e| expected_rule(e) == Some(rule)));
    }
    let wanted = ids(manifest.iter().filter(|e| expected_rule(e).is_none()));

    archiver.backfill_all(DAYS).await;
    assert_eq!(archived_on_disk(&archiver.archive()), wanted);
    let rows = archiver.store().await.all_files().await.unwrap();
    assert_eq!(rows.len(), manifest.len());
    for e in &manifest {
        let row = rows
            .iter()
            .find(|r| r.record_file_id == e.record_file_id)
            .unwrap();
        let rule = expected_rule(e).map(|r| format!("{r}: "));
        assert_eq!(
            row.skip_rule
                .as_deref()
                .map(|w| w.split_inclusive(": ").next().unwrap().to_string()),
            rule,
            "{row:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn widening_the_filter_archives_the_rest_without_listing_again_and_narrowing_keeps_the_archive()
 {
    let sim = start_sim(transcoded(16, DAYS).sizes(64 * KIB, 256 * KIB)).await;
    let manifest = sim.manifest();
    let archiver = Archiver::new(&sim, "");
    set_filter(&archiver.config, "users = [\"zhangsan\"]");
    let first = ids(manifest.iter().filter(|e| e.userid == "zhangsan"));
    assert!(!first.is_empty() && first.len() < manifest.len());
    archiver.backfill_all(DAYS).await;
    assert_eq!(archived_on_disk(&archiver.archive()), first);

    // Everyone's now. The skipped rows are queued again when the archiver opens, and a run
    // that lists nothing (an empty range) downloads them.
    set_filter(&archiver.config, "");
    let listed = sim.stats().api_calls;
    let app = App::open(Config::load(&archiver.config).unwrap())
        .await
        .unwrap();
    let rows = app.store.all_files().await.unwrap();
    assert!(
        with_status(&rows, FileStatus::Skipped).is_empty(),
        "{rows:#?}"
    );
    let report = app
        .backfill(SIM_NOW, SIM_NOW, false, Default::default())
        .await
        .unwrap();
    assert!(report.complete(), "{report:#?}");
    drop(app);
    assert_eq!(sim.stats().api_calls, listed, "the widening listed again");
    assert_archive_matches(&archiver.archive(), &manifest);

    // Narrowed to nobody: what is archived stays archived, on disk and in the database.
    set_filter(&archiver.config, "users = [\"nobody\"]");
    let app = App::open(Config::load(&archiver.config).unwrap())
        .await
        .unwrap();
    let rows = app.store.all_files().await.unwrap();
    drop(app);
    assert_eq!(with_status(&rows, FileStatus::Archived), ids(&manifest));
    assert_archive_matches(&archiver.archive(), &manifest);
    let verify = run_configured(&archiver.config, &["verify"], &[]).await;
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
}

#[tokio::test]
async fn an_invalid_subject_regex_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("{}\n[filter]\nsubject = \"(weekly\"\n", offline_config()),
    )
    .unwrap();
    let out = run_configured(&config, &["status"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("filter.subject"), "{stderr}");
}
