//! Client of the Tencent Meeting REST API: signed requests, typed replies, classified errors.
//!
//! Two endpoints, each with its own budget (the service limits them separately):
//! `GET /v1/corp/records`, the census of what exists (10 calls per minute), and
//! `GET /v1/addresses`, the download addresses of one recording's files whatever their
//! sharing settings (admin permission). Every attempt spends one call of its endpoint's
//! [`Budget`] *before* it is sent (the server counts failed calls too) and is signed afresh
//! (a reused nonce is rejected as a replay).

mod error;
pub mod sign;
pub mod types;

pub use error::{ApiError, ErrorClass};

use crate::budget::{Budget, Priority};
use crate::config::ApiConfig;
use rand::RngExt;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use types::{AddressFile, AddressesPage, ErrorBody, RecordsPage};

/// The listing endpoint's largest page.
pub const PAGE_SIZE: u32 = 20;
/// The addresses endpoint's largest page (files of one recording).
pub const ADDRESSES_PAGE_SIZE: u32 = 50;
/// The listing endpoint's widest window, in seconds.
pub const MAX_WINDOW_SECS: i64 = 31 * 86_400;
/// Replies larger than this are not a listing page; refuse to buffer them.
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;
/// Attempts of one call (each signed afresh) before its error reaches the caller.
const MAX_ATTEMPTS: u32 = 6;

/// An endpoint of the API, with a budget of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `GET /v1/corp/records`: the account's recordings, window by window.
    Records,
    /// `GET /v1/addresses`: download addresses of one recording's files.
    Addresses,
}

impl Endpoint {
    pub const ALL: [Self; 2] = [Self::Records, Self::Addresses];

    /// The name in the call log, metrics and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Records => "records",
            Self::Addresses => "addresses",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::Records => "v1/corp/records",
            Self::Addresses => "v1/addresses",
        }
    }
}

/// One page of one window, as the API takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListQuery {
    /// UNIX seconds, inclusive.
    pub start_time: i64,
    /// UNIX seconds; `end_time - start_time <= 31 days`.
    pub end_time: i64,
    pub page: u32,
}

/// The call budgets of the two endpoints.
#[derive(Debug, Clone)]
pub struct Budgets {
    pub records: Arc<Budget>,
    pub addresses: Arc<Budget>,
}

impl Budgets {
    pub fn of(&self, endpoint: Endpoint) -> &Arc<Budget> {
        match endpoint {
            Endpoint::Records => &self.records,
            Endpoint::Addresses => &self.addresses,
        }
    }
}

/// A reply, with when its call was sent (ms): addresses in it were issued no earlier, so
/// that is a safe lower bound on their issue time.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub reply: T,
    pub sent_at: i64,
}

/// A reply the client can check before applying it: a half-valid reply is refused whole.
trait Reply: DeserializeOwned {
    fn validate(&self) -> Result<(), String>;
}

#[derive(Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    config: ApiConfig,
    budgets: Budgets,
}

impl ApiClient {
    pub fn new(config: ApiConfig, budgets: Budgets) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("wemeet-archiver/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
        Ok(Self {
            http,
            config,
            budgets,
        })
    }

    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// Lists one page of a window, retrying passing faults.
    pub async fn list_records(
        &self,
        query: ListQuery,
        priority: Priority,
    ) -> Result<Answer<RecordsPage>, ApiError> {
        let params = [
            ("start_time", query.start_time.to_string()),
            ("end_time", query.end_time.to_string()),
            ("page_size", PAGE_SIZE.to_string()),
            ("page", query.page.to_string()),
            ("operator_id", self.config.operator_id.clone()),
            ("operator_id_type", self.config.operator_id_type.to_string()),
            ("query_record_type", self.config.record_type.to_string()),
        ];
        self.call(Endpoint::Records, &params, priority).await
    }

    /// The download addresses of every file of one recording (every page of them), fresh:
    /// each one lives 6 hours from `sent_at` (the first page's). Files the API has no
    /// address for come back with `download_address: None`.
    pub async fn record_addresses(
        &self,
        meeting_record_id: &str,
    ) -> Result<Answer<Vec<AddressFile>>, ApiError> {
        let mut files = Vec::new();
        let mut sent_at = None;
        let mut page = 1u32;
        loop {
            let params = [
                ("meeting_record_id", meeting_record_id.to_string()),
                ("operator_id", self.config.operator_id.clone()),
                ("operator_id_type", self.config.operator_id_type.to_string()),
                ("page", page.to_string()),
                ("page_size", ADDRESSES_PAGE_SIZE.to_string()),
            ];
            let answer: Answer<AddressesPage> = self
                .call(Endpoint::Addresses, &params, Priority::Transfer)
                .await?;
            let first_sent = *sent_at.get_or_insert(answer.sent_at);
            let reply = answer.reply;
            let empty = reply.record_files.is_empty();
            files.extend(reply.record_files);
            if empty || u64::from(page) >= reply.total_page {
                return Ok(Answer {
                    reply: files,
                    sent_at: first_sent,
                });
            }
            page += 1;
        }
    }

