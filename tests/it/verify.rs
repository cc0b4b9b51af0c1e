//! `verify` as an admin runs it: an intact archive passes, each kind of damage is named,
//! and `SHA256SUMS` is checkable by coreutils' own `sha256sum -c`.

use crate::common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use wemeet_archiver::Db;
use wemeet_archiver::internals::{FileUpsert, MeetingUpsert};

/// Runs `verify` with `args` and asserts that it exits with `code`.
async fn verify(config: &Path, args: &[&str], code: i32) -> Output {
    let out = run_configured(config, &[&["verify"], args].concat(), &[]).await;
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", explain(&out));
    out
}

/// [`verify`] with `--format json` and `args`: its report.
async fn verify_json(config: &Path, args: &[&str], code: i32) -> serde_json::Value {
    let out = verify(config, &[&["--format", "json"], args].concat(), code).await;
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn explain(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `sha256sum -c SHA256SUMS` in `root`, as a separate process.
fn sha256sum_check(root: &Path) -> Output {
    std::process::Command::new("sha256sum")
        .args(["--check", "--quiet", "SHA256SUMS"])
        .current_dir(root)
        .output()
        .expect("sha256sum runs")
}

/// A minimal RFC 4180 reader: subjects may hold commas, quotes and newlines.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "CSV does not end with a newline"
    );
    rows
}

