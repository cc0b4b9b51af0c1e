//! `storage.layout` end to end: a per-user template lays out hostile creators and subjects
//! inside the archive root, `meeting.json` and artifacts follow their video's folder, and a
//! template that could map two files to one path never starts.

use crate::artifacts::{ALL_KINDS, assert_artifacts_archived, with_artifacts};
use crate::common::*;
use std::collections::BTreeSet;
use std::path::Component;
use wemeet_archiver::{FileKind, FileStatus};
use wemeet_sim::SimConfig;

const DAYS: u32 = 20;
const PER_USER: &str = "{userid}/{start:%Y}/{start:%m-%d %H%M} {subject}/{index}-{record_file_id}";

/// Puts `layout = "..."` in the `[storage]` table of the config at `path`.
pub(crate) fn set_layout(path: &std::path::Path, template: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let line = format!("path = \"archive\"\nlayout = \"{template}\"");
    std::fs::write(path, text.replacen("path = \"archive\"", &line, 1)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_user_folders_lay_out_hostile_userids_and_subjects_under_the_root() {
    let sim = start_sim(SimConfig {
        meetings: 12,
        days: DAYS,
        hostile_userids: true,
        ..with_artifacts()
    })
    .await;
    let manifest = sim.manifest();
    let userids: BTreeSet<String> = manifest.iter().map(|e| e.userid.clone()).collect();
    for hostile in ["../../root", "dept/legal", "a\0b", "", ".."] {
        assert!(userids.contains(hostile), "dataset lacks {hostile:?}");
    }
    assert!(userids.iter().any(|u| u.len() == 300));
    let archiver = Archiver::new(&sim, ALL_KINDS);
    set_layout(&archiver.config, PER_USER);
    archiver.backfill_all(DAYS).await;

    // Everything on disk is under the root, in plain, bounded components.
    let root = archiver.archive();
    let on_disk = files_under(&root);
    assert!(!on_disk.is_empty());
    for rel in &on_disk {
        assert!(
            rel.components().all(|c| matches!(c, Component::Normal(_))),
            "{rel:?}"
        );
        let name = rel.to_str().unwrap();
        assert!(!name.chars().any(char::is_control), "{name:?}");
        assert!(rel.iter().all(|part| part.len() <= 255), "{name}");
    }
    // Only the config, the database and the archive beside each other: nothing escaped.
    let mut top: Vec<String> = std::fs::read_dir(archiver.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("state.db"))
        .collect();
    top.sort();
    assert_eq!(top, ["archive", "config.toml"]);

    // Each video is `{user}/{YYYY}/{MM-DD HHMM subject}/{index}-{id}.mp4`, with its
    // meeting.json beside it; one user's recordings share that user's folder.
    let rows = archiver.store().await.all_files().await.unwrap();
    for e in &manifest {
        let row = rows
            .iter()
            .find(|r| r.record_file_id == e.record_file_id)
            .unwrap();
        assert_eq!(row.status, FileStatus::Archived, "{row:?}");
        let parts: Vec<&str> = row.path.split('/').collect();
        assert_eq!(parts.len(), 4, "{}", row.path);
        assert!(
            parts[3].ends_with(&format!("-{}.mp4", e.record_file_id)),
            "{}",
            row.path
        );
        let (dir, _) = row.path.rsplit_once('/').unwrap();
        assert!(root.join(dir).join("meeting.json").is_file(), "{dir}");
        assert_eq!(sha256_file(&root.join(&row.path)), e.sha256);
        let same_user = manifest.iter().filter(|o| o.userid == e.userid);
        for other in same_user {
            let o = rows
                .iter()
                .find(|r| r.record_file_id == other.record_file_id)
                .unwrap();
            assert_eq!(o.path.split('/').next(), Some(parts[0]), "{}", o.path);
        }
    }
    let first_components: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.kind == FileKind::Video)
        .map(|r| r.path.split('/').next().unwrap())
        .collect();
    assert!(
        first_components.contains("dept_legal"),
        "{first_components:?}"
    );
    assert!(first_components.contains("user"), "{first_components:?}");
    // Audio tracks and transcripts lie beside their video, named after it.
    assert_artifacts_archived(archiver.dir.path(), &sim).await;
    let verify = run_configured(&archiver.config, &["verify"], &[]).await;
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
}

#[tokio::test]
async fn a_template_that_can_map_two_files_to_one_path_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, offline_config()).unwrap();
    set_layout(&config, "{userid}/{start:%Y}/{subject}");
    let out = run_configured(&config, &["backfill", "--since", "2026-01-01"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("storage.layout") && stderr.contains("{record_file_id}"),
        "{stderr}"
    );
    assert!(!dir.path().join("state.db").exists(), "it started anyway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changed_template_is_refused_and_the_archive_keeps_its_layout() {
    let sim = start_sim(transcoded(4, DAYS).sizes(16 * KIB, 64 * KIB)).await;
    let archiver = Archiver::new(&sim, "");
    archiver.backfill_all(DAYS).await;
    let before = files_under(&archiver.archive());
    let calls = sim.stats().api_calls;

    set_layout(&archiver.config, PER_USER);
    let out = run_backfill(&archiver.config, DAYS, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("storage.layout"), "{stderr}");
    assert_eq!(sim.stats().api_calls, calls, "it listed anyway");
    assert_eq!(files_under(&archiver.archive()), before);
    assert_archive_matches(&archiver.archive(), &sim.manifest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relayout_killed_mid_way_resumes_and_leaves_every_file_intact() {
    let sim = start_sim(SimConfig {
        meetings: 30,
        days: DAYS,
        hostile_userids: true,
        min_file_size: 16 * KIB,
        max_file_size: 64 * KIB,
        ..with_artifacts()
    })
    .await;
    let manifest = sim.manifest();
    let archiver = Archiver::new(&sim, ALL_KINDS);
    archiver.backfill_all(DAYS).await;
    let before = files_under(&archiver.archive());
    let served = sim.stats().bytes_served;
    set_layout(&archiver.config, PER_USER);

    // Refused until the files moved; a dry run says what would move and moves nothing.
    let refused = run_backfill(&archiver.config, DAYS, &[]).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("relayout"));
    let dry = run_configured(&archiver.config, &["relayout", "--dry-run"], &[]).await;
    assert_eq!(dry.status.code(), Some(0), "{dry:?}");
    let rows = archiver.store().await.all_files().await.unwrap();
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert!(
        stdout.contains(&format!("{} file(s) would move", rows.len())),
        "{stdout}"
    );
    assert_eq!(files_under(&archiver.archive()), before);

    // Killed (SIGKILL) once half of its moves are committed: the plan is recorded, the
    // next file may be renamed without its new path committed.
    let mut child = spawn_archiver(&archiver.config, &["relayout"], &[]);
    let store = archiver.store().await;
    wait_until(
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(1),
        async || {
            let planned = store.relayout_target().await.unwrap().is_some();
            let left = store.pending_moves().await.unwrap().len();
            if (planned && left <= rows.len() / 2) || child.try_wait().unwrap().is_some() {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(format!("{left} moves left"))
            }
        },
    )
    .await;
    child.kill().await.unwrap();
    let left = store.pending_moves().await.unwrap().len();
    drop(store);

    let rerun = run_configured(&archiver.config, &["relayout"], &[]).await;
    assert_eq!(
        rerun.status.code(),
        Some(0),
        "{rerun:?} (after {left} moves left)"
    );
    let store = archiver.store().await;
    assert_eq!(store.relayout_target().await.unwrap(), None);
    assert!(store.pending_moves().await.unwrap().is_empty());
    let rows = store.all_files().await.unwrap();
    drop(store);
    let root = archiver.archive();
    for e in &manifest {
        let row = rows
            .iter()
            .find(|r| r.record_file_id == e.record_file_id)
            .unwrap();
        assert_eq!(row.path.split('/').count(), 4, "{}", row.path);
        assert!(row.path.ends_with(&format!("-{}.mp4", e.record_file_id)));
        assert_eq!(sha256_file(&root.join(&row.path)), e.sha256, "{}", row.path);
        let (dir, _) = row.path.rsplit_once('/').unwrap();
        assert!(root.join(dir).join("meeting.json").is_file(), "{dir}");
    }
    assert_artifacts_archived(archiver.dir.path(), &sim).await;
    // Nothing is left in the old folders (`{YYYY}/...`), not even a meeting.json.
    for rel in files_under(&root) {
        let first = rel.iter().next().unwrap().to_str().unwrap();
        assert!(first.parse::<u32>().is_err(), "{rel:?} was left behind");
    }
    let verify = run_configured(&archiver.config, &["verify"], &[]).await;
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
    // The archive is laid out with the new template: backfill runs, and downloads nothing.
    archiver.backfill_all(DAYS).await;
    assert_eq!(sim.stats().bytes_served, served);
}
