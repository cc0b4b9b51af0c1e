//! The webhook fast path: Tencent Meeting's events, verified, recorded before their 200,
//! deduplicated, worked at the top of the listing budget, and surviving a kill -9.
//!
//! The simulators here are anchored a month before the real clock (`SIM_NOW`) and the
//! daemon's live window reaches back one day: its polls find none of the simulated
//! recordings, so whatever is archived was found through an event.

use crate::common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wemeet_api::Secret;
use wemeet_api::webhook::{self, EncodingAesKey};
use wemeet_archiver::Listeners;
use wemeet_archiver::UnixMs;
use wemeet_archiver::config::WebhookConfig;
use wemeet_archiver::internals::EventStatus;
use wemeet_archiver::internals::{Counters, Receiver};
use wemeet_archiver::{Db, FileStatus};
use wemeet_sim::{ManifestEntry, SimConfig, SimHandle, SimWebhook, WebhookDelivery};

const MIB: u64 = 1024 * 1024;

/// Polls `check` every 100 ms until it holds; panics with `what` after `limit`.
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, limit: Duration, mut check: F) {
    wait_until(limit, Duration::from_millis(100), async || {
        match check().await {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(format!("{what}: not after {limit:?}")),
        }
    })
    .await;
}

/// The service's webhook socket, bound here on port 0, and the simulator's subscription
/// posting to it.
async fn subscription() -> (TcpListener, SimWebhook) {
    let listener = local_listener().await;
    let webhook = sim_webhook(port_of(&listener));
    (listener, webhook)
}

/// A config for `sim` with the tests' webhook on `port`: polls 10 minutes apart over the
/// last day (so only events find the simulated recordings), `extra` appended.
fn daemon_config(
    dir: &std::path::Path,
    sim: &SimHandle,
    port: u16,
    extra: &str,
) -> std::path::PathBuf {
    let config = write_config(
        dir,
        sim,
        &format!("\n[poll]\ninterval = \"10m\"\nlookback = \"1d\"\n{extra}"),
    );
    add_webhook_table(&config, port);
    config
}

/// A service run in-process on [`daemon_config`], in a temporary folder.
struct Service {
    dir: tempfile::TempDir,
    /// Just before it started: the tests' call logs count from here.
    started: UnixMs,
    /// Where its webhook listens.
    port: u16,
    /// Where its `/metrics` is served, if it is.
    metrics: Option<u16>,
    cancel: CancellationToken,
    daemon: tokio::task::JoinHandle<()>,
    store: Db,
}

impl Service {
    /// Starts a service for `sim` with the webhook on `webhook` (and `/metrics` on a port
    /// of its own with `metrics`), and waits for its first live poll (so that what comes
    /// next meets a listing budget in its steady state).
    async fn start(sim: &SimHandle, webhook: TcpListener, metrics: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = port_of(&webhook);
        let metrics_listener = match metrics {
            true => Some(local_listener().await),
            false => None,
        };
        let metrics = metrics_listener.as_ref().map(port_of);
        let extra = metrics.map_or(String::new(), |m| {
            format!("[metrics]\nlisten = \"127.0.0.1:{m}\"")
        });
        let config = daemon_config(dir.path(), sim, port, &extra);
        let started = UnixMs::now();
        let listeners = Listeners {
            metrics: metrics_listener,
            webhook: Some(webhook),
        };
        let (cancel, daemon) = run_in_process(&config, None, listeners).await;
        let store = Db::open(&dir.path().join("state.db")).await.unwrap();
        eventually("the first live poll", Duration::from_secs(30), async || {
            !listing_calls(&store, started, "live").await.is_empty()
        })
        .await;
        Service {
            dir,
            started,
            port,
            metrics,
            cancel,
            daemon,
            store,
        }
    }

    /// Its listing calls for `purpose` since it started.
    async fn calls(&self, purpose: &str) -> Vec<UnixMs> {
        listing_calls(&self.store, self.started, purpose).await
    }

    /// Whether every file of `ids` is archived.
    async fn archived(&self, ids: &[String]) -> bool {
        archived(&self.store, ids).await
    }

    /// POSTs `json` to its webhook as [`post_event`] does.
    async fn post(&self, token: &str, json: &serde_json::Value) -> u16 {
        post_event(self.port, token, json).await
    }

    /// What its `/metrics` answers now.
    async fn scrape(&self) -> String {
        let port = self.metrics.expect("started with metrics");
        let url = format!("http://127.0.0.1:{port}/metrics");
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }

    /// Stops it and waits for it to have stopped.
    async fn stop(self) {
        self.cancel.cancel();
        self.daemon.await.unwrap();
    }
}

fn key() -> EncodingAesKey {
    EncodingAesKey::parse(WEBHOOK_AES_KEY).unwrap()
}

