//! The wire contract of Tencent Meeting's REST API (腾讯会议), for the endpoints an
//! archiver of cloud recordings needs: what to send, how to sign it, what comes back, and
//! what each error means for the caller. It does no I/O: bring your own HTTP client,
//! clock and rate limiter.
//!
//! - [`ListRecords`]: `GET /v1/corp/records`, the account's recordings, in windows of at
//!   most 31 days ([`MAX_WINDOW_SECS`]) and pages of at most 20 ([`RECORDS_PAGE_SIZE`]);
//!   10 calls per minute.
//! - [`RecordAddresses`]: `GET /v1/addresses?meeting_record_id=`, the download addresses of
//!   every file of one recording whatever the owner's sharing settings (admin permission);
//!   pages of at most 50 ([`ADDRESSES_PAGE_SIZE`]); addresses live 6 hours.
//! - [`DeleteRecordFile`]: `DELETE /v1/records/{record_file_id}`, one file deleted from the
//!   cloud for good, and [`DeleteRecording`]: `DELETE /v1/records?meeting_record_id=`, every
//!   file of a recording. Both answer an [`Empty`] body; error 4051 means the deletion had
//!   already happened ([`ApiError::is_already_deleted`]).
//! - [`sign`]: the AK/SK signature, proven against the official SDK's test vector.
//! - [`ApiError`] and [`ErrorClass`]: every documented error code, classified into retry,
//!   give up, or stop (credentials, permission).
//! - [`Secret`]: SecretKey, sharing passwords and download addresses never print.
//! - [`webhook`]: the event subscriptions (`recording.completed`, ...): the URL check,
//!   the SHA-1 signature checked in constant time, the AES-256-CBC envelope, the events.
//!
//! # Example
//!
//! Sign a listing call (and a deletion) and read its reply (here a canned one):
//!
//! ```
//! use wemeet_api::{Credentials, DeleteRecordFile, ListRecords, Request, Secret, decode, sign};
//!
//! let credentials = Credentials {
//!     app_id: "200000001".into(),
//!     sdk_id: None,
//!     secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE".into(),
//!     secret_key: Secret::new("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"),
//! };
//! let request = ListRecords {
//!     start_time: 1_698_000_000,
//!     end_time: 1_700_000_000,
//!     page: 1,
//!     operator_id: "admin".into(),
//!     record_type: 0,
//! };
//! let uri = request.path_and_query();
//! assert!(uri.starts_with("/v1/corp/records?start_time=1698000000&end_time=1700000000"));
//! // Send these headers with `GET {host}{uri}`; sign every attempt afresh.
//! let headers = sign::headers(&credentials, "GET", &uri, "", 1_700_000_000, 12345);
//! assert!(headers.iter().any(|(name, _)| *name == "X-TC-Signature"));
//!
//! // A deletion is signed with its own method (the signature covers it).
//! let delete = DeleteRecordFile { record_file_id: "f1".into(), operator_id: "admin".into() };
//! let method = DeleteRecordFile::METHOD.as_str();
//! let signed = sign::headers(&credentials, method, &delete.path_and_query(), "", 1_700_000_000, 12346);
//! assert_ne!(signed, sign::headers(&credentials, "GET", &delete.path_and_query(), "", 1_700_000_000, 12346));
//!
//! let body = br#"{"total_count": 1, "total_page": 1, "record_meetings": [
//!     {"meeting_record_id": "m1", "media_start_time": 1699000000000, "state": 3,
//!      "record_files": [{"record_file_id": "f1", "record_size": 1024}]}]}"#;
//! let page = decode::<ListRecords>(200, "trace-1", body).unwrap();
//! assert_eq!(page.record_meetings[0].record_files[0].record_size, 1024);
//!
//! let refused = br#"{"error_info": {"error_code": 500014, "message": "no permission"}}"#;
//! let error = decode::<ListRecords>(400, "trace-2", refused).unwrap_err();
//! assert_eq!(error.class(), wemeet_api::ErrorClass::Fatal);
//! ```

#![forbid(unsafe_code)]

mod error;
mod lenient;
mod secret;
pub mod sign;
pub mod types;
pub mod webhook;

pub use error::{ApiError, ErrorClass, code};
pub use secret::Secret;
pub use types::{AddressFile, AddressesPage, RecordFile, RecordMeeting, RecordsPage};

