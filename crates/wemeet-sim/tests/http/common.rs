//! What the tests share: the datasets, a signed call and the queries of each endpoint, the
//! pages they answer, and downloads.

use reqwest::{Client, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};
use wemeet_api::sign::{self, SignInput};
use wemeet_api::types::{ErrorBody, RecordsPage};
use wemeet_sim::{ManifestEntry, SimConfig, SimHandle};

pub const DAY: i64 = 86_400;

/// A small, fast account: every meeting within one 31-day window, files of 100-300 KB
/// (several 64 KiB chunks each).
pub fn small() -> SimConfig {
    SimConfig {
        meetings: 12,
        days: 20,
        pending_fraction: 0.0,
        files_per_meeting: 1..=2,
        min_file_size: 100_000,
        max_file_size: 300_000,
        audio_fraction: 0.0,
        transcript_fraction: 0.0,
        ..SimConfig::default()
    }
}

/// `small()` with every file shared and downloadable, for the tests that start from the
/// listing's download addresses.
pub fn shared() -> SimConfig {
    SimConfig {
        shared_fraction: 1.0,
        download_allowed_fraction: 1.0,
        ..small()
    }
}

/// A simulator on port 0, on the real clock (the tests sign with it and ask for windows
/// around now).
pub async fn start(config: SimConfig) -> SimHandle {
    wemeet_sim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn window_query(page_size: u32, page: u32) -> String {
    let end = now_s() + 3600;
    window_query_from(end - 31 * DAY, end, page_size, page)
}

pub fn window_query_from(start: i64, end: i64, page_size: u32, page: u32) -> String {
    format!(
        "/v1/corp/records?start_time={start}&end_time={end}&page_size={page_size}&page={page}&operator_id=admin&operator_id_type=1"
    )
}

pub fn addresses_query(meeting_record_id: &str, page_size: u32, page: u32) -> String {
    format!(
        "/v1/addresses?meeting_record_id={meeting_record_id}&operator_id=admin&operator_id_type=1&page={page}&page_size={page_size}"
    )
}

/// One signed API call; tests alter its fields to provoke each error.
pub struct Call {
    pub path_and_query: String,
    pub nonce: String,
    pub timestamp: String,
    /// Overrides of what the simulator's credentials would give.
    pub secret_id: Option<String>,
    pub sdk_id: Option<String>,
    pub signed_uri: Option<String>,
}

impl Call {
    pub fn new(path_and_query: impl Into<String>) -> Self {
        Self {
            path_and_query: path_and_query.into(),
            nonce: fresh_nonce(),
            timestamp: now_s().to_string(),
            secret_id: None,
            sdk_id: None,
            signed_uri: None,
        }
    }

    pub async fn send(&self, sim: &SimHandle) -> reqwest::Response {
        let c = sim.credentials();
        let secret_id = self.secret_id.clone().unwrap_or(c.secret_id);
        let signature = sign::signature(
            &c.secret_key,
            &SignInput {
                method: "GET",
                secret_id: &secret_id,
                nonce: &self.nonce,
                timestamp: &self.timestamp,
                request_uri: self.signed_uri.as_ref().unwrap_or(&self.path_and_query),
                body: "",
            },
        );
        let mut req = Client::new()
            .get(format!("{}{}", sim.base_url(), self.path_and_query))
            .header("Content-Type", "application/json")
            .header("X-TC-Key", &secret_id)
            .header("X-TC-Timestamp", &self.timestamp)
            .header("X-TC-Nonce", &self.nonce)
            .header("AppId", &c.app_id)
            .header("X-TC-Registered", "1")
            .header("X-TC-Signature", signature);
        if let Some(sdk) = &self.sdk_id {
            req = req.header("SdkId", sdk);
        }
        req.send().await.expect("API call")
    }

    /// The HTTP status and error code of this call's error reply.
    pub async fn error(&self, sim: &SimHandle) -> (StatusCode, i64) {
        let resp = self.send(sim).await;
        let status = resp.status();
        assert!(resp.headers().contains_key("X-TC-Trace"));
        let body: ErrorBody = resp.json().await.expect("an ErrorBody");
        assert_eq!(body.error_info.error_code, body.error_info.new_error_code);
        (status, body.error_info.error_code)
    }
}

/// Spends a minute's `budget` of calls to `q` without being limited, every other call
/// rejected (rejected calls spend budget too), then asserts that the next call is limited.
pub async fn spend_the_budget(sim: &SimHandle, q: &str, budget: usize) {
    for i in 0..budget {
        let mut call = Call::new(q);
        if i % 2 == 0 {
            call.timestamp = "0".into();
        }
        assert_ne!(call.send(sim).await.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let answer = Call::new(q).error(sim).await;
    assert_eq!(answer, (StatusCode::TOO_MANY_REQUESTS, 190_310));
}

pub fn fresh_nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    (now_s() as u64 * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)).to_string()
}

pub async fn page(sim: &SimHandle, page_size: u32, page: u32) -> RecordsPage {
    let resp = Call::new(window_query(page_size, page)).send(sim).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("X-TC-Trace"));
    resp.json().await.expect("a RecordsPage")
}

/// (record_file_id, record_size, download address) of every file on the first page (all
/// of them must carry an address: start with `shared()`).
pub async fn addresses(sim: &SimHandle) -> Vec<(String, u64, String)> {
    page(sim, 20, 1)
        .await
        .record_meetings
        .into_iter()
        .flat_map(|m| m.record_files)
        .map(|f| {
            let url = f.download_address.expect("address").expose().to_string();
            (f.record_file_id, f.record_size, url)
        })
        .collect()
}

pub fn manifest_entry(sim: &SimHandle, id: &str) -> ManifestEntry {
    sim.manifest()
        .into_iter()
        .find(|e| e.record_file_id == id)
        .expect("file in manifest")
}

pub fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("download request")
}

pub fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

pub async fn assert_access_denied(resp: reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&resp, "content-type"), "application/xml");
    let body = resp.text().await.unwrap();
    assert!(body.starts_with("<?xml"), "{body}");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
}

/// Every listed file of every page, as raw JSON: these tests read the wire format itself.
pub async fn listed_files(sim: &SimHandle) -> Vec<Value> {
    let mut files = Vec::new();
    let mut page = 1;
    loop {
        let resp = Call::new(window_query(20, page)).send(sim).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        for m in body["record_meetings"].as_array().unwrap() {
            files.extend(m["record_files"].as_array().cloned().unwrap_or_default());
        }
        if u64::from(page) >= body["total_page"].as_u64().unwrap() {
            return files;
        }
        page += 1;
    }
}
