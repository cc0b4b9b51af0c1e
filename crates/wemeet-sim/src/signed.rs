//! What every signed API endpoint shares: the rate-limit gate, AK/SK authentication, query
//! parameters, error replies and the `X-TC-Trace` header.
//!
//! The order of checks matters to clients and is deliberate: the rate limit is judged
//! first, on every arrival (a rejected call still spends budget, as the doc warns), then
//! credentials, timestamp, signature and replay, then the endpoint's own parameters. The
//! nonce memory is one for all endpoints, as a real server's would be: a signature spent
//! on the listing cannot be replayed on `/v1/addresses`. The signature covers the method:
//! a `GET` signature does not authorise a `DELETE` of the same URI.

use crate::endpoint::Endpoint;
use crate::state::{Sim, World, now_ms};
use crate::stats::RATE_LIMITED;
use crate::trace::trace_id;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::time::{Duration, Instant};
use wemeet_api::sign::{self, SignInput};

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
    pub fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn request(code: i64, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::request(190_004, message)
    }

    pub fn timeout() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 41, "network timeout")
    }

    fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            RATE_LIMITED,
            "request too frequent: limit exceeded for this minute",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error_info": {
                "error_code": self.code,
                "new_error_code": self.code,
                "message": self.message,
            }
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// Runs one call to `endpoint` under the world's lock: the rate limit, then
/// authentication, then `serve` (the endpoint's parameters and answer). Every error is
/// counted in the endpoint's stats.
pub fn gate<T>(
    sim: &Sim,
    endpoint: Endpoint,
    uri: &Uri,
    headers: &HeaderMap,
    serve: impl FnOnce(&mut World) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut world = sim.world();
    let in_window = world.stats.arrival(endpoint, Instant::now());
    let outcome = if in_window > u64::from(endpoint.limit_per_minute(&sim.config)) {
        Err(ApiError::rate_limited())
    } else {
        authenticate(sim, &mut world, endpoint, uri, headers).and_then(|()| serve(&mut world))
    };
    if let Err(e) = &outcome {
        world.stats.api_error(endpoint, e.code);
    }
    outcome
}

/// The HTTP reply, with the `X-TC-Trace` every answer of the real service carries.
pub fn reply(endpoint: Endpoint, outcome: Result<Response, ApiError>) -> Response {
    let trace = trace_id();
    let mut response = match outcome {
        Ok(response) => {
            tracing::debug!(trace, endpoint = endpoint.name(), "call served");
            response
        }
        Err(e) => {
            tracing::debug!(
                trace,
                endpoint = endpoint.name(),
                code = e.code,
                status = e.status.as_u16(),
                "call rejected"
            );
            e.into_response()
        }
    };
    if let Ok(value) = HeaderValue::from_str(&trace) {
        response.headers_mut().insert("X-TC-Trace", value);
    }
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn authenticate(
    sim: &Sim,
    world: &mut World,
    endpoint: Endpoint,
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
            method: endpoint.method(),
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
    remember_nonce(world, timestamp, nonce)
}

/// Rejects a `(timestamp, nonce)` pair seen in the last five minutes, on any endpoint.
fn remember_nonce(world: &mut World, timestamp: &str, nonce: &str) -> Result<(), ApiError> {
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

/// A call's query string, read with the service's 190004 for anything malformed.
pub struct Params(Vec<(String, String)>);

/// Which page of a paged answer is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub page: i64,
    pub page_size: i64,
}

impl Paging {
    /// How many items to skip before this page.
    pub fn skip(&self) -> usize {
        usize::try_from((self.page - 1).saturating_mul(self.page_size)).unwrap_or(usize::MAX)
    }

    pub fn size(&self) -> usize {
        self.page_size as usize
    }

    pub fn total_pages(&self, total: u64) -> u64 {
        total.div_ceil(self.page_size as u64)
    }
}

impl Params {
    pub fn parse(uri: &Uri) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|_| ApiError::invalid("malformed query string"))?;
        Ok(Self(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::invalid(format!("{name} is not an integer")))
            })
            .transpose()
    }

    pub fn required_int(&self, name: &str) -> Result<i64, ApiError> {
        self.int(name)?
            .ok_or_else(|| ApiError::invalid(format!("{name} is required")))
    }

    /// `page` (from 1, default 1) and `page_size` (`1..=max_size`, default `default_size`).
    pub fn paging(&self, default_size: i64, max_size: i64) -> Result<Paging, ApiError> {
        let page_size = self.int("page_size")?.unwrap_or(default_size);
        if !(1..=max_size).contains(&page_size) {
            return Err(ApiError::invalid(format!(
                "page_size must be between 1 and {max_size}"
            )));
        }
        let page = self.int("page")?.unwrap_or(1);
        if page < 1 {
            return Err(ApiError::invalid("page starts at 1"));
        }
        Ok(Paging { page, page_size })
    }

    /// `operator_id_type` must be 1 and `operator_id` the account's admin: anyone else
    /// gets the documented "no permission".
    pub fn check_operator(&self, sim: &Sim) -> Result<(), ApiError> {
        if self.required_int("operator_id_type")? != 1 {
            return Err(ApiError::invalid("operator_id_type must be 1 (userid)"));
        }
        match self.get("operator_id") {
            None | Some("") => Err(ApiError::invalid("operator_id is required")),
            Some(op) if op != sim.config.credentials.operator_id => Err(ApiError::request(
                500_014,
                "no permission: recording management view/edit is required",
            )),
            Some(_) => Ok(()),
        }
    }
}