use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::fmt::Write as _;

/// The listing's largest page.
pub const RECORDS_PAGE_SIZE: u32 = 20;
/// The addresses endpoint's largest page (files of one recording).
pub const ADDRESSES_PAGE_SIZE: u32 = 50;
/// The listing's widest window, in seconds (`end_time - start_time`).
pub const MAX_WINDOW_SECS: i64 = 31 * 86_400;

/// An endpoint of the API. Each is rate-limited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `GET /v1/corp/records`: the account's recordings, window by window.
    Records,
    /// `GET /v1/addresses`: download addresses of one recording's files.
    Addresses,
    /// `DELETE /v1/records/{record_file_id}` and `DELETE /v1/records?meeting_record_id=`:
    /// recordings deleted from the cloud.
    Delete,
}

impl Endpoint {
    pub const ALL: [Self; 3] = [Self::Records, Self::Addresses, Self::Delete];

    /// A short name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Records => "records",
            Self::Addresses => "addresses",
            Self::Delete => "delete",
        }
    }

    /// The path, from the host's root (a request may add to it: see [`Request::path`]).
    pub fn path(self) -> &'static str {
        match self {
            Self::Records => "/v1/corp/records",
            Self::Addresses => "/v1/addresses",
            Self::Delete => "/v1/records",
        }
    }
}

/// The HTTP method of a request: what is sent, and what the signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Delete,
}

impl Method {
    /// As sent on the request line and signed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Delete => "DELETE",
        }
    }
}

/// The AK/SK credentials of an enterprise self-built app.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The enterprise id.
    pub app_id: String,
    /// Only if Tencent assigned one: an SdkId that was never assigned is refused (190303).
    pub sdk_id: Option<String>,
    pub secret_id: String,
    pub secret_key: Secret,
}

/// A call of one endpoint, and the reply it gets. Sent with an empty body.
pub trait Request {
    const ENDPOINT: Endpoint;
    /// Every listing and address call is a `GET`; deletions are not.
    const METHOD: Method = Method::Get;
    type Reply: Reply;

    /// The path, percent-encoded: the endpoint's, unless the request names a resource in it
    /// (`/v1/records/{record_file_id}`).
    fn path(&self) -> Cow<'static, str> {
        Cow::Borrowed(Self::ENDPOINT.path())
    }

    /// The query parameters, in the order they are sent.
    fn query(&self) -> Vec<(&'static str, String)>;

    /// Path and query, percent-encoded, exactly as they must be sent and signed.
    fn path_and_query(&self) -> String {
        let mut out = self.path().into_owned();
        for (i, (name, value)) in self.query().iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(name);
            out.push('=');
            encode_into(&mut out, value);
        }
        out
    }
}

/// Percent-encodes a query value or a path segment (RFC 3986 unreserved characters pass).
fn encode_into(out: &mut String, value: &str) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `GET /v1/corp/records`: one page of one window, `page_size` 20.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRecords {
    /// UNIX seconds; the window filters on the meetings' start (as far as is known).
    pub start_time: i64,
    /// UNIX seconds; at most [`MAX_WINDOW_SECS`] after `start_time`.
    pub end_time: i64,
    /// From 1.
    pub page: u32,
    /// The admin's userid (`operator_id_type` 1).
    pub operator_id: String,
    /// `query_record_type`: 0 all, 1 cloud recordings, 2 uploaded.
    pub record_type: u8,
}

impl Request for ListRecords {
    const ENDPOINT: Endpoint = Endpoint::Records;
    type Reply = RecordsPage;

    fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("start_time", self.start_time.to_string()),
            ("end_time", self.end_time.to_string()),
            ("page_size", RECORDS_PAGE_SIZE.to_string()),
            ("page", self.page.to_string()),
            ("operator_id", self.operator_id.clone()),
            ("operator_id_type", "1".into()),
            ("query_record_type", self.record_type.to_string()),
        ]
    }
}

/// `GET /v1/addresses?meeting_record_id=`: one page of a recording's files, `page_size` 50.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAddresses {
    pub meeting_record_id: String,
    /// From 1.
    pub page: u32,
    /// The admin's userid (`operator_id_type` 1).
    pub operator_id: String,
}

