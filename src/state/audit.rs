//! The audit trail in the database: append-only, hash-chained records of everything that
//! changes what the archive holds or promises (archived, verified, deleted in the cloud,
//! moved, held, released, expired; `adopted` and `reindexed` for `reindex`).
//!
//! A record's `hash` is the SHA-256 of its canonical JSON without `hash` (the fields of
//! `Unhashed` in their fixed order, `details` with sorted keys as `serde_json` writes a
//! map), and `prev` the hash of the record before it: changing, removing or reordering one
//! record breaks the chain at that record. Records are appended in the transaction of the
//! change they describe where there is one, so the state and its history never disagree.

use super::{Db, DbError};
use crate::domain::{MeetingRecordId, RecordFileId};
use crate::time::UnixMs;
use sha2::{Digest as _, Sha256};
use sqlx::SqliteConnection;

/// Records per segment at most: a backfill of a whole account is written in pieces of
/// about half a megabyte, each held in memory once. (Pieces of 10,000 records, 5 MB,
/// made the end of a backfill of 100k meetings the peak of its memory, 70 MB where one of
/// 1k needs 25: a piece is read whole, then turned into text.)
const SEGMENT_RECORDS: i64 = 1_000;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a record says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A file became archived: its path, size and SHA-256.
    Archived,
    /// One `verify` run: its summary.
    Verified,
    /// One problem a `verify` run found: its path, status and detail.
    Finding,
    /// The cloud no longer holds a file: deleted by `prune`, or by someone (an event).
    DeletedInCloud,
    /// `relayout` moved a file.
    Moved,
    /// A legal hold was placed.
    Held,
    /// A legal hold was released.
    Released,
    /// `expire` removed a recording from the archive, past `retention.keep`.
    Expired,
    /// A transfer found an intact copy at the file's destination and adopted it.
    Adopted,
    /// `reindex` rebuilt the database from the archive: its summary.
    Reindexed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Archived => "archived",
            Self::Verified => "verified",
            Self::Finding => "finding",
            Self::DeletedInCloud => "deleted_in_cloud",
            Self::Moved => "moved",
            Self::Held => "held",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Adopted => "adopted",
            Self::Reindexed => "reindexed",
        }
    }
}

/// What the caller says about a change; the store adds the sequence, time and chain.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub action: Action,
    pub meeting_record_id: Option<MeetingRecordId>,
    pub record_file_id: Option<RecordFileId>,
    /// Path, size, SHA-256, a verify summary...: a JSON object.
    pub details: serde_json::Value,
}

impl AuditEntry {
    pub fn new(action: Action, details: serde_json::Value) -> Self {
        Self {
            action,
            meeting_record_id: None,
            record_file_id: None,
            details,
        }
    }

    pub fn meeting(mut self, meeting_record_id: impl Into<MeetingRecordId>) -> Self {
        self.meeting_record_id = Some(meeting_record_id.into());
        self
    }

    pub fn file(mut self, record_file_id: impl Into<RecordFileId>) -> Self {
        self.record_file_id = Some(record_file_id.into());
        self
    }
}

/// One record of the trail, as it is written in the archive (one JSON line) and exported.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    pub action: String,
    pub meeting_record_id: Option<String>,
    pub record_file_id: Option<String>,
    pub details: serde_json::Value,
    pub prev: String,
    pub hash: String,
}

/// The hashed part of a record: every field but `hash`, in this order.
#[derive(serde::Serialize)]
struct Unhashed<'a> {
    seq: i64,
    at: &'a str,
    action: &'a str,
    meeting_record_id: Option<&'a str>,
    record_file_id: Option<&'a str>,
    details: &'a serde_json::Value,
    prev: &'a str,
}

impl AuditRecord {
    /// The hash its content should have: compare with `hash` to find it altered.
    pub fn computed_hash(&self) -> String {
        let unhashed = Unhashed {
            seq: self.seq,
            at: &self.at,
            action: &self.action,
            meeting_record_id: self.meeting_record_id.as_deref(),
            record_file_id: self.record_file_id.as_deref(),
            details: &self.details,
            prev: &self.prev,
        };
        let bytes = serde_json::to_vec(&unhashed).expect("a record serialises");
        hex::encode(Sha256::digest(bytes))
    }

    /// The record as one line of the archive's copy (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a record serialises")
    }
}

/// A row of `audit_log`, `details` still text.
#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    at: String,
    action: String,
    meeting_record_id: Option<String>,
    record_file_id: Option<String>,
    details: String,
    prev: String,
    hash: String,
}

impl From<Row> for AuditRecord {
    /// Details that are not JSON (edited in the database) become a string: the hash
    /// then tells that the record was altered.
    fn from(r: Row) -> Self {
        let details =
            serde_json::from_str(&r.details).unwrap_or(serde_json::Value::String(r.details));
        Self {
            seq: r.seq,
            at: r.at,
            action: r.action,
            meeting_record_id: r.meeting_record_id,
            record_file_id: r.record_file_id,
            details,
            prev: r.prev,
            hash: r.hash,
        }
    }
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT seq, at, action, meeting_record_id, record_file_id, details,
                    prev_hash AS prev, hash FROM audit_log ",
            $tail
        )
    };
}

