//! `GET /v1/corp/records`, as strict as the real service.
//!
//! Rate limit, authentication and replay are judged by [`signed::gate`]; then the
//! parameters. Only a call that would succeed can be hit by the listing fault knobs, so a
//! test of those faults does not also have to get everything else wrong.
//!
//! Like the real listing, it reveals the sharing settings of each file and carries a
//! download address only for files whose owner shared them and allowed downloads. Deleted
//! files are not listed, nor a recording whose files are all deleted.

use crate::dataset::SimFile;
use crate::dataset::state;
use crate::endpoint::Endpoint;
use crate::faults;
use crate::signed::{self, ApiError, Paging, Params};
use crate::state::{Sim, World};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

const MAX_WINDOW_S: i64 = 31 * 86_400;
const MAX_PAGE_SIZE: i64 = 20;
const DEFAULT_PAGE_SIZE: i64 = 10;

/// What a successful call gets back.
enum Reply {
    Page(Value),
    /// The `listing_invalid_json_first` fault.
    InvalidJson,
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Self::Page(page) => (StatusCode::OK, axum::Json(page)).into_response(),
            Self::InvalidJson => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"total_count": 3, "record_meetings": [{"meeting_record_id": "#,
            )
                .into_response(),
        }
    }
}

pub async fn list_records(State(sim): State<Arc<Sim>>, uri: Uri, headers: HeaderMap) -> Response {
    let outcome = signed::gate(&sim, Endpoint::Listing, &uri, &headers, |world| {
        answer(&sim, world, &uri)
    });
    signed::reply(Endpoint::Listing, outcome.map(IntoResponse::into_response))
}

fn answer(sim: &Sim, world: &mut World, uri: &Uri) -> Result<Reply, ApiError> {
    let query = ListQuery::parse(sim, uri)?;
    world.listings_accepted += 1;
    match faults::listing_fault(&sim.config, world.listings_accepted) {
        Some(faults::ListingFault::ServerError) => Err(ApiError::timeout()),
        Some(faults::ListingFault::InvalidJson) => Ok(Reply::InvalidJson),
        None => Ok(Reply::Page(select(sim, world, &query))),
    }
}

/// The validated query string.
struct ListQuery {
    start_s: i64,
    end_s: i64,
    paging: Paging,
    record_type: Option<i64>,
}

impl ListQuery {
    fn parse(sim: &Sim, uri: &Uri) -> Result<Self, ApiError> {
        let params = Params::parse(uri)?;
        let start_s = params.required_int("start_time")?;
        let end_s = params.required_int("end_time")?;
        if end_s < start_s || end_s - start_s > MAX_WINDOW_S {
            return Err(ApiError::invalid(
                "time range must not exceed 31 days and end_time must not precede start_time",
            ));
        }
        let paging = params.paging(DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
        params.check_operator(sim)?;
        let record_type = match params.int("query_record_type")?.unwrap_or(1) {
            0 => None,
            1 => Some(0),
            2 => Some(2),
            _ => return Err(ApiError::invalid("query_record_type must be 0, 1 or 2")),
        };
        Ok(Self {
            start_s,
            end_s,
            paging,
            record_type,
        })
    }
}

/// The requested page, newest first, with fresh download addresses for the files that
/// carry one.
fn select(sim: &Sim, world: &mut World, q: &ListQuery) -> Value {
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
            (in_window && type_ok && !world.recording_deleted(i)).then_some((i, state))
        })
        .collect();
    matching.sort_by(|&(a, _), &(b, _)| {
        let (a, b) = (&world.meetings[a], &world.meetings[b]);
        (b.media_start_ms, &b.meeting_record_id).cmp(&(a.media_start_ms, &a.meeting_record_id))
    });
    let total = matching.len() as u64;
    let record_meetings: Vec<Value> = matching
        .into_iter()
        .skip(q.paging.skip())
        .take(q.paging.size())
        .map(|(i, state)| listed_meeting(sim, world, i, state))
        .collect();
    json!({
        "total_count": total,
        // Deliberately the page size, as in the official example: clients must count items.
        "current_size": q.paging.page_size,
        "current_page": q.paging.page,
        "total_page": q.paging.total_pages(total),
        "record_meetings": record_meetings,
    })
}

/// Meeting `i` as listed in `state`: `record_files` only once transcoded (the real
/// listing leaves the field out before), and only those not deleted.
fn listed_meeting(sim: &Sim, world: &mut World, i: usize, state: i64) -> Value {
    let mut meeting = {
        let m = &world.meetings[i];
        json!({
            "meeting_record_id": m.meeting_record_id,
            "meeting_id": m.meeting_id,
            "meeting_code": m.meeting_code,
            "userid": m.userid,
            "media_start_time": m.media_start_ms,
            "subject": m.subject,
            "state": state,
            "record_type": m.record_type,
        })
    };
    if state == state::TRANSCODED {
        let live: Vec<usize> = world.live_files(i).map(|(j, _)| j).collect();
        let files: Vec<Value> = live
            .into_iter()
            .map(|j| {
                let f = &world.meetings[i].files[j];
                let (id, carries_address) = (f.record_file_id.clone(), f.access.listing_address());
                let download_address =
                    carries_address.then(|| sim.issue_address(world, &id, Endpoint::Listing));
                listed_file(&world.meetings[i].files[j], download_address)
            })
            .collect();
        meeting["record_files"] = files.into();
    }
    meeting
}

/// One file as listed: the sharing fields only when its owner turned sharing on.
fn listed_file(f: &SimFile, download_address: Option<String>) -> Value {
    let mut file = json!({
        "record_file_id": f.record_file_id,
        "record_start_time": f.record_start_ms,
        "record_end_time": f.record_end_ms,
        "record_size": f.size,
        "sharing_state": i64::from(f.access.shared),
    });
    if f.access.shared {
        let sharing = json!({
            "sharing_url": format!("https://meeting.tencent.com/crm/{}", f.share_code),
            "required_same_corp": false,
            "required_participant": false,
            "password": f.password,
            "sharing_expire": 0,
            "view_address": f.view_address(),
            "allow_download": f.access.download_allowed,
        });
        merge(&mut file, sharing);
    }
    if let Some(address) = download_address {
        file["download_address"] = address.into();
    }
    file
}

/// Adds the fields of the object `more` to the object `into`.
fn merge(into: &mut Value, more: Value) {
    if let (Value::Object(into), Value::Object(more)) = (into, more) {
        into.extend(more);
    }
}
