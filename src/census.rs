//! The census: windows of at most 31 days, every page of each, recorded in the store; and
//! the narrow windows a webhook event asks for, listed until its files are found.
//!
//! Listing says what exists (meetings, their state, files and sizes); it is not how
//! addresses are refreshed (that is `/v1/addresses`, just before a transfer), so a backfill
//! lists each window and page once, plus what paging consistency needs.
//!
//! The API does not say in which order it returns meetings nor which time its window
//! filters on; we assume `media_start_time`, and stay correct for any order because pages
//! are applied by idempotent upserts and a window whose total changed while we paginated is
//! listed again.

use crate::archive::layout::{Layout, MeetingFields};
use crate::budget::Priority;
use crate::client::{ApiClient, CallError, ListQuery};
use crate::domain::{MeetingRecordId, MeetingState, RecordFileId, Window};
use crate::errors::Class;
use crate::filter::{Candidate, Filter};
use crate::progress::Progress;
use crate::state::{Db, DbError, FileUpsert, MeetingUpsert};
use crate::time::UnixMs;
use std::collections::HashSet;
use std::sync::Arc;
use wemeet_api::MAX_WINDOW_SECS;
use wemeet_api::types::RecordMeeting;

/// Why a window was not listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Api(#[from] CallError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ListError {
    /// The call's class (a listing that failed after its retries, a window the API
    /// refuses, credentials or a permission); nothing goes on without the database.
    pub fn class(&self) -> Class {
        match self {
            Self::Api(e) => e.class(),
            Self::Db(_) => Class::Stop,
        }
    }
}

/// What listing a window for some files found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub pages: u32,
    /// The wanted files that were listed in a transcoded meeting.
    pub found: HashSet<RecordFileId>,
}

/// One page, recorded.
struct ListedPage {
    total_count: u64,
    meetings: u64,
    /// The files of its transcoded meetings.
    files: Vec<RecordFileId>,
    /// No page follows.
    last: bool,
}

/// What one fully listed window held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WindowListing {
    pub pages: u32,
    pub meetings: u64,
    pub files: u64,
}

/// Splits `[since, until]` (UNIX seconds) into consecutive windows of at most 31 days.
/// Neighbours share their boundary second: the API's bounds are inclusive as far as we know,
/// and a meeting listed twice is harmless, one listed never is not.
pub fn split_windows(since: i64, until: i64) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut start = since;
    while start < until {
        let end = (start + MAX_WINDOW_SECS).min(until);
        windows.push(Window::new(start, end));
        start = end;
    }
    windows
}

/// Lists windows into the store.
#[derive(Debug)]
pub struct Census {
    api: Arc<ApiClient>,
    store: Db,
    /// `storage.layout`: the paths of what is listed.
    layout: Layout,
    /// `[filter]`: files it leaves out are stored `skipped`, with the rule.
    filter: Filter,
    /// Counts the pages fetched.
    progress: Progress,
}

impl Census {
    pub fn new(api: Arc<ApiClient>, store: Db, layout: Layout, filter: Filter) -> Self {
        Self {
            api,
            store,
            layout,
            filter,
            progress: Progress::default(),
        }
    }

    /// Counts pages into `progress` (a job's display) instead of a handle nobody reads.
    pub fn with_progress(self, progress: Progress) -> Self {
        Self { progress, ..self }
    }

    /// Lists every page of `[start, end]` and records what it finds. A window whose
    /// `total_count` moved while we paginated (meetings arriving) is listed once more.
    pub async fn list_window(
        &self,
        window: Window,
        priority: Priority,
    ) -> Result<WindowListing, ListError> {
        let mut listing = self.list_pages(window, priority).await?;
        if listing.1 {
            tracing::info!(%window, "window changed while listing; listing it again");
            listing = self.list_pages(window, priority).await?;
        }
        let summary = listing.0;
        self.store
            .mark_window_listed(window, summary.pages.into(), summary.meetings as i64)
            .await?;
        Ok(summary)
    }

    /// Returns the summary and whether the window's total changed during pagination.
    async fn list_pages(
        &self,
        window: Window,
        priority: Priority,
    ) -> Result<(WindowListing, bool), ListError> {
        let mut summary = WindowListing::default();
        let mut first_total = None;
        let mut changed = false;
        let mut page_no = 1;
        loop {
            let page = self.list_page(window, page_no, priority).await?;
            summary.pages += 1;
            self.progress.page_listed();
            let total = *first_total.get_or_insert(page.total_count);
            changed |= total != page.total_count;
            summary.meetings += page.meetings;
            summary.files += page.files.len() as u64;
            if page.last {
                break;
            }
            page_no += 1;
        }
        Ok((summary, changed))
    }

