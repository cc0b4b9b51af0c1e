//! The archive outlives its database: a backfill over an archive whose database was lost
//! adopts every intact copy (no download, no address call, the file untouched) and
//! replaces, and names, the damaged ones; `reindex` rebuilds the catalog from the
//! archive alone, the files the cloud no longer has included; an unreadable
//! `meeting.json` is named; another account's configuration is refused.

use crate::common::*;
use crate::s3::{AWS_ENV, backfill_s3, load, s3_archiver, start_s3};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use wemeet_archiver::internals::S3Bucket;
use wemeet_archiver::{Db, FileKind};
use wemeet_sim::SimConfig;

/// A few small files over 15 days, every meeting transcoded.
fn small() -> SimConfig {
    SimConfig {
        meetings: 4,
        days: 15,
        pending_fraction: 0.0,
        files_per_meeting: 2..=2,
        min_file_size: 100_000,
        max_file_size: 300_000,
        ..SimConfig::default()
    }
}

/// The database and its companions go: the archive is all that is left.
fn lose_database(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(path));
    }
}

/// The archived videos the database knows, read through a handle closed before it returns
/// (the tests then lose the database: no connection of theirs may still be open on it).
async fn archived_videos_closed(archiver: &Archiver) -> Vec<wemeet_archiver::internals::FileRow> {
    let store = archiver.store().await;
    let videos = archived_videos(&store).await;
    store.close().await;
    videos
}

/// Modification time of every recording on disk, by path.
fn mtimes(root: &Path) -> BTreeMap<PathBuf, SystemTime> {
    files_under(root)
        .into_iter()
        .filter(|p| p.file_name().unwrap() != "meeting.json")
        .map(|p| {
            let mtime = std::fs::metadata(root.join(&p))
                .unwrap()
                .modified()
                .unwrap();
            (p, mtime)
        })
        .collect()
}

/// Flips one byte in the middle of `path`.
fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