/// POSTs `json` as the platform does: sealed with the tests' key, signed with `token`.
async fn post_event(port: u16, token: &str, json: &serde_json::Value) -> u16 {
    let data = webhook::seal(Some(&key()), json.to_string().as_bytes());
    let (timestamp, nonce) = (UnixMs::now().as_secs().to_string(), "4242".to_string());
    let signature = webhook::signature(token, &timestamp, &nonce, &data);
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/webhook"))
        .header("content-type", "application/json")
        .header("timestamp", timestamp)
        .header("nonce", nonce)
        .header("signature", signature)
        .body(json!({ "data": data }).to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A `recording.completed` for one simulated recording (its meeting's times around its
/// media start), shaped as Tencent's documentation prints it (doc 1095/53230): numbers as
/// strings where the example has them (`"media_set_type":"2"`), a `uuid` in `creator`,
/// every file listed twice.
fn completed_event(trace_id: &str, files: &[&ManifestEntry]) -> serde_json::Value {
    let start_s = files[0].media_start_time / 1000;
    json!({
        "event": "recording.completed",
        "trace_id": trace_id,
        "payload": [{
            "operate_time": (start_s + 3700) * 1000,
            "meeting_info": {
                "meeting_id": format!("meeting-of-{}", files[0].meeting_record_id),
                "meeting_code": files[0].meeting_code,
                "subject": files[0].subject,
                "creator": {"userid": "admin", "uuid": "WMfgHRYj6m36mcDGtK", "user_name": "admin"},
                "meeting_type": 0,
                "start_time": start_s - 30,
                "end_time": start_s + 3600,
                "media_set_type": "2",
            },
            "recording_files": twice(files),
        }],
    })
}

/// A `recording.deleted` as documented (doc 1095/53232): an `operator` with `ms_open_id`,
/// every file listed twice, and `meeting_info` only for a recording that is not an upload.
fn deleted_event(
    trace_id: &str,
    files: &[&ManifestEntry],
    meeting_info: bool,
) -> serde_json::Value {
    let start_s = files[0].media_start_time / 1000;
    let mut payload = json!({
        "operate_time": (start_s + 7200) * 1000,
        "operator": {"userid": "admin", "uuid": "WMfgHRYj6m36mcDGtK", "user_name": "admin",
                     "ms_open_id": "tester_id"},
        "recording_files": twice(files),
    });
    if meeting_info {
        payload["meeting_info"] = json!({
            "meeting_id": format!("meeting-of-{}", files[0].meeting_record_id),
            "meeting_code": files[0].meeting_code,
            "subject": files[0].subject,
            "creator": {"userid": "admin", "uuid": "WMfgHRYj6m36mcDGtK", "user_name": "admin",
                        "ms_open_id": "tester_id"},
            "meeting_type": 0,
            "start_time": start_s - 30,
            "end_time": start_s + 3600,
        });
    }
    json!({"event": "recording.deleted", "trace_id": trace_id, "payload": [payload]})
}

/// Each file's `{"record_file_id": ...}` twice, as the documented examples list them.
fn twice(files: &[&ManifestEntry]) -> Vec<serde_json::Value> {
    files
        .iter()
        .flat_map(|f| {
            let file = json!({"record_file_id": f.record_file_id});
            [file.clone(), file]
        })
        .collect()
}

/// The files of `manifest` grouped by recording, in the manifest's order.
fn recordings(manifest: &[ManifestEntry]) -> Vec<Vec<&ManifestEntry>> {
    let mut out: Vec<Vec<&ManifestEntry>> = Vec::new();
    for e in manifest {
        match out
            .iter_mut()
            .find(|r| r[0].meeting_record_id == e.meeting_record_id)
        {
            Some(r) => r.push(e),
            None => out.push(vec![e]),
        }
    }
    out
}

/// The deliveries the simulator made about `meeting_record_id` that got a 200.
fn delivered(sim: &SimHandle, meeting_record_id: &str) -> Vec<WebhookDelivery> {
    sim.webhook_deliveries()
        .into_iter()
        .filter(|d| d.meeting_record_id == meeting_record_id && d.status == Some(200))
        .collect()
}

async fn archived(store: &Db, ids: &[String]) -> bool {
    let mut all = true;
    for id in ids {
        let row = store.file(&id.into()).await.unwrap();
        all &= row.is_some_and(|f| f.status == FileStatus::Archived);
    }
    all
}

fn files_of(sim: &SimHandle, meeting_record_id: &str) -> Vec<ManifestEntry> {
    sim.manifest()
        .into_iter()
        .filter(|e| e.meeting_record_id == meeting_record_id)
        .collect()
}

/// Listing calls by purpose (`live`, `event`, ...), since `since`.
async fn listing_calls(store: &Db, since: UnixMs, purpose: &str) -> Vec<UnixMs> {
    store
        .api_call_log(since)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.endpoint == "records" && c.purpose.as_deref() == Some(purpose))
        .map(|c| c.at)
        .collect()
}

/// Reads one sample of a Prometheus scrape (0 when absent).
fn sample_or_0(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(body, name, labels).unwrap_or(0.0)
}

/// The cumulative count of a histogram's bucket `le` in a Prometheus scrape.
fn bucket(body: &str, name: &str, le: f64) -> f64 {
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    scrape
        .samples
        .iter()
        .find_map(|s| match &s.value {
            prometheus_parse::Value::Histogram(buckets) if s.metric == name => {
                buckets.iter().find(|b| b.less_than == le).map(|b| b.count)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no bucket {le} of {name} in:\n{body}"))
}

/// The endpoint alone on port 0, over a fresh database: no daemon, no worker.
async fn serve_alone(
    key: Option<EncodingAesKey>,
) -> (
    SocketAddr,
    Db,
    Counters,
    CancellationToken,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Db::open(&dir.path().join("state.db")).await.unwrap();
    let config = WebhookConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        path: "/webhook".into(),
        token: Secret::new(WEBHOOK_TOKEN),
        encoding_aes_key: key,
    };
    let receiver = Arc::new(Receiver::new(&config, store.clone()));
    let counters = receiver.counters();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(wemeet_archiver::internals::serve_webhook(
        listener,
        receiver,
        cancel.clone(),
    ));
    (addr, store, counters, cancel, dir)
}

/// The console's URL check, with and without an EncodingAESKey, repeated as heartbeats:
/// the bare plaintext (no quotes, no newline) within the 3 s the console waits; a check
/// signed with another token gets 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_check_answers_the_bare_plaintext() {
    for aes_key in [Some(key()), None] {
        let (addr, _store, counters, cancel, _dir) = serve_alone(aes_key.clone()).await;
        for heartbeat in 0..3 {
            let plaintext = format!("wemeet check {heartbeat} 你好");
            let check_str = webhook::seal(aes_key.as_ref(), plaintext.as_bytes());
            let signature = webhook::signature(WEBHOOK_TOKEN, "1700000000", "7", &check_str);
            // The first check as a sender that leaves base64's `+`, `/` and `=` unescaped.
            let url = match heartbeat {
                0 => reqwest::Url::parse(&format!("http://{addr}/webhook?check_str={check_str}")),
                _ => reqwest::Url::parse_with_params(
                    &format!("http://{addr}/webhook"),
                    [("check_str", check_str.as_str())],
                ),
            }
            .unwrap();
            let asked = Instant::now();
            let answer = reqwest::Client::new()
                .get(url.clone())
                .header("timestamp", "1700000000")
                .header("nonce", "7")
                .header("signature", &signature)
                .send()
                .await
                .unwrap();
            assert!(asked.elapsed() < Duration::from_secs(3));
            assert_eq!(answer.status(), 200);
            assert_eq!(answer.text().await.unwrap(), plaintext);

            // The same check signed with another token is not Tencent's.
            let forged =
                webhook::signature("Tk25charsSomebodyElse0001", "1700000000", "7", &check_str);
            let refused = reqwest::Client::new()
                .get(url)
                .header("timestamp", "1700000000")
                .header("nonce", "7")
                .header("signature", forged)
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), 401);
        }
        assert_eq!(counters.url_checks.get(), 3);
        cancel.cancel();
    }
}

/// Every kind of refusal, on the endpoint alone: a missing or bad signature 401, a body
/// that is not an envelope 400, one over 1 MiB 413, another method 405; none records
/// anything. Then the same event signed right is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_get_their_status_and_record_nothing() {
    let (addr, store, counters, cancel, _dir) = serve_alone(Some(key())).await;
    let port = addr.port();
    let url = format!("http://{addr}/webhook");
    let event = json!({"event": "recording.completed", "trace_id": "t-refused", "payload": []});
    assert_eq!(
        post_event(port, "Tk25charsSomebodyElse0001", &event).await,
        401
    );
    let http = reqwest::Client::new();
    let unsigned = http
        .post(&url)
        .body(json!({"data": webhook::seal(Some(&key()), b"{}")}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let signed = |body: String, data: &str| {
        let signature = webhook::signature(WEBHOOK_TOKEN, "1", "2", data);
        http.post(&url)
            .header("timestamp", "1")
            .header("nonce", "2")
            .header("signature", signature)
            .body(body)
    };
    let not_json = signed("not json".into(), "").send().await.unwrap();
    assert_eq!(not_json.status(), 400);
    let huge = "A".repeat(MIB as usize + 1);
    let too_large = signed(json!({"data": huge}).to_string(), &huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    let put = http.put(&url).body("{}").send().await.unwrap();
    assert_eq!(put.status(), 405);

    let status = store.webhook_status().await.unwrap();
    assert!(
        status.last_event.is_none() && status.events.is_empty(),
        "{status:#?}"
    );
    let rejected = |reason: &str| {
        counters
            .rejected
            .get_or_create(&wemeet_archiver::internals::ReasonLabel {
                reason: reason.into(),
            })
            .get()
    };
    assert_eq!(rejected("signature"), 2);
    assert_eq!(rejected("malformed"), 1);
    assert_eq!(rejected("too_large"), 1);
    assert_eq!(rejected("method"), 1);
    assert_eq!(counters.accepted.get(), 0);

    assert_eq!(post_event(port, WEBHOOK_TOKEN, &event).await, 200);
    let status = store.webhook_status().await.unwrap();
    assert_eq!(status.last_event.unwrap().trace_id, "t-refused");
    assert_eq!(counters.received.get(), 5);
    assert_eq!(counters.accepted.get(), 1);
    cancel.cancel();
}

/// A signed event is the platform's whatever is inside: one sealed with another key, one
/// without a trace_id, one whose numbers are words, one whose payload is not a list. Each
/// gets its 200 (a 4xx makes the platform retry and may disable the subscription), is
/// kept raw with why it could not be read, and counted; a redelivery is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_event_that_cannot_be_read_is_acknowledged_kept_raw_and_counted() {
    let (addr, store, counters, cancel, _dir) = serve_alone(Some(key())).await;
    let port = addr.port();
    let signed_data = |data: String| {
        let signature = webhook::signature(WEBHOOK_TOKEN, "1", "2", &data);
        reqwest::Client::new()
            .post(format!("http://{addr}/webhook"))
            .header("timestamp", "1")
            .header("nonce", "2")
            .header("signature", signature)
            .body(json!({ "data": data }).to_string())
            .send()
    };
    let other_key = EncodingAesKey::parse(&WEBHOOK_AES_KEY.replace('W', "X")).unwrap();
    let sealed_elsewhere = webhook::seal(Some(&other_key), br#"{"event": "x", "trace_id": "y"}"#);
    let answer = signed_data(sealed_elsewhere.clone()).await.unwrap();
    assert_eq!(answer.status(), 200);
    let no_trace = json!({"event": "recording.completed", "payload": []});
    assert_eq!(post_event(port, WEBHOOK_TOKEN, &no_trace).await, 200);
    let words = json!({"event": "recording.completed", "trace_id": "t-words",
        "payload": [{"operate_time": "yesterday", "recording_files": [{"record_file_id": "f1"}]}]});
    assert_eq!(post_event(port, WEBHOOK_TOKEN, &words).await, 200);
    let not_a_list =
        json!({"event": "recording.completed", "trace_id": "t-shape", "payload": "f1"});
    assert_eq!(post_event(port, WEBHOOK_TOKEN, &not_a_list).await, 200);
    assert_eq!(
        post_event(port, WEBHOOK_TOKEN, &words).await,
        200,
        "delivered again"
    );

    assert_eq!(counters.unreadable.get(), 5);
    assert_eq!(counters.duplicates.get(), 1);
    assert_eq!(counters.accepted.get(), 0);
    let status = store.webhook_status().await.unwrap();
    assert_eq!(status.unreadable, 4, "{status:#?}");
    assert_eq!(
        status.events.get(&EventStatus::Pending),
        Some(&4),
        "{status:#?}"
    );
    let due = store.due_events(UnixMs::now()).await.unwrap();
    assert!(
        due.iter().all(|e| e.unreadable && e.files.is_empty()),
        "{due:#?}"
    );
    let ids: Vec<&str> = due.iter().map(|e| e.trace_id.as_str()).collect();
    assert!(
        ids.contains(&"t-words") && ids.contains(&"t-shape"),
        "{ids:?}"
    );
    // Kept raw: the opened JSON, or the envelope's data when it did not open.
    let bodies: Vec<String> = store
        .unreadable_events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.body)
        .collect();
    assert!(bodies.iter().any(|b| b.contains("yesterday")), "{bodies:?}");
    assert!(bodies.contains(&sealed_elsewhere), "{bodies:?}");
    cancel.cancel();
}

/// In the service: a signed event of a shape nobody expected is acknowledged, and the live
/// window is listed for it at once, so the recording it was about is archived without
/// waiting for the next poll (10 minutes away).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreadable_signed_event_has_the_live_window_listed_at_once() {
    let sim = start_live_sim(transcoded(2, 5).with(|c| c.shared_fraction = 0.0)).await;
    let service = Service::start(&sim, local_listener().await, false).await;
    // Transcoded at once on the simulator's lifecycle clock: its file is listed from now on.
    let meeting = sim.add_meeting("announced oddly", &[MIB], Duration::from_secs(2));
    sim.advance(Duration::from_secs(3));
    let ids: Vec<String> = files_of(&sim, &meeting)
        .into_iter()
        .map(|f| f.record_file_id)
        .collect();
    assert_eq!(ids.len(), 1, "the added recording is transcoded");
    let odd = json!({"event": "recording.completed", "trace_id": "t-odd",
        "payload": {"recording_files": ids}});
    assert_eq!(service.post(WEBHOOK_TOKEN, &odd).await, 200);
    eventually(
        "the recording archived",
        Duration::from_secs(60),
        async || service.archived(&ids).await,
    )
    .await;
    // The start-up poll may have brought the file in before the event was worked: wait for
    // the event itself, whose window is listed whatever the poll found.
    eventually("the event worked", Duration::from_secs(60), async || {
        let status = service.store.webhook_status().await.unwrap();
        status.events.get(&EventStatus::Done) == Some(&1)
    })
    .await;
    assert_eq!(service.calls("live").await.len(), 1, "one poll only");
    assert!(!service.calls("event").await.is_empty());
    let status = service.store.webhook_status().await.unwrap();
    assert_eq!(
        status.events.get(&EventStatus::Done),
        Some(&1),
        "{status:#?}"
    );
    service.stop().await;
}

/// In the service: an event signed with another token (and one not signed at all) for a
/// real recording is refused with 401 and that recording is never looked up, while a
/// genuine event sent after them is worked (events are worked in order, so by then the
/// forged ones would have been).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_event_is_refused_and_its_recording_never_looked_up() {
    let sim = start_sim(transcoded(4, 5).with(|c| c.files_per_meeting = 1..=1)).await;
    let manifest = sim.manifest();
    let (forged, genuine) = (&manifest[0], &manifest[1]);
    let service = Service::start(&sim, local_listener().await, true).await;
    let event = completed_event("forged-1", &[forged]);
    assert_eq!(service.post("Tk25charsSomebodyElse0001", &event).await, 401);
    let unsigned = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/webhook", service.port))
        .body(
            json!({"data": webhook::seal(Some(&key()), event.to_string().as_bytes())}).to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let genuine_event = completed_event("genuine-1", &[genuine]);
    assert_eq!(service.post(WEBHOOK_TOKEN, &genuine_event).await, 200);
    let ids = vec![genuine.record_file_id.clone()];
    eventually(
        "the genuine event's file archived",
        Duration::from_secs(60),
        async || service.archived(&ids).await,
    )
    .await;
    assert!(
        service
            .store
            .file(&forged.record_file_id.as_str().into())
            .await
            .unwrap()
            .is_none()
    );
    let status = service.store.webhook_status().await.unwrap();
    assert_eq!(status.events.values().sum::<i64>(), 1, "{status:#?}");
    assert_eq!(status.last_event.unwrap().trace_id, "genuine-1");
    let body = service.scrape().await;
    let rejected = sample_or_0(
        &body,
        "wemeet_webhook_rejected_total",
        &[("reason", "signature")],
    );
    assert_eq!(rejected, 2.0, "{body}");
    assert_eq!(
        sample_or_0(&body, "wemeet_webhook_events_received_total", &[]),
        3.0,
        "{body}"
    );
    service.stop().await;
}

/// With polls 10 minutes apart, a recording the simulator announces (signed, encrypted)
/// is archived within 10 s of its event, through `/v1/addresses` (sharing is off), and the
/// listing budget is never exceeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recording_announced_by_the_simulators_event_is_archived_within_ten_seconds_of_it() {
    let (socket, subscription) = subscription().await;
    let sim = start_sim(transcoded(2, 5).with(|c| {
        c.shared_fraction = 0.0;
        c.webhook = Some(subscription);
    }))
    .await;
    let service = Service::start(&sim, socket, true).await;

    let meeting = sim.add_meeting("announced", &[3 * MIB, MIB], Duration::from_secs(2));
    eventually(
        "the event's delivery",
        Duration::from_secs(30),
        async || !delivered(&sim, &meeting).is_empty(),
    )
    .await;
    let event_at = delivered(&sim, &meeting)[0].sent_at_ms;
    let ids: Vec<String> = delivered(&sim, &meeting)[0].record_file_ids.clone();
    eventually(
        "the announced files archived",
        Duration::from_secs(60),
        async || service.archived(&ids).await,
    )
    .await;
    for id in &ids {
        let row = service.store.file(&id.into()).await.unwrap().unwrap();
        let lag = row.archived_at.unwrap().as_millis() - event_at;
        assert!(lag <= 10_000, "{id} archived {lag} ms after its event");
    }
    assert_archive_matches(
        &service.dir.path().join("archive"),
        &files_of(&sim, &meeting),
    );
    assert_eq!(service.calls("live").await.len(), 1, "one poll only");
    assert!(!service.calls("event").await.is_empty());

    let body = service.scrape().await;
    assert_eq!(
        sample_or_0(&body, "wemeet_webhook_events_accepted_total", &[]),
        1.0,
        "{body}"
    );
    assert_eq!(
        sample_or_0(&body, "wemeet_webhook_events", &[("status", "done")]),
        1.0,
        "{body}"
    );
    let count = sample_or_0(&body, "wemeet_webhook_event_to_archived_seconds_count", &[]);
    assert_eq!(count, ids.len() as f64, "{body}");
    let within_10s = bucket(&body, "wemeet_webhook_event_to_archived_seconds", 10.0);
    assert_eq!(within_10s, count, "{body}");
    assert!(sample_or_0(&body, "wemeet_webhook_last_event_timestamp_seconds", &[]) > 1.7e9);

    service.stop().await;
    let stats = sim.stats();
    assert_eq!(stats.rate_limited, 0, "{stats:#?}");
    assert!(stats.max_calls_in_60s <= 10, "{stats:#?}");
}

