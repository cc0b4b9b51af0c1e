//! Legal holds (`migrations/0021_holds.sql`): a recording named by a hold still in force
//! is never expired, pruned from the cloud, moved or rewritten. A hold names one
//! recording, every recording of one creator, or the recordings that started in a range.
//! Placing and releasing one is recorded in the audit trail in the same transaction.

use super::audit::{self, Action, AuditEntry};
use super::{Db, DbError};
use crate::domain::MeetingRecordId;
use crate::time::UnixMs;

/// The SQL condition "the meeting `m` is under a hold in force", for queries that alias
/// `meetings` as `m`.
macro_rules! held_sql {
    () => {
        "EXISTS (SELECT 1 FROM holds h WHERE h.released_at IS NULL
            AND (h.meeting_record_id = m.meeting_record_id OR h.userid = m.userid
                 OR m.media_start_time BETWEEN h.since_ms AND h.until_ms))"
    };
}
pub(crate) use held_sql;

/// What a hold covers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "scope")]
pub enum HoldScope {
    /// One recording, by its `meeting_record_id`.
    Meeting { meeting_record_id: MeetingRecordId },
    /// Every recording the user created.
    User { userid: String },
    /// Every recording that started in `[since, until]` (inclusive).
    Range { since: UnixMs, until: UnixMs },
}

impl std::fmt::Display for HoldScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Meeting { meeting_record_id } => write!(f, "meeting {meeting_record_id}"),
            Self::User { userid } => write!(f, "user {userid}"),
            Self::Range { since, until } => write!(
                f,
                "started {} .. {}",
                since.to_rfc3339().unwrap_or_default(),
                until.to_rfc3339().unwrap_or_default()
            ),
        }
    }
}

/// One hold, in force or released; also the form of the archive's copy (`holds.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hold {
    pub id: i64,
    #[serde(flatten)]
    pub scope: HoldScope,
    pub reason: String,
    pub created_at: UnixMs,
    pub released_at: Option<UnixMs>,
}

#[derive(sqlx::FromRow)]
struct HoldRow {
    id: i64,
    meeting_record_id: Option<MeetingRecordId>,
    userid: Option<String>,
    since_ms: Option<UnixMs>,
    until_ms: Option<UnixMs>,
    reason: String,
    created_at: UnixMs,
    released_at: Option<UnixMs>,
}

impl From<HoldRow> for Hold {
    fn from(r: HoldRow) -> Self {
        let scope = match (r.meeting_record_id, r.userid, r.since_ms, r.until_ms) {
            (Some(meeting_record_id), ..) => HoldScope::Meeting { meeting_record_id },
            (None, Some(userid), ..) => HoldScope::User { userid },
            (None, None, since, until) => HoldScope::Range {
                since: since.unwrap_or_default(),
                until: until.unwrap_or_default(),
            },
        };
        Self {
            id: r.id,
            scope,
            reason: r.reason,
            created_at: r.created_at,
            released_at: r.released_at,
        }
    }
}

/// Why a hold could not be released.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("there is no hold {0}: `hold list` shows them")]
    Unknown(i64),
    #[error("hold {0} was already released")]
    Released(i64),
    #[error(transparent)]
    Db(#[from] DbError),
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, meeting_record_id, userid, since_ms, until_ms, reason, created_at,
                    released_at FROM holds ",
            $tail
        )
    };
}

