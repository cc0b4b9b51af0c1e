//! A built-in simulator of the Tencent Meeting API (`GET /v1/corp/records`,
//! `GET /v1/addresses`, and the deletions `DELETE /v1/records/{record_file_id}` and
//! `DELETE /v1/records?meeting_record_id=`) and of the COS host its download addresses
//! point to, served by one HTTP server.
//!
//! It exists so that the archiver can be tested, demonstrated and benchmarked end to end
//! without a Tencent account: it is strict where the real service is strict (signature,
//! timestamp, nonce replay shared by every endpoint, 31-day windows, page sizes, 10 listing
//! calls per minute and separate budgets for `/v1/addresses` and the deletions; a deleted
//! file is gone from the listing, `/v1/addresses` and the download host, and deleting it
//! again is error 4051), reproduces the documented quirks (`current_size`, addresses that
//! expire, XML errors from COS, empty address fields), models what the real listing withholds (only files whose owner shared them and
//! allowed downloads carry a `download_address`; the others are reachable only through
//! `/v1/addresses`, and some through nothing), and can break on purpose in counted,
//! deterministic ways (resets, truncation, 503, stalls, changed content, stale addresses,
//! bad listing replies, 500s and empty addresses from `/v1/addresses`, 500s and late
//! answers from the deletions) so that every
//! recovery path of the client has a test. The archiver's `demo` and `simulate` commands
//! use it (behind its default `simulator` feature); its production paths never do.
//!
//! Its replies are built from its own model with `serde_json`, not from the client's
//! `wemeet_api::types`: it states the wire format on its own, so a client that misreads it
//! fails here as it would against Tencent. It shares only the signature with the client.
//!
//! With a webhook configured ([`SimWebhook`]), it also posts a signed `recording.completed`
//! event to the subscriber whenever one of its meetings finishes transcoding, as the real
//! platform does.
//!
//! Besides the API, the server answers `GET /admin/manifest`, `/admin/stats`,
//! `/admin/tokens` and `/admin/webhook` (JSON, no auth: it is a test tool).
//!
//! # Layers
//!
//! A module imports only from the layers below its own; this root, which routes and
//! starts the server, sits on top of them all.
//!
//! 1. `config` (the knobs), `prng` (deterministic randomness), `token` (download tokens),
//!    `trace` (request ids): no imports from the crate;
//! 2. `endpoint` (the signed endpoints and their limits), `faults` (which call breaks how),
//!    `dataset` (the generated account), `transcript` (what a transcript says);
//! 3. `content` (the bytes of a file), `stats` (the counters), `events` (the webhook's
//!    events, worded as documented);
//! 4. `state` (the world under its one lock, the manifests, the events that are due);
//! 5. `signed` (rate limit, authentication, parameters and errors of the signed calls);
//! 6. the handlers `listing`, `addresses`, `deletes` and `download`; `webhook` (the task
//!    that posts the events); `args` (the `simulate` command line).

#![forbid(unsafe_code)]

mod addresses;
mod args;
mod config;
mod content;
mod dataset;
mod deletes;
mod download;
mod endpoint;
mod events;
mod faults;
mod listing;
mod prng;
mod signed;
mod state;
mod stats;
mod token;
mod trace;
pub mod transcript;
mod webhook;

pub use args::SimulateArgs;
pub use config::{SimConfig, SimCredentials, SimWebhook};
pub use dataset::ArtifactKind;
pub use dataset::hostile_subjects;
pub use events::WebhookDelivery;
pub use state::{ArtifactEntry, ManifestEntry, TranscriptText};
pub use stats::SimStats;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use state::Sim;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long `shutdown` lets in-flight requests (a stalled download, say) finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v1/corp/records", get(listing::list_records))
        .route("/v1/addresses", get(addresses::list_addresses))
        .route("/v1/records", delete(deletes::delete_recording))
        .route("/v1/records/{record_file_id}", delete(deletes::delete_file))
        .route("/cos/{record_file_id}/{name}", get(download::download))
        .route("/admin/manifest", get(admin_manifest))
        .route("/admin/stats", get(admin_stats))
        .route("/admin/tokens", get(admin_tokens))
        .route("/admin/webhook", get(admin_webhook))
        .with_state(sim)
}

async fn admin_manifest(State(sim): State<Arc<Sim>>) -> Response {
    // Hashing may take a while for big files: keep it off the async threads.
    match tokio::task::spawn_blocking(move || sim.manifest()).await {
        Ok(manifest) => axum::Json(manifest).into_response(),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn admin_stats(State(sim): State<Arc<Sim>>) -> axum::Json<SimStats> {
    axum::Json(sim.world().stats.snapshot())
}

async fn admin_tokens(State(sim): State<Arc<Sim>>) -> axum::Json<Vec<String>> {
    axum::Json(sim.world().issued_tokens.clone())
}

async fn admin_webhook(State(sim): State<Arc<Sim>>) -> axum::Json<Vec<WebhookDelivery>> {
    axum::Json(sim.world().webhook_deliveries.clone())
}

/// Binds `listen` (port 0 allowed) and serves the simulator in a background task; with a
/// webhook configured, also posts its events (a key that is not an EncodingAESKey is an
/// `InvalidInput` error).
pub async fn start(config: SimConfig, listen: SocketAddr) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    // A wildcard address is not something a client can connect to: advertise loopback.
    let host = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let base_url = format!("http://{}", SocketAddr::new(host, bound.port()));
    let webhook = config.webhook.clone();
    let sim = Arc::new(Sim::new(config, base_url));
    let cancel = CancellationToken::new();
    if let Some(webhook) = &webhook {
        webhook::spawn(Arc::clone(&sim), webhook, cancel.clone())?;
    }
    let serve = axum::serve(listener, router(Arc::clone(&sim)))
        .with_graceful_shutdown(cancel.clone().cancelled_owned());
    let task = tokio::spawn(async move {
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "simulator server stopped with an error");
        }
    });
    tracing::debug!(base_url = %sim.base_url, "simulator listening");
    Ok(SimHandle {
        sim,
        cancel,
        task: Some(task),
    })
}

