//! Freeing the cloud: `prune` deletes from the simulator exactly the files whose archived
//! copy it has just re-read intact, refuses the others by name, never runs without
//! `prune.enabled`, survives a kill -9 between a deletion and its record, works on a
//! bucket as on a disk, and runs in the service. The simulator's own deletions are
//! checked first: signed, rate-limited on their own, final.

use crate::common::*;
use crate::human::Size;
use crate::s3::{AWS_ENV, BUCKET, PREFIX, backfill_s3, s3_archiver, start_s3};
use rand::RngExt;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use wemeet_api::{
    ApiError, Credentials, DeleteRecordFile, DeleteRecording, ListRecords, RecordAddresses,
    Request, Secret, decode, sign,
};
use wemeet_archiver::App;
use wemeet_archiver::UnixMs;
use wemeet_archiver::config::Config;
use wemeet_archiver::{Db, FileKind, FileStatus};
use wemeet_sim::{SimConfig, SimHandle};

/// A few small files, all listed in one window and page.
fn small(files_per_meeting: u32) -> SimConfig {
    SimConfig {
        meetings: 3,
        days: 15,
        pending_fraction: 0.0,
        files_per_meeting: files_per_meeting..=files_per_meeting,
        min_file_size: 100_000,
        max_file_size: 300_000,
        ..SimConfig::default()
    }
}

/// `prune` enabled, for every file archived so far.
const ENABLED: &str = "enabled = true\nafter = \"1ms\"";