/// Events of two recordings, each delivered twice with the same trace_id (deliveries are
/// at least once): each recording is looked up once and each file downloaded once; the
/// second delivery only counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_event_delivered_twice_is_archived_once() {
    let (socket, subscription) = subscription().await;
    let sim = start_sim(transcoded(1, 5).with(|c| {
        c.webhook = Some(SimWebhook {
            repeat: 1,
            ..subscription
        });
    }))
    .await;
    let service = Service::start(&sim, socket, false).await;
    let meetings = [
        sim.add_meeting("twice a", &[MIB], Duration::from_secs(1)),
        sim.add_meeting("twice b", &[MIB, MIB / 2], Duration::from_secs(1)),
    ];
    for meeting in &meetings {
        eventually("both deliveries", Duration::from_secs(30), async || {
            delivered(&sim, meeting).len() == 2
        })
        .await;
        let deliveries = delivered(&sim, meeting);
        assert_eq!(deliveries[0].trace_id, deliveries[1].trace_id);
        let ids = deliveries[0].record_file_ids.clone();
        eventually("the files archived", Duration::from_secs(60), async || {
            service.archived(&ids).await
        })
        .await;
    }
    let status = service.store.webhook_status().await.unwrap();
    assert_eq!(
        status.events.get(&EventStatus::Done),
        Some(&2),
        "{status:#?}"
    );
    assert_eq!(status.last_event.unwrap().deliveries, 2);
    let lookups = service.calls("event").await;
    assert!(lookups.len() <= 2, "a duplicate was looked up: {lookups:?}");
    let stats = sim.stats();
    for meeting in &meetings {
        for f in files_of(&sim, meeting) {
            assert_eq!(
                stats.bytes_served_by_file.get(&f.record_file_id),
                Some(&f.record_size),
                "{} downloaded more than once",
                f.record_file_id
            );
        }
    }
    service.stop().await;
}

