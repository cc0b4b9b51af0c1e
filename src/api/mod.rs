//! Client of the Tencent Meeting REST API: signed requests, typed replies, classified errors.
//!
//! Every attempt spends one call of the shared [`Budget`] *before* it is sent (the server
//! counts failed calls too) and is signed afresh (a reused nonce is rejected as a replay).

mod error;
pub mod sign;
pub mod types;

pub use error::{ApiError, ErrorClass};

use crate::budget::{Budget, Priority};
use crate::config::ApiConfig;
use rand::RngExt;
use std::sync::Arc;
use std::time::Duration;
use types::{ErrorBody, RecordsPage};

/// The listing endpoint's largest page.
pub const PAGE_SIZE: u32 = 20;
/// The listing endpoint's widest window, in seconds.
pub const MAX_WINDOW_SECS: i64 = 31 * 86_400;
const RECORDS_PATH: &str = "v1/corp/records";
/// Replies larger than this are not a listing page; refuse to buffer them.
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// One page of one window, as the API takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListQuery {
    /// UNIX seconds, inclusive.
    pub start_time: i64,
    /// UNIX seconds; `end_time - start_time <= 31 days`.
    pub end_time: i64,
    pub page: u32,
}

#[derive(Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    config: ApiConfig,
    budget: Arc<Budget>,
    max_attempts: u32,
}

impl ApiClient {
    pub fn new(config: ApiConfig, budget: Arc<Budget>) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("wemeet-archiver/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
        Ok(Self {
            http,
            config,
            budget,
            max_attempts: 6,
        })
    }

    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Lists one page, retrying passing faults with exponential backoff and jitter; every
    /// attempt waits for the budget at `priority`.
    pub async fn list_records(
        &self,
        query: ListQuery,
        priority: Priority,
    ) -> Result<RecordsPage, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.list_once(query, priority).await {
                Ok(page) => return Ok(page),
                Err(e) if e.class() == ErrorClass::Retry && attempt < self.max_attempts => {
                    let delay = backoff(attempt).max(e.min_delay());
                    tracing::warn!(
                        error = %e, attempt, retry_in_ms = delay.as_millis() as u64,
                        start_time = query.start_time, page = query.page,
                        "listing call failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn list_once(
        &self,
        query: ListQuery,
        priority: Priority,
    ) -> Result<RecordsPage, ApiError> {
        let mut url = self
            .config
            .base_url
            .join(RECORDS_PATH)
            .map_err(|e| ApiError::Transport(format!("bad api.base_url: {e}")))?;
        url.query_pairs_mut()
            .append_pair("start_time", &query.start_time.to_string())
            .append_pair("end_time", &query.end_time.to_string())
            .append_pair("page_size", &PAGE_SIZE.to_string())
            .append_pair("page", &query.page.to_string())
            .append_pair("operator_id", &self.config.operator_id)
            .append_pair(
                "operator_id_type",
                &self.config.operator_id_type.to_string(),
            )
            .append_pair("query_record_type", &self.config.record_type.to_string());
        // The signature covers the request URI exactly as sent.
        let request_uri = format!("{}?{}", url.path(), url.query().unwrap_or_default());

        let call_id = self
            .budget
            .spend(priority)
            .await
            .map_err(|e| ApiError::Transport(format!("cannot record the API call: {e}")))?;
        let timestamp = chrono::Utc::now().timestamp().to_string();
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
        let result = self.send(request).await;
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => outcome_label(e),
        };
        tracing::debug!(
            start_time = query.start_time, end_time = query.end_time, page = query.page,
            purpose = priority.as_str(), outcome = %outcome, trace = result.as_ref().map(|(_, t)| t.as_str()).unwrap_or("-"),
            "API call"
        );
        self.budget.record_outcome(call_id, &outcome).await;
        result.map(|(page, _)| page)
    }

    /// Sends the request and decodes the reply; returns the page and its trace id.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(RecordsPage, String), ApiError> {
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
            return Err(ApiError::from_reply(status, code, message, trace));
        }
        let page: RecordsPage = serde_json::from_slice(&body).map_err(|e| ApiError::Malformed {
            status,
            trace: trace.clone(),
            detail: e.to_string(),
        })?;
        if let Err(detail) = page.validate() {
            return Err(ApiError::Malformed {
                status,
                trace,
                detail,
            });
        }
        Ok((page, trace))
    }
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

impl RecordsPage {
    /// Rejects a page that could not be applied whole: a file without an id or with a
    /// negative size, a meeting without an id. Half-applying it would lose data silently.
    pub fn validate(&self) -> Result<(), String> {
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
