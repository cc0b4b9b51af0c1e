//! The JSON shapes of `GET /v1/corp/records`, shared with the simulator.
//!
//! Fields the page marks optional default instead of failing: a reply missing
//! `record_files` for a state-1 meeting is normal, not malformed.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// One page of the account-level recording list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordsPage {
    #[serde(default)]
    pub total_count: u64,
    /// Not trusted (the official example says 10 while returning 2): count the items.
    #[serde(default)]
    pub current_size: u64,
    #[serde(default)]
    pub current_page: u64,
    #[serde(default)]
    pub total_page: u64,
    #[serde(default)]
    pub record_meetings: Vec<RecordMeeting>,
}

/// Meeting state: only `TRANSCODED` meetings carry `record_files`.
pub mod state {
    pub const RECORDING: i64 = 1;
    pub const TRANSCODING: i64 = 2;
    pub const TRANSCODED: i64 = 3;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordMeeting {
    pub meeting_record_id: String,
    #[serde(default)]
    pub meeting_id: String,
    #[serde(default)]
    pub meeting_code: String,
    #[serde(default)]
    pub userid: String,
    /// Milliseconds since the epoch.
    pub media_start_time: i64,
    #[serde(default)]
    pub subject: String,
    pub state: i64,
    #[serde(default)]
    pub record_type: i64,
    #[serde(default)]
    pub record_files: Vec<RecordFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordFile {
    pub record_file_id: String,
    #[serde(default)]
    pub record_start_time: i64,
    #[serde(default)]
    pub record_end_time: i64,
    pub record_size: u64,
    #[serde(default)]
    pub sharing_state: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_same_corp: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_participant: Option<bool>,
    /// The sharing password: a secret, never logged nor written to `meeting.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_expire: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_download: Option<bool>,
    /// Carries a signed token in its query string: a secret until it expires (6 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_address: Option<Secret>,
}

/// The error body of every failed call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error_info: ErrorInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub error_code: i64,
    #[serde(default)]
    pub new_error_code: i64,
    #[serde(default)]
    pub message: String,
}
