//! What the commands print: the library's reports as text for a person.

use super::human::{Size, Span};
use std::fmt::Write as _;
use std::time::Duration;
use wemeet_archiver::BackfillReport;
use wemeet_archiver::ReindexReport;
use wemeet_archiver::UnixMs;
use wemeet_archiver::config::Config;
use wemeet_archiver::{FileKind, StatusReport};

/// How long before (or after) `now` a time is, then the time in RFC 3339, or `never`:
/// `2 h 14 min ago (2026-11-01T08:00:00+00:00)`, `in 40 s (...)`.
fn when_at(t: Option<UnixMs>, now: UnixMs) -> String {
    let Some((t, rfc3339)) = t.and_then(|t| Some((t, t.to_rfc3339()?))) else {
        return "never".into();
    };
    if t <= now {
        format!("{} ago ({rfc3339})", Span(now.since(t)))
    } else {
        format!("in {} ({rfc3339})", Span(t.since(now)))
    }
}

/// What a backfill did in `took` and what is left, for the admin reading the terminal.
pub fn backfill(report: &BackfillReport, took: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "listed {} window(s), {} meeting(s); archived {} file(s), {} in this run, in {}",
        report.windows,
        report.meetings_seen,
        report.archived_now,
        Size(report.bytes_now),
        Span(took)
    );
    if report.adopted_now > 0 {
        let _ = writeln!(
            out,
            "{} file(s) adopted: their intact copy was already in the archive, nothing downloaded",
            report.adopted_now
        );
    }
    for r in &report.replaced {
        let _ = writeln!(out, "replaced {}: {}", r.path, r.reason);
    }
    if let Some(reindexed) = &report.reindexed {
        out.push_str("the database knew no file of this archive; reindexed after the listing:\n");
        out.push_str(&reindex(reindexed));
    }
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

