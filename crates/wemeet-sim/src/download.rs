//! The COS-like download host: `GET /cos/{record_file_id}/{name}.mp4?token=...`.
//! A file deleted from the cloud is `NoSuchKey`, even with an address issued before.
//!
//! Bodies are generated chunk by chunk as they are sent (memory stays flat for any file
//! size), Range and If-Range are honoured as COS does, and the fault knobs break
//! transfers halfway, which is where a resuming client is actually tested.

use crate::content::{CHUNK, Content};
use crate::faults::{self, BodyFault, GetFaults};
use crate::state::{Sim, now_ms};
use crate::token::TokenCheck;
use crate::trace::trace_id;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// A COS-style XML error reply.
fn xml_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version='1.0' encoding='utf-8' ?><Error><Code>{code}</Code>\
         <Message>{message}</Message><RequestId>{}</RequestId></Error>",
        trace_id()
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// Which bytes to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    Full,
    /// Inclusive byte positions.
    Partial(u64, u64),
    Unsatisfiable,
}

/// Interprets `Range` (and `If-Range`) against a file of `size` bytes with `etag`.
/// Anything we do not understand (multiple ranges, garbage) is ignored, as RFC 9110 allows:
/// the client then gets the full body with 200 and must notice.
fn requested_span(headers: &HeaderMap, etag: &str, size: u64) -> Span {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Span::Full;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE)
        && if_range.as_bytes() != etag.as_bytes()
    {
        return Span::Full;
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Span::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Span::Full;
    };
    if spec.contains(',') {
        return Span::Full;
    }
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        return match last.parse::<u64>() {
            Ok(0) => Span::Unsatisfiable,
            Ok(_) if size == 0 => Span::Unsatisfiable,
            Ok(n) => Span::Partial(size.saturating_sub(n), size - 1),
            Err(_) => Span::Full,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return Span::Full;
    };
    if start >= size {
        return Span::Unsatisfiable;
    }
    if last.is_empty() {
        return Span::Partial(start, size - 1);
    }
    match last.parse::<u64>() {
        Ok(end) if end >= start => Span::Partial(start, end.min(size - 1)),
        _ => Span::Full,
    }
}

/// Why a request gets a COS error instead of bytes: status, `Code`, `Message`.
type Refusal = (StatusCode, &'static str, &'static str);

/// What a valid request is answered with, decided under the lock.
struct Decision {
    generation: u64,
    size: u64,
    content_type: &'static str,
    faults: GetFaults,
}

pub async fn download(
    State(sim): State<Arc<Sim>>,
    method: Method,
    Path((record_file_id, _name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let is_get = method == Method::GET;
    let (status, response) = match decide(&sim, &record_file_id, &token_of(&uri), is_get) {
        Err((status, code, message)) => (status, xml_error(status, code, message)),
        Ok(decision) if decision.faults.slow_down => (
            StatusCode::SERVICE_UNAVAILABLE,
            xml_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
            ),
        ),
        Ok(decision) => {
            let content = sim.content(&record_file_id, decision.generation, decision.size);
            let request = Request {
                headers: &headers,
                is_get,
                fault: decision.faults.body,
            };
            serve(
                &sim,
                &record_file_id,
                content,
                decision.content_type,
                request,
            )
        }
    };
    sim.world().stats.download_status(status.as_u16());
    tracing::debug!(
        record_file_id,
        status = status.as_u16(),
        "download request answered"
    );
    response
}

/// The `token` of the address's query string (empty without one: refused as forged).
fn token_of(uri: &Uri) -> String {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .ok()
        .and_then(|Query(q)| q.into_iter().find(|(k, _)| k == "token").map(|(_, v)| v))
        .unwrap_or_default()
}

/// Decides everything under the lock (the reply is built without it): the token, whether
/// the key still exists, and for a GET its count, its faults and a changed ETag.
fn decide(sim: &Sim, record_file_id: &str, token: &str, is_get: bool) -> Result<Decision, Refusal> {
    let mut guard = sim.world();
    let w = &mut *guard;
    w.stats.download_request();
    match sim.signer.check(record_file_id, token, now_ms()) {
        TokenCheck::Invalid => {
            return Err((StatusCode::FORBIDDEN, "AccessDenied", "Access Denied."));
        }
        TokenCheck::Expired => {
            w.stats.expired_token();
            return Err((StatusCode::FORBIDDEN, "AccessDenied", "Request has expired"));
        }
        TokenCheck::Valid => {}
    }
    let Some(rt) = w.files.get_mut(record_file_id).filter(|rt| !rt.deleted) else {
        return Err((
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        ));
    };
    let generation = rt.generation;
    let mut faults = GetFaults {
        slow_down: false,
        body: None,
    };
    if is_get {
        rt.gets += 1;
        faults = faults::get_faults(&sim.config, rt.gets);
        if sim.config.change_etag_after_first && rt.gets == 1 {
            rt.generation += 1;
        }
    }
    let (size, content_type) = rt.served(&w.meetings);
    Ok(Decision {
        generation,
        size,
        content_type,
        faults,
    })
}

/// What was asked, and the fault the answer suffers.
struct Request<'a> {
    headers: &'a HeaderMap,
    is_get: bool,
    fault: Option<BodyFault>,
}

