//! The simulator, exercised over real HTTP as the archiver will use it.

use reqwest::{Client, StatusCode};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wemeet_archiver::api::sign::{self, SignInput};
use wemeet_archiver::api::types::{ErrorBody, RecordsPage};
use wemeet_archiver::simulator::{self, ManifestEntry, SimConfig, SimHandle, SimStats};

const DAY: i64 = 86_400;

/// A small, fast account: every meeting within one 31-day window, files of 100-300 KB
/// (several 64 KiB chunks each).
fn small() -> SimConfig {
    SimConfig {
        meetings: 12,
        days: 20,
        pending_fraction: 0.0,
        files_per_meeting: 1..=2,
        min_file_size: 100_000,
        max_file_size: 300_000,
        ..SimConfig::default()
    }
}

async fn boot(config: SimConfig) -> SimHandle {
    simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
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

/// One listing call; tests alter its fields to provoke each error.
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
        req.send().await.expect("listing call")
    }
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

/// The HTTP status and error code of an error reply.
async fn error_of(resp: reqwest::Response) -> (StatusCode, i64) {
    let status = resp.status();
    assert!(resp.headers().contains_key("X-TC-Trace"));
    let body: ErrorBody = resp.json().await.expect("an ErrorBody");
    assert_eq!(body.error_info.error_code, body.error_info.new_error_code);
    (status, body.error_info.error_code)
}

/// (record_file_id, record_size, download address) of every file on the first page.
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
    let sim = boot(SimConfig {
        // Two of twelve: the last two, after the hostile subjects and the recurring pair.
        pending_fraction: 0.17,
        ..small()
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
    for hostile in simulator::hostile_subjects() {
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
    let sim = boot(small()).await;
    let q = window_query(10, 1);

    let mut forged = Call::new(q.clone());
    forged.signed_uri = Some(window_query(20, 1));
    let answer = error_of(forged.send(&sim).await).await;
    assert_eq!(answer, (StatusCode::BAD_REQUEST, 200_003));

    let mut old = Call::new(q.clone());
    old.timestamp = (now_s() - 301).to_string();
    assert_eq!(error_of(old.send(&sim).await).await.1, 190_300);

    let once = Call::new(q.clone());
    assert_eq!(once.send(&sim).await.status(), StatusCode::OK);
    assert_eq!(error_of(once.send(&sim).await).await.1, 190_301, "replay");

    let mut sdk = Call::new(q.clone());
    sdk.sdk_id = Some("123".into());
    assert_eq!(error_of(sdk.send(&sim).await).await.1, 190_303, "SdkId");

    let mut key = Call::new(q.clone());
    key.secret_id = Some("AKIDsomeoneelse".into());
    assert_eq!(error_of(key.send(&sim).await).await.1, 190_303, "X-TC-Key");

    let intern = q.replace("operator_id=admin", "operator_id=intern");
    assert_eq!(
        error_of(Call::new(intern).send(&sim).await).await.1,
        500_014
    );

    let stats = sim.stats();
    assert_eq!(stats.api_calls, 7);
    assert_eq!(stats.api_errors_by_code.values().sum::<u64>(), 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_assigned_sdk_id_is_required() {
    let mut config = small();
    config.credentials.sdk_id = Some("sdk-1".into());
    let sim = boot(config).await;
    let q = window_query(10, 1);
    assert_eq!(
        error_of(Call::new(q.clone()).send(&sim).await).await.1,
        190_303
    );
    let mut with = Call::new(q);
    with.sdk_id = Some("sdk-1".into());
    assert_eq!(with.send(&sim).await.status(), StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_parameters_are_190004() {
    let sim = boot(small()).await;
    let end = now_s();
    let too_wide = window_query_from(end - 31 * DAY - 1, end, 10, 1);
    let backwards = window_query_from(end, end - 1, 10, 1);
    let page_21 = window_query(21, 1);
    let page_0 = window_query(10, 0);
    let no_start = format!("/v1/corp/records?end_time={end}&operator_id=admin&operator_id_type=1");
    for q in [too_wide, backwards, page_21, page_0, no_start] {
        let answer = error_of(Call::new(q.clone()).send(&sim).await).await;
        assert_eq!(answer, (StatusCode::BAD_REQUEST, 190_004), "{q}");
    }
    let exactly_31_days = window_query_from(end - 31 * DAY, end, 20, 1);
    let resp = Call::new(exactly_31_days).send(&sim).await;
    assert_eq!(resp.status(), StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_eleventh_call_within_a_minute_is_rate_limited() {
    let sim = boot(small()).await;
    let q = window_query(10, 1);
    for i in 0..10 {
        let mut call = Call::new(q.clone());
        if i % 2 == 0 {
            // Rejected calls spend budget too.
            call.timestamp = "0".into();
        }
        assert_ne!(
            call.send(&sim).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let answer = error_of(Call::new(q).send(&sim).await).await;
    assert_eq!(answer, (StatusCode::TOO_MANY_REQUESTS, 190_310));
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
    let sim = boot(small()).await;
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
    let sim = boot(small()).await;
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
    let sim = boot(SimConfig {
        stale_addresses_first: 1,
        ..small()
    })
    .await;
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
    let sim = boot(SimConfig {
        address_ttl: Duration::from_millis(300),
        ..small()
    })
    .await;
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
        SimConfig {
            reset_first: 1,
            ..small()
        },
        SimConfig {
            truncate_first: 1,
            ..small()
        },
    ] {
        let sim = boot(config).await;
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
    let sim = boot(SimConfig {
        error_5xx_first: 2,
        ..small()
    })
    .await;
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
    let sim = boot(SimConfig {
        ignore_range: true,
        ..small()
    })
    .await;
    let (_, size, url) = addresses(&sim).await.remove(0);
    let resp = get(&url, &[("Range", "bytes=100-")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!resp.headers().contains_key("content-range"));
    assert_eq!(resp.bytes().await.unwrap().len() as u64, size);
    sim.shutdown().await;
}

#[tokio::test]
async fn change_etag_fault_gives_new_content_after_the_first_get() {
    let sim = boot(SimConfig {
        change_etag_after_first: true,
        ..small()
    })
    .await;
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
    let sim = boot(SimConfig {
        stall_first: 1,
        stall,
        ..small()
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
    let sim = boot(SimConfig {
        listing_5xx_first: 1,
        listing_invalid_json_first: 1,
        ..small()
    })
    .await;
    let q = window_query(10, 1);
    let answer = error_of(Call::new(q.clone()).send(&sim).await).await;
    assert_eq!(answer, (StatusCode::INTERNAL_SERVER_ERROR, 41));
    let garbled = Call::new(q.clone()).send(&sim).await;
    assert_eq!(garbled.status(), StatusCode::OK);
    let text = garbled.text().await.unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
    page(&sim, 10, 1).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn meetings_arrive_and_transcode_while_running() {
    let sim = boot(SimConfig {
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

#[tokio::test]
async fn admin_endpoints_report_json() {
    let sim = boot(small()).await;
    let urls = addresses(&sim).await;
    let base = sim.base_url();
    let client = Client::new();
    let manifest: Vec<ManifestEntry> = client
        .get(format!("{base}/admin/manifest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(manifest, sim.manifest());
    let stats: SimStats = client
        .get(format!("{base}/admin/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.api_calls, 1);
    let tokens: Vec<String> = client
        .get(format!("{base}/admin/tokens"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens.len(), urls.len());
    assert!(
        urls.iter()
            .zip(&tokens)
            .all(|((_, _, u), t)| u.ends_with(t.as_str()))
    );
    sim.shutdown().await;
}
