//! The webhook fast path (`[webhook]`): Tencent Meeting's events, received, verified,
//! recorded and worked, so that a recording is archived seconds after the platform
//! announces it instead of at the next poll.
//!
//! - [`serve`] answers the subscription's URL (`receive`): the URL check, and events that
//!   are verified (signature, decryption), recorded in SQLite deduplicated by `trace_id`,
//!   and only then acknowledged with a 200, so an acknowledged event survives a crash.
//! - [`EventWorker`] works them (`worker`): a `recording.completed` names its files but not
//!   their recording, so a narrow window around the meeting (`plan`) is listed at the top
//!   priority of the listing budget; the files it finds are queued and the transfer workers
//!   woken. Files not listed yet are looked for again with a backoff, then left to the
//!   polls, which stay the safety net. A `recording.deleted` marks its files deleted in
//!   the cloud.
//!
//! The wire contract (signature, envelope, event JSON) is `wemeet_api::webhook`.

mod plan;
mod receive;
mod worker;

pub use worker::EventWorker;

use crate::config::WebhookConfig;
use crate::state::Db;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wemeet_api::Secret;
use wemeet_api::webhook::EncodingAesKey;

/// Why a request was refused, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No signature headers, or a signature not made with the token: 401.
    Signature,
    /// Not an envelope (`{"data": ...}`), or a URL check that does not open: 400. (A signed
    /// event that does not open or read is acknowledged and kept, not refused.)
    Malformed,
    /// A body over [`MAX_BODY`]: 413.
    TooLarge,
    /// Neither GET nor POST: 405.
    Method,
    /// The event could not be recorded (the database): 503, so the platform retries.
    Unavailable,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::Method => "method",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The largest body accepted: an event is a few kB.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// What the endpoint counted since the process started (Prometheus counters: in memory,
/// since rejected requests are never written anywhere).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// POSTs to the path, whatever became of them.
    pub received: Counter,
    /// Events recorded for the first time.
    pub accepted: Counter,
    /// Deliveries of an event already recorded (same `trace_id`).
    pub duplicates: Counter,
    /// Deliveries of signed events that could not be read: acknowledged, kept raw, and
    /// worked by listing the live window.
    pub unreadable: Counter,
    /// Requests refused, by `Rejection`.
    pub rejected: Family<ReasonLabel, Counter>,
    /// URL checks answered.
    pub url_checks: Counter,
}

impl Counters {
    fn reject(&self, why: Rejection) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: why.as_str().into(),
            })
            .inc();
    }
}

/// What the endpoint needs: the subscription's secrets, where events go, whom to wake.
pub struct Receiver {
    path: String,
    token: Secret,
    key: Option<EncodingAesKey>,
    store: Db,
    counters: Counters,
    arrived: Arc<Notify>,
}

impl Receiver {
    pub fn new(config: &WebhookConfig, store: Db) -> Self {
        Self {
            path: config.path.clone(),
            token: config.token.clone(),
            key: config.encoding_aes_key.clone(),
            store,
            counters: Counters::default(),
            arrived: Arc::default(),
        }
    }

    /// The endpoint's counters, for `/metrics`.
    pub fn counters(&self) -> Counters {
        self.counters.clone()
    }

    /// Notified whenever a new event is recorded: hand it to the `EventWorker`.
    pub fn arrivals(&self) -> Arc<Notify> {
        Arc::clone(&self.arrived)
    }
}

/// Serves the subscription's URL on `listener` until `cancel` (requests in flight finish).
/// Tests bind port 0 and pass the listener in.
pub async fn serve(
    listener: TcpListener,
    receiver: Arc<Receiver>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let path = receiver.path.clone();
    let app = axum::Router::new()
        .route(&path, receive::routes())
        .with_state(receiver);
    axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
}
