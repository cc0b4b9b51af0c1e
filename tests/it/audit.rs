//! Retention, holds and the audit trail on a local archive: the trail passes `audit verify`
//! after a backfill, a hold, a prune, a relayout and a verify; one byte changed, one record
//! removed or two swapped in the archive's copy are each named by sequence (exit 1). A
//! held recording is skipped by `prune` (which says so) and left in place by `relayout`.

use crate::common::*;
use crate::layout::set_layout;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
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

fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
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
    let placed = ok(
        &config,
        &[
            "hold",
            "add",
            "--meeting",
            &held.meeting_record_id,
            "--reason",
            "matter 42",
        ],
    )
    .await;
    assert!(placed.contains("hold 1 placed on meeting"), "{placed}");
    let pruned = ok(&config, &["prune"]).await;
    assert!(
        pruned.contains(&format!("held             {}: on legal hold 1", held.path)),
        "{pruned}"
    );
    let deleted: BTreeSet<String> = sim.deleted().into_iter().collect();
    let others: BTreeSet<String> = files[1..]
        .iter()
        .map(|f| f.record_file_id.clone())
        .collect();
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
    assert!(sim.deleted().contains(&held.record_file_id));
    let (code, text) = audit_verify(&config).await;
    assert_eq!(code, Some(0), "{text}");
}
