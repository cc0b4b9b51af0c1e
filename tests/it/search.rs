//! `search` and `export` against an archive of the simulator: every selector returns
//! exactly the recordings the simulator's own dataset says, words said are found in the
//! transcripts' text, and an export is checked by the real `sha256sum -c`.

use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use wemeet_archiver::Db;
use wemeet_sim::{ManifestEntry, SimConfig, SimHandle, TranscriptText};

pub(crate) const VIDEO_AND_TRANSCRIPTS: &str = "artifacts = [\"video\", \"transcript\"]";

/// Small files, all transcoded, most with transcripts that are there at once.
pub(crate) fn speaking() -> SimConfig {
    SimConfig {
        pending_fraction: 0.0,
        files_per_meeting: 1..=2,
        min_file_size: 16 * KIB,
        max_file_size: 64 * KIB,
        audio_fraction: 0.0,
        transcript_fraction: 0.9,
        late_transcript_fraction: 0.0,
        ..transcoded(30, 30)
    }
}

/// The recordings of the simulator's dataset, by meeting_record_id.
pub(crate) struct Dataset {
    pub meetings: BTreeMap<String, ManifestEntry>,
    pub transcripts: Vec<TranscriptText>,
    /// video record_file_id -> meeting_record_id
    pub meeting_of: BTreeMap<String, String>,
}

impl Dataset {
    pub fn of(sim: &SimHandle) -> Self {
        let manifest = sim.manifest();
        let meeting_of = manifest
            .iter()
            .map(|e| (e.record_file_id.clone(), e.meeting_record_id.clone()))
            .collect();
        let meetings = manifest
            .into_iter()
            .map(|e| (e.meeting_record_id.clone(), e))
            .collect();
        Self {
            meetings,
            transcripts: sim.transcripts(),
            meeting_of,
        }
    }

    pub fn select(&self, keep: impl Fn(&ManifestEntry) -> bool) -> BTreeSet<String> {
        self.meetings
            .values()
            .filter(|m| keep(m))
            .map(|m| m.meeting_record_id.clone())
            .collect()
    }

    /// The recordings whose transcripts say `word`, without regard to case.
    pub fn saying(&self, word: &str) -> BTreeSet<String> {
        let word = word.to_lowercase();
        self.transcripts
            .iter()
            .filter(|t| t.text.to_lowercase().contains(&word))
            .map(|t| self.meeting_of[&t.record_file_id].clone())
            .collect()
    }
}

/// Runs `search --format json` with `args`; returns its exit code, the ids found, and
/// the whole answer.
pub(crate) async fn search(
    config: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (i32, BTreeSet<String>, Value) {
    let all = [&["search", "--format", "json"], args].concat();
    let out = run_configured(config, &all, envs).await;
    let code = out.status.code().unwrap();
    if code == 2 {
        return (code, BTreeSet::new(), Value::Null);
    }
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let ids = json["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meeting_record_id"].as_str().unwrap().to_string())
        .collect();
    (code, ids, json)
}

