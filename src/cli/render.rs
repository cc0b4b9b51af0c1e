//! What the commands print: the library's reports as text for a person.

use std::fmt::Write as _;
use wemeet_archiver::app::BackfillReport;
use wemeet_archiver::config::Config;
use wemeet_archiver::state::{FileKind, StatusReport};
use wemeet_archiver::time::UnixMs;

/// RFC 3339, or `-` for a time that never was.
fn when(t: Option<UnixMs>) -> String {
    t.and_then(UnixMs::to_rfc3339).unwrap_or_else(|| "-".into())
}

/// What a backfill did and what is left, for the admin reading the terminal.
pub fn backfill(report: &BackfillReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "listed {} window(s), {} meeting(s); archived {} file(s), {} bytes in this run",
        report.windows, report.meetings_seen, report.archived_now, report.bytes_now
    );
    if report.pending_meetings > 0 {
        let _ = writeln!(
            out,
            "{} meeting(s) still recording or transcoding: their files are archived by a later run",
            report.pending_meetings
        );
    }
    if report.interrupted {
        out.push_str("interrupted: run the same command again to resume from the checkpoints\n");
    }
    for w in &report.failed_windows {
        let _ = writeln!(out, "window not listed: {w}");
    }
    if !report.not_archived.is_empty() {
        let _ = writeln!(out, "{} file(s) not archived:", report.not_archived.len());
        for (path, status, reason) in &report.not_archived {
            let _ = writeln!(
                out,
                "  {:<12} {path}: {}",
                status.as_str(),
                reason.as_deref().unwrap_or("-")
            );
        }
    }
    out
}

/// `3 archived, 1 queued`, or `none`.
fn counts<'a>(map: impl IntoIterator<Item = (&'a str, i64)>) -> String {
    let parts: Vec<String> = map.into_iter().map(|(k, v)| format!("{v} {k}")).collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// `status`: the archive's state, the service's facts, what failed and why.
pub fn relayout(report: &wemeet_archiver::relayout::RelayoutReport) -> String {
    let mut out = String::new();
    if report.from == report.to {
        let _ = writeln!(
            out,
            "the archive is laid out with `{}`: nothing to move",
            report.to
        );
        return out;
    }
    for (from, to) in &report.moves {
        let _ = writeln!(out, "{from} -> {to}");
    }
    let _ = writeln!(
        out,
        "{} file(s) {} from `{}` to `{}`",
        report.moves.len(),
        if report.dry_run {
            "would move"
        } else {
            "moved"
        },
        report.from,
        report.to
    );
    out
}

pub fn status(report: &StatusReport, config: &Config) -> String {
    let mut out = String::new();
    let meetings = report.meetings.iter().map(|(k, v)| (k.as_str(), *v));
    let _ = writeln!(out, "meetings: {}", counts(meetings));
    let files = report.files.iter().map(|(k, v)| (k.as_str(), *v));
    let _ = writeln!(out, "files:    {}", counts(files));
    if config.download.artifacts.len() > 1 {
        for (kind, by_status) in &report.by_kind {
            let statuses = by_status.iter().map(|(k, v)| (k.as_str(), *v));
            let _ = writeln!(out, "  {:<10}  {}", kind.as_str(), counts(statuses));
        }
    }
    if !report.skipped_by_rule.is_empty() {
        let rules = report.skipped_by_rule.iter().map(|(k, v)| (k.as_str(), *v));
        let _ = writeln!(out, "skipped by [filter]: {}", counts(rules));
    }
    if config.download.wants(FileKind::Transcript) {
        let _ = writeln!(
            out,
            "transcripts: awaited for {} meeting(s); the wait ended without one for {}",
            report.transcripts_awaited, report.transcript_waits_ended
        );
    }
    let _ = writeln!(
        out,
        "archived: {} bytes; still to download: {} bytes",
        report.bytes_archived, report.bytes_pending
    );
    let _ = writeln!(
        out,
        "windows listed: {} (last at {})",
        report.windows_listed,
        when(report.last_listing_at)
    );
    let _ = writeln!(
        out,
        "deleted in the cloud: {} archived file(s), {} bytes freed{}",
        report.files_deleted_in_cloud,
        report.bytes_freed,
        if config.prune.enabled {
            ""
        } else {
            " (prune.enabled is off)"
        }
    );
    let _ = writeln!(
        out,
        "API calls in the last 60 s: {} listing (of {}), {} addresses (of {}), {} deletes (of {})",
        report.api_calls_last_60s,
        config.api.requests_per_minute,
        report.address_calls_last_60s,
        config.api.addresses_per_minute,
        report.delete_calls_last_60s,
        config.api.deletes_per_minute
    );
    let d = &report.daemon;
    if d.facts.next_poll_at.is_some() {
        let _ = writeln!(
            out,
            "daemon: last complete poll {}, next poll {}",
            when(d.facts.last_poll_ok_at),
            when(d.facts.next_poll_at)
        );
    }
    if let Some(at) = d.facts.prune_finished_at {
        let _ = writeln!(out, "daemon: last prune round {}", when(Some(at)));
    }
    if d.facts.prune_refused > 0 {
        let _ = writeln!(
            out,
            "prune refused {} copy(ies) not intact, in all (see the logs; `verify` names them)",
            d.facts.prune_refused
        );
    }
    if let (Some(done), Some(total)) = (
        d.facts.backfill_windows_done,
        d.facts.backfill_windows_total,
    ) {
        let _ = writeln!(out, "background backfill: {done}/{total} windows listed");
    }
    if let Some(p) = &d.oldest_pending {
        let _ = writeln!(
            out,
            "oldest pending file: {} ({}, waiting since {})",
            p.path,
            p.status.as_str(),
            when(Some(p.waiting_since))
        );
    }
    if !d.failures_by_reason.is_empty() {
        out.push_str("failures by reason:\n");
        for (reason, n) in &d.failures_by_reason {
            let _ = writeln!(out, "  {n:>5}  {reason}");
        }
    }
    match report.files_verified {
        0 => out.push_str("verified: never (run `wemeet-archiver verify`)\n"),
        n => {
            let _ = writeln!(
                out,
                "verified: {n} archived file(s) found intact (oldest check {}, newest {})",
                when(report.oldest_verified_at),
                when(report.newest_verified_at)
            );
        }
    }
    if !report.uploads.is_empty() {
        let _ = writeln!(out, "uploads in progress ({}):", report.uploads.len());
        for u in &report.uploads {
            let _ = writeln!(
                out,
                "  {} {} of {} bytes in {} part(s), since {}",
                u.path,
                u.bytes_uploaded,
                u.record_size,
                u.parts,
                when(Some(u.created_at))
            );
        }
    }
    if !report.failures.is_empty() {
        let _ = writeln!(out, "not archivable ({}):", report.failures.len());
        for f in &report.failures {
            let _ = writeln!(
                out,
                "  {:<12} {} after {} attempt(s): {}",
                f.status.as_str(),
                f.path,
                f.attempts,
                f.reason.as_deref().unwrap_or("-")
            );
        }
    }
    out
}