/// Appends `entry` on `conn`, inside the caller's `BEGIN IMMEDIATE` transaction (which
/// makes reading the last hash and inserting the next record one step).
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    entry: &AuditEntry,
    now: UnixMs,
) -> Result<AuditRecord, DbError> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (seq, prev) = last.map_or((1, GENESIS.to_owned()), |(s, h)| (s + 1, h));
    let at = chrono::DateTime::from_timestamp_millis(now.as_millis())
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut record = AuditRecord {
        seq,
        at,
        action: entry.action.as_str().to_owned(),
        meeting_record_id: entry.meeting_record_id.as_ref().map(ToString::to_string),
        record_file_id: entry.record_file_id.as_ref().map(ToString::to_string),
        details: entry.details.clone(),
        prev,
        hash: String::new(),
    };
    record.hash = record.computed_hash();
    sqlx::query(
        "INSERT INTO audit_log (seq, at_ms, at, action, meeting_record_id, record_file_id,
                                details, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(record.seq)
    .bind(now)
    .bind(&record.at)
    .bind(&record.action)
    .bind(&record.meeting_record_id)
    .bind(&record.record_file_id)
    .bind(record.details.to_string())
    .bind(&record.prev)
    .bind(&record.hash)
    .execute(&mut *conn)
    .await?;
    Ok(record)
}

/// A segment of the archive's copy of the trail.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditSegment {
    pub first_seq: i64,
    pub last_seq: i64,
    /// Relative to the archive root.
    pub path: String,
    pub written_at: Option<UnixMs>,
}

/// The outcome of the last `audit verify`.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct AuditCheck {
    pub at_ms: UnixMs,
    pub passed: bool,
    pub records: i64,
    pub problem: Option<String>,
}

/// What `status` and `/metrics` say of holds, expiry and the audit trail.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RetentionStatus {
    pub holds_in_force: i64,
    /// Recordings under at least one hold in force.
    pub held_recordings: i64,
    /// Recordings `expire` removed from the archive.
    pub expired_recordings: i64,
    /// The newest record of the audit trail: `seq` is how many there are.
    pub last_record: Option<LastRecord>,
    /// The last `audit verify`.
    pub last_check: Option<AuditCheck>,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct LastRecord {
    pub seq: i64,
    pub at_ms: UnixMs,
    pub action: String,
}

