//! The webhook's events: recorded (deduplicated by `trace_id`) before the HTTP 200 goes
//! out, then worked by the daemon until their files are listed, retried with a backoff
//! while they are not (see `migrations/0009_webhook_events.sql`).

use super::{Db, DbError};
use crate::domain::RecordFileId;
use crate::time::UnixMs;
use std::collections::{BTreeMap, HashSet};

/// Where an event is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum EventStatus {
    /// To work, at `next_attempt_at`.
    Pending,
    /// Its files are listed (queued for transfer, or archived already), or marked deleted.
    Done,
    /// Its files never showed up in the listing while it was retried: left to the polls.
    Abandoned,
    /// An event this program does not act on (`smart.transcripts`, ...).
    Ignored,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Abandoned => "abandoned",
            Self::Ignored => "ignored",
        }
    }

    pub const ALL: [Self; 4] = [Self::Pending, Self::Done, Self::Abandoned, Self::Ignored];
}

/// A file an event names, with its meeting's times as the event gives them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventFile {
    pub record_file_id: RecordFileId,
    pub meeting_id: String,
    /// UNIX seconds; 0 when the event did not say.
    pub start_time: i64,
    /// UNIX seconds; 0 when the event did not say.
    pub end_time: i64,
    /// When the platform says the recording was completed (ms).
    pub operate_time: i64,
}

/// One delivery, as the webhook received it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub trace_id: String,
    /// The event's `event` field.
    pub event: String,
    /// `Pending` for the events the daemon works, `Ignored` for the others.
    pub status: EventStatus,
    /// The event's JSON, as opened (or, if it did not open, the envelope's `data`).
    pub body: String,
    pub files: Vec<EventFile>,
    /// Why a signed event could not be read; `None` for an event that could.
    pub unreadable: Option<String>,
}

/// What recording a delivery amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// The first delivery of this `trace_id`.
    New,
    /// Seen before: nothing changed but the count of deliveries.
    Duplicate,
}

/// An event due for work.
#[derive(Debug, Clone)]
pub struct DueEvent {
    pub trace_id: String,
    pub event: String,
    pub received_at: UnixMs,
    pub attempts: i64,
    pub files: Vec<EventFile>,
    /// A signed event that could not be read: it names no files, so the live window is
    /// listed for it.
    pub unreadable: bool,
}

/// How working an event ended this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    Done,
    /// Not yet: try again at `at`.
    Retry {
        at: UnixMs,
        error: String,
    },
    /// Tried long enough: the polls will find what is left.
    Abandoned {
        error: String,
    },
}

/// The webhook's side of `status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WebhookStatus {
    /// The event received last (by its latest delivery).
    pub last_event: Option<EventSummary>,
    /// Events by status (`pending`, `done`, `abandoned`, `ignored`).
    pub events: BTreeMap<EventStatus, i64>,
    /// Signed events that could not be read (kept raw in `webhook_events.body`).
    pub unreadable: i64,
    /// The last of them, for diagnosis.
    pub last_unreadable: Option<UnreadableEvent>,
}

/// A signed event that could not be read, as kept for diagnosis.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct UnreadableEvent {
    pub trace_id: String,
    pub received_at: UnixMs,
    /// Why it could not be read.
    pub unreadable: String,
    /// Its JSON as opened, or the envelope's `data` when it did not open.
    #[serde(skip)]
    pub body: String,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct EventSummary {
    pub trace_id: String,
    pub event: String,
    pub received_at: UnixMs,
    pub last_received_at: UnixMs,
    pub deliveries: i64,
    pub status: EventStatus,
    pub last_error: Option<String>,
}

/// Upper bounds (seconds) of the buckets of the event-to-archived histogram: the fast path
/// is seconds, the slow cases (a file transcoded late, a long transfer) hours.
pub const LAG_BUCKETS: [f64; 11] = [
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    1800.0,
    3600.0,
    21600.0,
    f64::INFINITY,
];

/// How long after their first event the files an event announced were archived, over
/// every such file (events are never pruned, so its counts only grow, as a Prometheus
/// histogram's must).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LagHistogram {
    pub count: u64,
    pub sum_seconds: f64,
    /// `(upper bound, files)` per bucket of [`LAG_BUCKETS`], each file in the first bucket
    /// that holds it (not cumulative).
    pub buckets: Vec<(f64, u64)>,
}