/// The platform may announce a recording before every file is transcoded: an event whose
/// files the listing does not show yet is looked up again (with a backoff) until they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_that_comes_before_its_files_are_listed_is_retried_until_they_are() {
    let (socket, subscription) = subscription().await;
    let sim = start_sim(transcoded(1, 5).with(|c| {
        c.webhook = Some(SimWebhook {
            early: Duration::from_secs(8),
            ..subscription
        });
    }))
    .await;
    let service = Service::start(&sim, socket, false).await;
    let meeting = sim.add_meeting("early", &[MIB], Duration::from_secs(10));
    eventually(
        "the event's delivery",
        Duration::from_secs(30),
        async || !delivered(&sim, &meeting).is_empty(),
    )
    .await;
    let ids = delivered(&sim, &meeting)[0].record_file_ids.clone();
    eventually("the file archived", Duration::from_secs(90), async || {
        service.archived(&ids).await
    })
    .await;
    let lookups = service.calls("event").await;
    assert!(lookups.len() >= 2, "not looked up again: {lookups:?}");
    let status = service.store.webhook_status().await.unwrap();
    assert_eq!(status.last_event.unwrap().status, EventStatus::Done);
    service.stop().await;
}

/// Where the real binary's webhook listens, as the log beside `config` says: the address
/// of its `run`th "webhook listening" line.
async fn logged_webhook_address(config: &std::path::Path, run: usize) -> SocketAddr {
    let log = config.with_file_name("archiver.log");
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let listening: Vec<SocketAddr> = (text.lines())
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|l| l["fields"]["message"] == "webhook listening")
                .filter_map(|l| l["fields"]["addr"].as_str()?.parse().ok())
                .collect();
            match listening.get(run - 1) {
                Some(&addr) => ControlFlow::Break(addr),
                None => ControlFlow::Continue(format!("no webhook listening line {run}:\n{text}")),
            }
        },
    )
    .await
}

