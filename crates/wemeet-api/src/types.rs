//! The JSON shapes of `GET /v1/corp/records` and `GET /v1/addresses`.
//!
//! Fields the pages mark optional default instead of failing: a reply missing
//! `record_files` for a state-1 meeting is normal, not malformed, and an empty address is
//! "no address" (Tencent: "fields can be empty in some cases; treat that as normal").
//! Numbers are read from JSON numbers or strings of digits alike (see `lenient.rs`).

use crate::Secret;
use crate::lenient::{Number, NumberOrDefault, OptionalNumber};
use serde::{Deserialize, Deserializer, Serialize};
use serde_with::serde_as;

/// One page of the account-level recording list. Every field defaults when missing.
#[serde_as]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordsPage {
    #[serde_as(as = "NumberOrDefault")]
    pub total_count: u64,
    /// Not trusted (the official example says 10 while returning 2): count the items.
    #[serde_as(as = "NumberOrDefault")]
    pub current_size: u64,
    #[serde_as(as = "NumberOrDefault")]
    pub current_page: u64,
    #[serde_as(as = "NumberOrDefault")]
    pub total_page: u64,
    pub record_meetings: Vec<RecordMeeting>,
}

/// Meeting state: only `TRANSCODED` meetings carry `record_files`.
pub mod state {
    pub const RECORDING: i64 = 1;
    pub const TRANSCODING: i64 = 2;
    pub const TRANSCODED: i64 = 3;
}

#[serde_as]
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
    #[serde_as(as = "Number")]
    pub media_start_time: i64,
    #[serde(default)]
    pub subject: String,
    #[serde_as(as = "Number")]
    pub state: i64,
    #[serde(default)]
    #[serde_as(as = "NumberOrDefault")]
    pub record_type: i64,
    #[serde(default)]
    pub record_files: Vec<RecordFile>,
}

#[serde_as]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordFile {
    pub record_file_id: String,
    #[serde(default)]
    #[serde_as(as = "NumberOrDefault")]
    pub record_start_time: i64,
    #[serde(default)]
    #[serde_as(as = "NumberOrDefault")]
    pub record_end_time: i64,
    #[serde_as(as = "Number")]
    pub record_size: u64,
    #[serde(default)]
    #[serde_as(as = "NumberOrDefault")]
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
    #[serde_as(as = "OptionalNumber")]
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

#[serde_as]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorInfo {
    #[serde_as(as = "Number")]
    pub error_code: i64,
    #[serde(default)]
    #[serde_as(as = "NumberOrDefault")]
    pub new_error_code: i64,
    #[serde(default)]
    pub message: String,
}

/// One page of `GET /v1/addresses?meeting_record_id=`: the files of one recording.
/// Every field defaults when missing.
#[serde_as]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AddressesPage {
    #[serde_as(as = "NumberOrDefault")]
    pub total_count: u64,
    #[serde_as(as = "NumberOrDefault")]
    pub current_page: u64,
    #[serde_as(as = "NumberOrDefault")]
    pub total_page: u64,
    pub meeting_record_id: String,
    pub record_files: Vec<AddressFile>,
}

/// The addresses of one file. Each lives 6 hours and carries a signed token: a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddressFile {
    pub record_file_id: String,
    /// The MP4; `None` when the API gave none (or an empty one).
    #[serde(default, deserialize_with = "non_empty_secret")]
    pub download_address: Option<Secret>,
    #[serde(default)]
    pub download_address_file_type: String,
    /// The audio track alone (m4a).
    #[serde(default, deserialize_with = "non_empty_secret")]
    pub audio_address: Option<Secret>,
    #[serde(default)]
    pub audio_address_file_type: String,
    /// Transcripts (txt, pdf, docx); they may appear hours after transcoding.
    #[serde(default)]
    pub meeting_summary: Vec<SummaryFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryFile {
    #[serde(default, deserialize_with = "non_empty_secret")]
    pub download_address: Option<Secret>,
    #[serde(default)]
    pub file_type: String,
}

/// `""` and `null` are both "no address".
fn non_empty_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<Secret>::deserialize(d)?.filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The output example of Tencent's page for `GET /v1/corp/records`, verbatim (its
    /// `current_size` says 10 for 2 items).
    const DOCUMENTED_PAGE: &str = include_str!("../fixtures/corp-records.example.json");

    #[test]
    fn the_documented_example_reply_reads_unchanged() {
        let page: RecordsPage = serde_json::from_str(DOCUMENTED_PAGE).unwrap();
        assert_eq!((page.total_count, page.current_size), (2, 10));
        assert_eq!(page.record_meetings.len(), 2);
        let m = &page.record_meetings[1];
        assert_eq!(m.meeting_record_id, "1362741760987500000");
        assert_eq!((m.state, m.media_start_time), (3, 1_613_737_924_000));
        let f = &m.record_files[0];
        assert_eq!(
            (f.record_file_id.as_str(), f.record_size),
            ("1362231760987501111", 1_075_029)
        );
        assert!(f.download_address.is_some() && f.password.is_some());
        assert!(
            page.record_meetings[0].record_files[0]
                .download_address
                .is_none()
        );
    }

    #[test]
    fn numbers_given_as_strings_read_as_numbers() {
        let quoted = DOCUMENTED_PAGE
            .replace(r#""total_count": 2"#, r#""total_count": "2""#)
            .replace(r#""state": 3"#, r#""state": "3""#)
            .replace(
                r#""media_start_time": 1613737924000"#,
                r#""media_start_time": "1613737924000""#,
            )
            .replace(r#""record_size": 1075029"#, r#""record_size": "1075029""#)
            .replace(r#""sharing_expire": 0"#, r#""sharing_expire": "0""#)
            .replace(r#""record_type":0"#, r#""record_type":null"#);
        assert_ne!(quoted, DOCUMENTED_PAGE);
        let page: RecordsPage = serde_json::from_str(&quoted).unwrap();
        assert_eq!(page.total_count, 2);
        let m = &page.record_meetings[1];
        assert_eq!(
            (m.state, m.media_start_time, m.record_type),
            (3, 1_613_737_924_000, 0)
        );
        assert_eq!(m.record_files[0].record_size, 1_075_029);
        assert_eq!(m.record_files[0].sharing_expire, Some(0));
        let bad = quoted.replace(r#""record_size": "1075029""#, r#""record_size": "1 MB""#);
        assert!(
            serde_json::from_str::<RecordsPage>(&bad).is_err(),
            "a size that is no number is refused"
        );
    }

    #[test]
    fn empty_and_missing_addresses_are_none() {
        let page: AddressesPage = serde_json::from_str(
            r#"{"total_count": 3, "total_page": 1, "meeting_record_id": "m",
                "record_files": [
                  {"record_file_id": "a", "download_address": "https://x/a?t=1",
                   "meeting_summary": [{"download_address": "", "file_type": "txt"}]},
                  {"record_file_id": "b", "download_address": ""},
                  {"record_file_id": "c", "download_address": null, "audio_address": ""}]}"#,
        )
        .unwrap();
        let files = &page.record_files;
        assert_eq!(
            files[0].download_address.as_ref().map(Secret::expose),
            Some("https://x/a?t=1")
        );
        assert!(files[0].meeting_summary[0].download_address.is_none());
        assert!(files[1].download_address.is_none() && files[2].download_address.is_none());
        assert!(files[2].audio_address.is_none());
    }
}
