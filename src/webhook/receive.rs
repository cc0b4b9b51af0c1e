//! The two requests of the subscription's URL: the URL check (GET) and events (POST).
//!
//! Order of the checks: the signature headers, then the body's size and shape, then the
//! signature, then decryption and the event's JSON. An event is recorded (committed) before
//! its 200, and a request that changes nothing gets no 200: a bad or missing signature is a
//! 401, a body that is not an envelope a 400, one over 1 MiB a 413, another method a 405.
//!
//! A correctly signed event is the platform's, whatever is inside: one that does not open
//! or is not an event we can read still gets its 200 (a 4xx makes the platform retry it
//! and may disable the subscription). It is recorded raw, counted, logged at error level,
//! and worked by listing the live window, so that what it announced is found anyway.

use super::{MAX_BODY, Receiver, Rejection};
use crate::domain::RecordFileId;
use crate::state::{EventFile, EventStatus, NewEvent, Receipt};
use crate::time::UnixMs;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use wemeet_api::webhook::{
    self, Envelope, Event, EventKind, SignedHeaders, UrlCheckError, answer_url_check,
};

/// GET and POST; anything else is counted and refused. Bodies are read up to 1 MiB.
pub(super) fn routes() -> MethodRouter<Arc<Receiver>> {
    get(url_check)
        .post(event)
        .fallback(other_method)
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Self::Signature => (StatusCode::UNAUTHORIZED, "bad or missing signature\n"),
            Self::Malformed => (
                StatusCode::BAD_REQUEST,
                "not an event of this subscription\n",
            ),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body over 1 MiB\n"),
            Self::Method => (StatusCode::METHOD_NOT_ALLOWED, "GET or POST only\n"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "cannot record it now\n"),
        };
        let mut response = (status, text).into_response();
        if self == Self::Method {
            let allow = header::HeaderValue::from_static("GET, POST");
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }
}

/// The headers every request must carry; `None` if one is missing.
fn signed_headers(headers: &HeaderMap) -> Option<SignedHeaders<'_>> {
    let value = |name: &str| headers.get(name)?.to_str().ok();
    Some(SignedHeaders {
        timestamp: value("timestamp")?,
        nonce: value("nonce")?,
        signature: value("signature")?,
    })
}

#[derive(serde::Deserialize)]
struct CheckQuery {
    check_str: Option<String>,
}

/// `GET ?check_str=`: the bare plaintext, at once (the console waits 3 s at most).
async fn url_check(State(r): State<Arc<Receiver>>, uri: Uri, headers: HeaderMap) -> Response {
    let answered = answer(&r, &uri, &headers);
    match answered {
        Ok(plaintext) => {
            r.counters.url_checks.inc();
            tracing::debug!("webhook URL check answered");
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                plaintext,
            )
                .into_response()
        }
        Err(why) => r.refuse(why, "URL check"),
    }
}

fn answer(r: &Receiver, uri: &Uri, headers: &HeaderMap) -> Result<String, Rejection> {
    let signed = signed_headers(headers).ok_or(Rejection::Signature)?;
    let query = Query::<CheckQuery>::try_from_uri(uri).map_err(|_| Rejection::Malformed)?;
    // Form decoding reads a raw `+` as a space; base64 has `+` and never a space, so a
    // sender that left `+` unescaped still gets its check_str back whole.
    let check_str = query
        .0
        .check_str
        .ok_or(Rejection::Malformed)?
        .replace(' ', "+");
    answer_url_check(r.token.expose(), r.key.as_ref(), &signed, &check_str).map_err(|e| match e {
        UrlCheckError::Signature => Rejection::Signature,
        UrlCheckError::Payload(_) | UrlCheckError::NotText => Rejection::Malformed,
    })
}

/// `POST {"data": ...}`: recorded, then acknowledged; the work comes after.
async fn event(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    r.counters.received.inc();
    let receipt = match r.accept(&headers, body).await {
        Ok(Accepted::Event(receipt)) => {
            if receipt == Receipt::New {
                r.counters.accepted.inc();
            }
            receipt
        }
        Ok(Accepted::Unreadable(receipt)) => {
            r.counters.unreadable.inc();
            receipt
        }
        Err(why) => return r.refuse(why, "event"),
    };
    match receipt {
        Receipt::New => r.arrived.notify_one(),
        Receipt::Duplicate => {
            r.counters.duplicates.inc();
        }
    }
    (StatusCode::OK, "successfully received callback").into_response()
}

async fn other_method(State(r): State<Arc<Receiver>>) -> Response {
    r.refuse(Rejection::Method, "request")
}

