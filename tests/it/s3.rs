//! Archiving into an S3-compatible bucket: a real S3 server (`s3s-fs`, a directory served
//! over the S3 protocol, with SigV4 authentication) runs in the test process on port 0.
//!
//! One difference from AWS and MinIO is bridged in the server, not in the archiver: for an
//! UploadPart or CompleteMultipartUpload on an upload that no longer exists, s3s-fs answers
//! 403 AccessDenied where S3 answers 404 NoSuchUpload; the access hook below answers
//! NoSuchUpload, as S3 does. It also counts CreateMultipartUpload calls, which is how a
//! test tells a continued upload from a new one.

mod serve;

use crate::common::*;
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{CompleteMultipartUploadInput, CreateMultipartUploadInput, UploadPartInput};
use s3s::{S3Request, S3Result, s3_error};
use sha2::{Digest, Sha256};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use wemeet_archiver::Archive;
use wemeet_archiver::config::{Config, ENV_AWS_ACCESS_KEY_ID, ENV_AWS_SECRET_ACCESS_KEY};
use wemeet_archiver::internals::S3Bucket;
use wemeet_archiver::{App, BackfillReport};
use wemeet_archiver::{Db, FileStatus};
use wemeet_sim::{ManifestEntry, SimConfig, SimHandle};

pub(crate) const BUCKET: &str = "recordings";
pub(crate) const PREFIX: &str = "wemeet/archive";
const ACCESS_KEY: &str = "AKIATESTARCHIVER";
const SECRET_KEY: &str = "s3-test-secret-key";
/// The credentials as a spawned archiver gets them.
pub(crate) const AWS_ENV: [(&str, &str); 2] = [
    (ENV_AWS_ACCESS_KEY_ID, ACCESS_KEY),
    (ENV_AWS_SECRET_ACCESS_KEY, SECRET_KEY),
];
/// The part size of these tests: S3's minimum, so that a few MiB make several parts.
const PART: u64 = 5 * MIB;

/// A running S3 server and what it saw.
pub(crate) struct S3Server {
    endpoint: String,
    /// CreateMultipartUpload calls so far.
    creates: Arc<AtomicUsize>,
    pub(crate) _root: tempfile::TempDir,
}

struct Hooks {
    root: PathBuf,
    creates: Arc<AtomicUsize>,
}

impl Hooks {
    /// s3s-fs keeps `.upload-{id}.json` in its root while an upload is open.
    fn known(&self, upload_id: &str) -> S3Result<()> {
        if self.root.join(format!(".upload-{upload_id}.json")).exists() {
            Ok(())
        } else {
            Err(s3_error!(NoSuchUpload))
        }
    }
}

#[async_trait::async_trait]
impl S3Access for Hooks {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        match cx.credentials() {
            Some(c) if c.access_key == ACCESS_KEY => Ok(()),
            _ => Err(s3_error!(AccessDenied)),
        }
    }

    async fn create_multipart_upload(
        &self,
        _req: &mut S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<()> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn upload_part(&self, req: &mut S3Request<UploadPartInput>) -> S3Result<()> {
        self.known(&req.input.upload_id)
    }

    async fn complete_multipart_upload(
        &self,
        req: &mut S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<()> {
        self.known(&req.input.upload_id)
    }
}

pub(crate) async fn start_s3() -> S3Server {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(BUCKET)).unwrap();
    let creates = Arc::new(AtomicUsize::new(0));
    let mut builder =
        s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root.path()).unwrap());
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    builder.set_access(Hooks {
        root: root.path().to_owned(),
        creates: Arc::clone(&creates),
    });
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve::accept(listener, service));
    S3Server {
        endpoint,
        creates,
        _root: root,
    }
}

/// An archiver for `sim` that archives into `s3` (database in `state.db` beside the config).
pub(crate) fn s3_archiver(sim: &SimHandle, s3: &S3Server, download_extra: &str) -> Archiver {
    let archiver = Archiver::new(sim, download_extra);
    let path = &archiver.config;
    let text = std::fs::read_to_string(path).unwrap().replace(
        "[storage]\npath = \"archive\"\n",
        &format!(
            "[storage]\nbackend = \"s3\"\n\n[storage.s3]\nbucket = \"{BUCKET}\"\nendpoint = \"{}\"\n\
             allow_http = true\nprefix = \"{PREFIX}\"\npart_size = {PART}\nmax_parts_in_flight = 2\n",
            s3.endpoint
        ),
    );
    assert!(text.contains("[storage.s3]"), "{text}");
    std::fs::write(path, text).unwrap();
    archiver
}

