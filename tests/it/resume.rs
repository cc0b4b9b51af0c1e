//! Crash-safe, resumable transfers: kill -9, SIGTERM, network faults, expiry, disk full.
//!
//! Re-fetching is measured on the simulator's side (`bytes_served`): a transfer that
//! restarted from zero would serve the file twice.

use crate::common::*;
use rand::RngExt;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};
use wemeet_archiver::App;
use wemeet_archiver::FileStatus;
use wemeet_archiver::config::Config;
use wemeet_sim::{SimConfig, SimHandle};

/// A few multi-MiB files in one listing window and page (one API call per run).
fn big_files(bandwidth: u64) -> SimConfig {
    transcoded(3, 15)
        .files(2..=2, 3 * MIB, 6 * MIB)
        .with(|c| c.bandwidth = Some(bandwidth))
}

/// Small files for the fault tests: faults fire once per file, so few files keep them fast.
fn small_files() -> SimConfig {
    transcoded(3, 15).files(1..=1, MIB, 2 * MIB)
}

fn dataset_bytes(sim: &SimHandle) -> u64 {
    sim.manifest().iter().map(|e| e.record_size).sum()
}

/// No temporary file (`.part`, `meeting.json.tmp`) is left once everything is archived.
fn assert_no_temporary_files(root: &Path) {
    let parts: Vec<_> = files_under(root)
        .into_iter()
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".part") || name.ends_with(".tmp")
        })
        .collect();
    assert!(parts.is_empty(), "orphaned temporary files: {parts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resumes_after_sigkill_without_refetching() {
    const WORKERS: u64 = 2;
    const CHECKPOINT: u64 = MIB;
    const KILLS: u64 = 6;
    // 4 MiB/s per transfer: ~7 s of downloading, so kills land mid-transfer.
    let sim = start_sim(big_files(4 * MIB)).await;
    let archiver = Archiver::new(
        &sim,
        &format!("workers = {WORKERS}\ncheckpoint_bytes = {CHECKPOINT}"),
    );
    let mut rng = rand::rng();
    for kill in 0..KILLS {
        // Each run is killed once the simulator has served it a random 0.5–2 MiB: in the
        // middle of a transfer, and never after the end. A kill after a random time could
        // come after the last byte (six runs of up to 1.2 s at 2 × 4 MiB/s outrun 18 MiB);
        // six runs served at most 2 MiB each (plus 10 ms of polling) cannot.
        let served_before = sim.stats().bytes_served;
        let target = served_before + rng.random_range(MIB / 2..2 * MIB);
        let mut child = spawn_backfill(&archiver.config, 15, &[]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while sim.stats().bytes_served < target {
            let finished = child.try_wait().unwrap();
            assert!(finished.is_none(), "backfill finished before kill {kill}");
            assert!(
                Instant::now() < deadline,
                "run {kill} was served nothing in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child.start_kill().unwrap(); // SIGKILL
        child.wait().await.unwrap();
    }
    let status = backfill_to_the_end(&archiver).await;
    assert!(status.success());

    let archive = archiver.archive();
    assert_archive_matches(&archive, &sim.manifest());
    assert_no_temporary_files(&archive);
    let rows = archiver.store().await.all_files().await.unwrap();
    assert_eq!(rows.len(), sim.manifest().len());
    let served = sim.stats().bytes_served;
    let size = dataset_bytes(&sim);
    let allowed = size + KILLS * WORKERS * CHECKPOINT;
    assert!(
        served <= allowed,
        "served {served} bytes for a {size}-byte dataset: more than {allowed} means a re-fetch"
    );
}

/// The hash a checkpoint saved (its format: a version byte, then sha2's serialized state),
/// finished: what the bytes it names hash to, if the state is right.
fn finish_saved_hash(saved: &[u8]) -> String {
    use sha2::Digest;
    use sha2::digest::common::hazmat::{SerializableState, SerializedState};
    assert_eq!(saved[0], 1, "unknown checkpoint format");
    let state = SerializedState::<sha2::Sha256>::try_from(&saved[1..]).unwrap();
    hex::encode(sha2::Sha256::deserialize(&state).unwrap().finalize())
}

/// Lowercase hex SHA-256 of the first `len` bytes of `path`.
fn sha256_prefix(path: &Path, len: u64) -> String {
    use sha2::Digest;
    use std::io::Read;
    let mut prefix = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .take(len)
        .read_to_end(&mut prefix)
        .unwrap();
    assert_eq!(
        prefix.len() as u64,
        len,
        "{path:?} is shorter than its checkpoint"
    );
    hex::encode(sha2::Sha256::digest(&prefix))
}

/// Writing runs on a thread of its own, behind the receiver: after each kill -9, every
/// checkpoint names only bytes that are in the `.part` file, with the hash of exactly those
/// bytes; the runs after resume from them, and each file's recorded SHA-256 is the
/// simulator's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoints_name_only_written_bytes_and_resumes_hash_to_the_manifest() {
    const CHECKPOINT: u64 = MIB;
    let sim = start_sim(big_files(4 * MIB)).await;
    let archiver = Archiver::new(
        &sim,
        &format!("workers = 2\ncheckpoint_bytes = {CHECKPOINT}"),
    );
    let mut checked = 0;
    for _ in 0..3 {
        let mut child = spawn_backfill(&archiver.config, 15, &[]);
        // Killed once a checkpoint of a file still in flight is recorded.
        let store = archiver.store().await;
        while child.try_wait().unwrap().is_none() {
            let rows = store.all_files().await.unwrap();
            if rows
                .iter()
                .any(|r| r.status != FileStatus::Archived && r.bytes_done > 0)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(store);
        child.start_kill().unwrap(); // SIGKILL
        child.wait().await.unwrap();
        let store = archiver.store().await;
        for row in store.all_files().await.unwrap() {
            if row.status == FileStatus::Archived || row.bytes_done == 0 {
                continue;
            }
            let mut part = archiver.archive().join(&row.path).into_os_string();
            part.push(".part");
            let part = std::path::PathBuf::from(part);
            let saved = row
                .hash_state
                .as_deref()
                .expect("a checkpoint saves its hash");
            assert_eq!(
                finish_saved_hash(saved),
                sha256_prefix(&part, row.bytes_done),
                "{}: the checkpoint at {} does not hash the bytes on disk",
                row.record_file_id,
                row.bytes_done
            );
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no kill landed mid-transfer; make the data bigger"
    );
    let status = backfill_to_the_end(&archiver).await;
    assert!(status.success());
    assert_archive_matches(&archiver.archive(), &sim.manifest());
    let rows = archiver.store().await.all_files().await.unwrap();
    for entry in sim.manifest() {
        let row = rows
            .iter()
            .find(|r| r.record_file_id == entry.record_file_id)
            .unwrap();
        assert_eq!(row.sha256.as_deref(), Some(entry.sha256.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_checkpoints_exits_0_within_10_s_and_the_next_run_resumes() {
    let sim = start_sim(big_files(2 * MIB)).await;
    let archiver = Archiver::new(&sim, "workers = 2\ncheckpoint_bytes = 4194304");
    let child = spawn_backfill(&archiver.config, 15, &[]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = sim.stats().bytes_served;
    assert!(before > 0, "no transfer was in flight");
    assert_eq!(sigterm(child.id().unwrap()), 0);
    let sent = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exited within 10 s")
        .unwrap();
    assert_eq!(status.status.code(), Some(0), "{:?}", sent.elapsed());
    let interrupted = sim.stats().bytes_served;
    let store = archiver.store().await;
    let checkpointed: u64 = store
        .all_files()
        .await
        .unwrap()
        .iter()
        .map(|f| f.bytes_done)
        .sum();
    assert!(checkpointed > 0, "nothing was checkpointed on SIGTERM");
    drop(store);

    let status = backfill_to_the_end(&archiver).await;
    assert!(status.success());
    assert_archive_matches(&archiver.archive(), &sim.manifest());
    // The checkpoints taken on SIGTERM cover what was received: at most a chunk per
    // transfer (in flight in the socket) is fetched twice.
    let served = sim.stats().bytes_served;
    let size = dataset_bytes(&sim);
    assert!(
        served <= size + 2 * CHUNK * 2,
        "served {served} for {size} (interrupted at {interrupted})"
    );
}

/// Runs one in-process backfill against `faults` and checks the archive equals the manifest.
async fn backfill_through(faults: SimConfig, download_extra: &str) -> (SimHandle, u64) {
    let sim = start_sim(faults).await;
    let archiver = Archiver::new(&sim, download_extra);
    archiver.backfill_all(15).await;
    let archive = archiver.archive();
    assert_archive_matches(&archive, &sim.manifest());
    assert_no_temporary_files(&archive);
    let size = dataset_bytes(&sim);
    (sim, size)
}

/// Asserts that the simulator served each file of a `size`-byte dataset at most a chunk
/// more than once over: every broken transfer resumed from its offset.
fn assert_resumed_from_the_offset(sim: &SimHandle, size: u64) {
    let files = sim.manifest().len() as u64;
    let stats = sim.stats();
    assert!(stats.bytes_served <= size + files * CHUNK, "{stats:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_connection_resumes_from_the_received_offset() {
    let (sim, size) = backfill_through(small_files().with(|c| c.reset_first = 1), "").await;
    assert_resumed_from_the_offset(&sim, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_truncated_body_resumes_from_the_received_offset() {
    let (sim, size) = backfill_through(small_files().with(|c| c.truncate_first = 1), "").await;
    assert_resumed_from_the_offset(&sim, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_503_is_retried() {
    let (sim, _) = backfill_through(small_files().with(|c| c.error_5xx_first = 2), "").await;
    assert!(
        sim.stats()
            .download_status_counts
            .get(&503)
            .copied()
            .unwrap_or(0)
            > 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_ignoring_range_restarts_the_file_from_zero() {
    let (sim, size) = backfill_through(
        SimConfig {
            reset_first: 1,
            ignore_range: true,
            ..small_files()
        },
        "",
    )
    .await;
    // Half of each file, then the whole of it again.
    assert!(sim.stats().bytes_served > size, "{:#?}", sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changed_etag_restarts_the_file_and_archives_the_new_content() {
    // The first GET of each file serves half of the old content, then the content changes:
    // the resume (If-Range: old ETag) gets the new file whole, and the archive must hold
    // the new content only (the manifest has the new hashes).
    backfill_through(
        SimConfig {
            reset_first: 1,
            change_etag_after_first: true,
            ..small_files()
        },
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_stall_longer_than_the_read_timeout_is_abandoned_and_resumed() {
    let started = Instant::now();
    let (sim, size) = backfill_through(
        SimConfig {
            stall_first: 1,
            stall: Duration::from_secs(30),
            ..small_files()
        },
        "read_timeout = \"1s\"",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the stall was waited out"
    );
    assert_resumed_from_the_offset(&sim, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_address_expiring_mid_transfer_is_refreshed_and_resumed_from_the_offset() {
    // The download stalls past the 5 s read timeout; by the retry the 4-second address
    // has expired (403), so the archiver fetches a new one from /v1/addresses, then
    // resumes with Range from its offset.
    // (The archiver believes addresses live 6 h: only the 403 tells it.)
    let (sim, size) = backfill_through(
        SimConfig {
            stall_first: 1,
            stall: Duration::from_secs(30),
            address_ttl: Duration::from_secs(4),
            ..small_files()
        },
        "read_timeout = \"5s\"",
    )
    .await;
    let stats = sim.stats();
    assert!(stats.expired_token_rejections > 0, "{stats:#?}");
    assert_resumed_from_the_offset(&sim, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_files_are_reported_and_retried_with_retry_failed() {
    let sim = start_sim(small_files().with(|c| c.error_5xx_first = 2)).await;
    let archiver = Archiver::new(&sim, "max_attempts = 2");
    let report = backfill(&archiver.config, full_range(15)).await;
    assert_eq!(
        report.not_archived.len(),
        sim.manifest().len(),
        "{report:#?}"
    );
    let store = archiver.store().await;
    let status = store.status(wemeet_archiver::UnixMs(0)).await.unwrap();
    assert_eq!(status.failures.len(), sim.manifest().len());
    assert!(
        status
            .failures
            .iter()
            .all(|f| f.reason.as_deref().unwrap_or("").contains("503"))
    );

    let out = run_backfill(&archiver.config, 15, &["--retry-failed"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_archive_matches(&archiver.archive(), &sim.manifest());
}

/// A 4 MiB tmpfs mounted as the archive: the transfer that fills it pauses with a clear
/// error naming the path, nothing is marked archived, and once the file system is grown the
/// transfer resumes. Needs root (to mount); `.ci/run` runs it as root.
#[ignore = "needs root: mounts a tmpfs"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_pauses_the_transfer_until_space_is_back() {
    struct Mount(std::path::PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let sim = start_sim(small_files()).await;
    let archiver = Archiver::new(&sim, "disk_full_retry = \"1s\"");
    let archive = archiver.archive();
    std::fs::create_dir_all(&archive).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&archive)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(mounted, "this test mounts a tmpfs and must run as root");
    let _mount = Mount(archive.clone());
    let app = App::open(Config::load(&archiver.config).unwrap())
        .await
        .unwrap();
    let range = full_range(15);
    let job = tokio::spawn(async move {
        app.backfill(range.0, range.1, false, Default::default())
            .await
    });

    let store = archiver.store().await;
    let reason = wait_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || {
            let files = store.all_files().await.unwrap();
            match files.iter().find_map(|f| f.last_error.clone()) {
                Some(reason) => ControlFlow::Break(reason),
                None => ControlFlow::Continue("the disk never filled up".into()),
            }
        },
    )
    .await;
    assert!(
        reason.contains("disk full") && reason.contains(".part"),
        "{reason}"
    );
    let archived = store.all_files().await.unwrap();
    for f in archived.iter().filter(|f| f.status == FileStatus::Archived) {
        assert_eq!(f.archived_size, Some(f.record_size));
    }
    assert!(archived.iter().any(|f| f.status != FileStatus::Archived));

    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&archive)
        .status()
        .unwrap();
    assert!(grown.success());
    let report = tokio::time::timeout(Duration::from_secs(60), job)
        .await
        .expect("resumed after space came back")
        .unwrap()
        .unwrap();
    assert!(report.complete(), "{report:#?}");
    assert_archive_matches(&archive, &sim.manifest());
}

/// A backfill of the whole dataset that nothing interrupts: its exit status.
async fn backfill_to_the_end(archiver: &Archiver) -> std::process::ExitStatus {
    spawn_backfill(&archiver.config, 15, &[])
        .wait()
        .await
        .unwrap()
}
