//! Audio tracks and transcripts: every artifact of a recording, opt-in, with the video's
//! guarantees (streaming SHA-256, checkpoints, resume, verification).

use crate::common::*;
use std::ops::ControlFlow;
use std::time::Duration;
use wemeet_archiver::{Db, FileKind, FileStatus};
use wemeet_sim::{ArtifactEntry, ArtifactKind, SimConfig, SimHandle};

pub(crate) const ALL_KINDS: &str = "artifacts = [\"video\", \"audio\", \"transcript\"]";

/// Where an artifact must be: beside its video, `{id}.m4a` or `{id}.transcript[.N].{type}`.
fn expected_path(video_path: &str, e: &ArtifactEntry) -> String {
    let (dir, file) = video_path.rsplit_once('/').unwrap();
    let id = file.strip_suffix(".mp4").unwrap();
    match (e.kind, e.nth) {
        (ArtifactKind::Audio, _) => format!("{dir}/{id}.m4a"),
        (ArtifactKind::Transcript, 1) => format!("{dir}/{id}.transcript.{}", e.file_type),
        (ArtifactKind::Transcript, n) => format!("{dir}/{id}.transcript.{n}.{}", e.file_type),
    }
}

/// Asserts that every artifact the simulator shows is archived at its place with its size
/// and SHA-256, on disk and in the database.
pub(crate) async fn assert_artifacts_archived(dir: &std::path::Path, sim: &SimHandle) {
    let store = Db::open(&dir.join("state.db")).await.unwrap();
    let rows = store.all_files().await.unwrap();
    let artifacts = sim.artifact_manifest();
    assert!(!artifacts.is_empty(), "the dataset has no artifacts");
    for e in &artifacts {
        let video = rows
            .iter()
            .find(|r| r.record_file_id == e.record_file_id)
            .unwrap_or_else(|| panic!("video {} not listed", e.record_file_id));
        let path = expected_path(&video.path, e);
        let row = rows
            .iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("no row for {path}: {rows:#?}"));
        assert_eq!(row.status, FileStatus::Archived, "{row:?}");
        assert_eq!(
            row.parent_file_id.as_deref(),
            Some(e.record_file_id.as_str())
        );
        assert_eq!(row.sha256.as_deref(), Some(e.sha256.as_str()), "{path}");
        let file = dir.join("archive").join(&path);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), e.size, "{path}");
        assert_eq!(sha256_file(&file), e.sha256, "{path}");
    }
    let kinds = |k: FileKind| rows.iter().filter(|r| r.kind == k).count();
    assert_eq!(
        kinds(FileKind::Audio) + kinds(FileKind::Transcript),
        artifacts.len()
    );
}

