//! The JSON of a webhook event, once opened.
//!
//! Read liberally, acted on strictly. Fields default rather than fail, as in the REST
//! replies: the documentation shows one example per event and says little about which
//! fields are optional, and an event refused for a missing `meeting_type` would be an
//! event lost. Numbers are read from JSON numbers or strings of digits (the documented
//! `recording.completed` has `"media_set_type":"2"`), `null` objects and lists are empty,
//! unknown fields (`uuid`, `ms_open_id`, `operator`, ...) are ignored, and a file listed
//! twice counts once. Only what a receiver cannot do without is checked
//! ([`Event::from_json`]): a `trace_id`, the event's name, and the id of every file.

use crate::lenient::NumberOrDefault;
use serde::{Deserialize, Serialize};
use serde_with::{DefaultOnNull, serde_as};
use std::collections::HashSet;

/// The body of every POST: `{"data": "<base64>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub data: String,
}

/// One delivery of one event. Deliveries are at least once: the same `trace_id` may come
/// again.
#[serde_as]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `recording.completed`, `recording.deleted`, `smart.transcripts`, ...
    pub event: String,
    pub trace_id: String,
    #[serde_as(as = "DefaultOnNull")]
    #[serde(default)]
    pub payload: Vec<Payload>,
}

/// What an event's `event` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A meeting ended and (some of) its cloud recording is transcoded.
    RecordingCompleted,
    /// Recording files were deleted in the cloud.
    RecordingDeleted,
    /// A transcript is ready.
    SmartTranscripts,
    /// Any other subscription of the app.
    Other,
}

impl EventKind {
    /// The kind an `event` field names.
    pub fn from_name(name: &str) -> Self {
        match name {
            "recording.completed" => Self::RecordingCompleted,
            "recording.deleted" => Self::RecordingDeleted,
            "smart.transcripts" => Self::SmartTranscripts,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecordingCompleted => "recording.completed",
            Self::RecordingDeleted => "recording.deleted",
            Self::SmartTranscripts => "smart.transcripts",
            Self::Other => "other",
        }
    }
}

/// One meeting's part of an event.
#[serde_as]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Milliseconds since the epoch.
    #[serde_as(as = "NumberOrDefault")]
    #[serde(default)]
    pub operate_time: i64,
    /// Absent from a `recording.deleted` of an uploaded recording: all defaults then.
    #[serde_as(as = "DefaultOnNull")]
    #[serde(default)]
    pub meeting_info: MeetingInfo,
    #[serde_as(as = "DefaultOnNull")]
    #[serde(default)]
    pub recording_files: Vec<RecordingFile>,
}

/// The meeting an event is about. There is **no `meeting_record_id`**: a receiver that
/// needs the recording finds it by listing a window around `start_time`.
#[serde_as]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingInfo {
    #[serde(default)]
    pub meeting_id: String,
    #[serde(default)]
    pub meeting_code: String,
    #[serde(default)]
    pub subject: String,
    #[serde_as(as = "DefaultOnNull")]
    #[serde(default)]
    pub creator: Creator,
    #[serde_as(as = "NumberOrDefault")]
    #[serde(default)]
    pub meeting_type: i64,
    #[serde_as(as = "NumberOrDefault")]
    #[serde(default)]
    pub media_set_type: i64,
    /// UNIX seconds (0 when absent).
    #[serde_as(as = "NumberOrDefault")]
    #[serde(default)]
    pub start_time: i64,
    /// UNIX seconds (0 when absent).
    #[serde_as(as = "NumberOrDefault")]
    #[serde(default)]
    pub end_time: i64,
}

#[serde_as]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creator {
    #[serde_as(as = "DefaultOnNull")]
    #[serde(default)]
    pub userid: String,
    #[serde_as(as = "DefaultOnNull")]
    #[serde(default)]
    pub user_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingFile {
    pub record_file_id: String,
}