    /// One call with retries: passing faults are retried with exponential backoff and
    /// jitter; every attempt waits for the endpoint's budget at `priority`.
    async fn call<T: Reply>(
        &self,
        endpoint: Endpoint,
        params: &[(&str, String)],
        priority: Priority,
    ) -> Result<Answer<T>, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.call_once(endpoint, params, priority).await {
                Ok(reply) => return Ok(reply),
                Err(e) if e.class() == ErrorClass::Retry && attempt < MAX_ATTEMPTS => {
                    let delay = backoff(attempt).max(e.min_delay());
                    tracing::warn!(
                        error = %e, attempt, retry_in_ms = delay.as_millis() as u64,
                        endpoint = endpoint.as_str(), "API call failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn call_once<T: Reply>(
        &self,
        endpoint: Endpoint,
        params: &[(&str, String)],
        priority: Priority,
    ) -> Result<Answer<T>, ApiError> {
        let mut url = self
            .config
            .base_url
            .join(endpoint.path())
            .map_err(|e| ApiError::Transport(format!("bad api.base_url: {e}")))?;
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        // The signature covers the request URI exactly as sent.
        let request_uri = format!("{}?{}", url.path(), url.query().unwrap_or_default());

        let budget = self.budgets.of(endpoint);
        let call_id = budget
            .spend(priority)
            .await
            .map_err(|e| ApiError::Transport(format!("cannot record the API call: {e}")))?;
        let sent_at = crate::store::now_ms();
        let timestamp = (sent_at / 1000).to_string();
        let nonce = rand::rng().random_range(1..u32::MAX).to_string();
        let signature = sign::signature(
            self.config.secret_key.expose(),
            &sign::SignInput {
                method: "GET",
                secret_id: &self.config.secret_id,
                nonce: &nonce,
                timestamp: &timestamp,
                request_uri: &request_uri,
                body: "",
            },
        );
        let mut request = self
            .http
            .get(url)
            .header("Content-Type", "application/json")
            .header("X-TC-Key", &self.config.secret_id)
            .header("X-TC-Timestamp", &timestamp)
            .header("X-TC-Nonce", &nonce)
            .header("X-TC-Signature", signature)
            .header("X-TC-Registered", "1")
            .header("AppId", &self.config.app_id);
        if let Some(sdk_id) = &self.config.sdk_id {
            request = request.header("SdkId", sdk_id);
        }
        let result = send(request, endpoint).await;
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => outcome_label(e),
        };
        tracing::debug!(
            endpoint = endpoint.as_str(), query = ?params.iter().filter(|(k, _)| *k != "operator_id").collect::<Vec<_>>(),
            purpose = priority.as_str(), outcome = %outcome,
            trace = result.as_ref().map(|(_, t)| t.as_str()).unwrap_or("-"),
            "API call"
        );
        budget.record_outcome(call_id, &outcome).await;
        result.map(|(reply, _)| Answer { reply, sent_at })
    }
}

/// Sends the request and decodes the reply; returns it with its trace id.
async fn send<T: Reply>(
    request: reqwest::RequestBuilder,
    endpoint: Endpoint,
) -> Result<(T, String), ApiError> {
    // `without_url`: the URL is harmless here, but the habit keeps tokens out of logs.
    let transport = |e: reqwest::Error| ApiError::Transport(e.without_url().to_string());
    let response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let trace = response
        .headers()
        .get("X-TC-Trace")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    if response
        .content_length()
        .is_some_and(|n| n > MAX_REPLY_BYTES as u64)
    {
        return Err(ApiError::Malformed {
            status,
            trace,
            detail: "reply too large".into(),
        });
    }
    let body = response.bytes().await.map_err(transport)?;
    let error_info = serde_json::from_slice::<ErrorBody>(&body)
        .ok()
        .map(|b| b.error_info);
    if status != 200 || error_info.is_some() {
        let (code, message) = error_info
            .map(|i| (Some(i.error_code), i.message))
            .unwrap_or((None, String::new()));
        return Err(ApiError::from_reply(endpoint, status, code, message, trace));
    }
    let reply: T = serde_json::from_slice(&body).map_err(|e| ApiError::Malformed {
        status,
        trace: trace.clone(),
        detail: e.to_string(),
    })?;
    if let Err(detail) = reply.validate() {
        return Err(ApiError::Malformed {
            status,
            trace,
            detail,
        });
    }
    Ok((reply, trace))
}

fn outcome_label(e: &ApiError) -> String {
    match e {
        ApiError::RateLimited { code, .. } => format!("rate_limited:{code}"),
        ApiError::Server { code, .. } => format!("server_error:{code}"),
        ApiError::ClockSkew { .. } => "clock_skew".into(),
        ApiError::Replay { .. } => "replay".into(),
        ApiError::Transport(_) => "transport".into(),
        ApiError::Malformed { .. } => "malformed".into(),
        ApiError::Credentials { code, .. } => format!("credentials:{code}"),
        ApiError::Permission { .. } => "permission".into(),
        ApiError::Rejected { code, .. } => format!("rejected:{code}"),
    }
}

/// Exponential backoff with full jitter: 1 s, 2 s, 4 s … capped at 60 s, times a random
/// factor in [0.5, 1) so that several workers do not retry in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let base =
        Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60));
    base.mul_f64(rand::rng().random_range(0.5..1.0))
}

impl Reply for RecordsPage {
    /// Rejects a page that could not be applied whole: a file without an id or with a
    /// negative size, a meeting without an id. Half-applying it would lose data silently.
    fn validate(&self) -> Result<(), String> {
        for m in &self.record_meetings {
            if m.meeting_record_id.trim().is_empty() {
                return Err("a meeting without meeting_record_id".into());
            }
            for f in &m.record_files {
                if f.record_file_id.trim().is_empty() {
                    return Err(format!(
                        "a file of meeting {} without record_file_id",
                        m.meeting_record_id
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Reply for AddressesPage {
    fn validate(&self) -> Result<(), String> {
        match self
            .record_files
            .iter()
            .find(|f| f.record_file_id.trim().is_empty())
        {
            Some(_) => Err(format!(
                "a file of meeting {} without record_file_id",
                self.meeting_record_id
            )),
            None => Ok(()),
        }
    }
}
