//! `GET /v1/addresses?meeting_record_id=`: the download addresses of every file of one
//! recording, for an admin, whether or not the files' owners share them.
//!
//! The reply is built with `json!` from the simulator's own model rather than from
//! the client's `wemeet_api::types`: the simulator then states the wire format independently, and a
//! client that misreads it fails here as it would against Tencent.

use crate::dataset::{ArtifactKind, SimArtifact, state};
use crate::endpoint::Endpoint;
use crate::faults;
use crate::signed::{self, ApiError, Paging, Params};
use crate::state::{Sim, World};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

const MAX_PAGE_SIZE: i64 = 50;
const DEFAULT_PAGE_SIZE: i64 = 50;

pub async fn list_addresses(State(sim): State<Arc<Sim>>, uri: Uri, headers: HeaderMap) -> Response {
    let outcome = signed::gate(&sim, Endpoint::Addresses, &uri, &headers, |world| {
        answer(&sim, world, &uri)
    });
    let outcome = outcome.map(|body| (StatusCode::OK, axum::Json(body)).into_response());
    signed::reply(Endpoint::Addresses, outcome)
}

/// Only a call that would succeed can be hit by `addresses_5xx_first` (as with the
/// listing's faults): an unknown meeting is answered 7001 and spends no fault.
fn answer(sim: &Sim, world: &mut World, uri: &Uri) -> Result<Value, ApiError> {
    let query = AddressQuery::parse(sim, uri)?;
    let (meeting, state) = visible_meeting(world, &query.meeting_record_id).ok_or_else(|| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, 7001, "meeting not found")
    })?;
    world.addresses_accepted += 1;
    if faults::addresses_server_error(&sim.config, world.addresses_accepted) {
        return Err(ApiError::timeout());
    }
    Ok(page(sim, world, meeting, state, query.paging))
}

/// The validated query string.
struct AddressQuery {
    meeting_record_id: String,
    paging: Paging,
}

impl AddressQuery {
    fn parse(sim: &Sim, uri: &Uri) -> Result<Self, ApiError> {
        let params = Params::parse(uri)?;
        let meeting_record_id = match params.get("meeting_record_id") {
            None | Some("") => return Err(ApiError::invalid("meeting_record_id is required")),
            Some(id) => id.to_string(),
        };
        let paging = params.paging(DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
        params.check_operator(sim)?;
        Ok(Self {
            meeting_record_id,
            paging,
        })
    }
}

/// The meeting's index and state, if it exists and is visible on the lifecycle clock: a
/// meeting the listing does not show yet, or no longer shows (every file deleted), is as
/// unknown here.
fn visible_meeting(world: &World, meeting_record_id: &str) -> Option<(usize, i64)> {
    let elapsed = world.elapsed();
    let index = world
        .meetings
        .iter()
        .position(|m| m.meeting_record_id == meeting_record_id)
        .filter(|&i| !world.recording_deleted(i))?;
    let state = world.meetings[index].timeline.state_at(elapsed)?;
    Some((index, state))
}

/// One page of the meeting's files still in the cloud, in order; none before it is
/// transcoded.
fn page(sim: &Sim, world: &mut World, meeting: usize, state: i64, paging: Paging) -> Value {
    let live: Vec<usize> = if state == state::TRANSCODED {
        world.live_files(meeting).map(|(j, _)| j).collect()
    } else {
        Vec::new()
    };
    let total = live.len();
    let record_files: Vec<Value> = live
        .into_iter()
        .skip(paging.skip())
        .take(paging.size())
        .map(|file| file_addresses(sim, world, meeting, file))
        .collect();
    let m = &world.meetings[meeting];
    json!({
        "total_count": total,
        "current_size": record_files.len(),
        "current_page": paging.page,
        "total_page": paging.total_pages(total as u64),
        "meeting_record_id": m.meeting_record_id,
        "meeting_id": m.meeting_id,
        "meeting_code": m.meeting_code,
        "subject": m.subject,
        "record_files": record_files,
    })
}

/// One file's entry, with a fresh download address unless the file has none
/// (`no_address_fraction`) or this answer is one of its first `addresses_empty_first`.
fn file_addresses(sim: &Sim, world: &mut World, meeting: usize, file: usize) -> Value {
    let f = &world.meetings[meeting].files[file];
    let (id, view_address) = (f.record_file_id.clone(), f.view_address());
    let downloadable = f.access.downloadable;
    let artifacts: Vec<SimArtifact> = f
        .artifacts
        .iter()
        .filter(|a| world.artifact_visible(meeting, a, sim.config.transcript_delay))
        .cloned()
        .collect();
    let answers = world.files.get_mut(&id).map_or(1, |rt| {
        rt.address_answers += 1;
        rt.address_answers
    });
    let download_address = if downloadable && !faults::address_left_empty(&sim.config, answers) {
        sim.issue_address(world, &id, Endpoint::Addresses)
    } else {
        String::new()
    };
    let mut audio_address = String::new();
    let mut meeting_summary = Vec::new();
    for a in &artifacts {
        let address = sim.issue_address(world, &a.key, Endpoint::Addresses);
        match a.kind {
            ArtifactKind::Audio => audio_address = address,
            ArtifactKind::Transcript => meeting_summary.push(json!({
                "download_address": address,
                // As the page writes it for Word files.
                "file_type": if a.file_type == "docx" { "docs" } else { a.file_type },
            })),
        }
    }
    json!({
        "record_file_id": id,
        "view_address": view_address,
        "download_address": download_address,
        "download_address_file_type": "mp4",
        "audio_address": audio_address,
        "audio_address_file_type": if audio_address.is_empty() { "" } else { "m4a" },
        "meeting_summary": meeting_summary,
    })
}
