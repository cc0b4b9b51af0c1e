//! Working the recorded events, one batch at a time, in the daemon.
//!
//! A batch is every pending event whose time has come. Deletions are applied at once.
//! Of the completed recordings, files already listed (a poll was quicker, or an earlier
//! event) need no call; for the others the windows of their meetings are listed at
//! [`Priority::Event`], the top of the listing budget, until their files show up
//! transcoded. Listing records the meetings and queues the files like any listing, which
//! wakes the transfer workers; their addresses come from `/v1/addresses` just in time, as
//! always. An event whose files are not all listed yet is tried again later
//! ([`crate::retry::event_retry_delay`]), then left to the polls. A signed event that
//! could not be read names no files: the live window (`poll.lookback`) is listed for it at
//! once, at the same priority, so that whatever it announced is found anyway.

use super::plan::{self, Window};
use crate::budget::Priority;
use crate::census::{Census, ListError, split_windows};
use crate::domain::{self, RecordFileId};
use crate::errors::Class;
use crate::state::{Db, DueEvent, EventOutcome};
use crate::time::UnixMs;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wemeet_api::webhook::EventKind;

/// How long an idle worker sleeps when nothing is pending: new events wake it anyway.
const IDLE: Duration = Duration::from_secs(3600);

pub struct EventWorker {
    store: Db,
    lister: Arc<Census>,
    arrived: Arc<Notify>,
    /// The live window's reach (`poll.lookback`), listed for an event that cannot be read.
    lookback: Duration,
}

impl EventWorker {
    /// `arrived` is the [`super::Receiver`]'s: notified for each new event.
    pub fn new(store: Db, lister: Arc<Census>, arrived: Arc<Notify>, lookback: Duration) -> Self {
        Self {
            store,
            lister,
            arrived,
            lookback,
        }
    }

    /// Works events as they come and as their retries fall due, until `cancel`. Events
    /// recorded by an earlier process (one killed after acknowledging them) are due at once.
    /// Returns only for what stops the service: the database, or an API refusal that no
    /// retry can fix (credentials, permission).
    pub async fn run(&self, cancel: &CancellationToken) -> Result<(), ListError> {
        while !cancel.is_cancelled() {
            // Registered before looking, so an event recorded after the look still wakes us.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let due = self.store.due_events(UnixMs::now()).await?;
            if !due.is_empty() {
                tokio::select! {
                    r = self.work(due) => r?,
                    () = cancel.cancelled() => break,
                }
                continue;
            }
            let wait = match self.store.next_event_due().await? {
                Some(at) => at.since(UnixMs::now()),
                None => IDLE,
            };
            tokio::select! {
                () = arrived => {}
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => break,
            }
        }
        Ok(())
    }

    /// One batch.
    async fn work(&self, due: Vec<DueEvent>) -> Result<(), ListError> {
        let (unreadable, due): (Vec<_>, Vec<_>) = due.into_iter().partition(|e| e.unreadable);
        if !unreadable.is_empty() {
            self.list_live_window(&unreadable).await?;
        }
        let (deleted, completed): (Vec<_>, Vec<_>) = due
            .into_iter()
            .partition(|e| EventKind::from_name(&e.event) == EventKind::RecordingDeleted);
        for event in deleted {
            let ids: Vec<RecordFileId> = event
                .files
                .iter()
                .map(|f| f.record_file_id.clone())
                .collect();
            let dequeued = self
                .store
                .mark_deleted_in_cloud(&ids, event.received_at)
                .await?;
            tracing::info!(trace_id = %event.trace_id, files = ids.len(), dequeued, "files deleted in the cloud recorded");
            self.finish(&event, EventOutcome::Done).await?;
        }
        if completed.is_empty() {
            return Ok(());
        }
        let named: Vec<RecordFileId> = completed
            .iter()
            .flat_map(|e| e.files.iter().map(|f| f.record_file_id.clone()))
            .collect();
        let mut listed = self.store.listed_files(&named).await?;
        let unlisted = completed
            .iter()
            .flat_map(|e| &e.files)
            .filter(|f| !listed.contains(&f.record_file_id));
        let mut failures = Vec::new();
        for window in plan::windows(unlisted, UnixMs::now().as_secs()) {
            match self.look_up(&window).await? {
                Ok(found) => listed.extend(found),
                Err(e) => failures.push((window, e)),
            }
        }
        for event in &completed {
            let outcome = outcome_of(event, &listed, &failures);
            self.finish(event, outcome).await?;
        }
        Ok(())
    }

    /// Lists the live window once for every event of `events` (signed, but unreadable):
    /// done when it was listed, tried again later when it could not be.
    async fn list_live_window(&self, events: &[DueEvent]) -> Result<(), ListError> {
        let now = UnixMs::now();
        let since = (now - self.lookback).as_secs();
        let mut failure = None;
        for window in split_windows(since, now.as_secs()) {
            match self.lister.list_window(window, Priority::Event).await {
                Ok(w) => {
                    tracing::info!(
                        meetings = w.meetings,
                        files = w.files,
                        "live window listed for an unreadable webhook event"
                    );
                }
                // As for a live poll: the database, or credentials and permissions, stop the
                // service; anything else (a listing that failed after its retries) is tried
                // again with the event.
                Err(e) if e.class() == Class::Stop => return Err(e),
                Err(e) => {
                    failure = Some(crate::errors::chain(&e));
                    break;
                }
            }
        }
        for event in events {
            let outcome = match &failure {
                None => EventOutcome::Done,
                Some(error) => retry_or_abandon(
                    event,
                    format!("the live window could not be listed: {error}"),
                ),
            };
            self.finish(event, outcome).await?;
        }
        Ok(())
    }