/// The test's credentials, as the environment gives them to the archiver.
fn aws_env(name: &str) -> Option<String> {
    match name {
        ENV_AWS_ACCESS_KEY_ID => Some(ACCESS_KEY.into()),
        ENV_AWS_SECRET_ACCESS_KEY => Some(SECRET_KEY.into()),
        _ => None,
    }
}

/// Loads `config` with the credentials in a (simulated) environment: the test process's
/// own environment stays untouched.
pub(crate) fn load(config: &Path) -> Config {
    Config::parse(&std::fs::read_to_string(config).unwrap(), config, &aws_env).unwrap()
}

pub(crate) async fn backfill_s3(config: &Path) -> BackfillReport {
    backfill_loaded(load(config), full_range(15)).await
}

/// The configured archive, as the archiver opens it.
fn open_archive(config: &Config, store: &Db) -> Arc<dyn Archive> {
    wemeet_archiver::open_archive(
        &config.storage.path,
        config.storage.s3.as_ref(),
        config.download.checkpoint_bytes,
        store.clone(),
    )
    .unwrap()
}

/// Size of the object at `relative`, if there is one.
async fn size_of(s3: &S3Bucket, relative: &str) -> Option<u64> {
    let key = s3.key_of(relative).unwrap();
    s3.head(&key).await.unwrap().map(|o| o.size)
}

