//! Retention, holds and the audit trail on a local archive: the trail passes `audit verify`
//! after a backfill, a hold, a prune, a relayout and a verify; one byte changed, one record
//! removed or two swapped in the archive's copy are each named by sequence (exit 1). A
//! held recording is skipped by `prune` (which says so) and left in place by `relayout`.

use crate::common::*;
use crate::layout::set_layout;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use wemeet_sim::SimConfig;

const DAYS: u32 = 15;

fn dataset() -> SimConfig {
    SimConfig {
        meetings: 4,
        days: DAYS,
        pending_fraction: 0.0,
        files_per_meeting: 1..=1,
        min_file_size: 50_000,
        max_file_size: 100_000,
        ..SimConfig::default()
    }
}

async fn ok(config: &Path, args: &[&str]) -> String {
    let out = run_configured(config, args, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", explain(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The segments of the archive's copy of the trail, in order.
fn segments(archive: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(archive.join(".wemeet-archiver/audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    all.sort();
    all
}

/// `audit verify` on the config: its exit code and what it printed.
async fn audit_verify(config: &Path) -> (Option<i32>, String) {
    let out = run_configured(config, &["audit", "verify"], &[]).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_trail_records_every_change_and_names_a_tampered_record_by_sequence() {
    let sim = start_sim(dataset()).await;
    let archiver = Archiver::new(&sim, "");
    let config = archiver.config.clone();
    add_prune_table(&config, "enabled = true\nafter = \"1ms\"");
    archiver.backfill_all(DAYS).await;
    let files = archiver.store().await.all_files().await.unwrap();
    assert_eq!(files.len(), 4);
    let held = files[0].clone();

    // A hold on one recording: prune skips it, saying so, and deletes the others.
    let placed = ok(&config, &hold_meeting(&held.meeting_record_id, "matter 42")).await;
    assert!(placed.contains("hold 1 placed on meeting"), "{placed}");
    let pruned = ok(&config, &["prune"]).await;
    assert!(
        pruned.contains(&format!("held             {}: on legal hold 1", held.path)),
        "{pruned}"
    );
    let deleted: BTreeSet<String> = sim.deleted().into_iter().collect();
    let others = record_file_ids(&files[1..]);
    assert_eq!(deleted, others);

    // relayout moves the others and leaves the held one where it is.
    set_layout(
        &config,
        "{userid}/{meeting_code}-{subject}/{record_file_id}",
    );
    let moved = ok(&config, &["relayout"]).await;
    assert!(
        moved.contains(&format!("{}: on legal hold, stays where it is", held.path)),
        "{moved}"
    );
    assert!(archiver.archive().join(&held.path).is_file());
    ok(&config, &["verify"]).await;

    // Every change is in the trail, in both copies, and the chain checks.
    let (code, text) = audit_verify(&config).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("the audit trail is intact"), "{text}");
    let export = ok(&config, &["audit", "export"]).await;
    let records: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in ["archived", "held", "deleted_in_cloud", "moved", "verified"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert_eq!(actions.iter().filter(|a| **a == "archived").count(), 4);
    assert_eq!(
        actions.iter().filter(|a| **a == "deleted_in_cloud").count(),
        3
    );
    assert_eq!(actions.iter().filter(|a| **a == "moved").count(), 3);
    let archived: Vec<String> = segments(&archiver.archive())
        .iter()
        .flat_map(|s| {
            std::fs::read_to_string(s)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(archived, export.lines().collect::<Vec<_>>());
    let csv = ok(&config, &["audit", "export", "--format", "csv"]).await;
    assert_eq!(csv.lines().count(), records.len() + 1);

    // The holds are in the archive too.
    let holds: serde_json::Value = serde_json::from_slice(
        &std::fs::read(archiver.archive().join(".wemeet-archiver/holds.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        holds["holds"][0]["meeting_record_id"],
        held.meeting_record_id.as_str()
    );

    // Tampering with the archive's copy: the backfill's segment holds the 4 archived
    // records; the second of them is changed, removed, then swapped with the third.
    let segment = segments(&archiver.archive())[0].clone();
    let original = std::fs::read_to_string(&segment).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 3, "{original}");
    let seq = 2;
    let rewrite = |lines: &[&str]| std::fs::write(&segment, lines.join("\n") + "\n").unwrap();

    let mut one_byte = lines[1].as_bytes().to_vec();
    let at = lines[1].find("\"sha256\":\"").unwrap() + 12;
    one_byte[at] = if one_byte[at] == b'0' { b'1' } else { b'0' };
    let changed = String::from_utf8(one_byte).unwrap();
    rewrite(&[lines[0], &changed, &lines[2..].join("\n")]);
    let (code, text) = audit_verify(&config).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("record {seq} is altered")), "{text}");

    rewrite(&[&[lines[0]], &lines[2..]].concat());
    let (code, text) = audit_verify(&config).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("record {seq} is missing")), "{text}");

    rewrite(&[&[lines[0], lines[2], lines[1]], &lines[3..]].concat());
    let (code, text) = audit_verify(&config).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("record {seq} is out of order")),
        "{text}"
    );

    std::fs::write(&segment, &original).unwrap();
    let (code, text) = audit_verify(&config).await;
    assert_eq!(code, Some(0), "{text}");

    // Released: the next prune deletes it too.
    ok(&config, &["hold", "release", "1"]).await;
    let listed = ok(&config, &["hold", "list"]).await;
    assert!(listed.contains("released"), "{listed}");
    let pruned = ok(&config, &["prune"]).await;
    assert!(pruned.contains("deleted 1 file(s)"), "{pruned}");
    assert!(sim.deleted().contains(&held.record_file_id.to_string()));
    let (code, text) = audit_verify(&config).await;
    assert_eq!(code, Some(0), "{text}");

    // status and /metrics say it: no hold in force, the last record, the check passed.
    let status = ok(&config, &["status"]).await;
    assert!(status.contains("legal holds: 0 in force"), "{status}");
    assert!(status.contains("audit verify: passed"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&config, &["status", "--json"]).await).unwrap();
    let last = json["retention"]["last_record"]["seq"].as_i64().unwrap();
    assert_eq!(json["retention"]["last_check"]["passed"], true);
    let metrics = metrics_of(&archiver.store().await).await;
    assert!(
        metrics.contains("wemeet_audit_verify_passed 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("wemeet_audit_records {last}")),
        "{metrics}"
    );
    assert!(metrics.contains("wemeet_holds_in_force 0"), "{metrics}");
}

/// Adds a `[retention]` table with `lines` to the config at `path`.
fn add_retention_table(path: &Path, lines: &str) {
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push_str(&format!("\n[retention]\n{lines}\n"));
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expire_removes_exactly_the_recordings_past_keep_except_the_held_ones() {
    let sim = start_sim(SimConfig {
        meetings: 6,
        ..dataset()
    })
    .await;
    let archiver = Archiver::new(&sim, "");
    let config = archiver.config.clone();
    archiver.backfill_all(DAYS).await;
    let store = archiver.store().await;
    let mut recordings = Vec::new();
    for f in store.all_files().await.unwrap() {
        let m = store.meeting(&f.meeting_record_id).await.unwrap().unwrap();
        recordings.push((m.media_start_time.as_millis(), f));
    }
    recordings.sort_by_key(|(start, _)| *start);
    // The cut-off halfway between the third and fourth starts: the three oldest are past.
    let cut_off = (recordings[2].0 + recordings[3].0) / 2;
    let keep_secs = (wemeet_archiver::UnixMs::now().as_millis() - cut_off) / 1000;
    add_retention_table(&config, &format!("keep = \"{keep_secs}s\""));
    let held = recordings[0].1.clone();
    ok(&config, &hold_meeting(&held.meeting_record_id, "subpoena")).await;
    let past: BTreeSet<wemeet_archiver::MeetingRecordId> = recordings[1..3]
        .iter()
        .map(|(_, f)| f.meeting_record_id.clone())
        .collect();

    // Without the opt-in: refused, naming the key; nothing removed.
    let refused = run_configured(&config, &["expire"], &[]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", explain(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("expire = true"));

    // The dry run lists exactly the recordings past keep, minus the held one.
    let dry = ok(&config, &["expire", "--dry-run", "--format", "json"]).await;
    let report: serde_json::Value = serde_json::from_str(&dry).unwrap();
    let with = |outcome: &str| -> BTreeSet<wemeet_archiver::MeetingRecordId> {
        report["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["outcome"] == outcome)
            .map(|r| r["meeting_record_id"].as_str().unwrap().into())
            .collect()
    };
    assert_eq!(with("would_expire"), past);
    assert_eq!(
        with("held"),
        BTreeSet::from([held.meeting_record_id.clone()])
    );
    for (_, f) in &recordings {
        assert!(archiver.archive().join(&f.path).is_file());
    }

    // The real run removes them, records each, and leaves the archive verifiable.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[retention]\n", "[retention]\nexpire = true\n"),
    )
    .unwrap();
    let done = ok(&config, &["expire"]).await;
    assert!(
        done.contains("expired 2 recording(s) from the archive, 1 held"),
        "{done}"
    );
    for (_, f) in &recordings {
        let there = archiver.archive().join(&f.path).is_file();
        assert_eq!(there, !past.contains(&f.meeting_record_id), "{}", f.path);
    }
    let (_, gone) = recordings
        .iter()
        .find(|(_, f)| past.contains(&f.meeting_record_id))
        .unwrap();
    let dir = Path::new(&gone.path).parent().unwrap();
    let meeting_json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(archiver.archive().join(dir).join("meeting.json")).unwrap(),
    )
    .unwrap();
    let entry = meeting_json["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meeting_record_id"] == gone.meeting_record_id.as_str())
        .unwrap();
    assert!(entry["expired_at"].is_i64(), "{meeting_json}");
    let export = ok(&config, &["audit", "export"]).await;
    let expired: BTreeSet<wemeet_archiver::MeetingRecordId> = export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["action"] == "expired")
        .map(|r| r["meeting_record_id"].as_str().unwrap().into())
        .collect();
    assert_eq!(expired, past);
    ok(&config, &["verify"]).await;
    let (code, text) = audit_verify(&config).await;
    assert_eq!(code, Some(0), "{text}");
    let again = ok(&config, &["expire", "--dry-run"]).await;
    assert!(
        again.contains("0 recording(s) would expire, 1 held"),
        "{again}"
    );
}
