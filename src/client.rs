//! The archiver's client of the Tencent Meeting API: the wire contract of `wemeet-api`
//! sent over HTTP, each endpoint under its own persisted [`Budget`], retried by the
//! program's one retry policy ([`crate::retry`]).
//!
//! Every attempt spends one call of its endpoint's budget *before* it is sent (the server
//! counts failed calls too) and is signed afresh, method included (a reused nonce is
//! refused as a replay).

use crate::budget::{Budget, Priority};
use crate::config::ApiConfig;
use crate::domain::{MeetingRecordId, RecordFileId};
use crate::errors::Class;
use crate::state::DbError;
use crate::time::UnixMs;
use rand::RngExt;
use std::sync::Arc;
use wemeet_api::{
    AddressFile, ApiError, Credentials, DeleteRecordFile, Empty, Endpoint, ErrorClass, ListRecords,
    Method, RecordAddresses, RecordsPage, Request,
};

/// The process's one HTTP client, for the API and the download host alike: building one
/// loads the system's CA certificates (hundreds of files), so it is done once.
///
/// No whole-request timeout (a multi-GB body legitimately takes long: API calls set their
/// own); a read timeout catches a stalled connection. No decompression: download offsets
/// must be raw bytes.
pub fn http_client(read_timeout: std::time::Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .read_timeout(read_timeout)
        .user_agent(concat!("wemeet-archiver/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Which keys of the configuration an API error the admin must fix points at (after a
/// `; `); nothing for the others.
fn config_advice(e: &ApiError) -> &'static str {
    match (e.class(), e) {
        (ErrorClass::Fatal, ApiError::Permission { .. }) => {
            "; api.operator_id must be an admin with that permission"
        }
        (ErrorClass::Fatal, _) => {
            "; check api.app_id, api.secret_id and api.secret_key, and leave api.sdk_id empty \
             unless Tencent assigned one"
        }
        _ => "",
    }
}

/// Replies larger than this are not a reply of any endpoint; refuse to buffer them.
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// Why a call did not get its reply.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The API's error reply; one only the admin can fix names the keys to check.
    #[error("{0}{advice}", advice = config_advice(.0))]
    Api(ApiError),
    /// Connection refused or reset, timeout, a body cut short: the class is `Retry`.
    #[error("network error calling the API")]
    Transport(#[source] reqwest::Error),
    /// The call log is the budget: a call that cannot be recorded is not sent.
    #[error("cannot record the API call in the database")]
    Budget(#[source] DbError),
}

impl From<ApiError> for CallError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl CallError {
    /// The API's class; the network, and a call log that could not be written (the call
    /// was not sent), are passing faults.
    pub fn class(&self) -> Class {
        match self {
            Self::Api(e) => e.class().into(),
            Self::Transport(_) | Self::Budget(_) => Class::Retry,
        }
    }

    /// The label of the outcome in the call log and the metrics.
    fn label(&self) -> String {
        match self {
            Self::Api(e) => e.label(),
            Self::Transport(_) => "transport".into(),
            Self::Budget(_) => "not_sent".into(),
        }
    }
}

/// A reply, with when its call was sent: addresses in it were issued no earlier, so that
/// is a safe lower bound on their issue time.
#[derive(Debug, Clone)]
pub struct Dated<T> {
    pub reply: T,
    pub sent_at: UnixMs,
}

/// The call budgets of the three endpoints.
#[derive(Debug, Clone)]
pub struct Budgets {
    pub records: Arc<Budget>,
    pub addresses: Arc<Budget>,
    pub deletes: Arc<Budget>,
}

impl Budgets {
    pub fn of(&self, endpoint: Endpoint) -> &Arc<Budget> {
        match endpoint {
            Endpoint::Records => &self.records,
            Endpoint::Addresses => &self.addresses,
            Endpoint::Delete => &self.deletes,
        }
    }
}

/// One page of one window of the listing.
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
    credentials: Credentials,
    budgets: Budgets,
}

impl ApiClient {
    /// `http` is the process's one HTTP client (see [`http_client`]); each API call is
    /// bounded by `api.timeout` on its own.
    pub fn new(config: ApiConfig, budgets: Budgets, http: reqwest::Client) -> Self {
        let credentials = Credentials {
            app_id: config.app_id.clone(),
            sdk_id: config.sdk_id.clone(),
            secret_id: config.secret_id.clone(),
            secret_key: config.secret_key.clone(),
        };
        Self {
            http,
            config,
            credentials,
            budgets,
        }
    }

    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// Lists one page of a window.
    pub async fn list_records(
        &self,
        query: ListQuery,
        priority: Priority,
    ) -> Result<Dated<RecordsPage>, CallError> {
        let request = ListRecords {
            start_time: query.start_time,
            end_time: query.end_time,
            page: query.page,
            operator_id: self.config.operator_id.clone(),
            record_type: self.config.record_type,
        };
        self.call(&request, priority).await
    }

    /// The download addresses of every file of one recording (every page of them), fresh:
    /// each one lives 6 hours from `sent_at` (the first page's). Files the API has no
    /// address for come back with `download_address: None`.
    pub async fn record_addresses(
        &self,
        meeting_record_id: &MeetingRecordId,
    ) -> Result<Dated<Vec<AddressFile>>, CallError> {
        let mut files = Vec::new();
        let mut sent_at = None;
        let mut request = RecordAddresses {
            meeting_record_id: meeting_record_id.to_string(),
            page: 1,
            operator_id: self.config.operator_id.clone(),
        };
        loop {
            let answer = self.call(&request, Priority::Transfer).await?;
            let first_sent = *sent_at.get_or_insert(answer.sent_at);
            let page = answer.reply;
            let last = page.record_files.is_empty() || u64::from(request.page) >= page.total_page;
            files.extend(page.record_files);
            if last {
                return Ok(Dated {
                    reply: files,
                    sent_at: first_sent,
                });
            }
            request.page += 1;
        }
    }

    /// Deletes one file from the cloud, for good. A retry after a lost answer gets 4051
    /// ([`ApiError::is_already_deleted`]): for the caller, the file is deleted all the same.
    pub async fn delete_record_file(
        &self,
        record_file_id: &RecordFileId,
    ) -> Result<Dated<Empty>, CallError> {
        let request = DeleteRecordFile {
            record_file_id: record_file_id.to_string(),
            operator_id: self.config.operator_id.clone(),
        };
        self.call(&request, Priority::Prune).await
    }

    /// One call, retried while its errors are passing ones; every attempt waits for its
    /// endpoint's budget at `priority`.
    async fn call<R: Request>(
        &self,
        request: &R,
        priority: Priority,
    ) -> Result<Dated<R::Reply>, CallError> {
        let mut delays = crate::retry::delays();
        loop {
            let error = match self.call_once(request, priority).await {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            let delay = match delays.next() {
                Some(d) if error.class() == Class::Retry => d,
                _ => return Err(error),
            };
            let delay = match &error {
                CallError::Api(api) => delay.max(api.min_delay()),
                _ => delay,
            };
            tracing::warn!(
                error = %crate::errors::chain(&error), retry_in_ms = delay.as_millis() as u64,
                endpoint = R::ENDPOINT.as_str(), "API call failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn call_once<R: Request>(
        &self,
        request: &R,
        priority: Priority,
    ) -> Result<Dated<R::Reply>, CallError> {
        let base = self.config.base_url.as_str().trim_end_matches('/');
        let url = reqwest::Url::parse(&format!("{base}{}", request.path_and_query()))
            .expect("a valid base URL joined with an encoded path and query is a URL");
        // The signature covers the request URI exactly as sent.
        let request_uri = format!("{}?{}", url.path(), url.query().unwrap_or_default());

        let budget = self.budgets.of(R::ENDPOINT);
        let call_id = budget.spend(priority).await.map_err(CallError::Budget)?;
        let sent_at = UnixMs::now();
        let nonce = rand::rng().random_range(1..u32::MAX);
        let method = match R::METHOD {
            Method::Get => reqwest::Method::GET,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut http = self.http.request(method, url).timeout(self.config.timeout);
        for (name, value) in wemeet_api::sign::headers(
            &self.credentials,
            R::METHOD.as_str(),
            &request_uri,
            "",
            sent_at.as_secs(),
            nonce,
        ) {
            http = http.header(name, value);
        }
        let result = send::<R>(http).await;
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.label(),
        };
        tracing::debug!(
            endpoint = R::ENDPOINT.as_str(), purpose = priority.as_str(), outcome = %outcome,
            method = R::METHOD.as_str(), path = %request.path(),
            query = ?request.query().iter().filter(|(k, _)| *k != "operator_id").collect::<Vec<_>>(),
            trace = result.as_ref().map(|(_, t)| t.as_str()).unwrap_or("-"),
            "API call"
        );
        budget.record_outcome(call_id, &outcome).await;
        result.map(|(reply, _)| Dated { reply, sent_at })
    }
}

/// Sends the request and decodes the reply; returns it with its trace id.
async fn send<R: Request>(
    request: reqwest::RequestBuilder,
) -> Result<(R::Reply, String), CallError> {
    // `without_url`: the URL is harmless here, but the habit keeps tokens out of logs.
    let transport = |e: reqwest::Error| CallError::Transport(e.without_url());
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
        }
        .into());
    }
    let body = response.bytes().await.map_err(transport)?;
    let reply = wemeet_api::decode::<R>(status, &trace, &body)?;
    Ok((reply, trace))
}