/// What `reindex` recorded, and each `meeting.json` it could not read or that
/// disagrees with the database.
pub fn reindex(report: &ReindexReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "read {} meeting.json in {}: recorded {} meeting(s) and {} file(s) ({} deleted in the cloud); {} file(s) already known; in {}",
        report.folders,
        report.archive,
        report.meetings_added,
        report.files_added,
        report.deleted_in_cloud_added,
        report.files_known,
        Span(Duration::from_millis(report.elapsed_ms))
    );
    match &report.layout {
        Some(layout) => {
            let _ = writeln!(out, "layout: {layout}");
        }
        None => out.push_str("no archive marker: the layout is the configured one\n"),
    }
    if report.interrupted {
        out.push_str("interrupted: run reindex again to finish\n");
    }
    for (path, why) in &report.unreadable {
        let _ = writeln!(
            out,
            "unreadable {path}: {why} (nothing of its folder was recorded)"
        );
    }
    for d in &report.disagreements {
        let _ = writeln!(out, "disagreement (not applied) {d}");
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

/// `relayout`: each move, then how many.
/// Retention, holds and the audit trail: what `status` says of them.
fn retention(
    out: &mut String,
    report: &StatusReport,
    config: &Config,
    when: &dyn Fn(Option<UnixMs>) -> String,
) {
    let r = &report.retention;
    let keep = config.retention.keep.map_or_else(
        || "not set".to_owned(),
        |k| humantime::format_duration(k).to_string(),
    );
    let mode = config.retention.mode.map_or_else(
        || "none".to_owned(),
        |m| format!("{m} (S3 Object Lock until start + keep)"),
    );
    let _ = writeln!(
        out,
        "retention: keep {keep}, expire {}, mode {mode}; {} recording(s) expired",
        if config.retention.expire { "on" } else { "off" },
        r.expired_recordings
    );
    let _ = writeln!(
        out,
        "legal holds: {} in force, on {} recording(s)",
        r.holds_in_force, r.held_recordings
    );
    match &r.last_record {
        None => out.push_str(
            "audit trail: no record yet
",
        ),
        Some(last) => {
            let _ = writeln!(
                out,
                "audit trail: {} record(s), the last #{} `{}` {}",
                last.seq,
                last.seq,
                last.action,
                when(Some(last.at_ms))
            );
        }
    }
    match &r.last_check {
        None => out.push_str(
            "audit verify: never (run `wemeet-archiver audit verify`)
",
        ),
        Some(c) if c.passed => {
            let _ = writeln!(
                out,
                "audit verify: passed {} ({} record(s))",
                when(Some(c.at_ms)),
                c.records
            );
        }
        Some(c) => {
            let _ = writeln!(
                out,
                "audit verify: FAILED {}: {}",
                when(Some(c.at_ms)),
                c.problem.as_deref().unwrap_or("-")
            );
        }
    }
}

pub fn relayout(report: &wemeet_archiver::RelayoutReport) -> String {
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
    for path in &report.held {
        let _ = writeln!(out, "{path}: on legal hold, stays where it is");
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

/// `status` at `now`: the archive's state, the service's facts, what failed and why.
pub fn status(report: &StatusReport, config: &Config, now: UnixMs) -> String {
    let when = |t| when_at(t, now);
    let mut out = String::new();
    archive_lines(&mut out, report, config, &when);
    service_lines(&mut out, report, &when);
    match report.files_verified {
        0 => out.push_str("verified: never (run `wemeet-archiver verify`)\n"),
        n => {
            let _ = writeln!(
                out,
                "verified: {n} archived file(s) found intact; the oldest check {}, the newest {}",
                when(report.oldest_verified_at),
                when(report.newest_verified_at)
            );
        }
    }
    retention(&mut out, report, config, &when);
    unfinished_lines(&mut out, report, &when);
    out
}

/// `status`: what the archive holds and what the API budgets allow now.
fn archive_lines(
    out: &mut String,
    report: &StatusReport,
    config: &Config,
    when: &dyn Fn(Option<UnixMs>) -> String,
) {
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
        "archived: {}; still to download: {}",
        Size::of(report.bytes_archived),
        Size::of(report.bytes_pending)
    );
    let _ = match report.last_listing_at {
        Some(_) => writeln!(
            out,
            "windows listed: {}, the last {}",
            report.windows_listed,
            when(report.last_listing_at)
        ),
        None => writeln!(out, "windows listed: {}", report.windows_listed),
    };
    let _ = writeln!(
        out,
        "deleted in the cloud: {} archived file(s), {} freed{}",
        report.files_deleted_in_cloud,
        Size::of(report.bytes_freed),
        if config.prune.enabled {
            ""
        } else {
            " (prune.enabled is off)"
        }
    );
    if report.files_adopted + report.files_reindexed > 0 {
        let _ = writeln!(
            out,
            "rebuilt from the archive: {} file(s) adopted ({} without a recorded SHA-256), {} reindexed",
            report.files_adopted, report.files_adopted_without_record, report.files_reindexed
        );
    }
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
}

/// `status`: the service's polls, prune rounds, background backfill, webhook and failures.
fn service_lines(out: &mut String, report: &StatusReport, when: &dyn Fn(Option<UnixMs>) -> String) {
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
    if let Some(e) = &report.webhook.last_event {
        let events = report.webhook.events.iter().map(|(k, v)| (k.as_str(), *v));
        let _ = writeln!(
            out,
            "webhook: last event {}, {} (trace {}, {} deliver{}, {}{}); events: {}",
            e.event,
            when(Some(e.last_received_at)),
            e.trace_id,
            e.deliveries,
            if e.deliveries == 1 { "y" } else { "ies" },
            e.status.as_str(),
            e.last_error
                .as_deref()
                .map(|why| format!(": {why}"))
                .unwrap_or_default(),
            counts(events)
        );
        if let Some(u) = &report.webhook.last_unreadable {
            let _ = writeln!(
                out,
                "webhook: {} signed event(s) could not be read (acknowledged, kept raw in webhook_events.body, the live window listed for each); the last {} (trace {}): {}",
                report.webhook.unreadable,
                when(Some(u.received_at)),
                u.trace_id,
                u.unreadable
            );
        }
    }
    if let Some(p) = &d.oldest_pending {
        let _ = writeln!(
            out,
            "oldest pending file: {} ({}), seen first {}",
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
}

/// `status`: uploads in progress and the files that could not be archived.
fn unfinished_lines(
    out: &mut String,
    report: &StatusReport,
    when: &dyn Fn(Option<UnixMs>) -> String,
) {
    if !report.uploads.is_empty() {
        let _ = writeln!(out, "uploads in progress ({}):", report.uploads.len());
        for u in &report.uploads {
            let _ = writeln!(
                out,
                "  {} {} of {} in {} part(s), started {}",
                u.path,
                Size::of(u.bytes_uploaded),
                Size::of(u.record_size),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_say_how_long_ago_then_when() {
        let now = UnixMs(1_793_491_200_000); // 2026-11-01T00:00:00Z
        let ago = UnixMs(now.0 - (2 * 3600 + 14 * 60) * 1000);
        assert_eq!(
            when_at(Some(ago), now),
            "2 h 14 min ago (2026-10-31T21:46:00+00:00)"
        );
        assert_eq!(
            when_at(Some(UnixMs(now.0 + 40_000)), now),
            "in 40 s (2026-11-01T00:00:40+00:00)"
        );
        assert_eq!(when_at(None, now), "never");
    }

    #[test]
    fn a_backfill_summary_gives_sizes_and_time_in_words() {
        let report = BackfillReport {
            windows: 3,
            failed_windows: Vec::new(),
            meetings_seen: 40,
            archived_now: 12,
            bytes_now: 88_144_665,
            adopted_now: 0,
            replaced: Vec::new(),
            not_archived: Vec::new(),
            pending_meetings: 0,
            interrupted: false,
            reindexed: None,
        };
        assert_eq!(
            backfill(&report, Duration::from_secs(2 * 3600 + 14 * 60)),
            "listed 3 window(s), 40 meeting(s); archived 12 file(s), 88.1 MB in this run, \
             in 2 h 14 min\n"
        );
    }
}