/// Forwards each connection `listener` accepts to the address `to` holds at the time: the
/// simulator posts to a URL fixed at its start, the real binary listens on a port the
/// system gave it.
fn forward(listener: TcpListener, to: tokio::sync::watch::Receiver<SocketAddr>) {
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = *to.borrow();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    // A connection cut (the kill) ends the copy: nothing to report.
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

/// The real binary, its listing budget set to 1 call a minute: the first live poll spends
/// it, so the event the simulator delivers next is recorded and acknowledged but cannot
/// be looked up for a minute. A kill -9 then; after the restart the event is worked first
/// (before the restarted live poll) and its file archived. `status` shows the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_accepted_just_before_a_kill_9_is_worked_after_the_restart() {
    let (socket, subscription) = subscription().await;
    let sim = start_sim(transcoded(1, 5).with(|c| c.webhook = Some(subscription))).await;
    let dir = tempfile::tempdir().unwrap();
    // The binary listens where the system puts it (port 0) and logs where; the simulator's
    // posts reach it through this test's socket.
    let config = daemon_config(dir.path(), &sim, 0, "");
    add_api_keys(&config, "requests_per_minute = 1");
    let started = UnixMs::now();
    let mut first = spawn_run(&config);
    let (target, to) = tokio::sync::watch::channel(logged_webhook_address(&config, 1).await);
    forward(socket, to);
    let store = Db::open(&dir.path().join("state.db")).await.unwrap();
    eventually("the first live poll", Duration::from_secs(30), async || {
        !listing_calls(&store, started, "live").await.is_empty()
    })
    .await;
    let meeting = sim.add_meeting("before the kill", &[MIB], Duration::from_secs(1));
    eventually(
        "the event acknowledged",
        Duration::from_secs(30),
        async || !delivered(&sim, &meeting).is_empty(),
    )
    .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let killed = UnixMs::now();

    let trace_id = delivered(&sim, &meeting)[0].trace_id.clone();
    let ids = delivered(&sim, &meeting)[0].record_file_ids.clone();
    let status = store.webhook_status().await.unwrap();
    let last = status.last_event.clone().unwrap();
    assert_eq!(
        (last.trace_id.as_str(), last.status),
        (trace_id.as_str(), EventStatus::Pending)
    );
    assert!(
        listing_calls(&store, started, "event").await.is_empty(),
        "worked before the kill"
    );
    assert!(store.file(&ids[0].as_str().into()).await.unwrap().is_none());

    let mut second = spawn_run(&config);
    target.send_replace(logged_webhook_address(&config, 2).await);
    eventually(
        "the file archived after the restart",
        Duration::from_secs(150),
        async || archived(&store, &ids).await,
    )
    .await;
    let lookups = listing_calls(&store, killed, "event").await;
    let polls = listing_calls(&store, killed, "live").await;
    assert!(!lookups.is_empty());
    assert!(
        polls.iter().all(|p| *p > lookups[0]),
        "the event went after a poll: {polls:?} {lookups:?}"
    );
    let status = store.webhook_status().await.unwrap();
    assert_eq!(status.last_event.unwrap().status, EventStatus::Done);
    assert_archive_matches(&dir.path().join("archive"), &files_of(&sim, &meeting));

    let shown = run_configured(&config, &["status"], &[]).await;
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("webhook: last event recording.completed"),
        "{text}"
    );
    assert!(text.contains(&trace_id), "{text}");
    second.start_kill().unwrap();
    second.wait().await.unwrap();
    let stats = sim.stats();
    assert_eq!(stats.rate_limited, 0, "{stats:#?}");
    let log = std::fs::read_to_string(dir.path().join("archiver.log")).unwrap();
    assert!(log.contains("webhook event recorded"), "{log}");
    assert!(
        !log.contains(WEBHOOK_TOKEN) && !log.contains(WEBHOOK_AES_KEY),
        "a secret in the log"
    );
}