/// One signed call of `request` to the simulator, its signature computed for
/// `signed_method` (a test may sign for another method than it sends).
async fn send<R: Request>(
    sim: &SimHandle,
    request: &R,
    signed_method: &str,
) -> Result<R::Reply, ApiError> {
    let c = sim.credentials();
    let credentials = Credentials {
        app_id: c.app_id,
        sdk_id: c.sdk_id,
        secret_id: c.secret_id,
        secret_key: Secret::new(c.secret_key),
    };
    let uri = request.path_and_query();
    let now = UnixMs::now().as_secs();
    let nonce = rand::rng().random_range(1..u32::MAX);
    let method = reqwest::Method::from_bytes(R::METHOD.as_str().as_bytes()).unwrap();
    let mut http = reqwest::Client::new().request(method, format!("{}{uri}", sim.base_url()));
    for (name, value) in sign::headers(&credentials, signed_method, &uri, "", now, nonce) {
        http = http.header(name, value);
    }
    let response = http.send().await.expect("the simulator answers");
    let status = response.status().as_u16();
    let trace = response.headers()["X-TC-Trace"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.bytes().await.unwrap();
    decode::<R>(status, &trace, &body)
}

async fn call<R: Request>(sim: &SimHandle, request: &R) -> Result<R::Reply, ApiError> {
    send(sim, request, R::METHOD.as_str()).await
}

fn delete_file(record_file_id: &str) -> DeleteRecordFile {
    DeleteRecordFile {
        record_file_id: record_file_id.into(),
        operator_id: "admin".into(),
    }
}

/// Every file the listing shows now, by meeting: `(meeting_record_id, record_file_id,
/// download_address)`.
async fn listed(sim: &SimHandle) -> Vec<(String, String, Option<String>)> {
    let (start_time, end_time) = full_range(15);
    let page = call(
        sim,
        &ListRecords {
            start_time,
            end_time,
            page: 1,
            operator_id: "admin".into(),
            record_type: 0,
        },
    )
    .await
    .unwrap();
    page.record_meetings
        .into_iter()
        .flat_map(|m| {
            let id = m.meeting_record_id;
            m.record_files.into_iter().map(move |f| {
                let address = f.download_address.map(|a| a.expose().to_string());
                (id.clone(), f.record_file_id, address)
            })
        })
        .collect()
}

async fn addresses_of(sim: &SimHandle, meeting_record_id: &str) -> Result<Vec<String>, ApiError> {
    let page = call(
        sim,
        &RecordAddresses {
            meeting_record_id: meeting_record_id.into(),
            page: 1,
            operator_id: "admin".into(),
        },
    )
    .await?;
    Ok(page
        .record_files
        .into_iter()
        .map(|f| f.record_file_id)
        .collect())
}

#[tokio::test]
async fn the_simulator_deletes_for_good_and_answers_4051_on_a_repeat() {
    let sim = start_sim(SimConfig {
        shared_fraction: 1.0,
        download_allowed_fraction: 1.0,
        ..small(2)
    })
    .await;
    let before = listed(&sim).await;
    let (meeting, victim, address) = before[0].clone();
    let sibling = before
        .iter()
        .find(|(m, f, _)| *m == meeting && *f != victim)
        .unwrap()
        .1
        .clone();

    call(&sim, &delete_file(&victim)).await.unwrap();
    let again = call(&sim, &delete_file(&victim)).await.unwrap_err();
    assert!(again.is_already_deleted(), "{again}");
    assert_eq!(sim.deleted(), std::slice::from_ref(&victim));

    let after = listed(&sim).await;
    assert!(after.iter().all(|(_, f, _)| *f != victim), "{after:?}");
    assert!(
        after.iter().any(|(_, f, _)| *f == sibling),
        "the meeting stays"
    );
    assert_eq!(
        addresses_of(&sim, &meeting).await.unwrap(),
        std::slice::from_ref(&sibling)
    );
    let old_address = reqwest::get(address.unwrap()).await.unwrap();
    assert_eq!(old_address.status(), 404, "the download host forgot it");

    // A whole recording: its files go, and so does the meeting.
    let (other, _, _) = before
        .iter()
        .find(|(m, _, _)| *m != meeting)
        .unwrap()
        .clone();
    let whole = DeleteRecording {
        meeting_record_id: other.clone(),
        operator_id: "admin".into(),
        meeting_id: None,
    };
    call(&sim, &whole).await.unwrap();
    assert!(call(&sim, &whole).await.unwrap_err().is_already_deleted());
    assert!(listed(&sim).await.iter().all(|(m, _, _)| *m != other));
    let gone = addresses_of(&sim, &other).await.unwrap_err();
    assert!(gone.to_string().contains("7001"), "{gone}");
    assert_eq!(sim.deleted().len(), 3);

    // The signature covers the method: a GET's does not authorise a DELETE.
    let forged = send(&sim, &delete_file(&sibling), "GET").await.unwrap_err();
    assert!(forged.to_string().contains("200003"), "{forged}");
    let unknown = call(&sim, &delete_file("no-such-file")).await.unwrap_err();
    assert!(unknown.to_string().contains("7003"), "{unknown}");

    let stats = sim.stats();
    assert_eq!(
        (stats.delete_calls, stats.files_deleted),
        (6, 3),
        "{stats:#?}"
    );
    assert_eq!(stats.delete_errors_by_code.get(&4051), Some(&2));
}

#[tokio::test]
async fn the_simulators_deletions_are_rate_limited_apart_from_the_listing() {
    let sim = start_sim(SimConfig {
        deletes_rate_limit_per_minute: 2,
        ..small(1)
    })
    .await;
    let ids: Vec<String> = sim
        .manifest()
        .into_iter()
        .map(|e| e.record_file_id)
        .collect();
    call(&sim, &delete_file(&ids[0])).await.unwrap();
    call(&sim, &delete_file(&ids[1])).await.unwrap();
    let third = call(&sim, &delete_file(&ids[2])).await.unwrap_err();
    assert_eq!(third.class(), wemeet_api::ErrorClass::Retry, "{third}");
    assert!(third.to_string().contains("rate limited"), "{third}");
    assert_eq!(listed(&sim).await.len(), 1, "the listing has its own limit");
    let stats = sim.stats();
    assert_eq!((stats.delete_rate_limited, stats.rate_limited), (1, 0));
    assert_eq!(sim.deleted().len(), 2);
}

/// `wemeet-archiver --config CONFIG prune ARGS`, with `envs`.
async fn prune(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut all = vec!["--config", config.to_str().unwrap(), "prune"];
    all.extend_from_slice(args);
    run_binary(&all, envs).await
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", explain(out)))
}

/// Flips one byte in the middle of `path`: same size, different content.
fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

/// The ids of the files the database records as deleted in the cloud.
async fn recorded_deleted(store: &Db) -> BTreeSet<String> {
    store
        .all_files()
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.deleted_in_cloud_at.is_some())
        .map(|f| f.record_file_id.to_string())
        .collect()
}

