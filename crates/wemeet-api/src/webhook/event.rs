//! The JSON of a webhook event, once opened.
//!
//! Fields default rather than fail, as in the REST replies: the documentation shows one
//! example per event and says little about which fields are optional, and an event refused
//! for a missing `meeting_type` would be an event lost. Only what a receiver cannot do
//! without is checked ([`Event::from_json`]).

use serde::{Deserialize, Serialize};

/// The body of every POST: `{"data": "<base64>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub data: String,
}

/// One delivery of one event. Deliveries are at least once: the same `trace_id` may come
/// again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `recording.completed`, `recording.deleted`, `smart.transcripts`, ...
    pub event: String,
    pub trace_id: String,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub operate_time: i64,
    #[serde(default)]
    pub meeting_info: MeetingInfo,
    #[serde(default)]
    pub recording_files: Vec<RecordingFile>,
}

/// The meeting an event is about. There is **no `meeting_record_id`**: a receiver that
/// needs the recording finds it by listing a window around `start_time`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingInfo {
    #[serde(default)]
    pub meeting_id: String,
    #[serde(default)]
    pub meeting_code: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub creator: Creator,
    #[serde(default)]
    pub meeting_type: i64,
    #[serde(default)]
    pub media_set_type: i64,
    /// UNIX seconds (0 when absent).
    #[serde(default)]
    pub start_time: i64,
    /// UNIX seconds (0 when absent).
    #[serde(default)]
    pub end_time: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creator {
    #[serde(default)]
    pub userid: String,
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
    #[error("a file of the event has no record_file_id")]
    NoFileId,
}

impl Event {
    /// Reads an event and checks what a receiver needs: a `trace_id` (to deduplicate) and
    /// an id for every file it names.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EventError> {
        let event: Self =
            serde_json::from_slice(bytes).map_err(|e| EventError::Json(e.to_string()))?;
        if event.trace_id.trim().is_empty() {
            return Err(EventError::NoTraceId);
        }
        let files = event.payload.iter().flat_map(|p| &p.recording_files);
        if files
            .into_iter()
            .any(|f| f.record_file_id.trim().is_empty())
        {
            return Err(EventError::NoFileId);
        }
        Ok(event)
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

    #[test]
    fn unknown_events_and_missing_fields_are_not_errors() {
        let e = Event::from_json(br#"{"event": "meeting.started", "trace_id": "x"}"#).unwrap();
        assert_eq!(e.kind(), EventKind::Other);
        assert!(e.payload.is_empty());
    }
}