/// Small files, all transcoded, most with an audio track and transcripts that are there.
pub(crate) fn with_artifacts() -> SimConfig {
    SimConfig {
        pending_fraction: 0.0,
        files_per_meeting: 1..=2,
        min_file_size: 64 * KIB,
        max_file_size: 256 * KIB,
        audio_fraction: 0.7,
        transcript_fraction: 0.8,
        late_transcript_fraction: 0.0,
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_every_kind_on_every_audio_track_and_transcript_is_archived_with_its_sha256() {
    let sim = start_sim(SimConfig {
        meetings: 10,
        days: 20,
        ..with_artifacts()
    })
    .await;
    let a = Archiver::new(&sim, ALL_KINDS);
    let (dir, config) = (a.dir.path(), &a.config);
    let report = backfill(config, full_range(20)).await;
    assert!(report.complete(), "{report:#?}");
    assert_artifacts_archived(dir, &sim).await;
    let artifacts = sim.artifact_manifest();
    assert!(artifacts.iter().any(|e| e.kind == ArtifactKind::Audio));
    assert!(
        artifacts.iter().any(|e| e.nth == 2),
        "no second transcript of a type"
    );

    // meeting.json lists each artifact with its size and SHA-256, and verify checks
    // (and SHA256SUMS lists) every kind.
    let archive = dir.join("archive");
    for e in &artifacts {
        let found = files_under(&archive)
            .into_iter()
            .filter(|p| p.file_name().unwrap() == "meeting.json")
            .any(|p| {
                std::fs::read_to_string(archive.join(p))
                    .unwrap()
                    .contains(&e.sha256)
            });
        assert!(found, "{e:?} not in any meeting.json");
    }
    let out = run_configured(config, &["verify", "--manifest"], &[]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let sums = std::fs::read_to_string(archive.join("SHA256SUMS")).unwrap();
    for e in &artifacts {
        assert!(sums.contains(&e.sha256), "{e:?} not in SHA256SUMS");
    }
    let status = run_configured(config, &["status", "--json"], &[]).await;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let audio = artifacts
        .iter()
        .filter(|e| e.kind == ArtifactKind::Audio)
        .count();
    assert_eq!(status["by_kind"]["audio"]["archived"], audio);
    assert_eq!(status["by_kind"]["video"]["archived"], sim.manifest().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn turning_the_kinds_on_later_fetches_only_the_artifacts() {
    let sim = start_sim(SimConfig {
        meetings: 6,
        days: 10,
        ..with_artifacts()
    })
    .await;
    let a = Archiver::new(&sim, "");
    let (dir, config) = (a.dir.path(), &a.config);
    assert!(backfill(config, full_range(10)).await.complete());
    let videos: Vec<String> = sim
        .manifest()
        .into_iter()
        .map(|e| e.record_file_id)
        .collect();
    let served = |sim: &SimHandle| -> u64 {
        let stats = sim.stats();
        videos
            .iter()
            .map(|id| stats.bytes_served_by_file.get(id).copied().unwrap_or(0))
            .sum()
    };
    let video_bytes = served(&sim);

    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(
        config,
        text.replace("[download]\n", &format!("[download]\n{ALL_KINDS}\n")),
    )
    .unwrap();
    let report = backfill(config, full_range(10)).await;
    assert!(report.complete(), "{report:#?}");
    assert_eq!(report.archived_now as usize, sim.artifact_manifest().len());
    assert_eq!(served(&sim), video_bytes, "a video was downloaded again");
    assert_artifacts_archived(dir, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_names_a_damaged_audio_track() {
    let sim = start_sim(SimConfig {
        meetings: 4,
        days: 10,
        audio_fraction: 1.0,
        ..with_artifacts()
    })
    .await;
    let a = Archiver::new(&sim, ALL_KINDS);
    let (dir, config) = (a.dir.path(), &a.config);
    assert!(backfill(config, full_range(10)).await.complete());
    let store = Db::open(&dir.join("state.db")).await.unwrap();
    let audio = store
        .all_files()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.kind == FileKind::Audio)
        .unwrap();
    let path = dir.join("archive").join(&audio.path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[7] ^= 1;
    std::fs::write(&path, bytes).unwrap();

    let out = run_configured(config, &["verify", "--format", "json"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let damaged: Vec<_> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] != "ok")
        .collect();
    assert_eq!(damaged.len(), 1, "{damaged:#?}");
    assert_eq!(damaged[0]["path"], audio.path.as_str());
    assert!(audio.path.ends_with(".m4a"));
    assert_eq!(damaged[0]["status"], "hash_mismatch");
    assert_eq!(damaged[0]["kind"], "audio");
}

/// A kill -9 while the audio track streams (it is big, the download paced): the next run
/// resumes it from its checkpoint, held to the size its first response announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_9_during_an_artifact_transfer_resumes_it() {
    let audio_size = 8 * MIB;
    let sim = start_sim(SimConfig {
        meetings: 1,
        days: 5,
        pending_fraction: 0.0,
        files_per_meeting: 1..=1,
        min_file_size: 256 * KIB,
        max_file_size: 256 * KIB,
        audio_fraction: 1.0,
        audio_size: Some(audio_size),
        transcript_fraction: 0.0,
        bandwidth: Some(2 * MIB),
        ..SimConfig::default()
    })
    .await;
    let a = Archiver::new(
        &sim,
        &format!("workers = 1\ncheckpoint_bytes = {MIB}\n{ALL_KINDS}"),
    );
    let (dir, config) = (a.dir.path(), &a.config);
    let db = dir.join("state.db");
    let mut child = spawn_backfill(config, 5, &[]);
    let resume_at = wait_until(
        Duration::from_secs(60),
        Duration::from_millis(50),
        async || {
            let rows = match db.exists() {
                true => Db::open(&db).await.unwrap().all_files().await.unwrap(),
                false => Vec::new(),
            };
            match rows
                .iter()
                .find(|r| r.kind == FileKind::Audio && r.bytes_done > 0)
            {
                Some(a) => ControlFlow::Break(a.bytes_done),
                None => ControlFlow::Continue("the audio track never checkpointed".into()),
            }
        },
    )
    .await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    assert!(
        resume_at < audio_size,
        "the audio track finished before the kill"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let key = format!("{}-audio", sim.manifest()[0].record_file_id);
    let served_before = sim.stats().bytes_served_by_file[&key];

    let status = spawn_backfill(config, 5, &[]).wait().await.unwrap();
    assert!(status.success());
    assert_artifacts_archived(dir, &sim).await;
    let served_again = sim.stats().bytes_served_by_file[&key] - served_before;
    assert!(
        served_again <= audio_size - resume_at + 64 * KIB,
        "served {served_again} bytes again; resuming at {resume_at}"
    );
}

/// A backfill over old months does not wait for transcripts that never came: the wait
/// ends at the first look (logged and counted), and the run is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backfill_of_old_recordings_does_not_wait_for_missing_transcripts() {
    let sim = start_sim(SimConfig {
        meetings: 4,
        days: 20,
        transcript_fraction: 1.0,
        late_transcript_fraction: 1.0,
        transcript_delay: Duration::from_secs(30 * 86_400),
        ..with_artifacts()
    })
    .await;
    assert!(
        sim.artifact_manifest()
            .iter()
            .all(|e| e.kind == ArtifactKind::Audio)
    );
    let a = Archiver::new(&sim, ALL_KINDS);
    let config = &a.config;
    let report = backfill(config, full_range(20)).await;
    assert!(report.complete(), "{report:#?}");
    let status = run_configured(config, &["status", "--json"], &[]).await;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["transcript_waits_ended"], 4, "{status:#}");
    assert_eq!(status["transcripts_awaited"], 0);
}

/// In the service, a transcript that is not there yet when its recording is transcoded is
/// looked for again at later polls, and archived once it appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_archives_a_late_transcript_at_a_later_poll() {
    let sim = wemeet_sim::start(
        SimConfig {
            meetings: 1,
            days: 1,
            transcript_fraction: 1.0,
            late_transcript_fraction: 1.0,
            transcript_delay: Duration::from_secs(4),
            audio_fraction: 0.0,
            rate_limit_per_minute: 60,
            ..with_artifacts()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let a = Archiver::new(
        &sim,
        &format!("{ALL_KINDS}\n[poll]\ninterval = \"1s\"\nlookback = \"2d\""),
    );
    let (dir, config) = (a.dir.path(), &a.config);
    add_api_keys(config, "requests_per_minute = 60");
    let app = wemeet_archiver::App::open(wemeet_archiver::config::Config::load(config).unwrap())
        .await
        .unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    let daemon = tokio::spawn(async move { app.run(None, stop).await.unwrap() });
    // A meeting transcoded 1 s from now whose transcripts come 4 s after that.
    let meeting = sim.add_meeting("late minutes", &[64 * KIB], Duration::from_secs(1));
    let store = Db::open(&dir.join("state.db")).await.unwrap();
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || {
            // Every meeting's late transcripts, not only the added one's: the final check
            // covers the dataset's meeting too, whose transcripts come at their own time.
            let files = store.all_files().await.unwrap();
            let transcripts: Vec<_> = files
                .iter()
                .filter(|f| f.kind == FileKind::Transcript)
                .collect();
            let served = sim
                .artifact_manifest()
                .iter()
                .filter(|e| e.kind == ArtifactKind::Transcript)
                .count();
            let added = store
                .files_of_meeting(&meeting.as_str().into())
                .await
                .unwrap();
            match added.iter().any(|f| f.kind == FileKind::Transcript)
                && transcripts.len() == served
                && transcripts.iter().all(|f| f.status == FileStatus::Archived)
            {
                true => ControlFlow::Break(()),
                false => ControlFlow::Continue(format!(
                    "the late transcript was never archived: {files:#?}"
                )),
            }
        },
    )
    .await;
    cancel.cancel();
    daemon.await.unwrap();
    let late: Vec<_> = sim.artifact_manifest();
    assert!(late.iter().any(|e| e.kind == ArtifactKind::Transcript));
    assert_artifacts_archived(dir, &sim).await;
}
