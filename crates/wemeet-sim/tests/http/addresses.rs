//! `/v1/addresses`: the addresses the listing withholds, its paging, its errors and rate
//! limit apart from the listing, its faults, stale addresses across both endpoints, and the
//! audio tracks and transcripts only it reveals.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;
use wemeet_sim::{ArtifactKind, ManifestEntry, SimConfig, SimHandle};

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

#[tokio::test]
async fn addresses_give_a_working_address_for_a_file_the_listing_does_not() {
    let sim = start(small()).await;
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
    let sim = start(small()).await;
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
    let sim = start(small()).await;
    let id = sim.add_meeting("录制中", &[1000], Duration::from_secs(600));
    let page = addresses_page(&sim, &id, 50, 1).await;
    assert_eq!(paging_of(&page), [0, 0, 1, 0]);
    assert_eq!(page["record_files"], Value::Array(Vec::new()));
    assert_eq!(page["meeting_record_id"], id.as_str());
    sim.shutdown().await;
}

#[tokio::test]
async fn addresses_reject_bad_parameters_unknown_meetings_and_other_operators() {
    let sim = start(small()).await;
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
    let sim = start(small()).await;
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
    let sim = start(small()).await;
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
    let sim = start(SimConfig {
        addresses_5xx_first: 2,
        ..small()
    })
    .await;
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
    let sim = start(SimConfig {
        addresses_empty_first: 1,
        ..small()
    })
    .await;
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
    let sim = start(SimConfig {
        no_address_fraction: 0.5,
        ..shared()
    })
    .await;
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
    let sim = start(SimConfig {
        stale_addresses_first: 1,
        ..shared()
    })
    .await;
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
    let sim = start(SimConfig {
        audio_fraction: 1.0,
        transcript_fraction: 1.0,
        late_transcript_fraction: 1.0,
        transcript_delay: Duration::from_secs(3600),
        ..small()
    })
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