fn rel(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_passes_an_intact_archive_and_names_each_kind_of_damage() {
    let sim = start_sim(transcoded(10, 20)).await;
    let archiver = Archiver::new(&sim, "");
    archiver.backfill_all(20).await;
    let (config, root) = (&archiver.config, archiver.archive());
    let n = sim.manifest().len();
    assert!(n >= 10, "dataset too small: {n}");

    // Intact: exit 0, every file ok, and SHA256SUMS that coreutils accepts.
    let out = verify(config, &[], 0).await;
    let text = stdout(&out);
    assert!(
        text.contains(&format!("checked {n} archived file(s)")),
        "{text}"
    );
    assert!(text.contains(&format!("{n} ok, 0 missing")), "{text}");
    assert!(text.contains("result: intact"), "{text}");

    let json = verify_json(config, &["--manifest", "--jobs", "3"], 0).await;
    assert_eq!(json["schema"], "wemeet-archiver.verify/1");
    assert_eq!(json["passed"], true);
    assert_eq!(json["summary"]["ok"].as_u64(), Some(n as u64));
    assert_eq!(json["summary"]["jobs"].as_u64(), Some(3));
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), n);
    let manifest = sim.manifest();
    for f in files {
        let entry = manifest
            .iter()
            .find(|e| f["record_file_id"] == e.record_file_id.as_str())
            .unwrap();
        assert_eq!(f["status"], "ok", "{f}");
        assert_eq!(f["actual_sha256"], entry.sha256.as_str());
        assert_eq!(f["expected_sha256"], entry.sha256.as_str());
        assert_eq!(f["actual_size"].as_u64(), Some(entry.record_size));
        assert_eq!(f["detail"], serde_json::Value::Null);
    }
    let sums = std::fs::read_to_string(root.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), n);
    let check = sha256sum_check(&root);
    assert!(
        check.status.success(),
        "sha256sum -c failed on the intact archive: {check:?}"
    );

    // `status` tells when the archive was last proven intact.
    let status = run_configured(config, &["status", "--json"], &[]).await;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["files_verified"].as_u64(), Some(n as u64));
    assert!(
        status["oldest_verified_at"].as_i64().unwrap()
            <= status["newest_verified_at"].as_i64().unwrap()
    );
    let text = run_configured(config, &["status"], &[]).await;
    assert!(
        stdout(&text).contains(&format!("verified: {n} archived file(s)")),
        "{}",
        explain(&text)
    );

    // Damage: one flipped byte, one truncation, one deletion, a stray file, a stray .part.
    let recordings: Vec<_> = files_under(&root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    let (flipped, truncated, deleted) = (&recordings[0], &recordings[1], &recordings[2]);
    let mut bytes = std::fs::read(root.join(flipped)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(root.join(flipped), &bytes).unwrap();
    let original = std::fs::read(root.join(truncated)).unwrap();
    let short_len = original.len() as u64 / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(root.join(truncated))
        .unwrap()
        .set_len(short_len)
        .unwrap();
    std::fs::remove_file(root.join(deleted)).unwrap();
    let stray = flipped.parent().unwrap().join("notes.txt");
    std::fs::write(root.join(&stray), "not a recording").unwrap();
    let part = truncated.parent().unwrap().join("4242424242.mp4.part");
    std::fs::write(root.join(&part), &original[..1000]).unwrap();
    let expected: BTreeSet<(String, String)> = [
        (rel(flipped), "hash_mismatch"),
        (rel(truncated), "size_mismatch"),
        (rel(deleted), "missing"),
        (rel(&stray), "extra"),
        (rel(&part), "partial"),
    ]
    .into_iter()
    .map(|(p, s)| (p, s.to_string()))
    .collect();

    // The table names exactly those five.
    let out = verify(config, &[], 1).await;
    let text = stdout(&out);
    let statuses = [
        "hash_mismatch",
        "size_mismatch",
        "missing",
        "extra",
        "partial",
    ];
    let table_rows: Vec<&str> = text
        .lines()
        .filter(|l| statuses.iter().any(|s| l.starts_with(&format!("{s} "))))
        .collect();
    assert_eq!(table_rows.len(), 5, "{text}");
    for (path, status) in &expected {
        assert!(
            table_rows
                .iter()
                .any(|l| l.starts_with(status.as_str()) && l.contains(path.as_str())),
            "{status} {path} not in:\n{text}"
        );
    }
    assert!(text.contains("result: 5 problem(s) found"), "{text}");

    // So does the JSON, with sizes and hashes for the damaged files.
    let json = verify_json(config, &[], 1).await;
    assert_eq!(json["passed"], false);
    assert_eq!(json["summary"]["problems"].as_u64(), Some(5));
    assert_eq!(json["summary"]["ok"].as_u64(), Some(n as u64 - 3));
    let files = json["files"].as_array().unwrap();
    let found: BTreeSet<(String, String)> = files
        .iter()
        .filter(|f| f["status"] != "ok")
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(found, expected);
    let row = |path: &Path| {
        files
            .iter()
            .find(|f| f["path"] == rel(path).as_str())
            .unwrap()
    };
    assert_eq!(
        row(truncated)["expected_size"].as_u64(),
        Some(original.len() as u64)
    );
    assert_eq!(row(truncated)["actual_size"].as_u64(), Some(short_len));
    let flipped_row = row(flipped);
    assert_ne!(flipped_row["actual_sha256"], flipped_row["expected_sha256"]);
    assert_eq!(
        flipped_row["actual_sha256"],
        sha256_file(&root.join(flipped)).as_str()
    );
    assert_eq!(row(deleted)["actual_size"], serde_json::Value::Null);
    assert_eq!(row(&part)["actual_size"].as_u64(), Some(1000));
    assert_eq!(row(&stray)["record_file_id"], serde_json::Value::Null);

    // And the CSV written to a file (atomically: no temporary left beside it).
    let reports = tempfile::tempdir().unwrap();
    let csv_path = reports.path().join("report.csv");
    let out = verify(
        config,
        &["--format", "csv", "--output", csv_path.to_str().unwrap()],
        1,
    )
    .await;
    assert!(
        stdout(&out).contains("result: 5 problem(s) found"),
        "{}",
        explain(&out)
    );
    assert_eq!(std::fs::read_dir(reports.path()).unwrap().count(), 1);
    let rows = parse_csv(&std::fs::read_to_string(&csv_path).unwrap());
    assert_eq!(
        rows[0],
        [
            "record_file_id",
            "meeting_code",
            "subject",
            "path",
            "expected_size",
            "actual_size",
            "expected_sha256",
            "actual_sha256",
            "status",
            "detail",
            "kind"
        ]
    );
    assert_eq!(
        rows.len(),
        1 + n + 2,
        "one row per database file, plus the two strays"
    );
    assert!(rows.iter().all(|r| r.len() == 11), "{rows:?}");
    let found: BTreeSet<(String, String)> = rows[1..]
        .iter()
        .filter(|r| r[8] != "ok")
        .map(|r| (r[3].clone(), r[8].clone()))
        .collect();
    assert_eq!(found, expected);
    let subjects: BTreeSet<&str> = rows[1..].iter().map(|r| r[2].as_str()).collect();
    assert!(subjects.contains("line1\nline2"), "{subjects:?}");

    // The manifest written while the archive was intact now exposes the damage.
    let check = sha256sum_check(&root);
    assert!(
        !check.status.success(),
        "sha256sum -c passed on a damaged archive"
    );
    let complaints = String::from_utf8_lossy(&check.stdout);
    assert!(complaints.contains(&rel(flipped)), "{complaints}");
}

/// Writes [`offline_config`] into `dir`, in Shanghai time, with its database at `database`
/// (relative to `dir`).
fn write_shanghai_config(dir: &Path, database: &str) -> PathBuf {
    let config = dir.join("config.toml");
    let text = offline_config()
        .replacen(
            "path = \"archive\"\n",
            "path = \"archive\"\ntimezone = \"Asia/Shanghai\"\n",
            1,
        )
        .replacen("path = \"state.db\"", &format!("path = \"{database}\""), 1);
    std::fs::write(&config, text).unwrap();
    config
}

#[tokio::test]
async fn without_a_database_verify_exits_2_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_shanghai_config(dir.path(), "state.db");
    let out = verify(&config, &[], 2).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no database"),
        "{}",
        explain(&out)
    );
    assert!(!dir.path().join("state.db").exists());

    // Usage errors are exit 2 too: a manifest of part of the archive, a bad percentage.
    for args in [
        &["--manifest", "--sample", "10"][..],
        &["--sample", "0"],
        &["--jobs", "0"],
    ] {
        verify(&config, args, 2).await;
    }
}

