//! The simulator, exercised over real HTTP as the archiver will use it.

use crate::common::{Dataset, start_live_sim, transcoded};
use reqwest::{Client, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wemeet_api::sign::{self, SignInput};
use wemeet_api::types::{ErrorBody, RecordsPage};
use wemeet_sim::{ArtifactKind, ManifestEntry, SimConfig, SimHandle, SimStats};

const DAY: i64 = 86_400;

/// A small, fast account: every meeting within one 31-day window, files of 100-300 KB
/// (several 64 KiB chunks each).
fn small() -> SimConfig {
    transcoded(12, 20)
        .files(1..=2, 100_000, 300_000)
        .with(|c| (c.audio_fraction, c.transcript_fraction) = (0.0, 0.0))
}

/// `small()` with every file shared and downloadable, for the tests that start from the
/// listing's download addresses.
fn shared() -> SimConfig {
    SimConfig {
        shared_fraction: 1.0,
        download_allowed_fraction: 1.0,
        ..small()
    }
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn window_query(page_size: u32, page: u32) -> String {
    let end = now_s() + 3600;
    window_query_from(end - 31 * DAY, end, page_size, page)
}

fn window_query_from(start: i64, end: i64, page_size: u32, page: u32) -> String {
    format!(
        "/v1/corp/records?start_time={start}&end_time={end}&page_size={page_size}&page={page}&operator_id=admin&operator_id_type=1"
    )
}

fn addresses_query(meeting_record_id: &str, page_size: u32, page: u32) -> String {
    format!(
        "/v1/addresses?meeting_record_id={meeting_record_id}&operator_id=admin&operator_id_type=1&page={page}&page_size={page_size}"
    )
}

/// One signed API call; tests alter its fields to provoke each error.
struct Call {
    path_and_query: String,
    nonce: String,
    timestamp: String,
    /// Overrides of what the simulator's credentials would give.
    secret_id: Option<String>,
    sdk_id: Option<String>,
    signed_uri: Option<String>,
}

impl Call {
    fn new(path_and_query: impl Into<String>) -> Self {
        Self {
            path_and_query: path_and_query.into(),
            nonce: fresh_nonce(),
            timestamp: now_s().to_string(),
            secret_id: None,
            sdk_id: None,
            signed_uri: None,
        }
    }

    async fn send(&self, sim: &SimHandle) -> reqwest::Response {
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
    async fn error(&self, sim: &SimHandle) -> (StatusCode, i64) {
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
async fn spend_the_budget(sim: &SimHandle, q: &str, budget: usize) {
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

fn fresh_nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    (now_s() as u64 * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)).to_string()
}

async fn page(sim: &SimHandle, page_size: u32, page: u32) -> RecordsPage {
    let resp = Call::new(window_query(page_size, page)).send(sim).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("X-TC-Trace"));
    resp.json().await.expect("a RecordsPage")
}

/// (record_file_id, record_size, download address) of every file on the first page (all
/// of them must carry an address: start with `shared()`).
async fn addresses(sim: &SimHandle) -> Vec<(String, u64, String)> {
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

fn manifest_entry(sim: &SimHandle, id: &str) -> ManifestEntry {
    sim.manifest()
        .into_iter()
        .find(|e| e.record_file_id == id)
        .expect("file in manifest")
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("download request")
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn signed_listing_returns_meetings_as_the_types_describe() {
    let sim = start_live_sim(SimConfig {
        // Two of twelve: the last two, after the hostile subjects and the recurring pair.
        pending_fraction: 0.17,
        ..shared()
    })
    .await;
    let first = page(&sim, 5, 1).await;
    assert_eq!(first.total_count, 12);
    assert_eq!(first.total_page, 3);
    assert_eq!(first.current_page, 1);
    assert_eq!(first.record_meetings.len(), 5);

    let last = page(&sim, 5, 3).await;
    assert_eq!(last.record_meetings.len(), 2);
    assert_eq!(
        last.current_size, 5,
        "the official quirk: the page size, not the count"
    );

    let all = page(&sim, 20, 1).await.record_meetings;
    assert!(
        all.windows(2)
            .all(|w| w[0].media_start_time >= w[1].media_start_time),
        "newest first"
    );
    let subjects: Vec<&str> = all.iter().map(|m| m.subject.as_str()).collect();
    for hostile in wemeet_sim::hostile_subjects() {
        assert!(subjects.contains(&hostile.as_str()), "{hostile:?} listed");
    }
    for m in &all {
        if m.state == 3 {
            assert!(!m.record_files.is_empty());
            for f in &m.record_files {
                let address = f.download_address.as_ref().unwrap().expose();
                let prefix = format!("{}/cos/{}/", sim.base_url(), f.record_file_id);
                assert!(address.starts_with(&prefix));
                assert_eq!(f.password.as_ref().unwrap().expose().len(), 8);
                assert_eq!(f.allow_download, Some(true));
            }
        } else {
            assert!(m.record_files.is_empty(), "no files before state 3");
        }
    }
    assert_eq!(all.iter().filter(|m| m.state == 1).count(), 2);
    let codes: Vec<&str> = all.iter().map(|m| m.meeting_code.as_str()).collect();
    assert!(
        codes
            .iter()
            .any(|c| codes.iter().filter(|d| *d == c).count() == 2),
        "a recurring meeting shares its code"
    );
    let listed_files = all.iter().map(|m| m.record_files.len()).sum::<usize>();
    assert_eq!(sim.manifest().len(), listed_files);
    let before = sim.issued_tokens();
    let again = addresses(&sim).await;
    let after = sim.issued_tokens();
    assert_eq!(after.len(), before.len() + listed_files);
    for (_, _, url) in &again {
        let token = url.split("token=").nth(1).unwrap();
        assert!(
            !before.iter().any(|t| t == token),
            "fresh address each listing"
        );
        assert!(after.iter().any(|t| t == token));
    }
    // Uploaded recordings only: the simulated account has none.
    let uploaded = Call::new(format!("{}&query_record_type=2", window_query(20, 1)))
        .send(&sim)
        .await;
    let uploaded: RecordsPage = uploaded.json().await.unwrap();
    assert_eq!(uploaded.total_count, 0);
    assert_eq!(uploaded.total_page, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn authentication_failures_have_their_codes() {
    let sim = start_live_sim(small()).await;
    let q = window_query(10, 1);

    let mut forged = Call::new(q.clone());
    forged.signed_uri = Some(window_query(20, 1));
    let answer = forged.error(&sim).await;
    assert_eq!(answer, (StatusCode::BAD_REQUEST, 200_003));

    let mut old = Call::new(q.clone());
    old.timestamp = (now_s() - 301).to_string();
    assert_eq!(old.error(&sim).await.1, 190_300);

    let once = Call::new(q.clone());
    assert_eq!(once.send(&sim).await.status(), StatusCode::OK);
    assert_eq!(once.error(&sim).await.1, 190_301, "replay");

    let mut sdk = Call::new(q.clone());
    sdk.sdk_id = Some("123".into());
    assert_eq!(sdk.error(&sim).await.1, 190_303, "SdkId");

    let mut key = Call::new(q.clone());
    key.secret_id = Some("AKIDsomeoneelse".into());
    assert_eq!(key.error(&sim).await.1, 190_303, "X-TC-Key");

    let intern = q.replace("operator_id=admin", "operator_id=intern");
    assert_eq!(Call::new(intern).error(&sim).await.1, 500_014);

    let stats = sim.stats();
    assert_eq!(stats.api_calls, 7);
    assert_eq!(stats.api_errors_by_code.values().sum::<u64>(), 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_assigned_sdk_id_is_required() {
    let mut config = small();
    config.credentials.sdk_id = Some("sdk-1".into());
    let sim = start_live_sim(config).await;
    let q = window_query(10, 1);
    assert_eq!(Call::new(q.clone()).error(&sim).await.1, 190_303);
    let mut with = Call::new(q);
    with.sdk_id = Some("sdk-1".into());
    assert_eq!(with.send(&sim).await.status(), StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_parameters_are_190004() {
    let sim = start_live_sim(small()).await;
    let end = now_s();
    let too_wide = window_query_from(end - 31 * DAY - 1, end, 10, 1);
    let backwards = window_query_from(end, end - 1, 10, 1);
    let page_21 = window_query(21, 1);
    let page_0 = window_query(10, 0);
    let no_start = format!("/v1/corp/records?end_time={end}&operator_id=admin&operator_id_type=1");
    for q in [too_wide, backwards, page_21, page_0, no_start] {
        let answer = Call::new(q.clone()).error(&sim).await;
        assert_eq!(answer, (StatusCode::BAD_REQUEST, 190_004), "{q}");
    }
    let exactly_31_days = window_query_from(end - 31 * DAY, end, 20, 1);
    let resp = Call::new(exactly_31_days).send(&sim).await;
    assert_eq!(resp.status(), StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_eleventh_call_within_a_minute_is_rate_limited() {
    let sim = start_live_sim(small()).await;
    spend_the_budget(&sim, &window_query(10, 1), 10).await;
    let stats: SimStats = sim.stats();
    assert_eq!(stats.api_calls, 11);
    assert_eq!(stats.max_calls_in_60s, 11);
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.api_errors_by_code.get(&190_310), Some(&1));
    assert_eq!(stats.api_errors_by_code.get(&190_300), Some(&5));
    sim.shutdown().await;
}

#[tokio::test]
async fn full_download_matches_the_manifest() {
    let sim = start_live_sim(shared()).await;
    let (id, size, url) = addresses(&sim).await.remove(0);
    let resp = get(&url, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "video/mp4");
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    assert_eq!(header(&resp, "content-length"), size.to_string());
    assert!(header(&resp, "etag").starts_with('"'));
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len() as u64, size);
    let entry = manifest_entry(&sim, &id);
    assert_eq!(entry.record_size, size);
    assert_eq!(sha(&body), entry.sha256);
    let stats = sim.stats();
    assert_eq!(stats.bytes_served, size);
    assert_eq!(stats.bytes_served_by_file.get(&id), Some(&size));
    assert_eq!(stats.download_status_counts.get(&200), Some(&1));

    let head = Client::new().head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "content-length"), size.to_string());
    sim.shutdown().await;
}

#[tokio::test]
async fn range_requests_resume_exactly() {
    let sim = start_live_sim(shared()).await;
    let (id, size, url) = addresses(&sim).await.remove(0);
    let cut = 70_001;
    let head = get(&url, &[("Range", &format!("bytes=0-{}", cut - 1))]).await;
    assert_eq!(head.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&head, "content-range"),
        format!("bytes 0-{}/{size}", cut - 1)
    );
    let etag = header(&head, "etag");
    let mut whole = head.bytes().await.unwrap().to_vec();
    assert_eq!(whole.len(), cut);

    let tail = get(
        &url,
        &[("Range", &format!("bytes={cut}-")), ("If-Range", &etag)],
    )
    .await;
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&tail, "content-range"),
        format!("bytes {cut}-{}/{size}", size - 1)
    );
    assert_eq!(
        header(&tail, "content-length"),
        (size - cut as u64).to_string()
    );
    whole.extend_from_slice(&tail.bytes().await.unwrap());
    assert_eq!(sha(&whole), manifest_entry(&sim, &id).sha256);

    let beyond = get(&url, &[("Range", &format!("bytes={size}-"))]).await;
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&beyond, "content-range"), format!("bytes */{size}"));

    let stale = get(&url, &[("Range", "bytes=10-"), ("If-Range", "\"not-it\"")]).await;
    assert_eq!(
        stale.status(),
        StatusCode::OK,
        "If-Range mismatch: full body"
    );
    assert_eq!(stale.bytes().await.unwrap().len() as u64, size);
    sim.shutdown().await;
}

async fn assert_access_denied(resp: reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&resp, "content-type"), "application/xml");
    let body = resp.text().await.unwrap();
    assert!(body.starts_with("<?xml"), "{body}");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
}

#[tokio::test]
async fn expired_or_forged_tokens_get_403_xml() {
    let sim = start_live_sim(shared().with(|c| c.stale_addresses_first = 1)).await;
    let (id, size, stale_url) = addresses(&sim).await.remove(0);
    let resp = get(&stale_url, &[]).await;
    assert_access_denied(resp).await;
    assert_eq!(sim.stats().expired_token_rejections, 1);

    let (_, _, fresh_url) = addresses(&sim)
        .await
        .into_iter()
        .find(|(i, _, _)| *i == id)
        .unwrap();
    assert_ne!(fresh_url, stale_url);
    let ok = get(&fresh_url, &[]).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.bytes().await.unwrap().len() as u64, size);

    let base = fresh_url.split('?').next().unwrap();
    assert_access_denied(get(base, &[]).await).await;
    assert_access_denied(get(&format!("{base}?token=forged"), &[]).await).await;
    let token = fresh_url.split("token=").nth(1).unwrap();
    let other_file = format!(
        "{}/cos/1234567890123456789/x.mp4?token={token}",
        sim.base_url()
    );
    assert_access_denied(get(&other_file, &[]).await).await;
    let stats = sim.stats();
    assert_eq!(stats.expired_token_rejections, 1);
    assert_eq!(stats.download_status_counts.get(&403), Some(&4));
    sim.shutdown().await;
}

#[tokio::test]
async fn addresses_expire_after_their_ttl() {
    let sim = start_live_sim(shared().with(|c| c.address_ttl = Duration::from_millis(300))).await;
    let (_, _, url) = addresses(&sim).await.remove(0);
    assert_eq!(
        get(&url, &[("Range", "bytes=0-0")]).await.status(),
        StatusCode::PARTIAL_CONTENT
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_access_denied(get(&url, &[]).await).await;
    assert_eq!(sim.stats().expired_token_rejections, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn reset_and_truncate_faults_break_the_first_gets_only() {
    for config in [
        shared().with(|c| c.reset_first = 1),
        shared().with(|c| c.truncate_first = 1),
    ] {
        let sim = start_live_sim(config).await;
        let (id, size, url) = addresses(&sim).await.remove(0);
        let broken = get(&url, &[]).await;
        assert_eq!(broken.status(), StatusCode::OK);
        assert_eq!(header(&broken, "content-length"), size.to_string());
        match broken.bytes().await {
            Err(_) => {}
            Ok(short) => assert!((short.len() as u64) < size),
        }
        let served = sim.stats().bytes_served;
        assert!(
            served <= size / 2 + 1 && served > 0,
            "about half: {served} of {size}"
        );

        let good = get(&url, &[]).await.bytes().await.unwrap();
        assert_eq!(sha(&good), manifest_entry(&sim, &id).sha256);
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn error_5xx_fault_answers_slow_down_first() {
    let sim = start_live_sim(shared().with(|c| c.error_5xx_first = 2)).await;
    let (_, size, url) = addresses(&sim).await.remove(0);
    for _ in 0..2 {
        let resp = get(&url, &[]).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.text().await.unwrap().contains("<Code>SlowDown</Code>"));
    }
    let ok = get(&url, &[]).await;
    assert_eq!(ok.bytes().await.unwrap().len() as u64, size);
    assert_eq!(sim.stats().download_status_counts.get(&503), Some(&2));
    sim.shutdown().await;
}

#[tokio::test]
async fn ignore_range_fault_sends_everything() {
    let sim = start_live_sim(shared().with(|c| c.ignore_range = true)).await;
    let (_, size, url) = addresses(&sim).await.remove(0);
    let resp = get(&url, &[("Range", "bytes=100-")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!resp.headers().contains_key("content-range"));
    assert_eq!(resp.bytes().await.unwrap().len() as u64, size);
    sim.shutdown().await;
}

#[tokio::test]
async fn change_etag_fault_gives_new_content_after_the_first_get() {
    let sim = start_live_sim(shared().with(|c| c.change_etag_after_first = true)).await;
    let (id, size, url) = addresses(&sim).await.remove(0);
    let before = manifest_entry(&sim, &id).sha256;
    let first = get(&url, &[]).await;
    let first_etag = header(&first, "etag");
    assert_eq!(sha(&first.bytes().await.unwrap()), before);

    let resumed = get(&url, &[("Range", "bytes=10-"), ("If-Range", &first_etag)]).await;
    assert_eq!(
        resumed.status(),
        StatusCode::OK,
        "the old ETag no longer matches"
    );
    assert_ne!(header(&resumed, "etag"), first_etag);
    let body = resumed.bytes().await.unwrap();
    assert_eq!(body.len() as u64, size);
    let after = manifest_entry(&sim, &id).sha256;
    assert_ne!(after, before);
    assert_eq!(sha(&body), after);
    sim.shutdown().await;
}

#[tokio::test]
async fn stall_fault_pauses_halfway_then_finishes() {
    let stall = Duration::from_millis(1500);
    let sim = start_live_sim(SimConfig {
        stall_first: 1,
        stall,
        ..shared()
    })
    .await;
    let (id, _, url) = addresses(&sim).await.remove(0);
    let t0 = Instant::now();
    let body = get(&url, &[]).await.bytes().await.unwrap();
    assert!(t0.elapsed() >= stall);
    assert_eq!(sha(&body), manifest_entry(&sim, &id).sha256);
    let t1 = Instant::now();
    get(&url, &[]).await.bytes().await.unwrap();
    assert!(t1.elapsed() < stall, "only the first GET stalls");
    sim.shutdown().await;
}

#[tokio::test]
async fn listing_faults_hit_the_first_accepted_calls() {
    let q = window_query(10, 1);
    let sim = start_live_sim(SimConfig {
        listing_5xx_first: 1,
        listing_invalid_json_first: 1,
        ..small()
    })
    .await;
    let answer = Call::new(q.clone()).error(&sim).await;
    assert_eq!(answer, (StatusCode::INTERNAL_SERVER_ERROR, 41));
    let garbled = Call::new(q.clone()).send(&sim).await;
    assert_eq!(garbled.status(), StatusCode::OK);
    let text = garbled.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());
    page(&sim, 10, 1).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn meetings_arrive_and_transcode_while_running() {
    let sim = start_live_sim(SimConfig {
        meetings: 3,
        arrivals: 1,
        arrival_every: Duration::from_secs(600),
        transcode_delay: Duration::from_secs(20),
        ..small()
    })
    .await;
    let count = |p: &RecordsPage| p.record_meetings.len();
    assert_eq!(count(&page(&sim, 20, 1).await), 3);
    let before = sim.manifest().len();

    let id = sim.add_meeting("临时会议", &[1000, 2000], Duration::from_secs(20));
    let listed = page(&sim, 20, 1).await;
    let added = listed
        .record_meetings
        .iter()
        .find(|m| m.meeting_record_id == id)
        .expect("added meeting listed");
    assert_eq!((added.state, added.record_files.len()), (1, 0));
    assert_eq!(sim.manifest().len(), before);

    sim.advance(Duration::from_secs(10));
    let m = page(&sim, 20, 1).await;
    assert_eq!(
        m.record_meetings
            .iter()
            .find(|m| m.meeting_record_id == id)
            .unwrap()
            .state,
        2
    );

    sim.advance(Duration::from_secs(600));
    let m = page(&sim, 20, 1).await;
    assert_eq!(count(&m), 5, "the configured arrival appeared");
    let added = m
        .record_meetings
        .iter()
        .find(|m| m.meeting_record_id == id)
        .unwrap();
    assert_eq!(added.state, 3);
    let sizes: Vec<u64> = added.record_files.iter().map(|f| f.record_size).collect();
    assert_eq!(sizes, [1000, 2000]);
    assert_eq!(sim.manifest().len(), before + 2);
    sim.shutdown().await;
}

/// What the admin endpoint `/admin/{name}` of `sim` answers.
async fn admin<T: DeserializeOwned>(sim: &SimHandle, name: &str) -> T {
    let url = format!("{}/admin/{name}", sim.base_url());
    Client::new()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_endpoints_report_json() {
    let sim = start_live_sim(shared()).await;
    let urls = addresses(&sim).await;
    let manifest: Vec<ManifestEntry> = admin(&sim, "manifest").await;
    assert_eq!(manifest, sim.manifest());
    let stats: SimStats = admin(&sim, "stats").await;
    assert_eq!(stats.api_calls, 1);
    let tokens: Vec<String> = admin(&sim, "tokens").await;
    assert_eq!(tokens.len(), urls.len());
    assert!(
        urls.iter()
            .zip(&tokens)
            .all(|((_, _, u), t)| u.ends_with(t.as_str()))
    );
    sim.shutdown().await;
}

/// Every listed file of every page, as raw JSON: these tests read the wire format itself.
async fn listed_files(sim: &SimHandle) -> Vec<Value> {
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

/// One successful `/v1/addresses` answer, as raw JSON.
async fn addresses_page(sim: &SimHandle, meeting_record_id: &str, size: u32, page: u32) -> Value {
    let resp = Call::new(addresses_query(meeting_record_id, size, page))
        .send(sim)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("X-TC-Trace"));
    resp.json().await.unwrap()
}

/// `[total_count, current_size, current_page, total_page]` of an `/v1/addresses` answer.
fn paging_of(page: &Value) -> [u64; 4] {
    ["total_count", "current_size", "current_page", "total_page"].map(|k| page[k].as_u64().unwrap())
}

/// (record_file_id, download_address) of every file of an `/v1/addresses` answer.
fn download_addresses(page: &Value) -> Vec<(String, String)> {
    page["record_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let id = f["record_file_id"].as_str().unwrap().to_string();
            (id, f["download_address"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The download address `/v1/addresses` gives now for one file of the manifest.
async fn address_of(sim: &SimHandle, entry: &ManifestEntry) -> String {
    let page = addresses_page(sim, &entry.meeting_record_id, 50, 1).await;
    download_addresses(&page)
        .into_iter()
        .find(|(id, _)| *id == entry.record_file_id)
        .map(|(_, url)| url)
        .expect("file in its meeting's addresses")
}

fn meeting_files(sim: &SimHandle, meeting_record_id: &str) -> Vec<String> {
    sim.manifest()
        .into_iter()
        .filter(|e| e.meeting_record_id == meeting_record_id)
        .map(|e| e.record_file_id)
        .collect()
}

const SHARING_FIELDS: [&str; 7] = [
    "sharing_url",
    "required_same_corp",
    "required_participant",
    "password",
    "sharing_expire",
    "view_address",
    "allow_download",
];

#[tokio::test]
async fn the_listing_carries_addresses_only_for_shared_files_that_allow_downloads() {
    let sim = start_live_sim(small().with(|c| c.meetings = 40)).await;
    let files = listed_files(&sim).await;
    // [with an address, shared without download, not shared]
    let mut kinds = [0u64; 3];
    let mut revealed = Vec::new();
    for f in &files {
        let has = |field: &str| f.get(field).is_some();
        match f["sharing_state"].as_i64() {
            Some(0) => {
                assert!(!SHARING_FIELDS.iter().any(|k| has(k)), "{f}");
                assert!(!has("download_address"), "{f}");
                kinds[2] += 1;
            }
            Some(1) => {
                assert!(SHARING_FIELDS.iter().all(|k| has(k)), "{f}");
                let allowed = f["allow_download"].as_bool().unwrap();
                assert_eq!(has("download_address"), allowed, "{f}");
                kinds[usize::from(!allowed)] += 1;
                revealed.push(f["password"].as_str().unwrap().to_string());
            }
            other => panic!("sharing_state {other:?}"),
        }
    }
    assert!(
        kinds.iter().all(|&n| n > 0),
        "every kind appears: {kinds:?}"
    );

    let manifest = sim.manifest();
    assert_eq!(manifest.len(), files.len(), "the manifest lists every file");
    for e in &manifest {
        let f = files
            .iter()
            .find(|f| f["record_file_id"] == e.record_file_id.as_str())
            .unwrap();
        assert_eq!(e.listing_address, f.get("download_address").is_some());
        assert!(e.downloadable);
    }
    let stats = sim.stats();
    assert_eq!(stats.addresses_issued_by_listing, kinds[0]);
    assert_eq!(stats.addresses_issued_by_addresses, 0);
    let mut passwords = sim.passwords();
    passwords.sort();
    revealed.sort();
    assert_eq!(
        passwords, revealed,
        "only the passwords the listing reveals"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn addresses_give_a_working_address_for_a_file_the_listing_does_not() {
    let sim = start_live_sim(small()).await;
    let entry = sim
        .manifest()
        .into_iter()
        .find(|e| !e.listing_address)
        .expect("a file without a listing address");
    let page = addresses_page(&sim, &entry.meeting_record_id, 50, 1).await;
    assert_eq!(page["meeting_record_id"], entry.meeting_record_id.as_str());
    assert_eq!(page["meeting_code"], entry.meeting_code.as_str());
    assert_eq!(page["subject"], entry.subject.as_str());
    assert!(page["meeting_id"].as_str().is_some_and(|id| !id.is_empty()));
    let ids: Vec<String> = download_addresses(&page)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        ids,
        meeting_files(&sim, &entry.meeting_record_id),
        "in order"
    );
    let n = ids.len() as u64;
    assert_eq!(paging_of(&page), [n, n, 1, 1]);

    let f = page["record_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["record_file_id"] == entry.record_file_id.as_str())
        .unwrap();
    assert_eq!(f["download_address_file_type"], "mp4");
    assert_eq!(f["audio_address"], "");
    assert_eq!(f["audio_address_file_type"], "");
    assert_eq!(f["meeting_summary"], Value::Array(Vec::new()));
    assert!(
        f["view_address"]
            .as_str()
            .unwrap()
            .starts_with("https://meeting.tencent.com/cw/")
    );
    let resp = get(f["download_address"].as_str().unwrap(), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sha(&resp.bytes().await.unwrap()), entry.sha256);

    let stats = sim.stats();
    assert_eq!(stats.address_calls, 1);
    assert_eq!(
        stats.api_calls, 0,
        "the listing counters stay the listing's"
    );
    assert_eq!(stats.addresses_issued_by_addresses, ids.len() as u64);
    assert_eq!(stats.addresses_issued_by_listing, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn addresses_page_through_a_meetings_files_one_at_a_time() {
    let sim = start_live_sim(small()).await;
    let id = sim.add_meeting("三个文件", &[1000, 2000, 3000], Duration::ZERO);
    let expected = meeting_files(&sim, &id);
    assert_eq!(expected.len(), 3);
    let mut seen = Vec::new();
    for n in 1..=3u32 {
        let page = addresses_page(&sim, &id, 1, n).await;
        assert_eq!(paging_of(&page), [3, 1, u64::from(n), 3]);
        seen.extend(download_addresses(&page).into_iter().map(|(id, _)| id));
    }
    assert_eq!(seen, expected);
    let beyond = addresses_page(&sim, &id, 1, 4).await;
    assert_eq!(beyond["record_files"], Value::Array(Vec::new()));
    assert_eq!(paging_of(&beyond), [3, 0, 4, 3]);
    sim.shutdown().await;
}

#[tokio::test]
async fn addresses_of_a_meeting_not_yet_transcoded_are_an_empty_page() {
    let sim = start_live_sim(small()).await;
    let id = sim.add_meeting("录制中", &[1000], Duration::from_secs(600));
    let page = addresses_page(&sim, &id, 50, 1).await;
    assert_eq!(paging_of(&page), [0, 0, 1, 0]);
    assert_eq!(page["record_files"], Value::Array(Vec::new()));
    assert_eq!(page["meeting_record_id"], id.as_str());
    sim.shutdown().await;
}

#[tokio::test]
async fn addresses_reject_bad_parameters_unknown_meetings_and_other_operators() {
    let sim = start_live_sim(small()).await;
    let id = sim.manifest()[0].meeting_record_id.clone();
    let invalid = [
        addresses_query(&id, 51, 1),
        addresses_query(&id, 0, 1),
        addresses_query(&id, 50, 0),
        "/v1/addresses?operator_id=admin&operator_id_type=1".to_string(),
        addresses_query(&id, 50, 1).replace("operator_id_type=1", "operator_id_type=2"),
    ];
    for q in &invalid {
        let answer = Call::new(q.clone()).error(&sim).await;
        assert_eq!(answer, (StatusCode::BAD_REQUEST, 190_004), "{q}");
    }
    let unknown = addresses_query("1234567890123456789", 50, 1);
    let answer = Call::new(unknown).error(&sim).await;
    assert_eq!(answer, (StatusCode::INTERNAL_SERVER_ERROR, 7001));
    let intern = addresses_query(&id, 50, 1).replace("operator_id=admin", "operator_id=intern");
    assert_eq!(Call::new(intern).error(&sim).await.1, 500_014);

    let stats = sim.stats();
    assert_eq!(stats.address_calls, 7);
    assert_eq!(stats.address_errors_by_code.get(&190_004), Some(&5));
    assert_eq!(stats.address_errors_by_code.get(&7001), Some(&1));
    assert_eq!(stats.address_errors_by_code.get(&500_014), Some(&1));
    assert!(stats.api_errors_by_code.is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_nonce_spent_on_the_listing_is_a_replay_on_addresses() {
    let sim = start_live_sim(small()).await;
    let id = sim.manifest()[0].meeting_record_id.clone();
    let listing = Call::new(window_query(10, 1));
    assert_eq!(listing.send(&sim).await.status(), StatusCode::OK);
    let mut replay = Call::new(addresses_query(&id, 50, 1));
    replay.nonce = listing.nonce.clone();
    replay.timestamp = listing.timestamp.clone();
    assert_eq!(replay.error(&sim).await, (StatusCode::BAD_REQUEST, 190_301));

    let mut forged = Call::new(addresses_query(&id, 50, 1));
    forged.signed_uri = Some(addresses_query(&id, 10, 1));
    assert_eq!(forged.error(&sim).await.1, 200_003);
    let mut key = Call::new(addresses_query(&id, 50, 1));
    key.secret_id = Some("AKIDsomeoneelse".into());
    assert_eq!(key.error(&sim).await.1, 190_303);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_sixty_first_address_call_within_a_minute_is_rate_limited_apart_from_the_listing() {
    let sim = start_live_sim(small()).await;
    let id = sim.manifest()[0].meeting_record_id.clone();
    page(&sim, 10, 1).await;
    spend_the_budget(&sim, &addresses_query(&id, 50, 1), 60).await;
    page(&sim, 10, 1).await;

    let stats = sim.stats();
    assert_eq!(stats.address_calls, 61);
    assert_eq!(stats.address_max_calls_in_60s, 61);
    assert_eq!(stats.address_rate_limited, 1);
    assert_eq!(stats.address_errors_by_code.get(&190_310), Some(&1));
    assert_eq!(stats.address_errors_by_code.get(&190_300), Some(&30));
    assert_eq!((stats.api_calls, stats.max_calls_in_60s), (2, 2));
    assert_eq!(stats.rate_limited, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn addresses_5xx_fault_hits_the_first_calls_that_would_succeed() {
    let sim = start_live_sim(small().with(|c| c.addresses_5xx_first = 2)).await;
    let id = sim.manifest()[0].meeting_record_id.clone();
    let unknown = addresses_query("1234567890123456789", 50, 1);
    assert_eq!(Call::new(unknown).error(&sim).await.1, 7001);
    for _ in 0..2 {
        let answer = Call::new(addresses_query(&id, 50, 1)).error(&sim).await;
        assert_eq!(answer, (StatusCode::INTERNAL_SERVER_ERROR, 41));
    }
    let page = addresses_page(&sim, &id, 50, 1).await;
    assert!(
        download_addresses(&page)
            .iter()
            .all(|(_, url)| !url.is_empty())
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn addresses_empty_fault_blanks_each_files_first_answers() {
    let sim = start_live_sim(small().with(|c| c.addresses_empty_first = 1)).await;
    let id = sim.add_meeting("两个文件", &[1000, 2000], Duration::ZERO);
    let first = download_addresses(&addresses_page(&sim, &id, 1, 1).await);
    assert_eq!(first[0].1, "", "the first file's first answer");
    let both = download_addresses(&addresses_page(&sim, &id, 50, 1).await);
    assert_ne!(both[0].1, "", "the first file's second answer");
    assert_eq!(both[1].1, "", "the second file's first answer");
    let again = download_addresses(&addresses_page(&sim, &id, 50, 1).await);
    assert!(again.iter().all(|(_, url)| !url.is_empty()));
    assert_eq!(get(&again[1].1, &[]).await.status(), StatusCode::OK);
    assert_eq!(sim.stats().addresses_issued_by_addresses, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn no_address_fraction_files_get_an_address_from_no_endpoint() {
    let sim = start_live_sim(shared().with(|c| c.no_address_fraction = 0.5)).await;
    let manifest = sim.manifest();
    assert!(manifest.iter().any(|e| e.downloadable));
    assert!(manifest.iter().any(|e| !e.downloadable));
    let listed = listed_files(&sim).await;
    for e in &manifest {
        assert_eq!(
            e.listing_address, e.downloadable,
            "everything else is shared"
        );
        let f = listed
            .iter()
            .find(|f| f["record_file_id"] == e.record_file_id.as_str())
            .unwrap();
        assert_eq!(f.get("download_address").is_some(), e.downloadable);
    }
    let withheld = manifest.iter().find(|e| !e.downloadable).unwrap();
    for _ in 0..2 {
        assert_eq!(address_of(&sim, withheld).await, "", "never an address");
    }
    let reachable = manifest.iter().find(|e| e.downloadable).unwrap();
    assert_ne!(address_of(&sim, reachable).await, "");
    sim.shutdown().await;
}

#[tokio::test]
async fn stale_addresses_are_counted_across_both_endpoints() {
    let sim = start_live_sim(shared().with(|c| c.stale_addresses_first = 1)).await;
    let manifest = sim.manifest();
    let first = &manifest[0];
    let other = manifest
        .iter()
        .find(|e| e.meeting_record_id != first.meeting_record_id)
        .unwrap();
    // `first` gets its stale address from /v1/addresses, `other` from the listing.
    let stale = address_of(&sim, first).await;
    let listed = addresses(&sim).await;
    let listed_url = |id: &str| listed.iter().find(|(i, _, _)| i == id).unwrap().2.clone();
    assert_access_denied(get(&stale, &[]).await).await;
    assert_eq!(
        get(&listed_url(&first.record_file_id), &[]).await.status(),
        StatusCode::OK
    );
    assert_access_denied(get(&listed_url(&other.record_file_id), &[]).await).await;
    let fresh = address_of(&sim, other).await;
    assert_eq!(get(&fresh, &[]).await.status(), StatusCode::OK);
    assert_eq!(sim.stats().expired_token_rejections, 2);
    sim.shutdown().await;
}

/// Audio tracks and transcripts come only from `/v1/addresses`, are served like the files
/// (Range, ETag), and a late transcript appears only `transcript_delay` after transcoding.
#[tokio::test]
async fn addresses_reveal_audio_tracks_and_transcripts_late_ones_later() {
    let sim = start_live_sim(small().with(|c| {
        c.audio_fraction = 1.0;
        c.transcript_fraction = 1.0;
        c.late_transcript_fraction = 1.0;
        c.transcript_delay = Duration::from_secs(3600);
    }))
    .await;
    assert!(
        sim.artifact_manifest()
            .iter()
            .all(|e| e.kind == ArtifactKind::Audio)
    );
    let entry = sim.manifest().remove(0);
    let files = |page: Value| page["record_files"].as_array().unwrap().clone();
    let before = files(addresses_page(&sim, &entry.meeting_record_id, 50, 1).await);
    let f = before
        .iter()
        .find(|f| f["record_file_id"] == entry.record_file_id.as_str())
        .unwrap();
    assert_eq!(f["audio_address_file_type"], "m4a");
    assert_eq!(
        f["meeting_summary"],
        Value::Array(Vec::new()),
        "late transcripts show early"
    );
    let audio = sim
        .artifact_manifest()
        .into_iter()
        .find(|e| e.record_file_id == entry.record_file_id)
        .unwrap();
    let url = f["audio_address"].as_str().unwrap();
    let whole = get(url, &[]).await;
    assert_eq!(header(&whole, "content-type"), "audio/mp4");
    let etag = header(&whole, "etag");
    assert_eq!(sha(&whole.bytes().await.unwrap()), audio.sha256);
    let tail = get(url, &[("Range", "bytes=10-"), ("If-Range", &etag)]).await;
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.bytes().await.unwrap().len() as u64, audio.size - 10);

    sim.advance(Duration::from_secs(3600));
    let after = files(addresses_page(&sim, &entry.meeting_record_id, 50, 1).await);
    let f = after
        .iter()
        .find(|f| f["record_file_id"] == entry.record_file_id.as_str())
        .unwrap();
    let summary = f["meeting_summary"].as_array().unwrap();
    assert!(!summary.is_empty(), "{f:#}");
    for t in summary {
        let resp = get(t["download_address"].as_str().unwrap(), &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            ["txt", "pdf", "docs"].contains(&t["file_type"].as_str().unwrap()),
            "{t}"
        );
    }
    let transcripts = sim
        .artifact_manifest()
        .into_iter()
        .filter(|e| e.record_file_id == entry.record_file_id && e.kind == ArtifactKind::Transcript)
        .count();
    assert_eq!(transcripts, summary.len());
}