/// A running simulator. Dropping it stops the server too (without waiting).
pub struct SimHandle {
    sim: Arc<Sim>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`: both the API base and the download host.
    pub fn base_url(&self) -> String {
        self.sim.base_url.clone()
    }

    pub fn credentials(&self) -> SimCredentials {
        self.sim.config.credentials.clone()
    }

    /// Every file of the meetings transcoded now, with its current SHA-256 and how it can
    /// be reached (`listing_address`, `downloadable`). Hashes are computed on first use
    /// (then cached), so the first call may take a while with big files.
    pub fn manifest(&self) -> Vec<ManifestEntry> {
        self.sim.manifest()
    }

    /// Every audio track and transcript the simulator shows now (late transcripts once
    /// they appeared) for the transcoded meetings' files, with its SHA-256.
    pub fn artifact_manifest(&self) -> Vec<ArtifactEntry> {
        self.sim.artifact_manifest()
    }

    /// The text of every `txt` transcript the simulator shows now, as its download host
    /// serves it: what a search of the archive must find.
    pub fn transcripts(&self) -> Vec<TranscriptText> {
        self.sim.transcripts()
    }

    /// The `record_file_id`s deleted from the cloud so far (by either `DELETE` endpoint),
    /// sorted.
    pub fn deleted(&self) -> Vec<String> {
        self.sim.deleted()
    }

    pub fn stats(&self) -> SimStats {
        self.sim.world().stats.snapshot()
    }

    /// Every POST of the webhook so far, in order (empty without one).
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.sim.world().webhook_deliveries.clone()
    }

    /// Every download token issued so far, for tests that grep logs for leaks.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.sim.world().issued_tokens.clone()
    }

    /// Every sharing password the listing reveals (shared files only), for tests that grep
    /// logs for leaks.
    pub fn passwords(&self) -> Vec<String> {
        self.sim.passwords()
    }

    /// Adds a meeting that starts recording now (media_start_time = now), with one file
    /// per size, and is transcoded `transcode_after` later (state 2 at half of it).
    /// Returns its meeting_record_id.
    pub fn add_meeting(
        &self,
        subject: &str,
        file_sizes: &[u64],
        transcode_after: Duration,
    ) -> String {
        self.sim
            .world()
            .add_meeting(subject, file_sizes, transcode_after)
    }

    /// Moves the lifecycle clock (arrivals, transcoding) forward by `by`, so a test need
    /// not sleep; request timestamps, token expiry and the rate window keep real time.
    pub fn advance(&self, by: Duration) {
        self.sim.advance(by);
    }

    /// Stops accepting connections and waits (a few seconds at most) for open ones.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl SimHandle {
    /// What a person starting the simulator by hand needs: where it listens, the
    /// credentials it accepts, its admin endpoints, and a config pointing at it.
    pub fn describe(&self) -> String {
        let base = self.base_url();
        let c = self.credentials();
        let sdk_line = c
            .sdk_id
            .as_ref()
            .map(|s| format!("sdk_id = \"{s}\"\n"))
            .unwrap_or_default();
        format!(
            "Tencent Meeting simulator listening on {base}\n\
             \n\
             credentials:\n  app_id      {}\n  sdk_id      {}\n  secret_id   {}\n  secret_key  {}\n  operator_id {}\n\
             \n\
             admin: {base}/admin/manifest  {base}/admin/stats  {base}/admin/tokens  {base}/admin/webhook\n\
             \n\
             sample wemeet-archiver.toml:\n\
             \n\
             [api]\n\
             base_url = \"{base}\"\n\
             app_id = \"{}\"\n\
             {sdk_line}\
             secret_id = \"{}\"\n\
             secret_key = \"{}\"\n\
             operator_id = \"{}\"\n\
             \n\
             [storage]\n\
             path = \"recordings\"\n\
             \n\
             [database]\n\
             path = \"state.db\"\n{}",
            c.app_id,
            c.sdk_id.as_deref().unwrap_or("(none)"),
            c.secret_id,
            c.secret_key,
            c.operator_id,
            c.app_id,
            c.secret_id,
            c.secret_key,
            c.operator_id,
            self.describe_webhook(),
        )
    }

    /// The `[webhook]` table matching `--webhook` (the archiver listens where the simulator
    /// posts), or nothing without one.
    fn describe_webhook(&self) -> String {
        let Some(w) = &self.sim.config.webhook else {
            return String::new();
        };
        let url = reqwest::Url::parse(&w.url).ok();
        let listen = url
            .as_ref()
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
            .unwrap_or_else(|| "127.0.0.1:8391".into());
        let path = url.as_ref().map_or("/webhook", |u| u.path());
        let key_line = w
            .aes_key
            .as_ref()
            .map(|k| format!("encoding_aes_key = \"{k}\"\n"))
            .unwrap_or_default();
        format!(
            "\n# recording.completed events are posted to {}\n\
             [webhook]\nlisten = \"{listen}\"\npath = \"{path}\"\ntoken = \"{}\"\n{key_line}",
            w.url, w.token
        )
    }
}
