//! The download host: whole files and ranges as COS serves them, tokens that expire or are
//! forged, and the faults that break a transfer.

use crate::common::*;
use reqwest::{Client, StatusCode};
use std::time::{Duration, Instant};
use wemeet_sim::SimConfig;

#[tokio::test]
async fn full_download_matches_the_manifest() {
    let sim = start(shared()).await;
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
    let sim = start(shared()).await;
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

#[tokio::test]
async fn expired_or_forged_tokens_get_403_xml() {
    let sim = start(SimConfig {
        stale_addresses_first: 1,
        ..shared()
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
    let sim = start(SimConfig {
        address_ttl: Duration::from_millis(300),
        ..shared()
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
            ..shared()
        },
        SimConfig {
            truncate_first: 1,
            ..shared()
        },
    ] {
        let sim = start(config).await;
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
    let sim = start(SimConfig {
        error_5xx_first: 2,
        ..shared()
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
    let sim = start(SimConfig {
        ignore_range: true,
        ..shared()
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
    let sim = start(SimConfig {
        change_etag_after_first: true,
        ..shared()
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
    let sim = start(SimConfig {
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