fn set(ids: Vec<String>) -> BTreeSet<String> {
    ids.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prune_deletes_exactly_the_intact_copies_and_refuses_a_corrupted_one_by_name() {
    let sim = start_sim(small(2)).await;
    let archiver = Archiver::new(&sim, "");
    let config = archiver.config.clone();
    add_prune_table(&config, ENABLED);
    assert!(backfill(&config, full_range(15)).await.complete());
    let store = archiver.store().await;
    let rows = store.all_files().await.unwrap();
    let victim = rows[0].clone();
    corrupt(&archiver.archive().join(&victim.path));
    let intact: BTreeSet<String> = rows[1..]
        .iter()
        .map(|r| r.record_file_id.to_string())
        .collect();

    // The dry run checks the same, deletes nothing, and says what would go.
    let out = prune(&config, &["--dry-run"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for row in &rows[1..] {
        let line = format!(
            "would delete     {}  {}, archived ",
            row.path,
            Size(row.record_size)
        );
        assert!(text.contains(&line), "{line:?} in {text}");
    }
    let refusal = format!("refused          {}: hash_mismatch: ", victim.path);
    assert!(text.contains(&refusal), "{text}");
    assert!(text.contains("dry run: nothing was deleted"), "{text}");
    assert!(sim.deleted().is_empty());
    assert_eq!(sim.stats().delete_calls, 0);

    // The real run deletes exactly the intact ones, and names the one it kept.
    let out = prune(&config, &["--format", "json"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let report = json_of(&out);
    assert_eq!(report["schema"], "wemeet-archiver.prune/1");
    assert_eq!(
        report["summary"]["deleted"].as_u64(),
        Some(intact.len() as u64)
    );
    assert_eq!(report["summary"]["refused"].as_u64(), Some(1));
    let refused: Vec<&serde_json::Value> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["outcome"] == "refused")
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["path"], victim.path.as_str());
    assert_eq!(refused[0]["check"], "hash_mismatch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERROR") && stderr.contains(&victim.path),
        "logged at error: {stderr}"
    );
    assert_eq!(
        set(sim.deleted()),
        intact,
        "the simulator lost only intact files"
    );
    assert_eq!(recorded_deleted(&store).await, intact);

    // A second run does nothing new: the corrupted copy is refused again, nothing deleted.
    let calls = sim.stats().delete_calls;
    let out = prune(&config, &["--format", "json"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let again = json_of(&out);
    assert_eq!(again["summary"]["candidates"].as_u64(), Some(1));
    assert_eq!(again["summary"]["deleted"].as_u64(), Some(0));
    assert_eq!(sim.stats().delete_calls, calls);

    // The archive keeps them: listed again, nothing is queued, downloaded or marked missing.
    let served = sim.stats().bytes_served;
    let relisted = backfill(&config, full_range(15)).await;
    assert!(
        relisted.complete() && relisted.archived_now == 0,
        "{relisted:#?}"
    );
    assert_eq!(sim.stats().bytes_served, served);
    for f in store.all_files().await.unwrap() {
        assert_eq!(f.status, FileStatus::Archived, "{f:?}");
    }
    assert_eq!(recorded_deleted(&store).await, intact);

    // `verify` still checks them; status counts them; meeting.json says when.
    let out = run_configured(&config, &["verify", "--format", "json"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let verified = json_of(&out);
    assert_eq!(
        verified["summary"]["ok"].as_u64(),
        Some(intact.len() as u64)
    );
    assert_eq!(verified["summary"]["hash_mismatch"].as_u64(), Some(1));
    let out = run_configured(&config, &["status", "--json"], &[]).await;
    let status = json_of(&out);
    let freed = i64::try_from(rows[1..].iter().map(|r| r.record_size).sum::<u64>()).unwrap();
    assert_eq!(
        status["files_deleted_in_cloud"].as_u64(),
        Some(intact.len() as u64)
    );
    assert_eq!(status["bytes_freed"].as_i64(), Some(freed));
    let out = run_configured(&config, &["status"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = format!(
        "deleted in the cloud: {} archived file(s), {} freed",
        intact.len(),
        Size::of(freed)
    );
    assert!(text.contains(&line), "{text}");
    let deleted = store.file(&rows[1].record_file_id).await.unwrap().unwrap();
    let meeting_json =
        std::fs::read_to_string(archiver.archive().join(&deleted.dir).join("meeting.json"))
            .unwrap();
    let meeting_json: serde_json::Value = serde_json::from_str(&meeting_json).unwrap();
    let entry = meeting_json["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["files"].as_array().unwrap())
        .find(|f| f["record_file_id"] == deleted.record_file_id.as_str())
        .unwrap();
    assert_eq!(
        entry["deleted_in_cloud_at"].as_i64(),
        deleted.deleted_in_cloud_at.map(UnixMs::as_millis)
    );

    // The metrics count both: every refusal (three runs) and the files freed.
    let text = metrics_of(&store).await;
    let deleted_line = format!("wemeet_cloud_deleted_total {}", intact.len());
    assert!(text.contains(&deleted_line), "{text}");
    assert!(text.contains("wemeet_prune_refused_total 3"), "{text}");
}

/// With audio tracks and transcripts archived, a recording's deletion (which takes them
/// from the cloud too) waits for them and needs them intact: a damaged audio track keeps
/// its video in the cloud, named in the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_video_is_deleted_only_with_its_audio_and_transcripts_intact() {
    let sim = start_sim(small(1).with(|c| {
        c.audio_fraction = 1.0;
        c.transcript_fraction = 1.0;
        c.late_transcript_fraction = 0.0;
    }))
    .await;
    let archiver = Archiver::new(&sim, "artifacts = [\"video\", \"audio\", \"transcript\"]");
    let config = archiver.config.clone();
    add_prune_table(&config, ENABLED);
    assert!(backfill(&config, full_range(15)).await.complete());
    let store = archiver.store().await;
    let rows = store.all_files().await.unwrap();
    let videos: Vec<_> = rows.iter().filter(|r| r.kind == FileKind::Video).collect();
    assert_eq!(videos.len(), 3);
    let of = |video: &str| -> Vec<_> {
        rows.iter()
            .filter(|r| r.parent_file_id.as_deref() == Some(video))
            .collect()
    };
    let victim = videos[0];
    let audio = of(&victim.record_file_id)
        .into_iter()
        .find(|r| r.kind == FileKind::Audio)
        .unwrap();
    corrupt(&archiver.archive().join(&audio.path));

    let out = prune(&config, &["--format", "json"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let report = json_of(&out);
    assert_eq!(
        report["summary"]["candidates"], 3,
        "videos only: {report:#}"
    );
    assert_eq!(report["summary"]["deleted"], 2);
    let refused = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["outcome"] == "refused")
        .unwrap();
    assert_eq!(refused["record_file_id"], victim.record_file_id.as_str());
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("audio {}", audio.path)),
        "{detail}"
    );

    let gone: BTreeSet<String> = videos[1..]
        .iter()
        .map(|v| v.record_file_id.to_string())
        .collect();
    assert_eq!(set(sim.deleted()), gone);
    let freed: u64 = videos[1..]
        .iter()
        .flat_map(|v| std::iter::once(*v).chain(of(&v.record_file_id)))
        .map(|r| r.record_size)
        .sum();
    let freed = i64::try_from(freed).unwrap();
    assert_eq!(report["summary"]["bytes_freed"].as_i64(), Some(freed));
    for row in store.all_files().await.unwrap() {
        let parent = row.parent_file_id.as_ref().unwrap_or(&row.record_file_id);
        assert_eq!(
            row.deleted_in_cloud_at.is_some(),
            gone.contains(parent.as_str()),
            "{row:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prune_without_enabled_exits_2_naming_the_key_and_deletes_nothing() {
    let sim = start_sim(small(1)).await;
    let archiver = Archiver::new(&sim, "");
    let config = archiver.config.clone();
    add_prune_table(&config, "after = \"1ms\"");
    assert!(backfill(&config, full_range(15)).await.complete());

    let out = prune(&config, &[], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("prune.enabled"), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", explain(&out));

    // Looking is not deleting: a dry run needs no opt-in.
    let out = prune(&config, &["--dry-run"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("would delete ").count(),
        sim.manifest().len(),
        "{text}"
    );
    assert!(sim.deleted().is_empty());
    assert_eq!(sim.stats().delete_calls, 0);

    // Enabled, but the operator may not delete: exit 2, naming what to fix.
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("operator_id = \"admin\"", "operator_id = \"intern\"");
    std::fs::write(
        &config,
        text.replace("[prune]\n", "[prune]\nenabled = true\n"),
    )
    .unwrap();
    let out = prune(&config, &[], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("录制管理") && stderr.contains("api.operator_id"),
        "{stderr}"
    );
    assert!(sim.deleted().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deletion_that_meets_a_passing_server_error_is_retried() {
    let sim = start_sim(SimConfig {
        deletes_5xx_first: 1,
        ..small(1)
    })
    .await;
    let archiver = Archiver::new(&sim, "");
    let config = archiver.config.clone();
    add_prune_table(&config, ENABLED);
    assert!(backfill(&config, full_range(15)).await.complete());
    let app = App::open(Config::load(&config).unwrap()).await.unwrap();
    let report = app
        .prune(wemeet_archiver::PruneMode::Delete, CancellationToken::new())
        .await
        .unwrap();
    assert!(report.complete(), "{report:#?}");
    assert_eq!(report.summary.deleted as usize, sim.manifest().len());
    assert_eq!(sim.deleted().len(), sim.manifest().len());
    assert_eq!(sim.stats().delete_errors_by_code.get(&41), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_9_between_a_deletion_and_its_record_loses_no_record() {
    // The second deletion is applied at once and answered a minute later: the kill lands
    // after the cloud forgot the file and before the archiver recorded it.
    let sim = start_sim(SimConfig {
        stall_nth_delete: 2,
        stall: Duration::from_secs(60),
        ..small(2)
    })
    .await;
    let archiver = Archiver::new(&sim, "");
    let config = archiver.config.clone();
    add_prune_table(&config, ENABLED);
    assert!(backfill(&config, full_range(15)).await.complete());
    let every = set(sim
        .manifest()
        .into_iter()
        .map(|e| e.record_file_id)
        .collect());

    let mut child = spawn_archiver(&config, &["prune"], &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.deleted().len() < 2 {
        assert!(Instant::now() < deadline, "the second deletion never came");
        assert!(
            child.try_wait().unwrap().is_none(),
            "prune ended before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let in_the_cloud_gone = set(sim.deleted());
    let store = archiver.store().await;
    let recorded = recorded_deleted(&store).await;
    assert_eq!(
        recorded.len(),
        1,
        "the first deletion was recorded before the second was sent"
    );
    assert!(recorded.is_subset(&in_the_cloud_gone));

    let out = prune(&config, &["--format", "json"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let report = json_of(&out);
    assert_eq!(
        report["summary"]["already_deleted"].as_u64(),
        Some(1),
        "{report:#}"
    );
    assert_eq!(set(sim.deleted()), every);
    assert_eq!(
        recorded_deleted(&store).await,
        every,
        "no deletion went unrecorded"
    );
    assert_eq!(sim.stats().delete_errors_by_code.get(&4051), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prune_on_a_bucket_deletes_the_intact_objects_and_refuses_a_changed_one() {
    let s3 = start_s3().await;
    let sim = start_sim(small(2)).await;
    let archiver = s3_archiver(&sim, &s3, "");
    let config = archiver.config.clone();
    add_prune_table(&config, ENABLED);
    assert!(backfill_s3(&config).await.complete());
    let store = archiver.store().await;
    let rows = store.all_files().await.unwrap();
    // The bucket's objects are files under the server's directory.
    let objects = s3._root.path().join(BUCKET).join(PREFIX);
    corrupt(&objects.join(&rows[0].path));
    let intact: BTreeSet<String> = rows[1..]
        .iter()
        .map(|r| r.record_file_id.to_string())
        .collect();

    let out = prune(&config, &["--dry-run", "--format", "json"], &AWS_ENV).await;
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let dry = json_of(&out);
    assert_eq!(
        dry["summary"]["would_delete"].as_u64(),
        Some(intact.len() as u64)
    );
    assert!(
        dry["archive"].as_str().unwrap().starts_with("s3://"),
        "{dry:#}"
    );
    assert!(sim.deleted().is_empty());

    let out = prune(&config, &[], &AWS_ENV).await;
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("refused          {}: hash_mismatch", rows[0].path)),
        "{text}"
    );
    assert_eq!(set(sim.deleted()), intact);
    assert_eq!(recorded_deleted(&store).await, intact);
    // The deleted files' objects stay in the bucket, with their meeting.json.
    for row in &rows[1..] {
        assert!(objects.join(&row.path).exists(), "{}", row.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_prunes_once_its_transfers_are_done() {
    // The service's live window is on the real clock.
    let sim = wemeet_sim::start(
        SimConfig {
            days: 1,
            ..small(2)
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let archiver = Archiver::new(&sim, "\n[poll]\ninterval = \"1h\"\nlookback = \"2d\"");
    let config = archiver.config.clone();
    add_prune_table(&config, ENABLED);
    let app = App::open(Config::load(&config).unwrap()).await.unwrap();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let daemon = tokio::spawn(async move { app.run(None, stop).await.unwrap() });

    let every = set(sim
        .manifest()
        .into_iter()
        .map(|e| e.record_file_id)
        .collect());
    let deadline = Instant::now() + Duration::from_secs(60);
    while set(sim.deleted()) != every {
        assert!(
            Instant::now() < deadline,
            "deleted {:?} of {every:?}",
            sim.deleted()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let store = archiver.store().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while recorded_deleted(&store).await != every {
        assert!(Instant::now() < deadline, "the deletions were not recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
    daemon.await.unwrap();

    // Transfers first: nothing was deleted before the last file was archived.
    let rows = store.all_files().await.unwrap();
    let last_archived = rows.iter().filter_map(|f| f.archived_at).max().unwrap();
    let first_deleted = rows
        .iter()
        .filter_map(|f| f.deleted_in_cloud_at)
        .min()
        .unwrap();
    assert!(first_deleted >= last_archived, "{rows:#?}");
    let calls = store.api_call_log(UnixMs(0)).await.unwrap();
    let deletes: Vec<_> = calls.iter().filter(|c| c.endpoint == "delete").collect();
    assert_eq!(deletes.len(), every.len(), "{calls:#?}");
    assert!(
        deletes
            .iter()
            .all(|c| c.purpose.as_deref() == Some("prune"))
    );
    let facts = store.daemon_facts().await.unwrap();
    assert!(facts.prune_finished_at.is_some(), "{facts:?}");
}