/// Stores a meeting of 2024-01-02 (Shanghai) with an archived file and a queued one.
async fn seed(store: &Db, root: &Path, id: &str, day: &str, start_ms: i64) -> (String, String) {
    let dir = format!("2024/01/{day}/{id}-Seeded");
    let archived = format!("{dir}/{id}1.mp4");
    let queued = format!("{dir}/{id}2.mp4");
    let file = |suffix: &str, path: &str| FileUpsert {
        record_file_id: format!("{id}{suffix}").into(),
        record_start_time: start_ms,
        record_end_time: start_ms + 1,
        record_size: 5,
        path: path.to_string(),
        download_address: Some(wemeet_api::Secret::new("https://example.invalid/x")),
        skip_rule: None,
    };
    store
        .upsert_meetings(
            &[MeetingUpsert {
                meeting_record_id: id.into(),
                meeting_id: id.into(),
                meeting_code: id.into(),
                userid: "u".into(),
                subject: "Seeded".into(),
                media_start_time: wemeet_archiver::UnixMs(start_ms),
                state: 3.into(),
                record_type: 1,
                dir: dir.clone(),
                files: vec![file("1", &archived), file("2", &queued)],
            }],
            wemeet_archiver::UnixMs(0),
        )
        .await
        .unwrap();
    std::fs::create_dir_all(root.join(&dir)).unwrap();
    std::fs::write(root.join(&archived), b"hello").unwrap();
    store
        .mark_archived(
            &format!("{id}1").into(),
            5,
            &sha256_file(&root.join(&archived)),
        )
        .await
        .unwrap();
    std::fs::write(root.join(format!("{queued}.part")), b"he").unwrap();
    (archived, queued)
}

#[tokio::test]
async fn pending_files_pass_and_ranges_and_samples_check_part_of_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    // The database lives under the archive root: it must not be reported as extra.
    let config = write_shanghai_config(dir.path(), "archive/state.db");
    let store = Db::open(&root.join("state.db")).await.unwrap();
    // 2024-01-02 and 2024-01-05, 10:00 in Shanghai.
    let (a1, q1) = seed(&store, &root, "100", "02", 1_704_160_800_000).await;
    let (a2, _) = seed(
        &store,
        &root,
        "200",
        "05",
        1_704_160_800_000 + 3 * 86_400_000,
    )
    .await;

    // Pending files are not a problem.
    let json = verify_json(&config, &[], 0).await;
    assert_eq!(json["summary"]["ok"].as_u64(), Some(2));
    assert_eq!(json["summary"]["pending"].as_u64(), Some(2));
    assert_eq!(json["summary"]["extra"].as_u64(), Some(0), "{json:#}");
    assert_eq!(json["summary"]["partial"].as_u64(), Some(0), "{json:#}");
    let pending = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == q1.as_str())
        .unwrap();
    assert_eq!(pending["status"], "pending");
    let detail = pending["detail"].as_str().unwrap();
    assert!(
        detail.contains("queued") && detail.contains("2 of 5 bytes in .part"),
        "{detail}"
    );

    // A range checks only its meetings and walks only its date folders.
    std::fs::write(root.join("2024/01/05/stray.txt"), b"x").unwrap();
    let json = verify_json(
        &config,
        &["--since", "2024-01-01", "--until", "2024-01-03"],
        0,
    )
    .await;
    let paths: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, [a1.as_str(), q1.as_str()]);
    // The stray file is in range.
    let json = verify_json(&config, &["--since", "2024-01-04"], 1).await;
    assert_eq!(json["summary"]["extra"].as_u64(), Some(1));
    std::fs::remove_file(root.join("2024/01/05/stray.txt")).unwrap();

    // A 50 % sample re-reads one of the two archived files: the least recently verified.
    store
        .mark_verified(&["2001".into()], wemeet_archiver::UnixMs(1))
        .await
        .unwrap();
    let json = verify_json(&config, &["--sample", "50"], 0).await;
    assert_eq!(json["summary"]["checked_files"].as_u64(), Some(1));
    assert_eq!(json["summary"]["archived_files"].as_u64(), Some(2));
    let checked: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "ok")
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(checked, [a2.as_str()]);
}

/// Names that need sha256sum's escaping never come out of the layout (it turns `\` and
/// control characters into `_`), but a manifest must still be right if one ever does.
#[test]
fn sha256sums_with_escaped_names_pass_coreutils_check() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "plain.mp4",
        "new\nline.mp4",
        "back\\slash.mp4",
        "both\\n\n.mp4",
        "sp ace.mp4",
    ];
    let mut entries = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("content {i}")).unwrap();
        entries.push((sha256_file(&path), name.to_string()));
    }
    let text = wemeet_archiver::internals::render_sums(
        entries.iter().map(|(h, n)| (h.as_str(), n.as_str())),
    );
    assert_eq!(text.lines().count(), names.len());
    std::fs::write(dir.path().join("SHA256SUMS"), &text).unwrap();
    let check = sha256sum_check(dir.path());
    assert!(check.status.success(), "{check:?}\n{text}");
    // and it is byte for byte what sha256sum itself writes
    let mut sorted = names.to_vec();
    sorted.sort();
    let native = std::process::Command::new("sha256sum")
        .args(&sorted)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(native.stdout).unwrap(), text);
}
