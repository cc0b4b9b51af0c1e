//! `[filter]` against the files already listed, at every start: no listing call needed.
//!
//! A widened filter queues the `skipped` files it now takes; a narrowed one skips the files
//! it now leaves out, unless they are archived: an archived copy is never deleted nor
//! forgotten because the filter changed (it stays `archived`, verified and pruned as
//! before). Audio tracks and transcripts follow their video.

use super::{Db, DbError, FileStatus, life};
use crate::domain::{RecordFileId, SkipRule};
use crate::filter::{Candidate, Filter};
use crate::time::UnixMs;

/// What applying the filter changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refiltered {
    /// Files newly left out.
    pub skipped: u64,
    /// Skipped files queued again.
    pub queued: u64,
}

#[derive(sqlx::FromRow)]
struct Judged {
    record_file_id: RecordFileId,
    status: FileStatus,
    skip_rule: Option<SkipRule>,
    userid: String,
    subject: String,
    record_type: i64,
    record_start_time: i64,
    record_end_time: i64,
    record_size: u64,
}

/// The videos the filter judges again: every one not archived.
pub(super) const TO_JUDGE: &str =
    "SELECT f.record_file_id, f.status, f.skip_rule, m.userid, m.subject, m.record_type,
            f.record_start_time, f.record_end_time, f.record_size
     FROM files f JOIN meetings m USING (meeting_record_id)
     WHERE f.kind = 'video'
       AND f.status IN ('queued', 'transferring', 'failed', 'unavailable', 'skipped')";

impl Db {
    /// Re-evaluates `filter` on every video not archived, in one transaction. Called while
    /// the process holds the database lock and before any worker runs, so a `transferring`
    /// row is a leftover of a dead process and may be skipped like a queued one.
    pub async fn apply_filter(&self, filter: &Filter) -> Result<Refiltered, DbError> {
        let now = UnixMs::now();
        let mut done = Refiltered::default();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let rows: Vec<Judged> = sqlx::query_as(TO_JUDGE).fetch_all(&mut *tx).await?;
        for row in rows {
            let rule = filter.skip_rule(&Candidate {
                userid: &row.userid,
                subject: &row.subject,
                record_type: row.record_type,
                duration_ms: row.record_end_time - row.record_start_time,
                size: row.record_size,
            });
            // Nothing to change: the row already says what the filter says.
            if rule == row.skip_rule && rule.is_some() == (row.status == FileStatus::Skipped) {
                continue;
            }
            let judged = life::Changes::new(&mut tx, now)
                .judged(&row.record_file_id, rule.as_ref())
                .await?;
            match judged {
                FileStatus::Queued if row.status == FileStatus::Skipped => done.queued += 1,
                FileStatus::Skipped if row.status != FileStatus::Skipped => done.skipped += 1,
                _ => {}
            }
        }
        let (skipped, queued) = life::Changes::new(&mut tx, now).artifacts_follow().await?;
        done.skipped += skipped;
        done.queued += queued;
        tx.commit().await?;
        self.wake_workers();
        Ok(done)
    }
}
