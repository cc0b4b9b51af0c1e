//! Event subscriptions (事件订阅, webhooks): what Tencent Meeting sends to a URL of yours
//! when a recording is transcoded or deleted, and how to tell it really came from Tencent.
//!
//! The console takes a URL, a **Token** (25 characters, [`TOKEN_LEN`]) and optionally an
//! **EncodingAESKey** (43 characters, [`EncodingAesKey`]). The URL must answer two requests:
//!
//! - the **URL check**, `GET URL?check_str=...` (also repeated as a heartbeat): verify the
//!   signature over `check_str`, open it ([`open`]) and answer the bare plaintext, within
//!   3 seconds ([`answer_url_check`] does all three);
//! - **events**, `POST` with the JSON body `{"data": "..."}` ([`Envelope`]): verify the
//!   signature over `data`, open it, read the [`Event`], answer HTTP 200 quickly and do the
//!   work afterwards.
//!
//! Both carry the headers `timestamp`, `nonce` and `signature` ([`SignedHeaders`]): the
//! signature is the lowercase hex SHA-1 of the token, the timestamp, the nonce and the data,
//! sorted and concatenated ([`signature`]), and is checked in constant time ([`verify`]).
//! With an EncodingAESKey, `data` is base64 of AES-256-CBC (key from the EncodingAESKey, IV
//! its first 16 bytes, PKCS#7 padding); without one it is plain base64 of the JSON.
//!
//! Deliveries are at least once and undocumented beyond that: deduplicate by
//! [`Event::trace_id`], and keep polling as the safety net.
//!
//! # Example
//!
//! What a receiver does with a POST (here one sealed by [`seal`], as a sender would):
//!
//! ```
//! use wemeet_api::webhook::{self, EncodingAesKey, Envelope, Event, EventKind, SignedHeaders};
//!
//! let token = "Tk25charsWemeetArchiver01";
//! let key = EncodingAesKey::parse("WemeetArchiverWebhookVectorKey0123456789abc").unwrap();
//! // The sender's side.
//! let json = br#"{"event": "recording.completed", "trace_id": "t-1", "payload": [
//!     {"operate_time": 1700000000000, "recording_files": [{"record_file_id": "f1"}],
//!      "meeting_info": {"meeting_id": "m1", "start_time": 1699990000, "end_time": 1699999000}}]}"#;
//! let data = webhook::seal(Some(&key), json);
//! let body = serde_json::to_vec(&Envelope { data: data.clone() }).unwrap();
//! let sig = webhook::signature(token, "1700000001", "42", &data);
//!
//! // The receiver's side.
//! let headers = SignedHeaders { timestamp: "1700000001", nonce: "42", signature: &sig };
//! let envelope: Envelope = serde_json::from_slice(&body).unwrap();
//! assert!(webhook::verify(token, &headers, &envelope.data));
//! let event = Event::from_json(&webhook::open(Some(&key), &envelope.data).unwrap()).unwrap();
//! assert_eq!(event.kind(), EventKind::RecordingCompleted);
//! assert_eq!(event.payload[0].recording_files[0].record_file_id, "f1");
//! ```

mod envelope;
mod event;
mod signature;

pub use envelope::{ENCODING_AES_KEY_LEN, EncodingAesKey, KeyError, PayloadError, open, seal};
pub use event::{
    Creator, Envelope, Event, EventError, EventKind, MeetingInfo, Payload, RecordingFile,
};
pub use signature::{SignedHeaders, TOKEN_LEN, signature, verify};

/// Why a URL check gets no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlCheckError {
    /// Missing, or not made with the token: the request is not Tencent's.
    #[error("the signature of the URL check is missing or wrong")]
    Signature,
    #[error("the URL check's check_str cannot be opened")]
    Payload(#[source] PayloadError),
    #[error("the URL check's plaintext is not UTF-8")]
    NotText,
}

/// The answer to a URL check: the plaintext of `check_str` (already URL-decoded), once its
/// signature is verified. Send it as the whole body, without quotes or a newline.
pub fn answer_url_check(
    token: &str,
    key: Option<&EncodingAesKey>,
    headers: &SignedHeaders<'_>,
    check_str: &str,
) -> Result<String, UrlCheckError> {
    if !verify(token, headers, check_str) {
        return Err(UrlCheckError::Signature);
    }
    let plain = open(key, check_str).map_err(UrlCheckError::Payload)?;
    String::from_utf8(plain).map_err(|_| UrlCheckError::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "Tk25charsWemeetArchiver01";

    #[test]
    fn a_url_check_is_answered_with_its_bare_plaintext() {
        let key = EncodingAesKey::parse("WemeetArchiverWebhookVectorKey0123456789abc").unwrap();
        for key in [Some(&key), None] {
            let check_str = seal(key, b"wemeet-archiver url check");
            let sig = signature(TOKEN, "1700000000", "12345", &check_str);
            let headers = SignedHeaders {
                timestamp: "1700000000",
                nonce: "12345",
                signature: &sig,
            };
            assert_eq!(
                answer_url_check(TOKEN, key, &headers, &check_str).as_deref(),
                Ok("wemeet-archiver url check")
            );
            let forged = SignedHeaders {
                nonce: "12346",
                ..headers
            };
            assert_eq!(
                answer_url_check(TOKEN, key, &forged, &check_str),
                Err(UrlCheckError::Signature)
            );
        }
    }
}
