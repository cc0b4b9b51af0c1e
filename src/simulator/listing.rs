//! `GET /v1/corp/records`, as strict as the real service.
//!
//! The order of checks matters to clients and is deliberate: the rate limit is judged
//! first, on every arrival (a rejected call still spends budget, as the doc warns), then
//! credentials, timestamp, signature and replay, then parameters; only a call that would
//! succeed can be hit by the listing fault knobs, so a test of those faults does not also
//! have to get everything else wrong.

use super::faults;
use super::state::{Sim, World, now_ms};
use crate::api::sign::{self, SignInput};
use crate::api::types::{ErrorBody, ErrorInfo, RecordFile, RecordMeeting, RecordsPage, state};
use crate::secret::Secret;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rand::RngExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_WINDOW_S: i64 = 31 * 86_400;
const MAX_PAGE_SIZE: i64 = 20;
const DEFAULT_PAGE_SIZE: i64 = 10;
const TIMESTAMP_TOLERANCE_S: i64 = 300;
const NONCE_MEMORY: Duration = Duration::from_secs(300);

/// An error reply: HTTP status, Tencent error code, message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: i64,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn request(code: i64, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::request(190_004, message)
    }

    pub fn timeout() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 41, "network timeout")
    }
}

/// What one call gets back.
pub enum Reply {
    Page(RecordsPage),
    /// The `listing_invalid_json_first` fault.
    InvalidJson,
    Error(ApiError),
}

pub async fn list_records(State(sim): State<Arc<Sim>>, uri: Uri, headers: HeaderMap) -> Response {
    let trace = hex::encode(rand::rng().random::<[u8; 16]>());
    let reply = {
        let mut world = sim.world();
        answer(&sim, &mut world, &uri, &headers)
    };
    let mut response = match reply {
        Reply::Page(page) => {
            tracing::debug!(
                trace,
                meetings = page.record_meetings.len(),
                "listing served"
            );
            (StatusCode::OK, axum::Json(page)).into_response()
        }
        Reply::InvalidJson => {
            tracing::debug!(trace, "listing answered with invalid JSON (fault)");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"total_count": 3, "record_meetings": [{"meeting_record_id": "#,
            )
                .into_response()
        }
        Reply::Error(e) => {
            tracing::debug!(
                trace,
                code = e.code,
                status = e.status.as_u16(),
                "listing rejected"
            );
            let body = ErrorBody {
                error_info: ErrorInfo {
                    error_code: e.code,
                    new_error_code: e.code,
                    message: e.message,
                },
            };
            (e.status, axum::Json(body)).into_response()
        }
    };
    if let Ok(value) = HeaderValue::from_str(&trace) {
        response.headers_mut().insert("X-TC-Trace", value);
    }
    response
}

fn answer(sim: &Sim, world: &mut World, uri: &Uri, headers: &HeaderMap) -> Reply {
    let in_window = world.stats.listing_arrival(Instant::now());
    let outcome = if in_window > u64::from(sim.config.rate_limit_per_minute) {
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            190_310,
            "request too frequent: limit exceeded for this minute",
        ))
    } else {
        authenticate(sim, world, uri, headers)
            .and_then(|()| ListQuery::parse(sim, uri))
            .and_then(|query| {
                world.listings_accepted += 1;
                match faults::listing_fault(&sim.config, world.listings_accepted) {
                    Some(faults::ListingFault::ServerError) => Err(ApiError::timeout()),
                    Some(faults::ListingFault::InvalidJson) => Ok(None),
                    None => Ok(Some(select(sim, world, &query))),
                }
            })
    };
    match outcome {
        Ok(Some(page)) => Reply::Page(page),
        Ok(None) => Reply::InvalidJson,
        Err(e) => {
            world.stats.listing_error(e.code, e.code == 190_310);
            Reply::Error(e)
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn authenticate(
    sim: &Sim,
    world: &mut World,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let creds = &sim.config.credentials;
    let credential_error = |what: &str| ApiError::request(190_303, format!("{what} invalid"));
    if header(headers, "X-TC-Key") != Some(creds.secret_id.as_str()) {
        return Err(credential_error("X-TC-Key"));
    }
    if header(headers, "AppId") != Some(creds.app_id.as_str()) {
        return Err(credential_error("AppId"));
    }
    if header(headers, "SdkId") != creds.sdk_id.as_deref() {
        return Err(credential_error("SdkId"));
    }
    if header(headers, "X-TC-Registered") != Some("1") {
        return Err(ApiError::invalid("X-TC-Registered must be 1"));
    }
    let timestamp = header(headers, "X-TC-Timestamp").unwrap_or_default();
    let skew_ok = timestamp
        .parse::<i64>()
        .is_ok_and(|ts| (now_ms() / 1000 - ts).abs() <= TIMESTAMP_TOLERANCE_S);
    if !skew_ok {
        return Err(ApiError::request(
            190_300,
            "X-TC-Timestamp expired or invalid",
        ));
    }
    let nonce = header(headers, "X-TC-Nonce").unwrap_or_default();
    let request_uri = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let expected = sign::signature(
        &creds.secret_key,
        &SignInput {
            method: "GET",
            secret_id: &creds.secret_id,
            nonce,
            timestamp,
            request_uri,
            body: "",
        },
    );
    if nonce.is_empty() || header(headers, "X-TC-Signature") != Some(expected.as_str()) {
        return Err(ApiError::request(200_003, "signature verification failed"));
    }
    let now = Instant::now();
    world
        .nonces
        .retain(|_, seen| now.saturating_duration_since(*seen) < NONCE_MEMORY);
    let key = (timestamp.to_string(), nonce.to_string());
    if world.nonces.contains_key(&key) {
        return Err(ApiError::request(190_301, "X-TC-Nonce replayed"));
    }
    world.nonces.insert(key, now);
    Ok(())
}

/// The validated query string.
struct ListQuery {
    start_s: i64,
    end_s: i64,
    page_size: i64,
    page: i64,
    record_type: Option<i64>,
}

impl ListQuery {
    fn parse(sim: &Sim, uri: &Uri) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|_| ApiError::invalid("malformed query string"))?;
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let int = |name: &str| -> Result<Option<i64>, ApiError> {
            get(name)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| ApiError::invalid(format!("{name} is not an integer")))
                })
                .transpose()
        };
        let required =
            |name: &str| int(name)?.ok_or_else(|| ApiError::invalid(format!("{name} is required")));
        let start_s = required("start_time")?;
        let end_s = required("end_time")?;
        if end_s < start_s || end_s - start_s > MAX_WINDOW_S {
            return Err(ApiError::invalid(
                "time range must not exceed 31 days and end_time must not precede start_time",
            ));
        }
        let page_size = int("page_size")?.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(ApiError::invalid("page_size must be between 1 and 20"));
        }
        let page = int("page")?.unwrap_or(1);
        if page < 1 {
            return Err(ApiError::invalid("page starts at 1"));
        }
        if required("operator_id_type")? != 1 {
            return Err(ApiError::invalid("operator_id_type must be 1 (userid)"));
        }
        match get("operator_id") {
            None | Some("") => return Err(ApiError::invalid("operator_id is required")),
            // A user who is not the account's admin: the documented "no permission".
            Some(op) if op != sim.config.credentials.operator_id => {
                return Err(ApiError::request(
                    500_014,
                    "no permission: recording management view/edit is required",
                ));
            }
            Some(_) => {}
        }
        let record_type = match int("query_record_type")?.unwrap_or(1) {
            0 => None,
            1 => Some(0),
            2 => Some(2),
            _ => return Err(ApiError::invalid("query_record_type must be 0, 1 or 2")),
        };
        Ok(Self {
            start_s,
            end_s,
            page_size,
            page,
            record_type,
        })
    }
}