async fn sha256_of(storage: &dyn Archive, relative: &str) -> (u64, String) {
    use futures::TryStreamExt;
    let mut stream = storage.read(relative).await.unwrap();
    let (mut size, mut hasher) = (0, Sha256::new());
    while let Some(chunk) = stream.try_next().await.unwrap() {
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (size, hex::encode(hasher.finalize()))
}

/// Asserts that every manifest file is an object of the right size and SHA-256 (read
/// back through the S3 API), with the SHA-256 in its metadata and a `meeting.json` beside
/// it, and that no upload is left in progress.
async fn assert_bucket_matches(config: &Path, sim: &SimHandle) {
    let config = load(config);
    let s3 = S3Bucket::new(config.storage.s3.as_ref().unwrap()).unwrap();
    let store = Db::open(&config.database.path).await.unwrap();
    let storage = open_archive(&config, &store);
    for entry in sim.manifest() {
        let row = assert_archived(&store, &entry).await;
        assert_eq!(size_of(&s3, &row.path).await, Some(entry.record_size));
        assert_eq!(
            sha256_of(storage.as_ref(), &row.path).await,
            (entry.record_size, entry.sha256.clone())
        );
        let key = s3.key_of(&row.path).unwrap();
        assert!(key.as_ref().starts_with(&format!("{PREFIX}/")), "{key}");
        let head = s3.head(&key).await.unwrap().unwrap();
        assert_eq!(
            head.sha256.as_deref(),
            Some(entry.sha256.as_str()),
            "metadata of {key}"
        );
        let meeting_json = format!("{}/meeting.json", row.dir);
        assert!(
            size_of(&s3, &meeting_json).await.is_some(),
            "{meeting_json}"
        );
    }
    assert!(store.uploads_in_progress().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backfill_into_a_bucket_stores_every_file_with_its_sha256() {
    let s3 = start_s3().await;
    // The first three of the simulator's hostile subjects (`../../etc/passwd`, `a/b\c`,
    // `CON`); the fourth, 100 bytes of CJK, makes a key that s3s-fs cannot store (it keeps
    // metadata in one file named after the base64 of the key, past 255 bytes).
    let sim = start_sim(transcoded(3, 15).files(2..=2, MIB, 13 * MIB)).await;
    let archiver = s3_archiver(&sim, &s3, "workers = 2");
    let config = &archiver.config;
    let report = backfill_s3(config).await;
    assert!(report.complete(), "{report:#?}");
    assert_bucket_matches(config, &sim).await;

    let multipart = sim
        .manifest()
        .iter()
        .filter(|e| e.record_size > PART)
        .count();
    assert!(
        multipart > 0 && multipart < sim.manifest().len(),
        "the data should mix both kinds"
    );
    assert_eq!(
        s3.creates.load(Ordering::SeqCst),
        multipart,
        "small files are single PUTs"
    );

    // meeting.json lists each file with its hash.
    let store = archiver.store().await;
    let storage = open_archive(&load(config), &store);
    let row = store.all_files().await.unwrap().remove(0);
    let mut json = Vec::new();
    let mut stream = storage
        .read(&format!("{}/meeting.json", row.dir))
        .await
        .unwrap();
    while let Some(chunk) = futures::TryStreamExt::try_next(&mut stream).await.unwrap() {
        json.extend_from_slice(&chunk);
    }
    let json = String::from_utf8(json).unwrap();
    assert!(json.contains(row.sha256.as_deref().unwrap()), "{json}");

    // The audit trail is in the bucket too, and checks against the database.
    use wemeet_archiver::{verify_trail, write_trail};
    write_trail(&store, storage.as_ref()).await.unwrap();
    let trail = verify_trail(&store, storage.as_ref()).await.unwrap();
    assert!(trail.passed(), "{trail:?}");
    assert_eq!(trail.in_archive, trail.records);
    assert_eq!(trail.records, i64::try_from(sim.manifest().len()).unwrap());

    // A second run lists again and uploads nothing.
    let report = backfill_s3(config).await;
    assert!(report.complete() && report.archived_now == 0, "{report:#?}");
    assert_eq!(s3.creates.load(Ordering::SeqCst), multipart);
}

/// Runs `resume` once the killed backfill's last bytes have settled, checks the bucket
/// then, and returns how many bytes the simulator served for it.
async fn served_while_resuming(
    sim: &SimHandle,
    config: &Path,
    resume: impl Future<Output = ()>,
) -> u64 {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let served_before = sim.stats().bytes_served;
    resume.await;
    assert_bucket_matches(config, sim).await;
    sim.stats().bytes_served - served_before
}

/// One 24 MiB recording (5 parts of 5 MiB) downloaded at 4 MiB/s.
fn one_big_file() -> SimConfig {
    transcoded(1, 15)
        .files(1..=1, 24 * MIB, 24 * MIB)
        .with(|c| c.bandwidth = Some(4 * MIB))
}

/// Starts a backfill of [`one_big_file`] into `s3` with one worker, by the real binary so
/// that it can be killed mid-upload; returns the simulator, its only file, the archiver
/// and the running backfill.
async fn upload_one_big_file(
    s3: &S3Server,
) -> (SimHandle, ManifestEntry, Archiver, tokio::process::Child) {
    let sim = start_sim(one_big_file()).await;
    let entry = sim.manifest().remove(0);
    let archiver = s3_archiver(&sim, s3, "workers = 1");
    let backfill = spawn_backfill(&archiver.config, 15, &AWS_ENV);
    (sim, entry, archiver, backfill)
}

/// Waits until `min_parts` parts of the only file's upload are recorded; returns the
/// resume offset then (the end of the contiguous parts).
async fn wait_for_parts(db: &Path, record_file_id: &str, min_parts: usize) -> u64 {
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || {
            if db.exists() {
                let store = Db::open(db).await.unwrap();
                if store
                    .upload_parts(&record_file_id.into())
                    .await
                    .unwrap()
                    .len()
                    >= min_parts
                {
                    let row = store.file(&record_file_id.into()).await.unwrap().unwrap();
                    return ControlFlow::Break(row.bytes_done as u64);
                }
            }
            ControlFlow::Continue("no upload progress".into())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkilled_upload_resumes_from_the_next_part() {
    let s3 = start_s3().await;
    let (sim, entry, archiver, mut backfill) = upload_one_big_file(&s3).await;
    let resume_at = wait_for_parts(&archiver.db(), &entry.record_file_id, 2).await;
    assert!(
        backfill.try_wait().unwrap().is_none(),
        "finished before the kill; make the file bigger"
    );
    backfill.start_kill().unwrap(); // SIGKILL
    backfill.wait().await.unwrap();
    assert!(
        resume_at >= 2 * PART && resume_at < entry.record_size,
        "{resume_at}"
    );

    let store = archiver.store().await;
    let status = store.status(wemeet_archiver::UnixMs::now()).await.unwrap();
    assert_eq!(status.uploads.len(), 1, "{:?}", status.uploads);
    assert!(status.uploads[0].parts >= 2);
    drop(store);

    let config = &archiver.config;
    let served_again = served_while_resuming(&sim, config, async {
        let status = spawn_backfill(config, 15, &AWS_ENV).wait().await.unwrap();
        let log = config.with_file_name("archiver.log");
        assert!(
            status.success(),
            "{}",
            std::fs::read_to_string(log).unwrap()
        );
    })
    .await;
    assert_eq!(
        s3.creates.load(Ordering::SeqCst),
        1,
        "the upload was continued, not restarted"
    );
    // The second run downloaded only what followed the parts recorded before the kill.
    assert!(
        served_again <= entry.record_size - resume_at + CHUNK,
        "served {served_again} bytes again; resuming at {resume_at} needs {}",
        entry.record_size - resume_at
    );
    assert!(sim.stats().bytes_served - entry.record_size < entry.record_size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_that_vanished_from_the_bucket_starts_the_file_over() {
    let s3 = start_s3().await;
    let (sim, entry, archiver, mut backfill) = upload_one_big_file(&s3).await;
    wait_for_parts(&archiver.db(), &entry.record_file_id, 1).await;
    backfill.start_kill().unwrap(); // SIGKILL
    backfill.wait().await.unwrap();

    // Abort the upload behind the archiver's back, as a lifecycle rule would.
    let config = &archiver.config;
    let store = archiver.store().await;
    let upload = store
        .upload(&entry.record_file_id.as_str().into())
        .await
        .unwrap()
        .unwrap();
    drop(store);
    let bucket = S3Bucket::new(load(config).storage.s3.as_ref().unwrap()).unwrap();
    let key = object_store::path::Path::parse(&upload.object_key).unwrap();
    bucket.abort(&key, &upload.upload_id).await.unwrap();

    let served_again = served_while_resuming(&sim, config, async {
        let report = backfill_s3(config).await;
        assert!(report.complete(), "{report:#?}");
    })
    .await;
    assert_eq!(
        s3.creates.load(Ordering::SeqCst),
        2,
        "a new upload replaced the vanished one"
    );
    assert!(
        served_again >= entry.record_size,
        "the file was downloaded whole again: {served_again}"
    );
    let store = archiver.store().await;
    let row = store
        .file(&entry.record_file_id.as_str().into())
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.attempts >= 1
            && store
                .upload(&entry.record_file_id.as_str().into())
                .await
                .unwrap()
                .is_none(),
        "{row:?}"
    );
}

/// `verify` on a bucket: intact, then with one object changed, one deleted and a stray one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_reads_the_bucket_and_names_each_kind_of_damage() {
    use wemeet_archiver::internals::verify_configured;
    use wemeet_archiver::{VerifyOptions, VerifyStatus as Status};
    let s3 = start_s3().await;
    // Single PUTs and multipart uploads.
    let sim = start_sim(transcoded(3, 15).files(1..=1, MIB, 7 * MIB)).await;
    let archiver = s3_archiver(&sim, &s3, "");
    assert!(backfill_s3(&archiver.config).await.complete());
    let config = load(&archiver.config);
    let store = archiver.store().await;
    let options = VerifyOptions::new(config.storage.timezone);

    let report = verify_configured(&config, &store, &options).await.unwrap();
    assert!(report.passed, "{:#?}", report.files);
    assert_eq!(report.summary.ok as usize, sim.manifest().len());

    // The bucket's objects are files under the server's directory.
    let objects = s3._root.path().join(BUCKET).join(PREFIX);
    let rows = store.all_files().await.unwrap();
    let changed = objects.join(&rows[0].path);
    let mut bytes = std::fs::read(&changed).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&changed, bytes).unwrap();
    std::fs::remove_file(objects.join(&rows[1].path)).unwrap();
    std::fs::write(objects.join(&rows[2].dir).join("stray.mp4"), b"not ours").unwrap();

    let report = verify_configured(&config, &store, &options).await.unwrap();
    assert!(!report.passed);
    let status_of = |path: &str| {
        report
            .files
            .iter()
            .find(|r| r.path == path)
            .map(|r| r.status)
            .unwrap_or_else(|| panic!("{path} not in {:#?}", report.files))
    };
    assert_eq!(status_of(&rows[0].path), Status::HashMismatch);
    assert_eq!(status_of(&rows[1].path), Status::Missing);
    assert_eq!(
        status_of(&format!("{}/stray.mp4", rows[2].dir)),
        Status::Extra
    );
    assert_eq!(status_of(&rows[2].path), Status::Ok);
    assert_eq!(report.summary.problems, 3);
}

/// With artifacts on, a bucket holds them beside their videos under the prefix, each
/// with its SHA-256 (a big audio track goes up in parts).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backfill_into_a_bucket_stores_the_artifacts_under_the_prefix() {
    let s3 = start_s3().await;
    let sim = start_sim(SimConfig {
        meetings: 3,
        days: 15,
        pending_fraction: 0.0,
        files_per_meeting: 1..=1,
        min_file_size: MIB,
        max_file_size: 2 * MIB,
        audio_fraction: 1.0,
        audio_size: Some(PART + MIB),
        transcript_fraction: 1.0,
        late_transcript_fraction: 0.0,
        ..SimConfig::default()
    })
    .await;
    let a = s3_archiver(
        &sim,
        &s3,
        "artifacts = [\"video\", \"audio\", \"transcript\"]",
    );
    let report = backfill_s3(&a.config).await;
    assert!(report.complete(), "{report:#?}");
    assert_bucket_matches(&a.config, &sim).await;

    let store = a.store().await;
    let storage = open_archive(&load(&a.config), &store);
    let bucket = S3Bucket::new(load(&a.config).storage.s3.as_ref().unwrap()).unwrap();
    let rows = store.all_files().await.unwrap();
    let artifacts = sim.artifact_manifest();
    assert_eq!(
        rows.iter().filter(|r| r.parent_file_id.is_some()).count(),
        artifacts.len()
    );
    for e in &artifacts {
        let row = rows
            .iter()
            .find(|r| {
                r.parent_file_id.as_deref() == Some(e.record_file_id.as_str())
                    && r.sha256.as_deref() == Some(e.sha256.as_str())
            })
            .unwrap_or_else(|| panic!("{e:?} not archived: {rows:#?}"));
        assert_eq!(row.status, FileStatus::Archived);
        let key = bucket.key_of(&row.path).unwrap();
        assert!(key.as_ref().starts_with(&format!("{PREFIX}/")), "{key}");
        assert_eq!(
            sha256_of(storage.as_ref(), &row.path).await,
            (e.size, e.sha256.clone())
        );
    }
    assert!(store.uploads_in_progress().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relayout_moves_each_object_in_the_bucket_with_its_metadata() {
    let s3 = start_s3().await;
    // Three meetings: the fourth subject makes a key s3s-fs cannot store (see above).
    let sim = start_sim(transcoded(3, 15).files(2..=2, 16 * KIB, 64 * KIB)).await;
    let a = s3_archiver(&sim, &s3, "");
    assert!(backfill_s3(&a.config).await.complete());
    let old = a.store().await.all_files().await.unwrap();
    let text = std::fs::read_to_string(&a.config).unwrap().replacen(
        "[storage]\nbackend = \"s3\"\n",
        "[storage]\nbackend = \"s3\"\nlayout = \"{userid}/{record_file_id}\"\n",
        1,
    );
    std::fs::write(&a.config, text).unwrap();

    let app = App::open_for_relayout(load(&a.config)).await.unwrap();
    let report = app.relayout(false).await.unwrap();
    drop(app);
    assert_eq!(report.moves.len(), old.len());
    // At the new keys with their sha256 metadata and a meeting.json; nothing at the old.
    assert_bucket_matches(&a.config, &sim).await;
    let bucket = S3Bucket::new(load(&a.config).storage.s3.as_ref().unwrap()).unwrap();
    for row in &old {
        assert_eq!(size_of(&bucket, &row.path).await, None, "{}", row.path);
        let json = format!("{}/meeting.json", row.dir);
        assert_eq!(size_of(&bucket, &json).await, None, "{json}");
    }
    let verify = run_configured(&a.config, &["verify"], &AWS_ENV).await;
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
}