impl Request for RecordAddresses {
    const ENDPOINT: Endpoint = Endpoint::Addresses;
    type Reply = AddressesPage;

    fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("meeting_record_id", self.meeting_record_id.clone()),
            ("operator_id", self.operator_id.clone()),
            ("operator_id_type", "1".into()),
            ("page", self.page.to_string()),
            ("page_size", ADDRESSES_PAGE_SIZE.to_string()),
        ]
    }
}

/// `DELETE /v1/records/{record_file_id}`: deletes one file from the cloud, for good (no
/// recycle bin is documented). Error 4051 says it was deleted already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRecordFile {
    pub record_file_id: String,
    /// The admin's userid (`operator_id_type` 1).
    pub operator_id: String,
}

impl Request for DeleteRecordFile {
    const ENDPOINT: Endpoint = Endpoint::Delete;
    const METHOD: Method = Method::Delete;
    type Reply = Empty;

    fn path(&self) -> Cow<'static, str> {
        let mut out = format!("{}/", Self::ENDPOINT.path());
        encode_into(&mut out, &self.record_file_id);
        Cow::Owned(out)
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("operator_id", self.operator_id.clone()),
            ("operator_id_type", "1".into()),
        ]
    }
}

/// `DELETE /v1/records?meeting_record_id=`: deletes every file of one recording from the
/// cloud, for good, including any the caller may not have seen (audio, transcripts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRecording {
    pub meeting_record_id: String,
    /// The admin's userid (`operator_id_type` 1).
    pub operator_id: String,
    /// Optional for uploaded recordings.
    pub meeting_id: Option<String>,
}

impl Request for DeleteRecording {
    const ENDPOINT: Endpoint = Endpoint::Delete;
    const METHOD: Method = Method::Delete;
    type Reply = Empty;

    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("meeting_record_id", self.meeting_record_id.clone())];
        if let Some(meeting_id) = &self.meeting_id {
            query.push(("meeting_id", meeting_id.clone()));
        }
        query.push(("operator_id", self.operator_id.clone()));
        query.push(("operator_id_type", "1".into()));
        query
    }
}

/// A reply that can be checked whole before it is applied: one that is valid only in
/// part is refused, so nothing is half-applied.
pub trait Reply: DeserializeOwned {
    fn validate(&self) -> Result<(), BadReply>;

    /// Reads the body of a successful call: JSON, then [`Reply::validate`]d.
    fn read(body: &[u8]) -> Result<Self, BadReply> {
        let reply: Self =
            serde_json::from_slice(body).map_err(|e| BadReply::Json(e.to_string()))?;
        reply.validate()?;
        Ok(reply)
    }
}

/// Why the body of a successful call is not a reply of its endpoint (it becomes
/// [`ApiError::Malformed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReply {
    /// Not the endpoint's JSON: the parser's words.
    #[error("{0}")]
    Json(String),
    #[error("a success that is neither empty nor a JSON object")]
    NotEmpty,
    #[error("a meeting without meeting_record_id")]
    MeetingWithoutId,
    #[error("a file of meeting {meeting_record_id} without record_file_id")]
    FileWithoutId { meeting_record_id: String },
}

/// The reply of a call that answers success with an empty body (the deletions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct Empty {}

impl Reply for Empty {
    fn validate(&self) -> Result<(), BadReply> {
        Ok(())
    }

    /// An empty body, as documented; a JSON object (`{}`) is taken as well, in case the
    /// service starts sending one: the status and the absence of `error_info` are what
    /// say the call succeeded.
    fn read(body: &[u8]) -> Result<Self, BadReply> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self {});
        }
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(_)) => Ok(Self {}),
            _ => Err(BadReply::NotEmpty),
        }
    }
}

impl Reply for RecordsPage {
    fn validate(&self) -> Result<(), BadReply> {
        for m in &self.record_meetings {
            if m.meeting_record_id.trim().is_empty() {
                return Err(BadReply::MeetingWithoutId);
            }
            if m.record_files
                .iter()
                .any(|f| f.record_file_id.trim().is_empty())
            {
                return Err(BadReply::FileWithoutId {
                    meeting_record_id: m.meeting_record_id.clone(),
                });
            }
        }
        Ok(())
    }
}

