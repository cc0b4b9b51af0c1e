//! `[retention] mode`: S3 Object Lock on a bucket, against moto's S3 server (a real server
//! nobody here wrote, which enforces Object Lock: a locked version cannot be deleted, a
//! legal hold blocks deletion, a PUT without a checksum is refused).
//!
//! moto runs as `python3`, in its own process, bound by the OS to a free port (its
//! `ThreadedMotoServer` on port 0 prints the port it got once it listens: no race for a
//! port), and is killed when the test drops it. CI installs it (`.ci/run`); without it
//! these tests fail, saying how to install it.

use crate::common::*;
use crate::s3::{AWS_ENV, load};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use wemeet_archiver::FileStatus;
use wemeet_archiver::internals::FileRow;
use wemeet_archiver::internals::{LockClient, LockError, LockMode, S3Bucket};
use wemeet_sim::{SimConfig, SimHandle};

const KEEP: Duration = Duration::from_secs(6 * 31_557_600);

/// moto's server, killed when dropped.
struct Moto {
    endpoint: String,
    _process: tokio::process::Child,
}

const MOTO: &str = "\
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
";

async fn start_moto() -> Moto {
    let mut process = tokio::process::Command::new("python3")
        .args(["-c", MOTO])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let stdout = process.stdout.take().unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .unwrap();
    let Ok(port) = line.trim().parse::<u16>() else {
        let out = process.wait_with_output().await.unwrap();
        panic!(
            "moto's S3 server did not start: install it with `pip install \"moto[server]\"` \
             (.ci/run does)\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _process: process,
    }
}

/// A few small files: single `PUT`s, and (`min_file_size` 6 MiB) multipart uploads.
fn dataset(multipart: bool) -> SimConfig {
    let size = if multipart { 6 * MIB } else { 200_000 };
    SimConfig {
        meetings: 3,
        days: 15,
        pending_fraction: 0.0,
        files_per_meeting: 1..=1,
        min_file_size: size,
        max_file_size: size + 100_000,
        ..SimConfig::default()
    }
}

/// An archiver for `sim` writing into moto's `bucket` with `[retention] mode`, `keep`
/// six years and `prune` enabled; the bucket is created (with Object Lock when
/// `object_lock`).
async fn locked_archiver(
    sim: &SimHandle,
    moto: &Moto,
    bucket: &str,
    mode: &str,
    object_lock: bool,
) -> (Archiver, LockClient) {
    let archiver = Archiver::new(sim, "");
    let path = &archiver.config;
    let text = std::fs::read_to_string(path).unwrap().replace(
        "[storage]\npath = \"archive\"\n",
        &format!(
            "[storage]\nbackend = \"s3\"\n\n[storage.s3]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\n\
             allow_http = true\npart_size = {}\n",
            moto.endpoint,
            5 * MIB
        ),
    );
    std::fs::write(
        path,
        format!(
            "{text}\n[retention]\nkeep = \"6y\"\nmode = \"{mode}\"\n\n[prune]\nenabled = true\n\
             after = \"1ms\"\n"
        ),
    )
    .unwrap();
    let config = load(path);
    let client = LockClient::new(config.storage.s3.as_ref().unwrap()).unwrap();
    client.create_bucket(object_lock).await.unwrap();
    (archiver, client)
}

async fn run(config: &Path, args: &[&str]) -> Output {
    run_configured(config, args, &AWS_ENV).await
}

/// Backfills the whole dataset into the archiver's bucket (exit 0): the bucket, and the
/// files the database then holds.
async fn backfill_locked(archiver: &Archiver) -> (S3Bucket, Vec<FileRow>) {
    let args = backfill_args(15, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&archiver.config, &args).await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let config = load(&archiver.config);
    let bucket = S3Bucket::new(config.storage.s3.as_ref().unwrap()).unwrap();
    (bucket, archiver.store().await.all_files().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto's S3 server: pip install \"moto[server]\""]
async fn every_object_is_retained_until_start_plus_keep_and_a_locked_version_cannot_be_deleted() {
    let moto = start_moto().await;
    for (bucket, multipart) in [("locked-puts", false), ("locked-uploads", true)] {
        let sim = start_sim(dataset(multipart)).await;
        let (archiver, client) = locked_archiver(&sim, &moto, bucket, "compliance", true).await;
        let (bucket, files) = backfill_locked(&archiver).await;
        assert_eq!(files.len(), 3);
        for file in &files {
            assert_eq!(file.status, FileStatus::Archived, "{file:?}");
            let key = bucket.key_of(&file.path).unwrap();
            let lock = client.lock_state(key.as_ref()).await.unwrap();
            let retention = lock
                .retention
                .unwrap_or_else(|| panic!("{key} has no retention"));
            assert_eq!(retention.mode, LockMode::Compliance, "{key}");
            assert!(
                retention.until >= file.media_start_time + KEEP,
                "{key}: retained until {:?}, before start + keep",
                retention.until
            );
            // The program's own objects are retained too.
            let json = bucket
                .key_of(&format!("{}/meeting.json", file.dir))
                .unwrap();
            let json = client.lock_state(json.as_ref()).await.unwrap().retention;
            assert_eq!(json.map(|r| r.mode), Some(LockMode::Compliance));

            // The server refuses to delete the locked version.
            let version = lock.version_id.expect("a locked bucket is versioned");
            let refused = client.delete_version(key.as_ref(), &version).await;
            assert!(
                matches!(&refused, Err(LockError::Refused { status, .. }) if status.as_u16() == 403),
                "{key}: a locked version was not refused: {refused:?}"
            );
            assert_eq!(
                bucket.head(&key).await.unwrap().map(|o| o.size),
                Some(file.record_size)
            );
        }
        // Every recording's bytes are intact.
        let out = run(&archiver.config, &["verify"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", explain(&out));

        // relayout moves every object; each copy keeps its lock.
        let text = std::fs::read_to_string(&archiver.config).unwrap().replace(
            "backend = \"s3\"\n",
            "backend = \"s3\"\nlayout = \"moved/{meeting_code}/{record_file_id}\"\n",
        );
        std::fs::write(&archiver.config, text).unwrap();
        let out = run(&archiver.config, &["relayout"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
        for file in archiver.store().await.all_files().await.unwrap() {
            assert!(file.path.starts_with("moved/"), "{}", file.path);
            let key = bucket.key_of(&file.path).unwrap();
            let lock = client.lock_state(key.as_ref()).await.unwrap();
            let retention = lock
                .retention
                .unwrap_or_else(|| panic!("{key} lost its lock"));
            assert!(retention.until >= file.media_start_time + KEEP, "{key}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto's S3 server: pip install \"moto[server]\""]
async fn a_hold_puts_a_legal_hold_on_exactly_its_recording_which_prune_skips_until_release() {
    let moto = start_moto().await;
    let sim = start_sim(dataset(false)).await;
    let (archiver, client) =
        locked_archiver(&sim, &moto, "held-recordings", "governance", true).await;
    let (bucket, files) = backfill_locked(&archiver).await;
    let held = files[0].clone();
    let legal_holds = async || {
        let mut on = BTreeSet::new();
        for file in &files {
            let key = bucket.key_of(&file.path).unwrap();
            if client.lock_state(key.as_ref()).await.unwrap().legal_hold {
                on.insert(file.record_file_id.clone());
            }
        }
        on
    };
    assert!(legal_holds().await.is_empty());

    let out = run(
        &archiver.config,
        &hold_meeting(&held.meeting_record_id, "matter 7"),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(
        legal_holds().await,
        BTreeSet::from([held.record_file_id.clone()])
    );

    // prune skips the held recording, saying so, and deletes the others in the cloud.
    let out = run(&archiver.config, &["prune"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{}: on legal hold 1", held.path)),
        "{stdout}"
    );
    let deleted: BTreeSet<String> = sim.deleted().into_iter().collect();
    let others = record_file_ids(&files[1..]);
    assert_eq!(deleted, others);

    let out = run(&archiver.config, &["hold", "release", "1"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(legal_holds().await.is_empty());

    let out = run(&archiver.config, &["status"]).await;
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.contains("mode governance (S3 Object Lock until start + keep)"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto's S3 server: pip install \"moto[server]\""]
async fn a_bucket_without_object_lock_is_refused_naming_retention_mode() {
    let moto = start_moto().await;
    let sim = start_sim(dataset(false)).await;
    let (archiver, _) = locked_archiver(&sim, &moto, "unlocked", "compliance", false).await;
    let args = backfill_args(15, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for args in [
        &args[..],
        &["hold", "add", "--user", "u1", "--reason", "r"][..],
    ] {
        let out = run(&archiver.config, args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", explain(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("retention.mode") && stderr.contains("Object Lock enabled"),
            "{stderr}"
        );
    }
    // Nothing was archived or held.
    let store = archiver.store().await;
    assert!(store.holds().await.unwrap().is_empty());
    assert_eq!(sim.stats().api_calls, 0);
}