impl Receiver {
    fn refuse(&self, why: Rejection, what: &str) -> Response {
        self.counters.reject(why);
        tracing::warn!(reason = why.as_str(), "webhook {what} refused");
        why.into_response()
    }

    async fn accept(
        &self,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Accepted, Rejection> {
        let signed = signed_headers(headers).ok_or(Rejection::Signature)?;
        let bytes = body.map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Rejection::TooLarge,
            _ => Rejection::Malformed,
        })?;
        let envelope: Envelope =
            serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed)?;
        if !webhook::verify(self.token.expose(), &signed, &envelope.data) {
            return Err(Rejection::Signature);
        }
        let json = match webhook::open(self.key.as_ref(), &envelope.data) {
            Ok(json) => json,
            Err(e) => {
                let why = format!(
                    "does not open ({e}): check webhook.encoding_aes_key against the console's EncodingAESKey"
                );
                let unreadable = unreadable_event(None, envelope.data.into_bytes(), why);
                return self.record_unreadable(unreadable).await;
            }
        };
        let event = match Event::from_json(&json) {
            Ok(event) => event,
            Err(e) => {
                let unreadable = unreadable_event(Event::trace_id_of(&json), json, e.to_string());
                return self.record_unreadable(unreadable).await;
            }
        };
        let receipt = self.record(&to_new_event(&event, &json)).await?;
        let files = event
            .payload
            .iter()
            .map(|p| p.recording_files.len())
            .sum::<usize>();
        tracing::info!(
            trace_id = %event.trace_id, event = %event.event, files,
            duplicate = receipt == Receipt::Duplicate, "webhook event recorded"
        );
        Ok(Accepted::Event(receipt))
    }

    /// Commits `event`; a database that cannot take it is a 503, so the platform retries.
    async fn record(&self, event: &NewEvent) -> Result<Receipt, Rejection> {
        self.store
            .record_event(event, UnixMs::now())
            .await
            .map_err(|e| {
                tracing::error!(error = %crate::errors::chain(&e), "cannot record a webhook event");
                Rejection::Unavailable
            })
    }

    async fn record_unreadable(&self, event: NewEvent) -> Result<Accepted, Rejection> {
        let receipt = self.record(&event).await?;
        tracing::error!(
            trace_id = %event.trace_id,
            error = event.unreadable.as_deref().unwrap_or_default(),
            duplicate = receipt == Receipt::Duplicate,
            "a signed webhook event cannot be read: kept raw in the database (webhook_events.body); the live window will be listed for it"
        );
        Ok(Accepted::Unreadable(receipt))
    }
}

/// What became of a request the signature says the platform sent.
enum Accepted {
    /// An event read and recorded.
    Event(Receipt),
    /// A signed event that could not be read, recorded raw.
    Unreadable(Receipt),
}

/// The row of a signed event that could not be read: its `trace_id` when it has one,
/// else one derived from its bytes (so that its redeliveries are told apart as duplicates);
/// no files; worked by listing the live window.
fn unreadable_event(trace_id: Option<String>, raw: Vec<u8>, why: String) -> NewEvent {
    let trace_id = trace_id.unwrap_or_else(|| {
        let digest = hex::encode(Sha256::digest(&raw));
        format!("unreadable-{}", &digest[..32])
    });
    let event = serde_json::from_slice::<serde_json::Value>(&raw)
        .ok()
        .and_then(|v| v.get("event")?.as_str().map(str::to_owned))
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "(unreadable)".into());
    NewEvent {
        trace_id,
        event,
        status: EventStatus::Pending,
        body: String::from_utf8_lossy(&raw).into_owned(),
        files: Vec::new(),
        unreadable: Some(why),
    }
}

/// The row of an event: its files with their meeting's times, and whether the daemon acts
/// on it at all.
fn to_new_event(event: &Event, json: &[u8]) -> NewEvent {
    let status = match event.kind() {
        EventKind::RecordingCompleted | EventKind::RecordingDeleted => EventStatus::Pending,
        EventKind::SmartTranscripts | EventKind::Other => EventStatus::Ignored,
    };
    let files = event
        .payload
        .iter()
        .flat_map(|p| {
            p.recording_files.iter().map(|f| EventFile {
                record_file_id: RecordFileId::new(&f.record_file_id),
                meeting_id: p.meeting_info.meeting_id.clone(),
                start_time: p.meeting_info.start_time,
                end_time: p.meeting_info.end_time,
                operate_time: p.operate_time,
            })
        })
        .collect();
    NewEvent {
        trace_id: event.trace_id.clone(),
        event: event.event.clone(),
        status,
        body: String::from_utf8_lossy(json).into_owned(),
        files,
        unreadable: None,
    }
}