impl Db {
    /// Records one delivery in one transaction, committed when this returns: the caller
    /// may then acknowledge it. A `trace_id` seen before changes nothing but its count of
    /// deliveries.
    pub async fn record_event(&self, e: &NewEvent, at: UnixMs) -> Result<Receipt, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let deliveries: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_events (trace_id, event, received_at, last_received_at, status,
               next_attempt_at, body, unreadable)
             VALUES (?1, ?2, ?3, ?3, ?4, ?3, ?5, ?6)
             ON CONFLICT (trace_id) DO UPDATE SET
               deliveries = deliveries + 1, last_received_at = excluded.last_received_at
             RETURNING deliveries",
        )
        .bind(&e.trace_id)
        .bind(&e.event)
        .bind(at)
        .bind(e.status)
        .bind(&e.body)
        .bind(&e.unreadable)
        .fetch_one(&mut *tx)
        .await?;
        if deliveries == 1 {
            for f in &e.files {
                sqlx::query(
                    "INSERT OR IGNORE INTO webhook_event_files (trace_id, record_file_id,
                       meeting_id, start_time, end_time, operate_time)
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(&e.trace_id)
                .bind(&f.record_file_id)
                .bind(&f.meeting_id)
                .bind(f.start_time)
                .bind(f.end_time)
                .bind(f.operate_time)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(match deliveries {
            1 => Receipt::New,
            _ => Receipt::Duplicate,
        })
    }

    /// Pending events whose time has come (oldest first), with their files.
    pub async fn due_events(&self, now: UnixMs) -> Result<Vec<DueEvent>, DbError> {
        let rows: Vec<(String, String, UnixMs, i64, bool)> = sqlx::query_as(
            "SELECT trace_id, event, received_at, attempts, unreadable IS NOT NULL
             FROM webhook_events
             WHERE status = 'pending' AND next_attempt_at <= ?
             ORDER BY received_at, trace_id",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for (trace_id, event, received_at, attempts, unreadable) in rows {
            let files = sqlx::query_as(
                "SELECT record_file_id, meeting_id, start_time, end_time, operate_time
                 FROM webhook_event_files WHERE trace_id = ? ORDER BY record_file_id",
            )
            .bind(&trace_id)
            .fetch_all(self.pool())
            .await?;
            due.push(DueEvent {
                trace_id,
                event,
                received_at,
                attempts,
                files,
                unreadable,
            });
        }
        Ok(due)
    }

    /// When the next pending event is due, if one is pending.
    pub async fn next_event_due(&self) -> Result<Option<UnixMs>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM webhook_events WHERE status = 'pending'",
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// Records how working an event ended (an attempt is counted).
    pub async fn event_outcome(
        &self,
        trace_id: &str,
        outcome: &EventOutcome,
        now: UnixMs,
    ) -> Result<(), DbError> {
        let (status, next, error) = match outcome {
            EventOutcome::Done => (EventStatus::Done, None, None),
            EventOutcome::Retry { at, error } => (EventStatus::Pending, Some(*at), Some(error)),
            EventOutcome::Abandoned { error } => (EventStatus::Abandoned, None, Some(error)),
        };
        sqlx::query(
            "UPDATE webhook_events SET status = ?, attempts = attempts + 1, next_attempt_at = ?,
               last_error = ?, worked_at = CASE WHEN ? = 'pending' THEN NULL ELSE ? END
             WHERE trace_id = ?",
        )
        .bind(status)
        .bind(next)
        .bind(error)
        .bind(status)
        .bind(now)
        .bind(trace_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Which of `ids` are files the listing showed (in any status).
    pub async fn listed_files(
        &self,
        ids: &[RecordFileId],
    ) -> Result<HashSet<RecordFileId>, DbError> {
        let ids = serde_json::to_string(ids).expect("strings serialise");
        let found: Vec<RecordFileId> = sqlx::query_scalar(
            "SELECT record_file_id FROM files
             WHERE record_file_id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        Ok(found.into_iter().collect())
    }

    pub async fn webhook_status(&self) -> Result<WebhookStatus, DbError> {
        let last_event = sqlx::query_as(
            "SELECT trace_id, event, received_at, last_received_at, deliveries, status, last_error
             FROM webhook_events ORDER BY last_received_at DESC, trace_id LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?;
        let events: Vec<(EventStatus, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM webhook_events GROUP BY status")
                .fetch_all(self.pool())
                .await?;
        let unreadable: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE unreadable IS NOT NULL")
                .fetch_one(self.pool())
                .await?;
        Ok(WebhookStatus {
            last_event,
            events: events.into_iter().collect(),
            unreadable,
            last_unreadable: self.unreadable_events(1).await?.pop(),
        })
    }

    /// The last `limit` signed events that could not be read, newest first.
    pub async fn unreadable_events(&self, limit: u32) -> Result<Vec<UnreadableEvent>, DbError> {
        Ok(sqlx::query_as(
            "SELECT trace_id, received_at, unreadable, body FROM webhook_events
             WHERE unreadable IS NOT NULL ORDER BY received_at DESC, trace_id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// The time from each announced file's first `recording.completed` to its archiving,
    /// for the files archived after it (one archived before its event owes nothing to it).
    pub async fn event_to_archived(&self) -> Result<LagHistogram, DbError> {
        let lags: Vec<i64> = sqlx::query_scalar(
            "SELECT f.archived_at - first.received_at FROM files f
             JOIN (SELECT ef.record_file_id, MIN(e.received_at) AS received_at
                   FROM webhook_event_files ef JOIN webhook_events e USING (trace_id)
                   WHERE e.event = 'recording.completed'
                   GROUP BY ef.record_file_id) first USING (record_file_id)
             WHERE f.status = 'archived' AND f.archived_at >= first.received_at",
        )
        .fetch_all(self.pool())
        .await?;
        let mut histogram = LagHistogram {
            buckets: LAG_BUCKETS.iter().map(|&le| (le, 0)).collect(),
            ..LagHistogram::default()
        };
        for ms in lags {
            let seconds = ms as f64 / 1000.0;
            histogram.count += 1;
            histogram.sum_seconds += seconds;
            if let Some(bucket) = histogram.buckets.iter_mut().find(|(le, _)| seconds <= *le) {
                bucket.1 += 1;
            }
        }
        Ok(histogram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::temp_store;

    fn event(trace_id: &str, files: &[&str]) -> NewEvent {
        NewEvent {
            trace_id: trace_id.into(),
            event: "recording.completed".into(),
            status: EventStatus::Pending,
            body: "{}".into(),
            unreadable: None,
            files: files
                .iter()
                .map(|id| EventFile {
                    record_file_id: (*id).into(),
                    meeting_id: "m".into(),
                    start_time: 100,
                    end_time: 200,
                    operate_time: 300_000,
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn a_trace_id_seen_before_only_counts_a_delivery() {
        let (store, _dir) = temp_store().await;
        let e = event("t1", &["f1", "f2"]);
        assert_eq!(
            store.record_event(&e, UnixMs(10)).await.unwrap(),
            Receipt::New
        );
        let again = event("t1", &["f3"]);
        assert_eq!(
            store.record_event(&again, UnixMs(20)).await.unwrap(),
            Receipt::Duplicate
        );
        let due = store.due_events(UnixMs(10)).await.unwrap();
        assert_eq!(due.len(), 1);
        let ids: Vec<&str> = due[0]
            .files
            .iter()
            .map(|f| f.record_file_id.as_str())
            .collect();
        assert_eq!(ids, ["f1", "f2"], "the duplicate's content is not taken");
        let status = store.webhook_status().await.unwrap();
        let last = status.last_event.unwrap();
        assert_eq!((last.deliveries, last.last_received_at), (2, UnixMs(20)));
        assert_eq!(status.events.get(&EventStatus::Pending), Some(&1));
    }

    #[tokio::test]
    async fn a_retried_event_is_due_again_only_at_its_time_and_ends_done_or_abandoned() {
        let (store, _dir) = temp_store().await;
        store
            .record_event(&event("t1", &["f1"]), UnixMs(10))
            .await
            .unwrap();
        store
            .record_event(&event("t2", &["f2"]), UnixMs(11))
            .await
            .unwrap();
        let retry = EventOutcome::Retry {
            at: UnixMs(5_000),
            error: "not listed yet".into(),
        };
        store.event_outcome("t1", &retry, UnixMs(12)).await.unwrap();
        let due: Vec<String> = store
            .due_events(UnixMs(4_999))
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.trace_id)
            .collect();
        assert_eq!(due, ["t2"]);
        assert_eq!(store.next_event_due().await.unwrap(), Some(UnixMs(11)));
        store
            .event_outcome("t2", &EventOutcome::Done, UnixMs(13))
            .await
            .unwrap();
        assert_eq!(store.next_event_due().await.unwrap(), Some(UnixMs(5_000)));
        let due = store.due_events(UnixMs(5_000)).await.unwrap();
        assert_eq!((due[0].trace_id.as_str(), due[0].attempts), ("t1", 1));
        let abandoned = EventOutcome::Abandoned {
            error: "never listed".into(),
        };
        store
            .event_outcome("t1", &abandoned, UnixMs(6_000))
            .await
            .unwrap();
        assert!(store.due_events(UnixMs(i64::MAX)).await.unwrap().is_empty());
        assert_eq!(store.next_event_due().await.unwrap(), None);
        let status = store.webhook_status().await.unwrap();
        assert_eq!(status.events.get(&EventStatus::Abandoned), Some(&1));
        assert_eq!(status.events.get(&EventStatus::Done), Some(&1));
    }
}
