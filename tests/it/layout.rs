//! `storage.layout` end to end: a per-user template lays out hostile creators and subjects
//! inside the archive root, `meeting.json` and artifacts follow their video's folder, and a
//! template that could map two files to one path never starts.

use crate::artifacts::{ALL_KINDS, assert_artifacts_archived, with_artifacts};
use crate::common::*;
use std::collections::BTreeSet;
use std::path::Component;
use wemeet_archiver::state::{FileKind, FileStatus};
use wemeet_sim::SimConfig;

const DAYS: u32 = 20;
const PER_USER: &str = "{userid}/{start:%Y}/{start:%m-%d %H%M} {subject}/{index}-{record_file_id}";

/// Puts `layout = "..."` in the `[storage]` table of the config at `path`.
fn set_layout(path: &std::path::Path, template: &str) {
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
    let (since, until) = full_range(DAYS);
    let range = [
        "backfill",
        "--since",
        &rfc3339(since),
        "--until",
        &rfc3339(until),
    ];
    let out = run_configured(&archiver.config, &range, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("storage.layout"), "{stderr}");
    assert_eq!(sim.stats().api_calls, calls, "it listed anyway");
    assert_eq!(files_under(&archiver.archive()), before);
    assert_archive_matches(&archiver.archive(), &sim.manifest());
}
