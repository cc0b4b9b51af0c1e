//! The events of the subscription as Tencent Meeting words them (`recording.completed`,
//! `recording.deleted`), and the record of each POST of one.
//!
//! Shaped like the documentation's own examples (docs 1095/53230 and 1095/53232), not like
//! our types: `media_set_type` is a string, `creator` and `operator` carry `uuid` and
//! `ms_open_id`, every file is listed twice, and the deletion of an uploaded recording has
//! no `meeting_info`. The event carries the meeting's id, code, subject, times and its
//! files, but no `meeting_record_id`: the receiver must find the recording by listing.
//! The JSON is built here from the simulator's model; `webhook` signs, seals and posts it.

use crate::dataset::Meeting;
use crate::prng::{hash_str, mix64};
use crate::trace::trace_id;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// One POST of an event, for tests to assert on (`SimHandle::webhook_deliveries`,
/// `/admin/webhook`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// `recording.completed` or `recording.deleted`.
    pub event: String,
    pub trace_id: String,
    /// The recording the event is about: the simulator knows it, the event does not say it.
    pub meeting_record_id: String,
    pub record_file_ids: Vec<String>,
    /// When the POST was sent (epoch ms).
    pub sent_at_ms: i64,
    /// The receiver's HTTP status; `None` when no answer came (refused, timed out).
    pub status: Option<u16>,
}

/// An event about to be posted.
pub struct DueEvent {
    /// `recording.completed` or `recording.deleted`.
    pub event: &'static str,
    pub trace_id: String,
    /// The recording it is about (the event itself does not say it).
    pub meeting_record_id: String,
    pub record_file_ids: Vec<String>,
    /// The event's JSON, before the envelope.
    pub json: Vec<u8>,
}

impl DueEvent {
    /// The `recording.completed` event of `m`, at `now_ms`.
    pub fn completed(m: &Meeting, recording: Duration, now_ms: i64) -> Self {
        let trace_id = trace_id();
        let record_file_ids: Vec<String> =
            m.files.iter().map(|f| f.record_file_id.clone()).collect();
        // The meeting began a little before its recording (up to a minute, decided from its
        // id) and ended when the recording stopped, on the lifecycle clock.
        let lead_s = (mix64(hash_str(&m.meeting_id)) % 61) as i64;
        let start_s = m.media_start_ms.div_euclid(1000) - lead_s;
        let end_s = (m.media_start_ms + recording.as_millis() as i64).div_euclid(1000) + 1;
        let json = json!({
            "event": "recording.completed",
            "trace_id": trace_id,
            "payload": [{
                "operate_time": now_ms,
                "meeting_info": {
                    "meeting_id": m.meeting_id,
                    "meeting_code": m.meeting_code,
                    "subject": m.subject,
                    "creator": person(&m.userid),
                    "meeting_type": 0,
                    "start_time": start_s,
                    "end_time": end_s,
                    "media_set_type": "2",
                },
                "recording_files": listed_twice(&record_file_ids),
            }],
        });
        Self::new("recording.completed", trace_id, m, record_file_ids, &json)
    }

    /// The `recording.deleted` event of `files` of `m`, deleted at `now_ms` by the API's
    /// operator `operator`. An uploaded recording's event has no `meeting_info`.
    pub fn deleted(m: &Meeting, files: Vec<String>, operator: &str, now_ms: i64) -> Self {
        let trace_id = trace_id();
        let mut payload = json!({
            "operate_time": now_ms,
            "operator": person(operator),
            "recording_files": listed_twice(&files),
        });
        if m.record_type != 2 {
            payload["meeting_info"] = json!({
                "meeting_id": m.meeting_id,
                "meeting_code": m.meeting_code,
                "subject": m.subject,
                "creator": person(&m.userid),
                "meeting_type": 0,
                "start_time": m.media_start_ms.div_euclid(1000),
                "end_time": m.media_start_ms.div_euclid(1000) + 1,
            });
        }
        let json = json!({
            "event": "recording.deleted",
            "trace_id": trace_id,
            "payload": [payload],
        });
        Self::new("recording.deleted", trace_id, m, files, &json)
    }

    fn new(
        event: &'static str,
        trace_id: String,
        m: &Meeting,
        record_file_ids: Vec<String>,
        json: &serde_json::Value,
    ) -> Self {
        Self {
            event,
            trace_id,
            meeting_record_id: m.meeting_record_id.clone(),
            record_file_ids,
            json: serde_json::to_vec(json).expect("a JSON value serialises"),
        }
    }
}

/// A user as the documented events show one: `uuid` and `ms_open_id` beside the userid.
fn person(userid: &str) -> serde_json::Value {
    let uuid = format!("WM{:016x}", mix64(hash_str(userid)));
    json!({"userid": userid, "uuid": uuid, "user_name": userid, "ms_open_id": format!("{uuid}-open")})
}

/// Each file twice, as the documentation's examples list them.
fn listed_twice(ids: &[String]) -> Vec<serde_json::Value> {
    ids.iter()
        .flat_map(|id| [json!({"record_file_id": id}), json!({"record_file_id": id})])
        .collect()
}
