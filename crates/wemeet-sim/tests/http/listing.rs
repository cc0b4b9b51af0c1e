//! The signed listing: its pages as the types describe them, authentication, parameters
//! and the rate limit every signed call shares, its faults, meetings arriving while it
//! runs, which files it gives an address; and the admin endpoints.

use crate::common::*;
use reqwest::{Client, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;
use wemeet_api::types::RecordsPage;
use wemeet_sim::{ManifestEntry, SimConfig, SimHandle, SimStats};

#[tokio::test]
async fn signed_listing_returns_meetings_as_the_types_describe() {
    let sim = start(SimConfig {
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
    let sim = start(small()).await;
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
    let sim = start(config).await;
    let q = window_query(10, 1);
    assert_eq!(Call::new(q.clone()).error(&sim).await.1, 190_303);
    let mut with = Call::new(q);
    with.sdk_id = Some("sdk-1".into());
    assert_eq!(with.send(&sim).await.status(), StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_parameters_are_190004() {
    let sim = start(small()).await;
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
    let sim = start(small()).await;
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
async fn listing_faults_hit_the_first_accepted_calls() {
    let q = window_query(10, 1);
    let sim = start(SimConfig {
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
    let sim = start(SimConfig {
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
    let sim = start(shared()).await;
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
    let sim = start(SimConfig {
        meetings: 40,
        ..small()
    })
    .await;
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