    /// Lists one window for its files. The outer error stops the service; the inner one
    /// (the listing failed after its retries) only this window, whose events are tried
    /// again later.
    async fn look_up(
        &self,
        window: &Window,
    ) -> Result<Result<HashSet<RecordFileId>, String>, ListError> {
        let Window { start, end, files } = window;
        let listed =
            (self.lister).find_files(domain::Window::new(*start, *end), files, Priority::Event);
        match listed.await {
            Ok(lookup) => {
                let (found, wanted) = (lookup.found.len(), files.len());
                tracing::info!(
                    start,
                    end,
                    pages = lookup.pages,
                    found,
                    wanted,
                    "webhook event's window listed"
                );
                Ok(Ok(lookup.found))
            }
            Err(e) if e.class() == Class::Stop => Err(e),
            Err(e) => {
                let error = crate::errors::chain(&e);
                tracing::warn!(start, end, %error, "webhook event's window not listed");
                Ok(Err(error))
            }
        }
    }

    async fn finish(&self, event: &DueEvent, outcome: EventOutcome) -> Result<(), ListError> {
        match &outcome {
            EventOutcome::Done => {
                tracing::info!(trace_id = %event.trace_id, event = %event.event, "webhook event worked");
            }
            EventOutcome::Retry { at, error } => {
                tracing::info!(trace_id = %event.trace_id, retry_in_ms = at.since(UnixMs::now()).as_millis() as u64, %error, "webhook event: trying again later");
            }
            EventOutcome::Abandoned { error } => {
                tracing::warn!(trace_id = %event.trace_id, %error, "webhook event left to the polls");
            }
        }
        self.store
            .event_outcome(&event.trace_id, &outcome, UnixMs::now())
            .await?;
        Ok(())
    }
}

/// Done when every file the event names is listed; else tried again after the backoff,
/// or, once tried enough, abandoned to the polls.
fn outcome_of(
    event: &DueEvent,
    listed: &HashSet<RecordFileId>,
    failures: &[(Window, String)],
) -> EventOutcome {
    let missing: Vec<&str> = event
        .files
        .iter()
        .map(|f| f.record_file_id.as_str())
        .filter(|id| !listed.contains(*id))
        .collect();
    if missing.is_empty() {
        return EventOutcome::Done;
    }
    let failed = failures
        .iter()
        .find(|(w, _)| missing.iter().any(|id| w.files.contains(*id)));
    let error = match failed {
        Some((_, error)) => format!("its window could not be listed: {error}"),
        None => format!(
            "{} of its {} file(s) not listed as transcoded yet",
            missing.len(),
            event.files.len()
        ),
    };
    retry_or_abandon(event, error)
}

/// Tried again after the backoff, or, once tried enough, abandoned to the polls.
fn retry_or_abandon(event: &DueEvent, error: String) -> EventOutcome {
    match crate::retry::event_retry_delay(event.attempts + 1) {
        Some(delay) => EventOutcome::Retry {
            at: UnixMs::now() + delay,
            error,
        },
        None => EventOutcome::Abandoned { error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::EventFile;

    fn event(attempts: i64, files: &[&str]) -> DueEvent {
        DueEvent {
            trace_id: "t".into(),
            event: "recording.completed".into(),
            received_at: UnixMs(0),
            attempts,
            unreadable: false,
            files: files
                .iter()
                .map(|id| EventFile {
                    record_file_id: (*id).into(),
                    meeting_id: "m".into(),
                    start_time: 1,
                    end_time: 2,
                    operate_time: 3000,
                })
                .collect(),
        }
    }

    fn listed(ids: &[&str]) -> HashSet<RecordFileId> {
        ids.iter().map(|s| RecordFileId::from(*s)).collect()
    }

    #[test]
    fn an_event_is_done_once_every_file_it_names_is_listed() {
        let e = event(0, &["a", "b"]);
        assert_eq!(
            outcome_of(&e, &listed(&["a", "b", "c"]), &[]),
            EventOutcome::Done
        );
        match outcome_of(&e, &listed(&["a"]), &[]) {
            EventOutcome::Retry { at, error } => {
                assert!(at > UnixMs::now(), "{at:?}");
                assert!(error.contains("1 of its 2"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_event_tried_enough_is_left_to_the_polls_with_its_last_error() {
        let e = event(8, &["a"]);
        let window = Window {
            start: 0,
            end: 1,
            files: listed(&["a"]),
        };
        let failures = [(window, "rate limited".to_string())];
        match outcome_of(&e, &listed(&[]), &failures) {
            EventOutcome::Abandoned { error } => assert!(error.contains("rate limited"), "{error}"),
            other => panic!("{other:?}"),
        }
    }
}
