//! Which windows of the listing to ask for the files of a batch of events.
//!
//! An event has the meeting's start and end (UNIX seconds) but not its recording's
//! `meeting_record_id`, and the listing filters (as far as is known) on the recording's
//! `media_start_time`, which falls between the two: the meeting's span, widened by a
//! margin for clocks and for the listing filtering on another of the meeting's times, is
//! the window. Overlapping windows of several events (meetings that ended together) are
//! listed once.

use crate::domain::RecordFileId;
use crate::state::EventFile;
use std::collections::HashSet;
use wemeet_api::MAX_WINDOW_SECS;

/// Added on both sides of a meeting's span.
const MARGIN_S: i64 = 300;
/// A meeting's span when the event gives no usable start: a day before its end.
const DEFAULT_SPAN_S: i64 = 86_400;

/// One window to list, and the files looked for in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Window {
    pub start: i64,
    pub end: i64,
    pub files: HashSet<RecordFileId>,
}

/// The window of one file's meeting. An end missing (0) or before the start is taken as
/// the event's `operate_time`; an end after `now_s` as `now_s` (the listing is not asked
/// about the future); a start missing as a day before the end.
fn window_of(file: &EventFile, now_s: i64) -> (i64, i64) {
    let operated_s = file.operate_time.div_euclid(1000);
    let end = match file.end_time {
        e if e > 0 && e >= file.start_time => e,
        _ if operated_s > 0 => operated_s,
        _ => now_s,
    }
    .min(now_s);
    let start = match file.start_time {
        s if s > 0 => s.min(end),
        _ => end - DEFAULT_SPAN_S,
    };
    let end = (end + MARGIN_S).min(start - MARGIN_S + MAX_WINDOW_SECS);
    (start - MARGIN_S, end)
}

/// The windows for `files`, overlapping ones merged (never beyond 31 days), by start.
pub(super) fn windows<'a>(
    files: impl IntoIterator<Item = &'a EventFile>,
    now_s: i64,
) -> Vec<Window> {
    let mut each: Vec<(i64, i64, &RecordFileId)> = files
        .into_iter()
        .map(|f| {
            let (start, end) = window_of(f, now_s);
            (start, end, &f.record_file_id)
        })
        .collect();
    each.sort_unstable();
    let mut merged: Vec<Window> = Vec::new();
    for (start, end, id) in each {
        match merged.last_mut() {
            Some(w) if start <= w.end && end.max(w.end) - w.start <= MAX_WINDOW_SECS => {
                w.end = w.end.max(end);
                w.files.insert(id.clone());
            }
            _ => merged.push(Window {
                start,
                end,
                files: HashSet::from([id.clone()]),
            }),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn file(id: &str, start_time: i64, end_time: i64) -> EventFile {
        EventFile {
            record_file_id: id.into(),
            meeting_id: "m".into(),
            start_time,
            end_time,
            operate_time: (end_time + 60) * 1000,
        }
    }

    #[test]
    fn a_meetings_window_is_its_span_with_a_margin() {
        let w = windows(&[file("f", NOW - 3600, NOW - 60)], NOW);
        assert_eq!(
            w,
            [Window {
                start: NOW - 3600 - MARGIN_S,
                end: NOW - 60 + MARGIN_S,
                files: HashSet::from(["f".into()]),
            }]
        );
    }

    #[test]
    fn missing_or_impossible_times_still_give_a_window_ending_no_later_than_now() {
        let no_end = EventFile {
            operate_time: (NOW - 40) * 1000,
            ..file("a", NOW - 100, 0)
        };
        let (start, end) = window_of(&no_end, NOW);
        assert_eq!((start, end), (NOW - 100 - MARGIN_S, NOW - 40 + MARGIN_S));
        let nothing = EventFile {
            operate_time: 0,
            ..file("b", 0, 0)
        };
        assert_eq!(
            window_of(&nothing, NOW),
            (NOW - DEFAULT_SPAN_S - MARGIN_S, NOW + MARGIN_S)
        );
        let future = file("c", NOW - 10, NOW + 7200);
        assert_eq!(window_of(&future, NOW).1, NOW + MARGIN_S);
        // An end before the start: the event's operate_time stands for it, and the start
        // is not after it (the window stays a window).
        let backwards = file("d", NOW - 100, NOW - 200);
        assert_eq!(
            window_of(&backwards, NOW),
            (NOW - 140 - MARGIN_S, NOW - 140 + MARGIN_S)
        );
        let ancient = file("e", NOW - 90 * 86_400, NOW);
        let (start, end) = window_of(&ancient, NOW);
        assert!(end - start <= MAX_WINDOW_SECS);
    }

    #[test]
    fn overlapping_meetings_are_listed_once_and_distant_ones_apart() {
        let w = windows(
            &[
                file("a", NOW - 3600, NOW - 600),
                file("b", NOW - 1800, NOW - 300),
                file("c", NOW - 10 * 86_400, NOW - 10 * 86_400 + 3600),
            ],
            NOW,
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0].files, HashSet::from(["c".into()]));
        assert_eq!(w[1].files.len(), 2);
        assert_eq!((w[1].start, w[1].end), (NOW - 3600 - MARGIN_S, NOW));
    }
}