/// Why opened bytes are not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not JSON of the documented shape: {0}")]
    Json(String),
    #[error("the event has no trace_id, so its deliveries cannot be told apart")]
    NoTraceId,
    #[error("the event has no name (its `event` field is empty)")]
    NoName,
    #[error("a file of the event has no record_file_id")]
    NoFileId,
}

impl Event {
    /// Reads an event and checks what a receiver needs: a `trace_id` (to deduplicate), a
    /// name, and an id for every file it names. A file named twice (in one payload or in
    /// two) is kept once, where it first appears.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EventError> {
        let mut event: Self =
            serde_json::from_slice(bytes).map_err(|e| EventError::Json(e.to_string()))?;
        if event.trace_id.trim().is_empty() {
            return Err(EventError::NoTraceId);
        }
        if event.event.trim().is_empty() {
            return Err(EventError::NoName);
        }
        let files = event.payload.iter().flat_map(|p| &p.recording_files);
        if files
            .into_iter()
            .any(|f| f.record_file_id.trim().is_empty())
        {
            return Err(EventError::NoFileId);
        }
        let mut seen = HashSet::new();
        for payload in &mut event.payload {
            payload
                .recording_files
                .retain(|f| seen.insert(f.record_file_id.clone()));
        }
        Ok(event)
    }

    /// The `trace_id` of bytes that are not an event [`Event::from_json`] accepts, if they
    /// carry one (a string, or a number): to tell an unreadable event's deliveries apart.
    pub fn trace_id_of(bytes: &[u8]) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let id = match value.get("trace_id")? {
            serde_json::Value::String(s) => s.trim().to_owned(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        (!id.is_empty()).then_some(id)
    }

    pub fn kind(&self) -> EventKind {
        EventKind::from_name(&self.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event of the documented shape (`docs/tencent-meeting-api.md`, section 6).
    const COMPLETED: &str = r#"{"event": "recording.completed", "trace_id": "abc-1",
        "payload": [{"operate_time": 1700000000000,
          "recording_files": [{"record_file_id": "f1"}, {"record_file_id": "f2"}],
          "meeting_info": {"meeting_id": "m1", "meeting_code": "123456789", "subject": "周会",
            "creator": {"userid": "u", "user_name": "张三"}, "meeting_type": 0,
            "media_set_type": 0, "start_time": 1699990000, "end_time": 1699999000}}]}"#;

    #[test]
    fn the_documented_example_reads() {
        let e = Event::from_json(COMPLETED.as_bytes()).unwrap();
        assert_eq!(e.kind(), EventKind::RecordingCompleted);
        let p = &e.payload[0];
        assert_eq!(p.meeting_info.start_time, 1_699_990_000);
        assert_eq!(p.meeting_info.creator.user_name, "张三");
        assert_eq!(p.recording_files.len(), 2);
    }

    #[test]
    fn an_event_without_trace_id_or_file_id_is_refused() {
        let no_trace = COMPLETED.replace(r#""trace_id": "abc-1","#, "");
        assert!(matches!(
            Event::from_json(no_trace.as_bytes()),
            Err(EventError::Json(_))
        ));
        let empty_trace = COMPLETED.replace("abc-1", " ");
        assert_eq!(
            Event::from_json(empty_trace.as_bytes()),
            Err(EventError::NoTraceId)
        );
        let empty_file = COMPLETED.replace(r#""f2""#, r#""""#);
        assert_eq!(
            Event::from_json(empty_file.as_bytes()),
            Err(EventError::NoFileId)
        );
    }

    /// `recording.completed` as Tencent's page prints it (doc 1095/53230): a string
    /// `media_set_type`, a `uuid` in `creator`, and one file listed twice.
    const DOCUMENTED_COMPLETED: &str = r#"{"event":"recording.completed",
        "trace_id":"e7aa65dd-f7e6-4b62-912c-2035173b34a9",
        "payload":[{"operate_time":1609313201465,
          "meeting_info":{"meeting_id":"13339451618278424869","meeting_code":"445999969",
            "subject":"tester的快速会议",
            "creator":{"userid":"tester-2","uuid":"WMfgHRYj6m36mcDGtK","user_name":"tester-2_name"},
            "meeting_type":0,"start_time":1608522626,"end_time":1609415039,"media_set_type":"2"},
          "recording_files":[{"record_file_id":"123242525"},{"record_file_id":"123242525"}]}]}"#;

    /// `recording.deleted` as documented (doc 1095/53232): an `operator` with `ms_open_id`,
    /// and no `meeting_info` for an uploaded recording.
    const DOCUMENTED_DELETED_UPLOAD: &str = r#"{"event":"recording.deleted",
        "trace_id":"e7aa65dd-f7e6-4b62-912c-2035173b34a0",
        "payload":[{"operate_time":"1609313201465",
          "operator":{"userid":"tester","uuid":"WMfgHRYj6m36mcDGtK","user_name":"tester_name",
            "ms_open_id":"tester_id"},
          "recording_files":[{"record_file_id":"123242525"},{"record_file_id":"123242526"}]}]}"#;

    #[test]
    fn the_documented_completed_example_reads_and_its_repeated_file_counts_once() {
        let e = Event::from_json(DOCUMENTED_COMPLETED.as_bytes()).unwrap();
        assert_eq!(e.kind(), EventKind::RecordingCompleted);
        let p = &e.payload[0];
        assert_eq!(p.meeting_info.media_set_type, 2);
        assert_eq!(p.meeting_info.creator.userid, "tester-2");
        assert_eq!(
            p.recording_files,
            [RecordingFile {
                record_file_id: "123242525".into()
            }]
        );
    }

    #[test]
    fn the_documented_deleted_example_of_an_upload_reads_without_meeting_info() {
        let e = Event::from_json(DOCUMENTED_DELETED_UPLOAD.as_bytes()).unwrap();
        assert_eq!(e.kind(), EventKind::RecordingDeleted);
        let p = &e.payload[0];
        assert_eq!(p.operate_time, 1_609_313_201_465);
        assert_eq!(p.meeting_info, MeetingInfo::default());
        assert_eq!(p.recording_files.len(), 2);
    }

    #[test]
    fn nulls_read_as_defaults_and_numbers_must_still_be_numbers() {
        let nulls = COMPLETED
            .replace(r#""meeting_type": 0"#, r#""meeting_type": null"#)
            .replace(
                r#""creator": {"userid": "u", "user_name": "张三"}"#,
                r#""creator": null"#,
            );
        let e = Event::from_json(nulls.as_bytes()).unwrap();
        assert_eq!(e.payload[0].meeting_info.creator, Creator::default());
        let words = COMPLETED.replace(r#""start_time": 1699990000"#, r#""start_time": "soon""#);
        assert!(matches!(
            Event::from_json(words.as_bytes()),
            Err(EventError::Json(_))
        ));
        assert_eq!(
            Event::trace_id_of(words.as_bytes()).as_deref(),
            Some("abc-1")
        );
        assert_eq!(
            Event::trace_id_of(br#"{"trace_id": 42}"#).as_deref(),
            Some("42")
        );
        assert_eq!(Event::trace_id_of(b"not json"), None);
        let nameless = COMPLETED.replace(r#""event": "recording.completed""#, r#""event": """#);
        assert_eq!(
            Event::from_json(nameless.as_bytes()),
            Err(EventError::NoName)
        );
    }

    #[test]
    fn unknown_events_and_missing_fields_are_not_errors() {
        let e = Event::from_json(br#"{"event": "meeting.started", "trace_id": "x"}"#).unwrap();
        assert_eq!(e.kind(), EventKind::Other);
        assert!(e.payload.is_empty());
    }
}
