//! `expire`: removing from the archive the recordings kept past `retention.keep`, counted
//! from the meeting's start; opt-in (`retention.expire`), never a held recording, each
//! removal recorded in the audit trail and in `meeting.json`.
//!
//! Each recording's files are removed first, then it is marked expired with its audit
//! record in one transaction: a run killed between the two leaves a recording whose files
//! are gone and which is still due, so the next run removes nothing more and records it.

use super::{App, AppError};
use crate::state::ExpiringRecording;
use crate::time::UnixMs;

/// Why `expire` refused to run.
#[derive(Debug, thiserror::Error)]
pub enum ExpireError {
    #[error(
        "retention.keep is not set: say how long recordings must be kept (e.g. keep = \"6y\" \
         in [retention]) before anything can expire"
    )]
    NoPeriod,
    #[error(
        "expiring recordings removes them from the archive for good, so it is opt-in: set \
         expire = true in [retention] (try `wemeet-archiver expire --dry-run` first)"
    )]
    NotEnabled,
}

/// What became of one recording past its retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpireOutcome {
    Expired,
    /// `--dry-run`: a real run would remove it.
    WouldExpire,
    /// Under a legal hold: kept.
    Held,
    /// Its files could not all be removed (`detail`): it stays due.
    Failed,
}

/// One recording of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExpireRow {
    #[serde(flatten)]
    pub recording: ExpiringRecording,
    pub outcome: ExpireOutcome,
    pub detail: Option<String>,
}

/// What one run did, or (`dry_run`) would do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExpireReport {
    pub dry_run: bool,
    /// `retention.keep`, as configured.
    pub keep: String,
    /// Recordings that started before this instant are past `keep` (RFC 3339).
    pub started_before: String,
    pub recordings: Vec<ExpireRow>,
}

impl ExpireReport {
    pub fn count(&self, outcome: ExpireOutcome) -> usize {
        self.recordings
            .iter()
            .filter(|r| r.outcome == outcome)
            .count()
    }
}

impl App {
    /// `expire [--dry-run]`: see the module.
    pub async fn expire(&self, dry_run: bool) -> Result<ExpireReport, AppError> {
        let retention = &self.config.retention;
        let keep = retention.keep.ok_or(ExpireError::NoPeriod)?;
        if !dry_run && !retention.expire {
            return Err(ExpireError::NotEnabled.into());
        }
        let keep_text = humantime::format_duration(keep).to_string();
        let cut_off = UnixMs::now() - keep;
        let (free, held) = self.store.expiring_recordings(cut_off).await?;
        let mut report = ExpireReport {
            dry_run,
            keep: keep_text.clone(),
            started_before: cut_off.to_rfc3339().unwrap_or_default(),
            recordings: Vec::new(),
        };
        for recording in held {
            let holds = self.store.holds_on(&recording.meeting_record_id).await?;
            let holds: Vec<String> = holds.iter().map(ToString::to_string).collect();
            report.recordings.push(ExpireRow {
                recording,
                outcome: ExpireOutcome::Held,
                detail: Some(format!("on legal hold {}", holds.join(", "))),
            });
        }
        let archive = self.archive()?;
        for recording in free {
            if dry_run {
                report.recordings.push(ExpireRow {
                    recording,
                    outcome: ExpireOutcome::WouldExpire,
                    detail: None,
                });
                continue;
            }
            // A hold placed since the listing above wins: look again right before.
            if !self
                .store
                .holds_on(&recording.meeting_record_id)
                .await?
                .is_empty()
            {
                report.recordings.push(ExpireRow {
                    recording,
                    outcome: ExpireOutcome::Held,
                    detail: Some("placed on legal hold during this run".into()),
                });
                continue;
            }
            let mut failed = None;
            for file in &recording.files {
                if let Err(e) = archive.remove(&file.path).await {
                    failed = Some(format!("{}: {}", file.path, crate::errors::chain(&e)));
                    break;
                }
            }
            let outcome = match failed {
                Some(_) => ExpireOutcome::Failed,
                None if self
                    .store
                    .mark_expired(&recording, &keep_text, UnixMs::now())
                    .await? =>
                {
                    tracing::info!(meeting_record_id = %recording.meeting_record_id, files = recording.files.len(), "expired from the archive");
                    ExpireOutcome::Expired
                }
                None => ExpireOutcome::Held,
            };
            report.recordings.push(ExpireRow {
                recording,
                outcome,
                detail: failed,
            });
        }
        if !dry_run {
            crate::archive::meeting_json::rewrite_stale(&self.store, archive.as_ref()).await?;
            crate::audit::write_trail_or_warn(&self.store, archive.as_ref()).await;
        }
        Ok(report)
    }
}
