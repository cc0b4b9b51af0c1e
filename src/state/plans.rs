//! The statements of the hot path, listed once, and the test that each one's query plan
//! (`EXPLAIN QUERY PLAN` on a migrated database) seeks an index rather than scanning
//! `meetings` or `files`: the cost of archiving one more recording, of `status` or of a
//! live poll must not grow with the archive (issue #21; measured in `bench/run.sh growth`).
//!
//! The lists name the very constants the code runs, so a statement changed without its
//! index fails here, not in a 100k-meeting benchmark.

use super::{artifacts, facts, files, life, meetings, prune, skips, status, verify};

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

/// The statements of `$access`, named by their constants (`module: CONSTANT ...;`).
macro_rules! statements {
    ($access:ident { $($module:ident: $($sql:ident)+;)+ }) => {
        &[$($(Statement {
            name: concat!(stringify!($module), "::", stringify!($sql)),
            sql: $module::$sql,
            access: Access::$access,
        },)+)+]
    };
}

/// Every statement of the hot path that seeks: claiming and the file's life (`life`), a
/// file and its address (`files`), `meeting.json` and a listed page (`meetings`), the idle
/// worker's look for artifacts, `[filter]` at every start (`skips`), `status` (`status`,
/// `verify`, `facts`), `verify`'s planning and `prune`'s candidates.
pub(super) const SEEKS: &[Statement] = statements! { Seek {
    life: CLAIM_LOOK CLAIM_TAKE SAVE_CHECKPOINT MARK_ARCHIVED RECORD_FAILURE NOTE_ERROR RELEASE
        UPSERT_FILE JUDGED SKIP_ARTIFACTS QUEUE_ARTIFACTS MARK_VERIFIED;
    files: FILE MARK_MEETING_JSON_DIRTY SET_ADDRESS FORGET_ADDRESS FILES_OF_MEETING
        UNARCHIVED_IN_RANGE;
    meetings: MEETINGS_IN_DIR QUIET_STALE_DIRS OLDEST_STALE MEETING_JSON_WRITTEN UPSERT_MEETING
        PENDING_MEETINGS;
    artifacts: CLAIM_ARTIFACT_CHECK;
    skips: TO_JUDGE;
    status: TO_DO TRANSCRIPT_WAITS BYTES_ARCHIVED DELETED_IN_CLOUD ADOPTED_AND_REINDEXED FAILURES
        SKIPPED_BY_RULE;
    verify: VERIFICATION_SUMMARY FILES_TO_VERIFY;
    facts: OLDEST_PENDING_ADDRESS OLDEST_PENDING FAILURES_BY_REASON;
    prune: PRUNE_CANDIDATES COUNT_PRUNE_CANDIDATES ARCHIVED_ARTIFACTS;
} };

/// The hot path's counts and lists of the whole archive.
pub(super) const WHOLE_ARCHIVE: &[Statement] = statements! { WholeArchive {
    status: MEETINGS_BY_STATE FILES_BY_KIND_AND_STATUS;
    verify: FILE_PATHS;
} };

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
        for statement in SEEKS.iter().chain(WHOLE_ARCHIVE) {
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
