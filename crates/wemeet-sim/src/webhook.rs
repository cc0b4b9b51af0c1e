//! The event subscription (事件订阅): a signed, encrypted `recording.completed` POST for
//! every meeting that finishes transcoding while the simulator runs, and a
//! `recording.deleted` for every deletion through the API, as Tencent Meeting sends them
//! (the events themselves are worded in `events`).
//!
//! Not kinder than the platform: an event can be made to come before the listing shows the
//! files ([`SimWebhook::early`]) and to come more than once with the same `trace_id`
//! ([`SimWebhook::repeat`]); a delivery that gets no 2xx is retried a few times, then
//! dropped. Only the signature and the envelope come from `wemeet-api`.

use crate::config::SimWebhook;
use crate::events::{DueEvent, WebhookDelivery};
use crate::state::{Sim, now_ms};
use rand::RngExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wemeet_api::webhook::{self, EncodingAesKey};

/// How often the lifecycle clock is looked at for meetings that became due.
const TICK: Duration = Duration::from_millis(100);
/// Delays between the attempts of one delivery: Tencent documents no retry policy, so a
/// short, finite one (a receiver must not rely on it: polling is the safety net).
const RETRIES: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];
/// How long the simulator waits for an answer (the platform wants one quickly).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// The subscription, ready to sign and seal.
struct Subscriber {
    url: String,
    token: String,
    key: Option<EncodingAesKey>,
    repeat: u32,
    http: reqwest::Client,
}

/// Checks the config (a key that is not 43 base64 characters is refused at start, as the
/// console would) and starts the task that posts events until `cancel`.
pub fn spawn(sim: Arc<Sim>, config: &SimWebhook, cancel: CancellationToken) -> std::io::Result<()> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let key = config
        .aes_key
        .as_deref()
        .map(EncodingAesKey::parse)
        .transpose()
        .map_err(|e| invalid(format!("--webhook-aes-key: {e}")))?;
    let http = reqwest::Client::builder()
        .timeout(ANSWER_TIMEOUT)
        .build()
        .map_err(|e| invalid(format!("cannot build the webhook's HTTP client: {e}")))?;
    let subscriber = Arc::new(Subscriber {
        url: config.url.clone(),
        token: config.token.clone(),
        key,
        repeat: config.repeat,
        http,
    });
    let early = config.early;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = cancel.cancelled() => return,
            }
            for event in sim.due_events(early) {
                let (subscriber, sim, cancel) =
                    (Arc::clone(&subscriber), Arc::clone(&sim), cancel.clone());
                tokio::spawn(async move { subscriber.deliver(&sim, event, &cancel).await });
            }
        }
    });
    Ok(())
}

impl Subscriber {
    /// Posts `event` until it is answered 2xx (or the retries run out), then again
    /// `repeat` times.
    async fn deliver(&self, sim: &Sim, event: DueEvent, cancel: &CancellationToken) {
        for _ in 0..=self.repeat {
            let mut delays = RETRIES.iter();
            loop {
                let sent_at_ms = now_ms();
                let status = self.post_once(&event.json).await;
                sim.world().webhook_deliveries.push(WebhookDelivery {
                    event: event.event.into(),
                    trace_id: event.trace_id.clone(),
                    meeting_record_id: event.meeting_record_id.clone(),
                    record_file_ids: event.record_file_ids.clone(),
                    sent_at_ms,
                    status,
                });
                if status.is_some_and(|s| (200..300).contains(&s)) {
                    break;
                }
                let Some(delay) = delays.next() else {
                    tracing::warn!(url = %self.url, trace_id = %event.trace_id, "webhook event dropped: never answered 2xx");
                    return;
                };
                tokio::select! {
                    () = tokio::time::sleep(*delay) => {}
                    () = cancel.cancelled() => return,
                }
            }
        }
    }

    /// One signed POST, sealed afresh (a new timestamp and nonce, as a redelivery has).
    async fn post_once(&self, json: &[u8]) -> Option<u16> {
        let data = webhook::seal(self.key.as_ref(), json);
        let timestamp = (now_ms() / 1000).to_string();
        let nonce = rand::rng().random_range(1..u32::MAX).to_string();
        let signature = webhook::signature(&self.token, &timestamp, &nonce, &data);
        let body = serde_json::to_vec(&json!({ "data": data })).expect("a JSON value serialises");
        let sent = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("timestamp", timestamp)
            .header("nonce", nonce)
            .header("signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(answer) => Some(answer.status().as_u16()),
            Err(e) => {
                tracing::debug!(url = %self.url, error = %e, "webhook POST got no answer");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;

    fn sim() -> Sim {
        let config = SimConfig {
            meetings: 4,
            pending_fraction: 0.5,
            transcode_delay: Duration::from_secs(10),
            start: Some(1_750_000_000),
            ..SimConfig::default()
        };
        Sim::new(config, "http://127.0.0.1:1".into())
    }

    #[test]
    fn each_meeting_transcoded_while_running_is_announced_once_and_only_those() {
        let sim = sim();
        assert!(
            sim.due_events(Duration::ZERO).is_empty(),
            "history is not announced"
        );
        sim.advance(Duration::from_secs(8));
        assert!(sim.due_events(Duration::ZERO).is_empty());
        assert_eq!(
            sim.due_events(Duration::from_secs(2)).len(),
            2,
            "early by 2 s"
        );
        sim.advance(Duration::from_secs(5));
        assert!(sim.due_events(Duration::ZERO).is_empty(), "announced once");
        let id = sim
            .world()
            .add_meeting("late", &[1000], Duration::from_secs(4));
        sim.advance(Duration::from_secs(4));
        let due = sim.due_events(Duration::ZERO);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].meeting_record_id, id);
    }

    #[test]
    fn the_event_names_the_files_and_a_window_holding_the_recording_but_not_the_recording() {
        let sim = sim();
        let id = sim
            .world()
            .add_meeting("weekly", &[1000, 2000], Duration::from_secs(4));
        sim.advance(Duration::from_secs(4));
        let due = sim.due_events(Duration::ZERO).pop().unwrap();
        let event: serde_json::Value = serde_json::from_slice(&due.json).unwrap();
        assert_eq!(event["event"], "recording.completed");
        assert_eq!(event["trace_id"], due.trace_id.as_str());
        assert!(!String::from_utf8_lossy(&due.json).contains(&id));
        let payload = &event["payload"][0];
        assert_eq!(
            payload["recording_files"].as_array().unwrap().len(),
            4,
            "each of the 2 files listed twice, as documented"
        );
        assert_eq!(payload["meeting_info"]["media_set_type"], "2");
        assert!(payload["meeting_info"]["creator"]["uuid"].is_string());
        let w = sim.world();
        let m = w
            .meetings
            .iter()
            .find(|m| m.meeting_record_id == id)
            .unwrap();
        let info = &payload["meeting_info"];
        let media_start_s = m.media_start_ms / 1000;
        assert!(info["start_time"].as_i64().unwrap() <= media_start_s);
        assert!(info["end_time"].as_i64().unwrap() >= media_start_s);
        assert_eq!(info["meeting_id"], m.meeting_id.as_str());
    }
}