impl Reply for AddressesPage {
    fn validate(&self) -> Result<(), BadReply> {
        match self
            .record_files
            .iter()
            .any(|f| f.record_file_id.trim().is_empty())
        {
            true => Err(BadReply::FileWithoutId {
                meeting_record_id: self.meeting_record_id.clone(),
            }),
            false => Ok(()),
        }
    }
}

/// Reads a reply of `R` from its HTTP status, `X-TC-Trace` and body: the typed reply, or
/// the classified error (an `error_info` body, a non-200 status, or a body that is not
/// the endpoint's).
pub fn decode<R: Request>(status: u16, trace: &str, body: &[u8]) -> Result<R::Reply, ApiError> {
    let error_info = serde_json::from_slice::<types::ErrorBody>(body)
        .ok()
        .map(|b| b.error_info);
    if status != 200 || error_info.is_some() {
        let (code, message) = error_info
            .map(|i| (Some(i.error_code), i.message))
            .unwrap_or((None, String::new()));
        return Err(ApiError::from_reply(
            R::ENDPOINT,
            status,
            code,
            message,
            trace.to_string(),
        ));
    }
    R::Reply::read(body).map_err(|bad| ApiError::Malformed {
        status,
        trace: trace.to_string(),
        detail: bad.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded_in_order() {
        let r = RecordAddresses {
            meeting_record_id: "12 34".into(),
            page: 2,
            operator_id: "a&b=c/中".into(),
        };
        assert_eq!(
            r.path_and_query(),
            "/v1/addresses?meeting_record_id=12%2034&operator_id=a%26b%3Dc%2F%E4%B8%AD\
             &operator_id_type=1&page=2&page_size=50"
        );
    }

    #[test]
    fn a_file_deletion_names_the_file_in_its_path_and_is_a_delete() {
        let r = DeleteRecordFile {
            record_file_id: "17/2 3".into(),
            operator_id: "admin".into(),
        };
        assert_eq!(
            r.path_and_query(),
            "/v1/records/17%2F2%203?operator_id=admin&operator_id_type=1"
        );
        assert_eq!(DeleteRecordFile::METHOD.as_str(), "DELETE");
        assert_eq!(ListRecords::METHOD, Method::Get);
        let whole = DeleteRecording {
            meeting_record_id: "m1".into(),
            operator_id: "admin".into(),
            meeting_id: None,
        };
        assert_eq!(
            whole.path_and_query(),
            "/v1/records?meeting_record_id=m1&operator_id=admin&operator_id_type=1"
        );
    }

    #[test]
    fn a_deletion_succeeds_with_an_empty_body_and_4051_says_it_was_done_already() {
        assert_eq!(decode::<DeleteRecordFile>(200, "t", b""), Ok(Empty {}));
        assert_eq!(decode::<DeleteRecordFile>(200, "t", b"{}"), Ok(Empty {}));
        let e = decode::<DeleteRecordFile>(200, "t", b"<html>").unwrap_err();
        assert!(matches!(e, ApiError::Malformed { .. }), "{e}");
        let repeat = br#"{"error_info": {"error_code": 4051, "message": "already deleted"}}"#;
        let e = decode::<DeleteRecordFile>(500, "t", repeat).unwrap_err();
        assert!(e.is_already_deleted(), "{e}");
        assert_eq!(e.class(), ErrorClass::GiveUp);
        let gone = br#"{"error_info": {"error_code": 7003, "message": "file not found"}}"#;
        assert!(
            !decode::<DeleteRecordFile>(500, "t", gone)
                .unwrap_err()
                .is_already_deleted()
        );
    }

    #[test]
    fn a_page_valid_only_in_part_is_refused_whole() {
        let body = br#"{"record_meetings": [{"meeting_record_id": "m", "media_start_time": 0,
            "state": 3, "record_files": [{"record_file_id": " ", "record_size": 1}]}]}"#;
        let e = decode::<ListRecords>(200, "t", body).unwrap_err();
        assert!(matches!(e, ApiError::Malformed { .. }), "{e}");
        let e = decode::<ListRecords>(200, "t", b"{\"record_meetings\": [").unwrap_err();
        assert!(matches!(e, ApiError::Malformed { .. }), "{e}");
    }
}
