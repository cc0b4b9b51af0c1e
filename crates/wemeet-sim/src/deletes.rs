//! The deletions: `DELETE /v1/records/{record_file_id}` (one file) and
//! `DELETE /v1/records?meeting_record_id=` (every file of a recording), signed and
//! rate-limited like the other endpoints, under a limit of their own.
//!
//! A deleted file is gone for good, as the real service documents no recycle bin: the
//! listing stops showing it (and a recording whose files are all deleted), `/v1/addresses`
//! gives no address for it, the download host answers 404, and deleting it again is
//! error 4051 (HTTP 500). Its audio track and transcripts go with it (they have no
//! `record_file_id` of their own to delete). Success is HTTP 200 with an empty body.

use crate::endpoint::Endpoint;
use crate::faults;
use crate::signed::{self, ApiError, Params};
use crate::state::{Sim, World};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const ALREADY_DELETED: i64 = 4051;
const MEETING_NOT_FOUND: i64 = 7001;
const FILE_NOT_FOUND: i64 = 7003;

pub async fn delete_file(
    State(sim): State<Arc<Sim>>,
    Path(record_file_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let outcome = signed::gate(&sim, Endpoint::Delete, &uri, &headers, |world| {
        let params = Params::parse(&uri)?;
        params.check_operator(&sim)?;
        let target = file_target(world, &record_file_id, params.get("meeting_id"))?;
        apply(&sim, world, target)
    });
    answer(&sim, outcome).await
}

pub async fn delete_recording(
    State(sim): State<Arc<Sim>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let outcome = signed::gate(&sim, Endpoint::Delete, &uri, &headers, |world| {
        let params = Params::parse(&uri)?;
        let meeting_record_id = match params.get("meeting_record_id") {
            None | Some("") => return Err(ApiError::invalid("meeting_record_id is required")),
            Some(id) => id.to_string(),
        };
        params.check_operator(&sim)?;
        let target = recording_target(world, &meeting_record_id, params.get("meeting_id"))?;
        apply(&sim, world, target)
    });
    answer(&sim, outcome).await
}

/// The empty 200 of a deletion, late if it is the `stall_nth_delete`-th (the files are
/// deleted already: only the answer waits, outside the world's lock).
async fn answer(sim: &Sim, outcome: Result<bool, ApiError>) -> Response {
    if let Ok(true) = outcome {
        tokio::time::sleep(sim.config.stall).await;
    }
    let outcome = outcome.map(|_| (StatusCode::OK, Body::empty()).into_response());
    signed::reply(Endpoint::Delete, outcome)
}

fn not_found(code: i64, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        code,
        format!("{what} not found"),
    )
}

fn already_deleted() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ALREADY_DELETED,
        "the recording was already deleted",
    )
}

/// Whether meeting `index` is visible on the lifecycle clock (a meeting the listing does
/// not show yet is unknown) and is the one `meeting_id` names, when given.
fn is_the_meeting(world: &World, index: usize, meeting_id: Option<&str>) -> bool {
    let m = &world.meetings[index];
    m.timeline.state_at(world.elapsed()).is_some() && meeting_id.is_none_or(|id| id == m.meeting_id)
}

/// The one file to delete, or why not.
fn file_target(
    world: &World,
    record_file_id: &str,
    meeting_id: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let rt = world
        .files
        .get(record_file_id)
        .filter(|rt| rt.artifact.is_none() && is_the_meeting(world, rt.meeting, meeting_id))
        .ok_or_else(|| not_found(FILE_NOT_FOUND, "file"))?;
    if rt.deleted {
        return Err(already_deleted());
    }
    Ok(vec![record_file_id.to_string()])
}

/// Every file of the recording still in the cloud, or why none is deleted.
fn recording_target(
    world: &World,
    meeting_record_id: &str,
    meeting_id: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let index = world
        .meetings
        .iter()
        .position(|m| m.meeting_record_id == meeting_record_id)
        .filter(|&i| is_the_meeting(world, i, meeting_id))
        .ok_or_else(|| not_found(MEETING_NOT_FOUND, "meeting"))?;
    if world.recording_deleted(index) {
        return Err(already_deleted());
    }
    Ok(world
        .live_files(index)
        .map(|(_, f)| f.record_file_id.clone())
        .collect())
}

/// Deletes `files`, unless this call is one of the `deletes_5xx_first`. Returns whether
/// its answer is the one to stall.
fn apply(sim: &Sim, world: &mut World, files: Vec<String>) -> Result<bool, ApiError> {
    world.deletes_accepted += 1;
    if faults::delete_server_error(&sim.config, world.deletes_accepted) {
        return Err(ApiError::timeout());
    }
    // A file's audio track and transcripts go with it: addresses issued before for them
    // stop working too.
    let mut keys = Vec::new();
    for id in &files {
        if let Some(rt) = world.files.get(id) {
            let file = &world.meetings[rt.meeting].files[rt.file];
            keys.push(id.clone());
            keys.extend(file.artifacts.iter().map(|a| a.key.clone()));
        }
    }
    for key in &keys {
        if let Some(rt) = world.files.get_mut(key) {
            rt.deleted = true;
        }
    }
    if sim.config.webhook.is_some() {
        let meeting = files
            .first()
            .and_then(|id| world.files.get(id))
            .map(|rt| rt.meeting);
        if let Some(meeting) = meeting {
            world.deletions_to_announce.push((meeting, files.clone()));
        }
    }
    world.stats.files_deleted(files.len() as u64);
    world.deletes_done += 1;
    tracing::debug!(files = files.len(), "deleted from the cloud");
    Ok(faults::delete_answer_stalled(
        &sim.config,
        world.deletes_done,
    ))
}