impl Db {
    pub async fn retention_status(&self) -> Result<RetentionStatus, DbError> {
        let holds_in_force: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM holds WHERE released_at IS NULL")
                .fetch_one(self.pool())
                .await?;
        let held_recordings: i64 = sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM meetings m WHERE ",
            super::holds::held_sql!()
        ))
        .fetch_one(self.pool())
        .await?;
        let expired_recordings: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM meetings WHERE expired_at IS NOT NULL")
                .fetch_one(self.pool())
                .await?;
        let last_record =
            sqlx::query_as("SELECT seq, at_ms, action FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(self.pool())
                .await?;
        Ok(RetentionStatus {
            holds_in_force,
            held_recordings,
            expired_recordings,
            last_record,
            last_check: self.last_audit_check().await?,
        })
    }

    /// Appends one record on its own: the public hook for changes recorded outside a
    /// transaction of this crate (`reindex`'s `adopted` and `reindexed`).
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let record = append(&mut tx, entry, UnixMs::now()).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Appends several records in one transaction (a verify run and its findings).
    pub async fn record_audit_all(&self, entries: &[AuditEntry]) -> Result<(), DbError> {
        let now = UnixMs::now();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        for entry in entries {
            append(&mut tx, entry, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records with `first <= seq <= last`, in order.
    pub async fn audit_records(&self, first: i64, last: i64) -> Result<Vec<AuditRecord>, DbError> {
        let rows: Vec<Row> = sqlx::query_as(select!("WHERE seq BETWEEN ? AND ? ORDER BY seq"))
            .bind(first)
            .bind(last)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Records made in `[since, until]` (either bound optional), in order.
    pub async fn audit_records_between(
        &self,
        since: Option<UnixMs>,
        until: Option<UnixMs>,
    ) -> Result<Vec<AuditRecord>, DbError> {
        let rows: Vec<Row> = sqlx::query_as(select!(
            "WHERE (?1 IS NULL OR at_ms >= ?1) AND (?2 IS NULL OR at_ms <= ?2) ORDER BY seq"
        ))
        .bind(since)
        .bind(until)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The newest record, if any.
    pub async fn last_audit_record(&self) -> Result<Option<AuditRecord>, DbError> {
        let row: Option<Row> = sqlx::query_as(select!("ORDER BY seq DESC LIMIT 1"))
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(Into::into))
    }

    /// Claims segments (of `SEGMENT_RECORDS` at most) for the records not in any segment
    /// yet, each named by `path_of(first, last)`, and returns every segment still to be
    /// written: the new ones and any a crash left claimed.
    pub async fn claim_audit_segments(
        &self,
        path_of: impl Fn(i64, i64) -> String,
    ) -> Result<Vec<AuditSegment>, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let covered: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(last_seq), 0) FROM audit_segments")
                .fetch_one(&mut *tx)
                .await?;
        let newest: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_log")
            .fetch_one(&mut *tx)
            .await?;
        let mut covered = covered;
        while newest > covered {
            let last = newest.min(covered + SEGMENT_RECORDS);
            sqlx::query("INSERT INTO audit_segments (first_seq, last_seq, path) VALUES (?, ?, ?)")
                .bind(covered + 1)
                .bind(last)
                .bind(path_of(covered + 1, last))
                .execute(&mut *tx)
                .await?;
            covered = last;
        }
        let unwritten = sqlx::query_as(
            "SELECT first_seq, last_seq, path, written_at FROM audit_segments
             WHERE written_at IS NULL ORDER BY first_seq",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(unwritten)
    }

    /// Imports the trail an archive carries into an empty log (`records` in order, and the
    /// segments they were read from, as written): refused, importing nothing, if the log
    /// has a record already. `audit verify` checks the chain as ever.
    pub async fn import_audit_trail(
        &self,
        records: &[AuditRecord],
        segments: &[(i64, i64, String)],
    ) -> Result<u64, DbError> {
        let now = UnixMs::now();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let any: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_log LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        if any.is_some() {
            return Ok(0);
        }
        for r in records {
            let at_ms =
                chrono::DateTime::parse_from_rfc3339(&r.at).map_or(0, |t| t.timestamp_millis());
            sqlx::query(
                "INSERT OR IGNORE INTO audit_log (seq, at_ms, at, action, meeting_record_id,
                   record_file_id, details, prev_hash, hash)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(r.seq)
            .bind(at_ms)
            .bind(&r.at)
            .bind(&r.action)
            .bind(&r.meeting_record_id)
            .bind(&r.record_file_id)
            .bind(serde_json::to_string(&r.details).expect("JSON serialises"))
            .bind(&r.prev)
            .bind(&r.hash)
            .execute(&mut *tx)
            .await?;
        }
        for (first, last, path) in segments {
            sqlx::query(
                "INSERT OR IGNORE INTO audit_segments (first_seq, last_seq, path, written_at)
                 VALUES (?, ?, ?, ?)",
            )
            .bind(first)
            .bind(last)
            .bind(path)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(records.len() as u64)
    }

    pub async fn mark_audit_segment_written(&self, first_seq: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE audit_segments SET written_at = ? WHERE first_seq = ?")
            .bind(UnixMs::now())
            .bind(first_seq)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Every segment, in order.
    pub async fn audit_segments(&self) -> Result<Vec<AuditSegment>, DbError> {
        Ok(sqlx::query_as(
            "SELECT first_seq, last_seq, path, written_at FROM audit_segments ORDER BY first_seq",
        )
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn record_audit_check(
        &self,
        passed: bool,
        records: i64,
        problem: Option<&str>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO audit_checks (id, at_ms, passed, records, problem) VALUES (1, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms, passed = excluded.passed,
               records = excluded.records, problem = excluded.problem",
        )
        .bind(UnixMs::now())
        .bind(passed)
        .bind(records)
        .bind(problem)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    pub async fn last_audit_check(&self) -> Result<Option<AuditCheck>, DbError> {
        Ok(
            sqlx::query_as("SELECT at_ms, passed, records, problem FROM audit_checks WHERE id = 1")
                .fetch_optional(self.pool())
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::temp_store;

    #[tokio::test]
    async fn records_chain_and_a_change_breaks_the_hash() {
        let (store, _dir) = temp_store().await;
        let a = store
            .record_audit(&AuditEntry::new(
                Action::Held,
                serde_json::json!({"b": 1, "a": "x"}),
            ))
            .await
            .unwrap();
        let b = store
            .record_audit(&AuditEntry::new(Action::Released, serde_json::json!({})).meeting("m"))
            .await
            .unwrap();
        assert_eq!((a.seq, a.prev.as_str()), (1, GENESIS));
        assert_eq!((b.seq, &b.prev), (2, &a.hash));
        let stored = store.audit_records(1, 2).await.unwrap();
        assert_eq!(stored, vec![a.clone(), b]);
        let line = a.to_line();
        let reread: AuditRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(reread.computed_hash(), a.hash);
        let altered: AuditRecord = serde_json::from_str(&line.replace("\"x\"", "\"y\"")).unwrap();
        assert_ne!(altered.computed_hash(), a.hash);
    }
}