/// A webhook secret of the wrong shape stops `run` at start with exit code 2, naming the
/// key and not printing the value.
#[tokio::test]
async fn a_token_or_key_of_the_wrong_shape_exits_2_naming_it_without_printing_it() {
    let sim = start_sim(SimConfig {
        meetings: 1,
        ..SimConfig::default()
    })
    .await;
    let cases = [
        (
            "Tk25charsWemeetArchiver01",
            "WemeetArchiverWebhookVectorKey0123456789",
            "webhook.encoding_aes_key",
        ),
        ("Tk25charsWemeetArchiver", WEBHOOK_AES_KEY, "webhook.token"),
    ];
    for (token, key, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &sim, "");
        let mut text = std::fs::read_to_string(&config).unwrap();
        // Port 0: were the config accepted, the system would pick a free port.
        text.push_str(&format!(
            "\n[webhook]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\nencoding_aes_key = \"{key}\"\n"
        ));
        std::fs::write(&config, text).unwrap();
        let out = run_configured(&config, &["run"], &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(named), "{named} not named in: {stderr}");
        assert!(
            !stderr.contains(token) && !stderr.contains(key),
            "a secret printed: {stderr}"
        );
        assert!(
            !dir.path().join("state.db").exists(),
            "the database was created"
        );
    }
}