async fn archived(config: SimConfig) -> (SimHandle, Archiver, Dataset) {
    let sim = start_sim(config).await;
    let a = Archiver::new(&sim, VIDEO_AND_TRANSCRIPTS);
    a.backfill_all(30).await;
    let data = Dataset::of(&sim);
    (sim, a, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_selector_alone_and_combined_finds_exactly_the_recordings_of_the_dataset() {
    let (_sim, a, data) = archived(speaking()).await;
    let config = &a.config;
    let user = data.meetings.values().nth(3).unwrap().userid.clone();
    // The recurring meeting: two recordings share a code.
    let mut codes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in data.meetings.values() {
        *codes.entry(&m.meeting_code).or_default() += 1;
    }
    let code = codes.iter().max_by_key(|(_, n)| **n).unwrap().0.to_string();
    let mut starts: Vec<i64> = data.meetings.values().map(|m| m.media_start_time).collect();
    starts.sort_unstable();
    let (since, until) = (starts[5] / 1000, starts[20] / 1000);
    let (since_arg, until_arg) = (rfc3339(since), rfc3339(until));
    let in_range = |m: &ManifestEntry| {
        m.media_start_time >= since * 1000 && m.media_start_time <= until * 1000 + 999
    };
    let subject = regex::Regex::new("(?i)^(weekly|产品)").unwrap();

    let cases: Vec<(Vec<&str>, BTreeSet<String>)> =
        vec![
            (vec![], data.select(|_| true)),
            (vec!["--user", &user], data.select(|m| m.userid == user)),
            (
                vec!["--subject", "(?i)^(weekly|产品)"],
                data.select(|m| subject.is_match(&m.subject)),
            ),
            (
                vec!["--since", &since_arg],
                data.select(|m| m.media_start_time >= since * 1000),
            ),
            (
                vec!["--until", &until_arg],
                data.select(|m| m.media_start_time <= until * 1000 + 999),
            ),
            (
                vec!["--since", &since_arg, "--until", &until_arg],
                data.select(in_range),
            ),
            (
                vec!["--code", &code],
                data.select(|m| m.meeting_code == code),
            ),
            (vec!["--text", "项目进度"], data.saying("项目进度")),
            (
                vec![
                    "--user", &user, "--since", &since_arg, "--until", &until_arg,
                ],
                data.select(|m| m.userid == user && in_range(m)),
            ),
            (
                vec![
                    "--text",
                    "项目进度",
                    "--subject",
                    "(?i)^(weekly|产品)",
                    "--since",
                    &since_arg,
                ],
                data.saying("项目进度")
                    .intersection(&data.select(|m| {
                        subject.is_match(&m.subject) && m.media_start_time >= since * 1000
                    }))
                    .cloned()
                    .collect(),
            ),
        ];
    for (args, expected) in cases {
        assert!(!expected.is_empty(), "the dataset has nothing for {args:?}");
        let (code, found, _) = search(config, &args, &[]).await;
        assert_eq!(found, expected, "{args:?}");
        assert_eq!(code, 0, "{args:?}");
    }

    // --limit keeps the earliest.
    let (_, found, json) = search(config, &["--limit", "3"], &[]).await;
    assert_eq!(found.len(), 3);
    let firsts: BTreeSet<String> = {
        let mut all: Vec<&ManifestEntry> = data.meetings.values().collect();
        all.sort_by_key(|m| (m.media_start_time, m.meeting_record_id.clone()));
        all.iter()
            .take(3)
            .map(|m| m.meeting_record_id.clone())
            .collect()
    };
    assert_eq!(found, firsts);
    // Each result has its files, with kind, size, status and where.
    let files = &json["recordings"][0]["files"];
    assert!(
        files
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "video")
    );
    for f in files.as_array().unwrap() {
        assert!(
            f["size"].is_i64() && f["status"].is_string() && f["location"].is_string(),
            "{f}"
        );
    }

    // None found: exit 1; bad usage: exit 2.
    let (code, found, _) = search(config, &["--user", "nobody-at-all"], &[]).await;
    assert_eq!((code, found.len()), (1, 0));
    for bad in [
        vec!["--subject", "("],
        vec!["--since", "2026-05-01", "--until", "2026-04-01"],
        vec!["--since", "yesterday"],
        vec!["--text", "  "],
        vec!["--limit", "0"],
        vec!["--urls", "1h"],
    ] {
        assert_eq!(search(config, &bad, &[]).await.0, 2, "{bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn text_finds_two_characters_a_phrase_and_english_in_another_case_and_nothing_unsaid() {
    let (_sim, a, data) = archived(speaking()).await;
    let config = &a.config;
    for (word, in_data) in [
        ("预算", "预算"),
        ("面试", "面试"),
        ("季度预算", "季度预算"),
        ("SUPPLIER", "Supplier"),
        ("kubernetes", "Kubernetes"),
    ] {
        let expected = data.saying(in_data);
        assert!(
            !expected.is_empty() && expected.len() < data.meetings.len(),
            "{word}: the dataset must say it in some recordings, not all"
        );
        let (code, found, json) = search(config, &["--text", word], &[]).await;
        assert_eq!((code, &found), (0, &expected), "{word}");
        // Every recording shows the lines that say it, with the offsets of the word.
        for r in json["recordings"].as_array().unwrap() {
            let lines: Vec<&Value> = r["transcript_lines"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|t| t["lines"].as_array().unwrap())
                .collect();
            assert!(!lines.is_empty(), "{word}: {r}");
            for l in lines {
                let line = l["line"].as_str().unwrap();
                for o in l["offsets"].as_array().unwrap() {
                    let (s, e) = (
                        o[0].as_u64().unwrap() as usize,
                        o[1].as_u64().unwrap() as usize,
                    );
                    assert_eq!(line[s..e].to_lowercase(), word.to_lowercase(), "{line}");
                }
            }
        }
    }
    // Two words: both must be said.
    let both: BTreeSet<String> = data
        .saying("预算")
        .intersection(&data.saying("supplier"))
        .cloned()
        .collect();
    let (_, found, _) = search(config, &["--text", "预算 supplier"], &[]).await;
    assert_eq!(found, both);
    // Words no transcript holds.
    for unsaid in ["量子", "量子纠缠", "zebra"] {
        assert!(data.saying(unsaid).is_empty());
        let (code, found, _) = search(config, &["--text", unsaid], &[]).await;
        assert_eq!((code, found.len()), (1, 0), "{unsaid}");
    }
    // The table marks the words.
    let out = run_configured(config, &["search", "--text", "面试"], &[]).await;
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("**面试**"), "{table}");
    assert!(table.contains(&format!("{} recording(s)", data.saying("面试").len())));

    // The index is filled again from the archive (what `reindex` does) after it lost rows.
    let store = Db::open(&a.db()).await.unwrap();
    let all: Vec<wemeet_archiver::RecordFileId> = store
        .all_files()
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.path.ends_with(".txt"))
        .map(|f| f.record_file_id)
        .collect();
    let ids: Vec<&_> = all.iter().collect();
    store.forget_transcripts(&ids).await.unwrap();
    assert_eq!(search(config, &["--text", "面试"], &[]).await.0, 1);
    let archive =
        wemeet_archiver::open_archive(&a.archive(), None, 1 << 24, store.clone()).unwrap();
    let report = wemeet_archiver::internals::fill_index(&store, archive.as_ref())
        .await
        .unwrap();
    assert_eq!(report.indexed as usize, data.transcripts.len());
    assert!(report.failed.is_empty());
    let (_, found, _) = search(config, &["--text", "面试"], &[]).await;
    assert_eq!(found, data.saying("面试"));
}

/// `sha256sum -c SHA256SUMS` in `dir`: its exit status and output.
pub(crate) fn sha256sum_check(dir: &Path) -> (bool, String) {
    let out = std::process::Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .expect("sha256sum runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The paths `SHA256SUMS` in `dir` lists.
pub(crate) fn listed(dir: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap()
        .lines()
        .map(|l| l.split_once("  ").unwrap().1.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_export_is_checked_by_sha256sum_and_refuses_a_damaged_copy_by_name() {
    let (_sim, a, data) = archived(speaking()).await;
    let config = &a.config;
    let user = data.meetings.values().next().unwrap().userid.clone();
    let expected = data.select(|m| m.userid == user);
    let store = a.store().await;
    let files: Vec<_> = store
        .all_files()
        .await
        .unwrap()
        .into_iter()
        .filter(|f| expected.contains(f.meeting_record_id.as_str()) && f.sha256.is_some())
        .collect();
    let to = a.dir.path().join("handover");
    let to_arg = to.to_str().unwrap();

    let out = run_configured(config, &["export", "--user", &user, "--to", to_arg], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let (ok, said) = sha256sum_check(&to);
    assert!(ok, "{said}");
    let mut want: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
    want.extend(files.iter().map(|f| format!("{}/meeting.json", f.dir)));
    assert_eq!(listed(&to), want);
    for f in &files {
        assert_eq!(sha256_file(&to.join(&f.path)), f.sha256.clone().unwrap());
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(to.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["schema"], "wemeet-archiver.export/1");
    assert_eq!(manifest["query"]["user"], user.as_str());
    assert_eq!(manifest["recordings"], expected.len());
    // The trail's last record when the bundle was made: what `audit verify` checks up to.
    let last = &manifest["last_audit_record"];
    assert!(last["seq"].as_i64().is_some_and(|seq| seq > 0), "{last}");
    assert_eq!(last["hash"].as_str().map(str::len), Some(64), "{last}");
    let in_manifest = manifest["files"].as_array().unwrap();
    assert_eq!(in_manifest.len(), want.len());
    assert!(
        in_manifest
            .iter()
            .all(|f| f["outcome"] == "exported" && f["sha256"].is_string())
    );
    // Nothing else in the folder: no temporary file left.
    let mut everything: BTreeSet<String> = files_under(&to)
        .into_iter()
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    assert!(everything.remove("SHA256SUMS") && everything.remove("manifest.json"));
    assert_eq!(everything, want);

    // A non-empty folder is refused; --resume copies nothing already there intact.
    let again = run_configured(config, &["export", "--user", &user, "--to", to_arg], &[]).await;
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    let resumed = run_configured(
        config,
        &["export", "--user", &user, "--to", to_arg, "--resume"],
        &[],
    )
    .await;
    assert_eq!(resumed.status.code(), Some(0));
    let summary = String::from_utf8(resumed.stdout).unwrap();
    assert!(
        summary.contains(&format!("{} already there intact", files.len())),
        "{summary}"
    );
    assert!(sha256sum_check(&to).0);

    // A copy damaged in the archive (same size, other bytes) is refused and named.
    let victim = &files[0];
    let on_disk = a.archive().join(&victim.path);
    let mut bytes = std::fs::read(&on_disk).unwrap();
    bytes[0] ^= 0xFF;
    std::fs::write(&on_disk, bytes).unwrap();
    let to2 = a.dir.path().join("handover2");
    let out = run_configured(
        config,
        &["export", "--user", &user, "--to", to2.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.contains(&format!("refused  {}", victim.path)),
        "{said}"
    );
    assert!(!to2.join(&victim.path).exists());
    assert!(!listed(&to2).contains(&victim.path));
    let (ok, check) = sha256sum_check(&to2);
    assert!(ok, "{check}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucket_is_searched_with_presigned_links_and_exported_intact() {
    use crate::s3::{AWS_ENV, backfill_s3, s3_archiver, start_s3};
    let s3 = start_s3().await;
    let sim = start_sim(SimConfig {
        days: 15,
        ..speaking()
    })
    .await;
    let a = s3_archiver(&sim, &s3, VIDEO_AND_TRANSCRIPTS);
    // Without the subject in the keys: s3s-fs cannot store the key of the dataset's
    // 100-byte CJK subject (see s3.rs).
    let text = std::fs::read_to_string(&a.config).unwrap().replacen(
        "backend = \"s3\"\n",
        "backend = \"s3\"\nlayout = \"{start:%Y}/{meeting_code}/{record_file_id}\"\n",
        1,
    );
    std::fs::write(&a.config, text).unwrap();
    let report = backfill_s3(&a.config).await;
    assert!(report.complete(), "{report:#?}");
    let data = Dataset::of(&sim);
    let word = "预算";
    let expected = data.saying(word);
    assert!(!expected.is_empty());

    let (code, found, json) = search(&a.config, &["--text", word, "--urls", "10m"], &AWS_ENV).await;
    assert_eq!((code, &found), (0, &expected));
    // Each archived file has a link that GETs its bytes without credentials.
    let http = reqwest::Client::new();
    for r in json["recordings"].as_array().unwrap() {
        for f in r["files"].as_array().unwrap() {
            if f["status"] != "archived" {
                continue;
            }
            assert!(
                f["location"]
                    .as_str()
                    .unwrap()
                    .starts_with(crate::s3::PREFIX)
            );
            let url = f["url"].as_str().unwrap_or_else(|| panic!("no url: {f}"));
            assert!(url.contains("X-Amz-Expires=600"), "{url}");
            let body = http.get(url).send().await.unwrap();
            assert!(body.status().is_success(), "{url}: {}", body.status());
            let bytes = body.bytes().await.unwrap();
            use sha2::Digest as _;
            assert_eq!(
                hex::encode(sha2::Sha256::digest(&bytes)),
                f["sha256"].as_str().unwrap()
            );
        }
    }

    let to = a.dir.path().join("from-bucket");
    let out = run_configured(
        &a.config,
        &["export", "--text", word, "--to", to.to_str().unwrap()],
        &AWS_ENV,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let (ok, said) = sha256sum_check(&to);
    assert!(ok, "{said}");
    let store = a.store().await;
    let archived: BTreeSet<String> = store
        .all_files()
        .await
        .unwrap()
        .into_iter()
        .filter(|f| expected.contains(f.meeting_record_id.as_str()) && f.sha256.is_some())
        .flat_map(|f| [f.path.clone(), format!("{}/meeting.json", f.dir)])
        .collect();
    assert_eq!(listed(&to), archived);
}

/// The figures of `BENCHMARKS.md`'s search group: search latency (medians) on 100,000
/// recordings of which 30,000 have a `txt` transcript, for a selector query, a
/// three-character and a two-character `--text`; the index's size per MB of transcript;
/// and what indexing costs an archived transcript. The database is built through the
/// library's own state functions (what a backfill records), not by a backfill: 100,000
/// recordings through the simulator's 10 listing calls a minute would take hours. Run by
/// `bench/run.sh` as `cargo test --release --test it search::bench -- --ignored --nocapture`
/// (`TMPDIR` on a tmpfs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it on purpose"]
#[allow(clippy::print_stderr)] // its figures are its output
async fn bench_search_latency_index_size_and_cost_per_transcript() {
    use sha2::Digest as _;
    use std::time::Instant;
    use wemeet_archiver::FileKind;
    use wemeet_archiver::UnixMs;
    use wemeet_archiver::internals::select;
    use wemeet_archiver::internals::{ArtifactUpsert, FileUpsert, MeetingUpsert};
    use wemeet_archiver::{Query, search as run_search};
    // `SEARCH_BENCH_RECORDINGS` makes a smoke run of it smaller.
    let recordings: usize = std::env::var("SEARCH_BENCH_RECORDINGS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    const EVERY_NTH_SPEAKS: usize = 10; // 3 of every 10 recordings have a transcript
    const USERS: usize = 200;
    const PAGE: usize = 500;
    const SPAN_MS: i64 = 2 * 365 * 86_400_000; // two years of recordings
    const REPS: usize = 7;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let root = dir.path().join("archive");
    let store = Db::open(&db).await.unwrap();
    let start = |i: usize| UnixMs(1_730_000_000_000 + (i as i64) * (SPAN_MS / recordings as i64));
    let has_transcript = |i: usize| i % EVERY_NTH_SPEAKS < 3;
    for page in (0..recordings).collect::<Vec<_>>().chunks(PAGE) {
        let meetings: Vec<MeetingUpsert> = page
            .iter()
            .map(|&i| MeetingUpsert {
                meeting_record_id: format!("m{i}").into(),
                meeting_id: format!("{i}"),
                meeting_code: format!("{}", 100_000_000 + i % 30_000),
                userid: format!("user{}", i % USERS),
                subject: ["产品周会", "Weekly sync", "项目评审", "客户沟通会"][i % 4].into(),
                media_start_time: start(i),
                state: 3.into(),
                record_type: 0,
                dir: format!("d{i}"),
                files: vec![FileUpsert {
                    record_file_id: format!("f{i}").into(),
                    record_start_time: start(i).as_millis(),
                    record_end_time: start(i).as_millis() + 3_600_000,
                    record_size: 100 << 20,
                    path: format!("d{i}/f{i}.mp4"),
                    download_address: None,
                    skip_rule: None,
                }],
            })
            .collect();
        store
            .upsert_meetings(&meetings, UnixMs::now())
            .await
            .unwrap();
    }
    let before = db_bytes(&db).await;
    let (mut text_bytes, mut index_ms, mut mark_ms) = (0u64, Vec::new(), Vec::new());
    let local = wemeet_archiver::open_archive(&root, None, 1 << 24, store.clone()).unwrap();
    for i in (0..recordings).filter(|i| has_transcript(*i)) {
        let key = format!("f{i}/transcript/txt");
        let path = format!("d{i}/f{i}.transcript.txt");
        let size = 1024 + (i as u64 * 7919) % (16 * 1024);
        let text = wemeet_sim::transcript::text(42, &key, 0, size);
        let sha = hex::encode(sha2::Sha256::digest(&text));
        text_bytes += size;
        store
            .upsert_artifacts(
                &format!("m{i}").into(),
                &[ArtifactUpsert {
                    key: key.as_str().into(),
                    kind: FileKind::Transcript,
                    parent_file_id: format!("f{i}").into(),
                    path: path.clone(),
                    download_address: wemeet_api::Secret::new("https://example.invalid/t"),
                }],
                UnixMs::now(),
            )
            .await
            .unwrap();
        // The first 300: on disk, archived, then indexed as a transfer does (timed).
        if index_ms.len() < 300 {
            let file = root.join(&path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &text).unwrap();
            let t = Instant::now();
            store
                .mark_archived(&key.as_str().into(), size, &sha)
                .await
                .unwrap();
            mark_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            let row = store.file(&key.as_str().into()).await.unwrap().unwrap();
            let t = Instant::now();
            wemeet_archiver::internals::index_archived(&store, local.as_ref(), &row, &sha)
                .await
                .unwrap();
            index_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        } else {
            store
                .mark_archived(&key.as_str().into(), size, &sha)
                .await
                .unwrap();
            let body = String::from_utf8(text).unwrap();
            assert!(
                store
                    .index_transcript(&key.as_str().into(), &sha, &body)
                    .await
                    .unwrap()
            );
        }
    }
    let after = db_bytes(&db).await;
    let index_per_mb = (after - before) as f64 / (text_bytes as f64 / 1e6);

    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let timed = |query: Query| {
        let store = &store;
        let local = &local;
        async move {
            let (mut sel, mut full, mut n) = (Vec::new(), Vec::new(), 0);
            for _ in 0..REPS {
                let t = Instant::now();
                n = select(store, &query).await.unwrap().len();
                sel.push(t.elapsed().as_secs_f64() * 1000.0);
                let limited = Query {
                    limit: Some(20),
                    ..query.clone()
                };
                let t = Instant::now();
                run_search(store, local.as_ref(), &limited, None)
                    .await
                    .unwrap();
                full.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            (median(sel), median(full), n)
        }
    };
    let quarter = Query {
        user: Some("user7".into()),
        since: Some(start(recordings / 2)),
        until: Some(start(recordings / 2 + recordings / 8)),
        ..Query::default()
    };
    let words = |w: &str| Query {
        text: vec![w.into()],
        ..Query::default()
    };
    let (sel_q, full_q, n_q) = timed(quarter).await;
    let (sel_3, full_3, n_3) = timed(words("百分之")).await;
    let (sel_2, full_2, n_2) = timed(words("面试")).await;
    eprintln!(
        "search bench: recordings={recordings} transcripts={} text_mb={:.1} \
         selector_ms={sel_q:.1} selector_limit20_ms={full_q:.1} selector_found={n_q} \
         text3_ms={sel_3:.1} text3_limit20_ms={full_3:.1} text3_found={n_3} \
         text2_ms={sel_2:.1} text2_limit20_ms={full_2:.1} text2_found={n_2} \
         index_bytes_per_text_mb={index_per_mb:.0} index_transcript_ms={:.2} mark_archived_ms={:.2}",
        recordings * 3 / EVERY_NTH_SPEAKS,
        text_bytes as f64 / 1e6,
        median(index_ms),
        median(mark_ms),
    );
}

/// Bytes the database's pages take (in use, WAL included), as a new connection sees it.
async fn db_bytes(db: &Path) -> u64 {
    use sqlx::Connection as _;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let pages: i64 = sqlx::query_scalar(
        "SELECT page_count - freelist_count FROM pragma_page_count(), pragma_freelist_count()",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    let size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&mut c)
        .await
        .unwrap();
    (pages * size) as u64
}