fn status_json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn archived_videos(store: &Db) -> Vec<wemeet_archiver::internals::FileRow> {
    store
        .all_files()
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.kind == FileKind::Video)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backfill_over_a_lost_database_adopts_intact_copies_and_replaces_damaged_ones() {
    let sim = start_sim(small()).await;
    let archiver = Archiver::new(&sim, "");
    archiver.backfill_all(15).await;
    let root = archiver.archive();
    let before = mtimes(&root);
    let files = sim.manifest().len();
    assert_eq!(before.len(), files);

    // The database is lost; the same backfill again.
    lose_database(&archiver.db());
    let stats = sim.stats();
    let report = archiver.backfill_all(15).await;
    let after = sim.stats();
    assert_eq!(after.bytes_served, stats.bytes_served, "nothing downloaded");
    assert_eq!(after.download_requests, stats.download_requests);
    assert_eq!(after.address_calls, stats.address_calls, "no address call");
    assert_eq!(report.adopted_now, files as u64, "{report:#?}");
    assert!(report.replaced.is_empty(), "{report:#?}");
    assert_eq!(mtimes(&root), before, "every file untouched");
    let store = archiver.store().await;
    for entry in sim.manifest() {
        assert_archived(&store, &entry).await;
    }
    let status = status_json(&run_configured(&archiver.config, &["status", "--json"], &[]).await);
    assert_eq!(status["files_adopted"], files);
    assert_eq!(status["files_adopted_without_record"], 0);
    let verify = run_configured(&archiver.config, &["verify"], &[]).await;
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");

    // Lost again, with a truncated copy and one with a flipped byte at their paths.
    let videos = archived_videos(&store).await;
    store.close().await;
    let (truncated, flipped) = (&videos[0], &videos[1]);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(root.join(&truncated.path))
        .unwrap();
    file.set_len(truncated.record_size - 1000).unwrap();
    drop(file);
    flip_a_byte(&root.join(&flipped.path));
    lose_database(&archiver.db());
    let untouched: BTreeMap<_, _> = mtimes(&root)
        .into_iter()
        .filter(|(p, _)| *p != Path::new(&truncated.path) && *p != Path::new(&flipped.path))
        .collect();

    let stats = sim.stats();
    let report = archiver.backfill_all(15).await;
    let after = sim.stats();
    assert_eq!(
        after.bytes_served - stats.bytes_served,
        truncated.record_size + flipped.record_size,
        "exactly the two damaged files are downloaded again"
    );
    let mut replaced: Vec<&str> = report.replaced.iter().map(|r| r.path.as_str()).collect();
    replaced.sort_unstable();
    let mut expected = vec![truncated.path.as_str(), flipped.path.as_str()];
    expected.sort_unstable();
    assert_eq!(replaced, expected, "{report:#?}");
    assert!(
        report
            .replaced
            .iter()
            .any(|r| r.reason.contains("bytes where")),
        "{report:#?}"
    );
    assert!(
        report.replaced.iter().any(|r| r.reason.contains("SHA-256")),
        "{report:#?}"
    );
    assert_archive_matches(&root, &sim.manifest());
    let now: BTreeMap<_, _> = mtimes(&root)
        .into_iter()
        .filter(|(p, _)| untouched.contains_key(p))
        .collect();
    assert_eq!(now, untouched, "the intact files are untouched");
    let verify = run_configured(&archiver.config, &["verify"], &[]).await;
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reindex_brings_back_every_file_after_prune_and_a_lost_database() {
    let sim = start_sim(small()).await;
    let archiver = Archiver::new(&sim, "");
    archiver.backfill_all(15).await;
    add_prune_table(
        &archiver.config,
        "enabled = true\nafter = \"1ms\"\nmax_per_run = 3",
    );
    let pruned = run_configured(&archiver.config, &["prune"], &[]).await;
    assert_eq!(pruned.status.code(), Some(0), "{pruned:?}");
    assert_eq!(sim.deleted().len(), 3);
    let total = sim.manifest().len();
    let root = archiver.archive();

    lose_database(&archiver.db());
    let stats = sim.stats();
    let out = run_configured(&archiver.config, &["reindex"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let after = sim.stats();
    assert_eq!(
        (
            after.api_calls,
            after.address_calls,
            after.download_requests
        ),
        (
            stats.api_calls,
            stats.address_calls,
            stats.download_requests
        ),
        "reindex calls no API"
    );
    let status = status_json(&run_configured(&archiver.config, &["status", "--json"], &[]).await);
    assert_eq!(status["files"]["archived"], total, "{status:#}");
    assert_eq!(status["files_deleted_in_cloud"], 3, "{status:#}");
    assert_eq!(status["files_reindexed"], total, "{status:#}");

    // One flipped byte in a pruned copy: verify checks every file and finds it.
    let store = archiver.store().await;
    let victim = store
        .file(&sim.deleted()[0].as_str().into())
        .await
        .unwrap()
        .unwrap();
    assert!(victim.deleted_in_cloud_at.is_some(), "{victim:?}");
    store.close().await;
    flip_a_byte(&root.join(&victim.path));
    let verify = run_configured(&archiver.config, &["verify", "--format", "json"], &[]).await;
    assert_eq!(verify.status.code(), Some(1), "{verify:?}");
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["summary"]["checked_files"], total, "{report:#}");
    assert_eq!(report["summary"]["hash_mismatch"], 1, "{report:#}");
    let damaged = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["status"] == "hash_mismatch")
        .unwrap();
    assert_eq!(damaged["path"], victim.path.as_str());

    // A second prune deletes other files, never one deleted already.
    let again = run_configured(&archiver.config, &["prune"], &[]).await;
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    let deleted = sim.deleted();
    let distinct: std::collections::BTreeSet<_> = deleted.iter().collect();
    assert_eq!((deleted.len(), distinct.len()), (6, 6), "{deleted:?}");
    assert_eq!(sim.stats().delete_errors_by_code.get(&4051), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_meeting_json_is_named_and_its_folder_left_out() {
    let sim = start_sim(small()).await;
    let archiver = Archiver::new(&sim, "");
    archiver.backfill_all(15).await;
    let videos = archived_videos_closed(&archiver).await;
    let dir = videos[0].dir.clone();
    let in_folder = videos.iter().filter(|f| f.dir == dir).count();
    let json = archiver.archive().join(&dir).join("meeting.json");
    let mut bytes = std::fs::read(&json).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&json, &bytes).unwrap();

    lose_database(&archiver.db());
    let out = run_configured(&archiver.config, &["reindex"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("unreadable {dir}/meeting.json")),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(&json).unwrap(),
        bytes,
        "the file is left as it is"
    );
    let store = archiver.store().await;
    let known = archived_videos(&store).await;
    assert_eq!(known.len(), videos.len() - in_folder);
    assert!(known.iter().all(|f| f.dir != dir), "{known:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_accounts_configuration_on_the_same_archive_is_refused() {
    let sim = start_sim(small()).await;
    let archiver = Archiver::new(&sim, "");
    archiver.backfill_all(15).await;
    let marker = archiver.archive().join(wemeet_archiver::internals::MARKER);
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    assert_eq!(recorded["app_id"], sim.credentials().app_id.as_str());

    let text = std::fs::read_to_string(&archiver.config).unwrap();
    let app_id = sim.credentials().app_id;
    std::fs::write(
        &archiver.config,
        text.replace(&format!("app_id = \"{app_id}\""), "app_id = \"200000999\""),
    )
    .unwrap();
    for args in [&backfill_args(15, &[])[..], &["reindex".to_string()][..]] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_configured(&archiver.config, &args, &[]).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("api.app_id") && stderr.contains(&app_id),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucket_over_a_lost_database_is_adopted_and_reindexed() {
    // Three meetings: the fourth subject makes a key s3s-fs cannot store (see s3.rs).
    let sim = start_sim(SimConfig {
        meetings: 3,
        ..small()
    })
    .await;
    let s3 = start_s3().await;
    let archiver = s3_archiver(&sim, &s3, "");
    let report = backfill_s3(&archiver.config).await;
    assert!(report.complete(), "{report:#?}");
    let config = load(&archiver.config);
    let bucket = S3Bucket::new(config.storage.s3.as_ref().unwrap()).unwrap();
    let videos = archived_videos_closed(&archiver).await;
    let etags = async |videos: &[wemeet_archiver::internals::FileRow]| {
        let mut out = BTreeMap::new();
        for f in videos {
            let key = bucket.key_of(&f.path).unwrap();
            let head = bucket.head(&key).await.unwrap().unwrap();
            out.insert(f.path.clone(), head.etag.unwrap());
        }
        out
    };
    let before = etags(&videos).await;

    // Lost: every object adopted, none written again.
    lose_database(&archiver.db());
    let stats = sim.stats();
    let report = backfill_s3(&archiver.config).await;
    assert!(report.complete(), "{report:#?}");
    let after = sim.stats();
    assert_eq!(after.bytes_served, stats.bytes_served, "nothing downloaded");
    assert_eq!(after.address_calls, stats.address_calls, "no address call");
    assert_eq!(report.adopted_now, videos.len() as u64, "{report:#?}");
    assert_eq!(etags(&videos).await, before, "every object untouched");

    // A damaged object is replaced and named.
    let damaged = &videos[0];
    let key = bucket.key_of(&damaged.path).unwrap();
    let mut bytes = Vec::new();
    {
        use futures::TryStreamExt;
        let mut body = bucket.read(&key).await.unwrap();
        while let Some(chunk) = body.try_next().await.unwrap() {
            bytes.extend_from_slice(&chunk);
        }
    }
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    bucket.put(&key, bytes.into(), None).await.unwrap();
    lose_database(&archiver.db());
    let report = backfill_s3(&archiver.config).await;
    assert!(report.complete(), "{report:#?}");
    let replaced: Vec<&str> = report.replaced.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(replaced, [damaged.path.as_str()], "{report:#?}");
    let head = bucket.head(&key).await.unwrap().unwrap();
    assert_eq!(head.sha256, damaged.sha256, "the replacement is the file");

    // reindex from the bucket alone.
    lose_database(&archiver.db());
    let out = run_configured(&archiver.config, &["reindex"], &AWS_ENV).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let store = Db::open(&config.database.path).await.unwrap();
    let known = archived_videos(&store).await;
    assert_eq!(known.len(), videos.len());
    for (a, b) in known.iter().zip(&videos) {
        assert_eq!((&a.path, &a.sha256), (&b.path, &b.sha256));
    }
    let verify = run_configured(&archiver.config, &["verify"], &AWS_ENV).await;
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_tracks_and_transcripts_are_adopted_like_their_video() {
    use crate::artifacts::{ALL_KINDS, assert_artifacts_archived, with_artifacts};
    let sim = start_sim(SimConfig {
        meetings: 5,
        days: 15,
        ..with_artifacts()
    })
    .await;
    let archiver = Archiver::new(&sim, ALL_KINDS);
    archiver.backfill_all(15).await;
    let root = archiver.archive();
    let before = mtimes(&root);
    let store = archiver.store().await;
    let files = store.all_files().await.unwrap().len();
    store.close().await;
    assert!(files > sim.manifest().len(), "the dataset has artifacts");

    lose_database(&archiver.db());
    let stats = sim.stats();
    let report = archiver.backfill_all(15).await;
    let after = sim.stats();
    assert_eq!(after.bytes_served, stats.bytes_served, "nothing downloaded");
    assert_eq!(after.address_calls, stats.address_calls, "no address call");
    assert_eq!(report.adopted_now, files as u64, "{report:#?}");
    assert_eq!(mtimes(&root), before, "every file untouched");
    assert_artifacts_archived(archiver.dir.path(), &sim).await;
}

/// Over a lost database the archive's own history comes back: `reindex` restores the legal
/// hold from the archive's copy, and the audit trail goes on from the archive's segments
/// (read back before anything is appended): `audit verify` passes and no segment the
/// archive held is written over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_database_gets_back_its_holds_and_continues_the_audit_trail() {
    let sim = start_sim(small()).await;
    let archiver = Archiver::new(&sim, "");
    archiver.backfill_all(15).await;
    let meeting = sim.manifest()[0].meeting_record_id.clone();
    let add = [
        "hold",
        "add",
        "--meeting",
        &meeting,
        "--reason",
        "litigation",
    ];
    let held = run_configured(&archiver.config, &add, &[]).await;
    assert_eq!(held.status.code(), Some(0), "{held:?}");
    let checked = run_configured(&archiver.config, &["audit", "verify"], &[]).await;
    assert_eq!(checked.status.code(), Some(0), "{checked:?}");
    let trail = archiver.archive().join(".wemeet-archiver/audit");
    let segments_before: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&trail)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    assert!(!segments_before.is_empty());

    lose_database(&archiver.db());
    let out = run_configured(&archiver.config, &["reindex"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let holds = run_configured(&archiver.config, &["hold", "list", "--format", "json"], &[]).await;
    assert_eq!(holds.status.code(), Some(0), "{holds:?}");
    let listed = String::from_utf8_lossy(&holds.stdout);
    assert!(
        listed.contains(&meeting) && listed.contains("litigation"),
        "{listed}"
    );
    let checked = run_configured(&archiver.config, &["audit", "verify"], &[]).await;
    assert_eq!(checked.status.code(), Some(0), "{checked:?}");
    for (path, bytes) in &segments_before {
        assert_eq!(
            &std::fs::read(path).unwrap(),
            bytes,
            "{} rewritten",
            path.display()
        );
    }
    let segments_after = std::fs::read_dir(&trail).unwrap().count();
    assert!(
        segments_after > segments_before.len(),
        "the reindex is recorded in a new segment"
    );
}