/// The requested page, newest first, with fresh download addresses for its files.
fn select(sim: &Sim, world: &mut World, q: &ListQuery) -> RecordsPage {
    let elapsed = world.elapsed();
    let mut matching: Vec<(usize, i64)> = world
        .meetings
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let state = m.timeline.state_at(elapsed)?;
            let start_s = m.media_start_ms.div_euclid(1000);
            let in_window = (q.start_s..=q.end_s).contains(&start_s);
            let type_ok = q.record_type.is_none_or(|t| t == m.record_type);
            (in_window && type_ok).then_some((i, state))
        })
        .collect();
    matching.sort_by(|&(a, _), &(b, _)| {
        let (a, b) = (&world.meetings[a], &world.meetings[b]);
        (b.media_start_ms, &b.meeting_record_id).cmp(&(a.media_start_ms, &a.meeting_record_id))
    });
    let total = matching.len() as u64;
    let size = q.page_size as u64;
    let skip = (q.page as u64 - 1).saturating_mul(size);
    let record_meetings = matching
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(size as usize)
        .map(|(i, state)| {
            let files: Vec<(usize, String)> = if state == state::TRANSCODED {
                world.meetings[i]
                    .files
                    .iter()
                    .map(|f| f.record_file_id.clone())
                    .enumerate()
                    .collect()
            } else {
                Vec::new()
            };
            let record_files = files
                .into_iter()
                .map(|(j, id)| {
                    let download_address = sim.issue_address(world, &id);
                    let f = &world.meetings[i].files[j];
                    RecordFile {
                        record_file_id: id,
                        record_start_time: f.record_start_ms,
                        record_end_time: f.record_end_ms,
                        record_size: f.size,
                        sharing_state: 1,
                        sharing_url: Some(format!(
                            "https://meeting.tencent.com/crm/{}",
                            f.share_code
                        )),
                        required_same_corp: Some(false),
                        required_participant: Some(false),
                        password: Some(Secret::new(f.password.clone())),
                        sharing_expire: Some(0),
                        view_address: Some(format!(
                            "https://meeting.tencent.com/cw/{}",
                            f.share_code
                        )),
                        allow_download: Some(true),
                        download_address: Some(download_address),
                    }
                })
                .collect();
            let m = &world.meetings[i];
            RecordMeeting {
                meeting_record_id: m.meeting_record_id.clone(),
                meeting_id: m.meeting_id.clone(),
                meeting_code: m.meeting_code.clone(),
                userid: m.userid.clone(),
                media_start_time: m.media_start_ms,
                subject: m.subject.clone(),
                state,
                record_type: m.record_type,
                record_files,
            }
        })
        .collect();
    RecordsPage {
        total_count: total,
        // Deliberately the page size, as in the official example: clients must count items.
        current_size: size,
        current_page: q.page as u64,
        total_page: total.div_ceil(size),
        record_meetings,
    }
}