impl Db {
    /// Places a hold, recorded in the audit trail with the recordings it covers now.
    pub async fn add_hold(&self, scope: &HoldScope, reason: &str) -> Result<Hold, DbError> {
        let now = UnixMs::now();
        let (meeting, userid, since, until) = match scope {
            HoldScope::Meeting { meeting_record_id } => (Some(meeting_record_id), None, None, None),
            HoldScope::User { userid } => (None, Some(userid), None, None),
            HoldScope::Range { since, until } => (None, None, Some(*since), Some(*until)),
        };
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO holds (meeting_record_id, userid, since_ms, until_ms, reason, created_at)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(meeting)
        .bind(userid)
        .bind(since)
        .bind(until)
        .bind(reason)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let hold = Hold {
            id,
            scope: scope.clone(),
            reason: reason.to_owned(),
            created_at: now,
            released_at: None,
        };
        let covered = covered_by(&mut tx, id).await?;
        let entry = AuditEntry::new(
            Action::Held,
            serde_json::json!({"hold": hold, "recordings": covered}),
        );
        audit::append(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(hold)
    }

    /// Releases hold `id`, recorded in the audit trail.
    pub async fn release_hold(&self, id: i64) -> Result<Hold, ReleaseError> {
        let now = UnixMs::now();
        let mut tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(DbError::from)?;
        let row: Option<HoldRow> = sqlx::query_as(select!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(DbError::from)?;
        let mut hold = Hold::from(row.ok_or(ReleaseError::Unknown(id))?);
        if hold.released_at.is_some() {
            return Err(ReleaseError::Released(id));
        }
        let covered = covered_by(&mut tx, id).await?;
        sqlx::query("UPDATE holds SET released_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?;
        hold.released_at = Some(now);
        let entry = AuditEntry::new(
            Action::Released,
            serde_json::json!({"hold": hold, "recordings": covered}),
        );
        audit::append(&mut tx, &entry, now).await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(hold)
    }

    /// Every hold, in force or released, oldest first.
    pub async fn holds(&self) -> Result<Vec<Hold>, DbError> {
        let rows: Vec<HoldRow> = sqlx::query_as(select!("ORDER BY id"))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Puts back holds read from the archive's copy (`reindex` after the database was
    /// lost): each keeps its id; one the database has already is left as it is.
    pub async fn restore_holds(&self, holds: &[Hold]) -> Result<u64, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let mut restored = 0;
        for hold in holds {
            let (meeting, userid, since, until) = match &hold.scope {
                HoldScope::Meeting { meeting_record_id } => {
                    (Some(meeting_record_id), None, None, None)
                }
                HoldScope::User { userid } => (None, Some(userid), None, None),
                HoldScope::Range { since, until } => (None, None, Some(*since), Some(*until)),
            };
            restored += sqlx::query(
                "INSERT INTO holds (id, meeting_record_id, userid, since_ms, until_ms, reason,
                                    created_at, released_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            )
            .bind(hold.id)
            .bind(meeting)
            .bind(userid)
            .bind(since)
            .bind(until)
            .bind(&hold.reason)
            .bind(hold.created_at)
            .bind(hold.released_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(restored)
    }

    /// The holds in force on the recording `meeting_record_id` (empty: not held).
    pub async fn holds_on(&self, meeting_record_id: &MeetingRecordId) -> Result<Vec<i64>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT h.id FROM holds h JOIN meetings m ON m.meeting_record_id = ?
             WHERE h.released_at IS NULL
               AND (h.meeting_record_id = m.meeting_record_id OR h.userid = m.userid
                    OR m.media_start_time BETWEEN h.since_ms AND h.until_ms)
             ORDER BY h.id",
        )
        .bind(meeting_record_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The archived objects (their paths) of the recordings hold `id` covers: what gets
    /// an S3 legal hold when it is placed. With `unheld_only`, only those of recordings no
    /// hold in force covers any more: what loses it once the hold is released.
    pub async fn objects_of_hold(
        &self,
        id: i64,
        unheld_only: bool,
    ) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(concat!(
            "SELECT f.path FROM files f JOIN meetings m USING (meeting_record_id)
             JOIN holds this ON this.id = ?1
             WHERE f.status = 'archived'
               AND (this.meeting_record_id = m.meeting_record_id OR this.userid = m.userid
                    OR m.media_start_time BETWEEN this.since_ms AND this.until_ms)
               AND (NOT ?2 OR NOT ",
            held_sql!(),
            ") ORDER BY f.path"
        ))
        .bind(id)
        .bind(unheld_only)
        .fetch_all(self.pool())
        .await?)
    }

    /// The recordings under at least one hold in force.
    pub async fn held_meetings(&self) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(concat!(
            "SELECT m.meeting_record_id FROM meetings m WHERE ",
            held_sql!(),
            " ORDER BY m.meeting_record_id"
        ))
        .fetch_all(self.pool())
        .await?)
    }
}

/// The recordings hold `id` covers (in force or not), for the audit record.
async fn covered_by(tx: &mut sqlx::SqliteConnection, id: i64) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT m.meeting_record_id FROM meetings m JOIN holds h ON h.id = ?
         WHERE h.meeting_record_id = m.meeting_record_id OR h.userid = m.userid
               OR m.media_start_time BETWEEN h.since_ms AND h.until_ms
         ORDER BY m.meeting_record_id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?)
}