/// The 200/206/416 reply for a valid request.
fn serve(
    sim: &Arc<Sim>,
    record_file_id: &str,
    content: Content,
    content_type: &str,
    Request {
        headers,
        is_get,
        fault,
    }: Request<'_>,
) -> (StatusCode, Response) {
    let size = content.size();
    let etag = content.etag();
    let span = if sim.config.ignore_range {
        Span::Full
    } else {
        requested_span(headers, &etag, size)
    };
    let (status, first, last_exclusive) = match span {
        Span::Full => (StatusCode::OK, 0, size),
        Span::Partial(a, b) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        Span::Unsatisfiable => {
            let mut r = xml_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The requested range is not satisfiable",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return (StatusCode::RANGE_NOT_SATISFIABLE, r);
        }
    };
    let body = if is_get {
        Body::from_stream(body_stream(
            Arc::clone(sim),
            record_file_id.to_string(),
            content,
            first,
            last_exclusive,
            fault,
        ))
    } else {
        Body::empty()
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, content_type.into());
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::ETAG, etag);
    set(header::CONTENT_LENGTH, (last_exclusive - first).to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            header::CONTENT_RANGE,
            format!("bytes {first}-{}/{size}", last_exclusive - 1),
        );
    }
    (status, response)
}

/// Pause before a body fault strikes, long enough for the first half to go out.
const FLUSH_PAUSE: Duration = Duration::from_millis(50);

/// Where a body stream is.
struct BodyState {
    sim: Arc<Sim>,
    record_file_id: String,
    content: Content,
    pos: u64,
    end: u64,
    /// The pending fault and the position it strikes at (about half of the body).
    fault: Option<(BodyFault, u64)>,
}

fn body_stream(
    sim: Arc<Sim>,
    record_file_id: String,
    content: Content,
    first: u64,
    end: u64,
    fault: Option<BodyFault>,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send {
    let state = BodyState {
        sim,
        record_file_id,
        content,
        pos: first,
        end,
        fault: fault.map(|f| (f, first + (end - first) / 2)),
    };
    futures::stream::unfold(state, |mut s| async move {
        if let Some((fault, at)) = s.fault
            && s.pos >= at
        {
            s.fault = None;
            // Let hyper flush what was produced so far: a real failure strikes
            // mid-transfer, after the headers and the first half reached the client.
            tokio::time::sleep(FLUSH_PAUSE).await;
            match fault {
                BodyFault::Reset => {
                    s.pos = s.end;
                    let reset = io::Error::new(io::ErrorKind::ConnectionReset, "simulated reset");
                    return Some((Err(reset), s));
                }
                BodyFault::Truncate => return None,
                BodyFault::Stall(pause) => tokio::time::sleep(pause).await,
            }
        }
        if s.pos >= s.end {
            return None;
        }
        let limit = s.fault.map_or(s.end, |(_, at)| at);
        let n = (limit - s.pos).min(CHUNK as u64) as usize;
        let chunk = s.content.slice(s.pos, n);
        s.pos += n as u64;
        if let Some(rate) = s.sim.config.bandwidth.filter(|&r| r > 0) {
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
        s.sim
            .world()
            .stats
            .bytes_served(&s.record_file_id, n as u64);
        Some((Ok(chunk), s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(range: &str, if_range: Option<&str>) -> Span {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        if let Some(v) = if_range {
            h.insert(header::IF_RANGE, HeaderValue::from_str(v).unwrap());
        }
        requested_span(&h, "\"abc\"", 100)
    }

    #[test]
    fn ranges_are_read_as_cos_does() {
        assert_eq!(span("bytes=10-", None), Span::Partial(10, 99));
        assert_eq!(span("bytes=10-19", None), Span::Partial(10, 19));
        assert_eq!(span("bytes=90-500", None), Span::Partial(90, 99));
        assert_eq!(span("bytes=-5", None), Span::Partial(95, 99));
        assert_eq!(span("bytes=100-", None), Span::Unsatisfiable);
        assert_eq!(span("bytes=20-10", None), Span::Full);
        assert_eq!(span("bytes=0-1,5-6", None), Span::Full);
        assert_eq!(span("items=0-1", None), Span::Full);
        assert_eq!(span("bytes=10-", Some("\"abc\"")), Span::Partial(10, 99));
        assert_eq!(span("bytes=10-", Some("\"old\"")), Span::Full);
        assert_eq!(
            requested_span(&HeaderMap::new(), "\"abc\"", 100),
            Span::Full
        );
    }
}
