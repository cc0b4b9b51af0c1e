//! The statements of the hot path, listed once, and the test that each one's query plan
//! (`EXPLAIN QUERY PLAN` on a migrated database) seeks an index rather than scanning
//! `meetings` or `files`: the cost of archiving one more recording, of `status` or of a
//! live poll must not grow with the archive (issue #21; measured in `bench/run.sh growth`).
//!
//! The list names the very constants the code runs, so a statement changed without its
//! index fails here, not in a 100k-meeting benchmark.

use super::{artifacts, facts, files, meetings, prune, skips, status, verify};

/// How a statement may read `meetings` and `files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Only index seeks (`SEARCH`): its cost does not depend on the number of rows.
    Seek,
    /// A count or list of the whole archive (`status`'s totals, `verify`'s every path):
    /// it may walk an index that covers it, never the table's rows.
    WholeArchive,
}

/// One statement of the hot path: what it is for, its SQL, the access it must keep to.
pub(super) struct Statement {
    pub(super) name: &'static str,
    pub(super) sql: &'static str,
    pub(super) access: Access,
}

const fn seek(name: &'static str, sql: &'static str) -> Statement {
    Statement {
        name,
        sql,
        access: Access::Seek,
    }
}

const fn whole(name: &'static str, sql: &'static str) -> Statement {
    Statement {
        name,
        sql,
        access: Access::WholeArchive,
    }
}

/// Every statement of the hot path.
pub(super) const HOT_PATH: &[Statement] = &[
    // claiming
    seek("claim: the next queued file", files::CLAIM_LOOK),
    seek("claim: take it", files::CLAIM_TAKE),
    seek("a file", files::FILE),
    // transfers
    seek("checkpoint", files::SAVE_CHECKPOINT),
    seek("mark archived", files::MARK_ARCHIVED),
    seek("mark meeting.json behind", files::MARK_MEETING_JSON_DIRTY),
    seek("record a failure", files::RECORD_FAILURE),
    seek("note an error", files::NOTE_ERROR),
    seek("release a claim", files::RELEASE),
    seek("set an address", files::SET_ADDRESS),
    seek("forget an address", files::FORGET_ADDRESS),
    // meeting.json
    seek(
        "meeting.json: meetings of a folder",
        meetings::MEETINGS_IN_DIR,
    ),
    seek("meeting.json: files of a meeting", files::FILES_OF_MEETING),
    seek(
        "meeting.json: quiet stale folders",
        meetings::QUIET_STALE_DIRS,
    ),
    seek("meeting.json: oldest change", meetings::OLDEST_STALE),
    seek("meeting.json: written", meetings::MEETING_JSON_WRITTEN),
    // a listed page
    seek("upsert a meeting", meetings::UPSERT_MEETING),
    seek("upsert a file", meetings::UPSERT_FILE),
    seek(
        "live poll: meetings still pending",
        meetings::PENDING_MEETINGS,
    ),
    seek(
        "idle worker: a meeting's artifacts to look for",
        artifacts::CLAIM_ARTIFACT_CHECK,
    ),
    // the end of a backfill (and of a live poll's, in a process of its own)
    seek("backfill: files not archived", files::UNARCHIVED_IN_RANGE),
    // [filter] applied again at every start
    seek("filter: videos to judge", skips::TO_JUDGE),
    seek("filter: a judged video", skips::JUDGED),
    seek("filter: artifacts of skipped videos", skips::SKIP_ARTIFACTS),
    seek("filter: artifacts of queued videos", skips::QUEUE_ARTIFACTS),
    // status
    seek("status: to do", status::TO_DO),
    whole("status: meetings by state", status::MEETINGS_BY_STATE),
    whole(
        "status: files by kind and status",
        status::FILES_BY_KIND_AND_STATUS,
    ),
    seek("status: transcript waits", status::TRANSCRIPT_WAITS),
    seek("status: bytes archived", status::BYTES_ARCHIVED),
    seek("status: deleted in the cloud", status::DELETED_IN_CLOUD),
    seek(
        "status: adopted and reindexed",
        status::ADOPTED_AND_REINDEXED,
    ),
    seek("status: failures", status::FAILURES),
    seek("status: skipped by rule", status::SKIPPED_BY_RULE),
    seek("status: verified", verify::VERIFICATION_SUMMARY),
    seek("status: oldest address", facts::OLDEST_PENDING_ADDRESS),
    seek("status: oldest pending", facts::OLDEST_PENDING),
    seek("status: failures by reason", facts::FAILURES_BY_REASON),
    // verify's planning
    seek("verify: files in range", verify::FILES_TO_VERIFY),
    whole("verify: every path", verify::FILE_PATHS),
    seek("verify: mark verified", verify::MARK_VERIFIED),
    // prune's candidates
    seek("prune: candidates", prune::PRUNE_CANDIDATES),
    seek("prune: count candidates", prune::COUNT_PRUNE_CANDIDATES),
    seek("prune: a candidate's artifacts", prune::ARCHIVED_ARTIFACTS),
];

/// Names under which the plans refer to `meetings` and `files` (the tables and the
/// aliases the statements give them).
const BIG_TABLES: &[&str] = &["meetings", "files", "m", "f", "v", "t", "a"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::temp_store;

    /// The plan of `sql` on `pool`, one detail line per step.
    async fn plan(pool: &sqlx::SqlitePool, sql: &str) -> Vec<String> {
        use sqlx::Row;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("cannot plan {sql}: {e}"))
            .iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect()
    }

    /// The big table a plan step scans, if any (`SCAN f USING INDEX x` scans `f`).
    fn scanned(step: &str) -> Option<&str> {
        let table = step.strip_prefix("SCAN ")?.split_whitespace().next()?;
        BIG_TABLES.contains(&table).then_some(table)
    }

    #[tokio::test]
    async fn every_hot_path_statement_seeks_an_index() {
        let (store, _dir) = temp_store().await;
        let mut offenders = Vec::new();
        for statement in HOT_PATH {
            let steps = plan(store.pool(), statement.sql).await;
            let bad: Vec<_> = steps
                .iter()
                .filter(|step| match statement.access {
                    Access::Seek => scanned(step).is_some(),
                    Access::WholeArchive => {
                        scanned(step).is_some() && !step.contains(" USING COVERING INDEX ")
                    }
                })
                .collect();
            if !bad.is_empty() {
                offenders.push(format!("{}: {bad:?} in {steps:?}", statement.name));
            }
        }
        assert!(
            offenders.is_empty(),
            "statements that scan:\n{}",
            offenders.join("\n")
        );
    }
}