    /// Lists `window` until every file of `wanted` was seen in a transcoded meeting,
    /// or the pages run out, recording each page like any listing: what a webhook event
    /// needs, since it names its files but not their recording. The window is not marked
    /// listed: the listing may stop early, and it is no window of a backfill's plan.
    pub async fn find_files(
        &self,
        window: Window,
        wanted: &HashSet<RecordFileId>,
        priority: Priority,
    ) -> Result<Lookup, ListError> {
        let mut lookup = Lookup::default();
        let mut page_no = 1;
        loop {
            let page = self.list_page(window, page_no, priority).await?;
            lookup.pages += 1;
            lookup
                .found
                .extend(page.files.into_iter().filter(|f| wanted.contains(f)));
            if page.last || lookup.found.len() == wanted.len() {
                return Ok(lookup);
            }
            page_no += 1;
        }
    }

    /// Lists one page and records it.
    async fn list_page(
        &self,
        window: Window,
        page_no: u32,
        priority: Priority,
    ) -> Result<ListedPage, ListError> {
        let query = ListQuery {
            start_time: window.start,
            end_time: window.end,
            page: page_no,
        };
        let answer = self.api.list_records(query, priority).await?;
        let page = answer.reply;
        let upserts: Vec<MeetingUpsert> = page
            .record_meetings
            .iter()
            .map(|m| self.to_upsert(m))
            .collect();
        self.store.upsert_meetings(&upserts, answer.sent_at).await?;
        Ok(ListedPage {
            total_count: page.total_count,
            // Count the items: `current_size` is not to be trusted.
            meetings: page.record_meetings.len() as u64,
            files: upserts
                .into_iter()
                .flat_map(|m| m.files)
                .map(|f| f.record_file_id)
                .collect(),
            last: page.record_meetings.is_empty() || u64::from(page_no) >= page.total_page,
        })
    }

    fn to_upsert(&self, m: &RecordMeeting) -> MeetingUpsert {
        let fields = MeetingFields {
            userid: &m.userid,
            subject: &m.subject,
            meeting_code: &m.meeting_code,
            meeting_id: &m.meeting_id,
            meeting_record_id: &m.meeting_record_id,
            media_start_time_ms: m.media_start_time,
        };
        let dir = self.layout.meeting_dir(&fields);
        // `{index}`: the file's place in its recording by start time, from 1.
        let mut order: Vec<(i64, &str)> = m
            .record_files
            .iter()
            .map(|f| (f.record_start_time, f.record_file_id.as_str()))
            .collect();
        order.sort_unstable();
        let index = |id: &str| {
            order
                .iter()
                .position(|(_, o)| *o == id)
                .map_or(1, |i| i + 1)
        };
        let files = if MeetingState::from(m.state) == MeetingState::Transcoded {
            m.record_files
                .iter()
                .map(|f| FileUpsert {
                    record_file_id: RecordFileId::new(&f.record_file_id),
                    record_start_time: f.record_start_time,
                    record_end_time: f.record_end_time,
                    record_size: f.record_size,
                    path: self.layout.file_path(
                        &dir,
                        &fields,
                        &f.record_file_id,
                        index(&f.record_file_id),
                    ),
                    download_address: f
                        .download_address
                        .as_ref()
                        .filter(|a| !a.is_empty())
                        .cloned(),
                    skip_rule: self.filter.skip_rule(&Candidate {
                        userid: &m.userid,
                        subject: &m.subject,
                        record_type: m.record_type,
                        duration_ms: f.record_end_time - f.record_start_time,
                        size: f.record_size,
                    }),
                })
                .collect()
        } else {
            Vec::new()
        };
        MeetingUpsert {
            meeting_record_id: MeetingRecordId::new(&m.meeting_record_id),
            meeting_id: m.meeting_id.clone(),
            meeting_code: m.meeting_code.clone(),
            userid: m.userid.clone(),
            subject: m.subject.clone(),
            media_start_time: UnixMs(m.media_start_time),
            state: m.state.into(),
            record_type: m.record_type,
            dir,
            files,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_range_in_31_day_steps() {
        let day = 86_400;
        let w = split_windows(0, 90 * day);
        assert_eq!(
            w,
            vec![(0, 31 * day), (31 * day, 62 * day), (62 * day, 90 * day)]
        );
        assert!(
            w.iter()
                .all(|&Window { start: s, end: e }| e - s <= MAX_WINDOW_SECS)
        );
        assert_eq!(split_windows(5, 5), Vec::<Window>::new());
        assert_eq!(split_windows(0, 31 * day), vec![(0, 31 * day)]);
    }
}