/// Twelve events for recordings days apart arrive at once, with a listing budget of 10
/// calls a minute: each needs a call of its own, so the lookups queue for the budget (and
/// go before the live polls) but never exceed it; every file is archived.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_events_never_exceeds_the_listing_budget() {
    let sim = start_sim(transcoded(40, 200).files(1..=1, 1024, 64 * 1024)).await;
    let manifest = sim.manifest();
    // Recordings more than two hours apart: their windows cannot be merged.
    let mut chosen: Vec<Vec<&ManifestEntry>> = Vec::new();
    let mut by_start = recordings(&manifest);
    by_start.sort_by_key(|r| r[0].media_start_time);
    for r in by_start {
        let far = chosen
            .last()
            .is_none_or(|c| r[0].media_start_time - c[0].media_start_time > 2 * 3_600_000);
        if far && chosen.len() < 12 {
            chosen.push(r);
        }
    }
    assert_eq!(
        chosen.len(),
        12,
        "the dataset has too few distant recordings"
    );
    let service = Service::start(&sim, local_listener().await, false).await;
    for (i, r) in chosen.iter().enumerate() {
        let status = service
            .post(WEBHOOK_TOKEN, &completed_event(&format!("burst-{i}"), r))
            .await;
        assert_eq!(status, 200);
    }
    let ids: Vec<String> = chosen
        .iter()
        .flatten()
        .map(|e| e.record_file_id.clone())
        .collect();
    eventually(
        "every announced file archived",
        Duration::from_secs(180),
        async || service.archived(&ids).await,
    )
    .await;
    let lookups = service.calls("event").await;
    assert!(lookups.len() >= 12, "{lookups:?}");
    let calls: Vec<i64> = service
        .store
        .api_call_log(service.started)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.endpoint == "records")
        .map(|c| c.at.as_millis())
        .collect();
    for (i, &t) in calls.iter().enumerate() {
        let n = calls[i..].iter().take_while(|&&u| u < t + 60_000).count();
        assert!(n <= 10, "{n} listing calls in the 60 s from {t}");
    }
    service.stop().await;
    let stats = sim.stats();
    assert_eq!(stats.rate_limited, 0, "{stats:#?}");
    assert!(stats.max_calls_in_60s <= 10, "{stats:#?}");
}

/// `recording.deleted` events as documented, with `meeting_info` and without it (an
/// uploaded recording's): the cloud's deletion is recorded, the archived copy stays
/// archived and on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recording_deleted_event_is_recorded_and_the_archived_copy_stays() {
    let sim = start_sim(transcoded(3, 5).with(|c| c.files_per_meeting = 1..=1)).await;
    let manifest = sim.manifest();
    let service = Service::start(&sim, local_listener().await, false).await;
    let (with_info, without_info) = (&manifest[0], &manifest[1]);
    let completed = completed_event("completed-1", &[with_info]);
    assert_eq!(service.post(WEBHOOK_TOKEN, &completed).await, 200);
    let completed = completed_event("completed-2", &[without_info]);
    assert_eq!(service.post(WEBHOOK_TOKEN, &completed).await, 200);
    let ids = vec![
        with_info.record_file_id.clone(),
        without_info.record_file_id.clone(),
    ];
    eventually("the files archived", Duration::from_secs(60), async || {
        service.archived(&ids).await
    })
    .await;
    let deleted = deleted_event("deleted-1", &[with_info], true);
    assert_eq!(service.post(WEBHOOK_TOKEN, &deleted).await, 200);
    let deleted = deleted_event("deleted-2", &[without_info], false);
    assert_eq!(service.post(WEBHOOK_TOKEN, &deleted).await, 200);
    eventually(
        "the deletions recorded",
        Duration::from_secs(30),
        async || {
            let mut all = true;
            for id in &ids {
                all &= service
                    .store
                    .file(&id.into())
                    .await
                    .unwrap()
                    .is_some_and(|f| f.deleted_in_cloud_at.is_some());
            }
            all
        },
    )
    .await;
    for id in &ids {
        let row = service.store.file(&id.into()).await.unwrap().unwrap();
        assert_eq!(row.status, FileStatus::Archived);
        assert!(service.dir.path().join("archive").join(&row.path).exists());
    }
    let status = service.store.webhook_status().await.unwrap();
    assert_eq!(status.unreadable, 0, "{status:#?}");
    assert_eq!(
        status.events.get(&EventStatus::Done),
        Some(&4),
        "{status:#?}"
    );
    service.stop().await;
}

/// The benchmark of the fast path (`BENCHMARKS.md`; not part of `cargo test`): seconds
/// from an event to its transfer's first byte and to its file archived, median of 7
/// recordings of 8 MiB (downloads paced to 8 MiB/s, so about 1 s each), polls 10 minutes
/// apart. Each event comes when the listing budget is idle (7 s after the last call): the
/// common case; one arriving within 6.1 s of a listing call waits for the pacing.
/// Run with `cargo test --release --test it webhook::bench -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: run it on purpose"]
#[allow(clippy::print_stderr)] // its figures are its output
async fn bench_seconds_from_event_to_transfer_start_and_to_archived() {
    const ROUNDS: usize = 7;
    let (socket, subscription) = subscription().await;
    let sim = start_sim(transcoded(1, 5).with(|c| {
        c.shared_fraction = 0.0;
        c.bandwidth = Some(8 * MIB);
        c.webhook = Some(subscription);
    }))
    .await;
    let service = Service::start(&sim, socket, false).await;
    let (mut to_start, mut to_archived) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        tokio::time::sleep(Duration::from_secs(7)).await;
        let meeting = sim.add_meeting(
            &format!("bench {round}"),
            &[8 * MIB],
            Duration::from_secs(1),
        );
        eventually(
            "the event's delivery",
            Duration::from_secs(30),
            async || !delivered(&sim, &meeting).is_empty(),
        )
        .await;
        let delivery = delivered(&sim, &meeting).remove(0);
        let id = delivery.record_file_ids[0].clone();
        let first_byte = loop {
            if sim
                .stats()
                .bytes_served_by_file
                .get(&id)
                .is_some_and(|&n| n > 0)
            {
                break UnixMs::now();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let ids = vec![id.clone()];
        eventually("the file archived", Duration::from_secs(60), async || {
            service.archived(&ids).await
        })
        .await;
        let archived_at = service
            .store
            .file(&id.into())
            .await
            .unwrap()
            .unwrap()
            .archived_at
            .unwrap();
        let seconds = |t: UnixMs| (t.as_millis() - delivery.sent_at_ms) as f64 / 1000.0;
        to_start.push(seconds(first_byte));
        to_archived.push(seconds(archived_at));
    }
    service.stop().await;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    eprintln!(
        "webhook fast path, {ROUNDS} recordings of 8 MiB at 8 MiB/s: event -> first byte \
         median {:.2} s (all {to_start:.2?}); event -> archived median {:.2} s (all {to_archived:.2?})",
        median(&mut to_start.clone()),
        median(&mut to_archived.clone()),
    );
}
