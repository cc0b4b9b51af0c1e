//! The optional Prometheus endpoint (`[metrics] listen`): `/metrics` and `/healthz`.
//!
//! Almost every figure is read from the database at scrape time rather than counted in
//! memory: the database is the truth (files by state, the oldest address, the last poll,
//! the files deleted in the cloud and the copies `prune` refused, by any process),
//! and a scrape every 15 s costs a few indexed queries. Only the API call outcomes are
//! counted in-process, by the budget, since the call log is pruned after a day and a
//! Prometheus counter must never go down; and the webhook's requests, since a refused one
//! is written nowhere.

use crate::client::Budgets;
use crate::state::{DaemonFacts, Db, DbError, FileStatus, StatusReport};
use crate::time::UnixMs;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wemeet_api::Endpoint;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    endpoint: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

/// What the endpoint needs to answer.
#[derive(Clone)]
pub struct MetricsSource {
    pub store: Db,
    pub budgets: Budgets,
    /// `poll.interval`: exported, so that an alert can say "no complete poll for three
    /// intervals" whatever the interval; `/healthz` fails after three.
    pub poll_interval: Duration,
    /// The webhook endpoint's counters, when `[webhook]` is set.
    pub webhook: Option<crate::webhook::Counters>,
    /// Transfers paused by a full disk, counted by the transfer pool.
    pub disk_full_pauses: Counter,
    /// `retention.mode`: the S3 Object Lock mode every object is retained in (`None`: none).
    pub retention_mode: Option<crate::archive::s3::LockMode>,
}

impl MetricsSource {
    /// Renders the Prometheus text exposition format.
    pub async fn render(&self) -> Result<String, DbError> {
        let now = UnixMs::now();
        let facts = self.store.daemon_facts().await?;
        let report = self.store.status(now).await?;
        let mut registry = Registry::with_prefix("wemeet");
        self.register_api_calls(&mut registry);
        register_files(&mut registry, &report);
        self.register_polls(&mut registry, &facts, now).await?;
        self.register_prune(&mut registry, &report, &facts);
        register_retention(&mut registry, &report, self.retention_mode);
        if let Some(counters) = &self.webhook {
            self.register_webhook(&mut registry, counters).await?;
        }
        self.register_scrub(&mut registry, &facts).await?;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        Ok(text)
    }

    /// How the polls and transfers keep up: the oldest address waiting, the last complete
    /// poll and the interval, pauses for a full disk.
    async fn register_polls(
        &self,
        registry: &mut Registry,
        facts: &DaemonFacts,
        now: UnixMs,
    ) -> Result<(), DbError> {
        let oldest = Gauge::<f64, AtomicU64>::default();
        let issued = self.store.oldest_pending_address().await?;
        oldest.set(issued.map_or(0.0, |t| now.since(t).as_secs_f64()));
        registry.register(
            "oldest_address_age_seconds",
            "Age of the oldest download address still waiting to be used",
            oldest,
        );
        registry.register(
            "last_successful_poll_timestamp_seconds",
            "When the live window was last listed completely (UNIX time)",
            timestamp(facts.last_poll_ok_at),
        );
        let interval = Gauge::<f64, AtomicU64>::default();
        interval.set(self.poll_interval.as_secs_f64());
        registry.register(
            "poll_interval_seconds",
            "poll.interval: the time between two listings of the live window",
            interval,
        );
        registry.register(
            "disk_full_pauses",
            "Transfers paused because the archive's file system was full, in all",
            self.disk_full_pauses.clone(),
        );
        Ok(())
    }

    /// The last scrub (`[verify] interval`), if one ran: its findings by verdict.
    async fn register_scrub(
        &self,
        registry: &mut Registry,
        facts: &DaemonFacts,
    ) -> Result<(), DbError> {
        if facts.scrub_finished_at.is_none() {
            return Ok(());
        }
        let found: HashMap<String, i64> = self.store.scrub_findings().await?.into_iter().collect();
        let findings = by_status(
            crate::verify::Status::ALL
                .iter()
                .map(|s| (s.as_str(), found.get(s.as_str()).copied().unwrap_or(0))),
        );
        registry.register(
            "scrub_files",
            "Files by verdict of the last periodic scrub",
            findings,
        );
        registry.register(
            "scrub_last_run_timestamp_seconds",
            "When the last periodic scrub finished (UNIX time)",
            timestamp(facts.scrub_finished_at),
        );
        Ok(())
    }

    /// What `prune` did: files the cloud no longer holds, copies refused, the last round.
    fn register_prune(&self, registry: &mut Registry, report: &StatusReport, facts: &DaemonFacts) {
        registry.register(
            "cloud_deleted",
            "Archived files deleted from the cloud (confirmed by the API), in all",
            counter(report.files_deleted_in_cloud),
        );
        registry.register(
            "prune_refused",
            "Archived copies found not intact by prune, whose cloud file was kept, in all",
            counter(facts.prune_refused),
        );
        if facts.prune_finished_at.is_some() {
            registry.register(
                "prune_last_run_timestamp_seconds",
                "When the service's last prune round finished (UNIX time)",
                timestamp(facts.prune_finished_at),
            );
        }
    }

    /// The calls of each endpoint by outcome, and each budget's use.
    fn register_api_calls(&self, registry: &mut Registry) {
        let calls = Family::<CallLabels, Counter>::default();
        let used = Family::<EndpointLabel, Gauge>::default();
        for endpoint in Endpoint::ALL {
            let budget = self.budgets.of(endpoint);
            for (outcome, n) in budget.outcomes() {
                let labels = CallLabels {
                    endpoint: endpoint.as_str().into(),
                    outcome,
                };
                calls.get_or_create(&labels).inc_by(n);
            }
            used.get_or_create(&EndpointLabel {
                endpoint: endpoint.as_str().into(),
            })
            .set(budget.used() as i64);
        }
        registry.register(
            "api_calls",
            "API calls sent by this process, by endpoint and outcome",
            calls,
        );
        registry.register(
            "api_budget_used",
            "API calls spent in the current 60-second window, by endpoint",
            used,
        );
    }

    /// What the webhook received (in-process counters) and what became of its events (from
    /// the database): by status, the last one, the time from event to archived.
    async fn register_webhook(
        &self,
        registry: &mut Registry,
        counters: &crate::webhook::Counters,
    ) -> Result<(), DbError> {
        let received = [
            (
                "webhook_events_received",
                "Event POSTs to the webhook, whatever became of them",
                &counters.received,
            ),
            (
                "webhook_events_accepted",
                "Events verified and recorded for the first time",
                &counters.accepted,
            ),
            (
                "webhook_events_duplicate",
                "Deliveries of an event already recorded (same trace_id): nothing done",
                &counters.duplicates,
            ),
            (
                "webhook_events_unreadable",
                "Deliveries of signed events that could not be read: acknowledged, kept raw in the database, and worked by listing the live window",
                &counters.unreadable,
            ),
        ];
        for (name, help, counter) in received {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "webhook_rejected",
            "Webhook requests refused, by reason (signature, malformed, too_large, method, unavailable)",
            counters.rejected.clone(),
        );
        registry.register(
            "webhook_url_checks",
            "URL checks (and heartbeats) answered",
            counters.url_checks.clone(),
        );
        let status = self.store.webhook_status().await?;
        let events = by_status(
            (crate::state::EventStatus::ALL.iter())
                .map(|s| (s.as_str(), status.events.get(s).copied().unwrap_or(0))),
        );
        registry.register("webhook_events", "Recorded events by status", events);
        registry.register(
            "webhook_last_event_timestamp_seconds",
            "When the last event was received (UNIX time)",
            timestamp(status.last_event.map(|e| e.last_received_at)),
        );
        registry.register(
            "webhook_event_to_archived_seconds",
            "From a recording.completed event to the archiving of each file it announced",
            LagMetric(self.store.event_to_archived().await?),
        );
        Ok(())
    }

    /// Healthy: the database answers and the live window was listed recently.
    async fn health(&self) -> (StatusCode, String) {
        match self.store.daemon_facts().await.map(|f| f.last_poll_ok_at) {
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}\n")),
            Ok(None) => (StatusCode::OK, "starting: no poll yet\n".into()),
            Ok(Some(t)) => {
                let age = UnixMs::now().since(t);
                if age > self.poll_interval * 3 {
                    let msg = format!("last successful poll {}s ago\n", age.as_secs());
                    (StatusCode::SERVICE_UNAVAILABLE, msg)
                } else {
                    (
                        StatusCode::OK,
                        format!("ok: last poll {}s ago\n", age.as_secs()),
                    )
                }
            }
        }
    }
}

/// A histogram whose counts come from the database at each scrape (`prometheus_client`'s
/// own `Histogram` is observed one value at a time, in memory).
#[derive(Debug)]
struct LagMetric(crate::state::LagHistogram);

impl prometheus_client::encoding::EncodeMetric for LagMetric {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        let h = &self.0;
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            h.sum_seconds,
            h.count,
            &h.buckets,
            None,
        )
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `cancel` (requests in flight
/// finish). A listener that fails is logged: the service goes on without its metrics.
pub async fn serve(listener: TcpListener, source: MetricsSource, cancel: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
    }
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Arc::new(source));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "metrics listener failed");
    }
}

async fn metrics(State(source): State<Arc<MetricsSource>>) -> impl IntoResponse {
    match source.render().await {
        Ok(text) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}\n")).into_response(),
    }
}

async fn healthz(State(source): State<Arc<MetricsSource>>) -> impl IntoResponse {
    source.health().await
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: String,
}

/// Legal holds, expired recordings, the audit trail and its last `audit verify`: an alert
/// on `wemeet_audit_verify_passed == 0` says the trail was found altered.
fn register_retention(
    registry: &mut Registry,
    report: &StatusReport,
    mode: Option<crate::archive::s3::LockMode>,
) {
    let r = &report.retention;
    let modes = Family::<ModeLabel, Gauge>::default();
    let mode = mode.map_or_else(|| "none".to_owned(), |m| m.to_string());
    modes.get_or_create(&ModeLabel { mode }).set(1);
    registry.register(
        "retention_mode",
        "The S3 Object Lock mode every archived object is retained in (retention.mode): 1 for the one configured",
        modes,
    );
    let counts = [
        ("holds_in_force", "Legal holds in force", r.holds_in_force),
        (
            "held_recordings",
            "Recordings under at least one legal hold in force",
            r.held_recordings,
        ),
        (
            "expired_recordings",
            "Recordings removed from the archive by expire, past retention.keep",
            r.expired_recordings,
        ),
        (
            "audit_records",
            "Records in the audit trail",
            r.last_record.as_ref().map_or(0, |l| l.seq),
        ),
    ];
    for (name, help, value) in counts {
        registry.register(name, help, gauge(value));
    }
    if let Some(last) = &r.last_record {
        registry.register(
            "audit_last_record_timestamp_seconds",
            "When the newest audit record was made (UNIX time)",
            timestamp(Some(last.at_ms)),
        );
    }
    if let Some(check) = &r.last_check {
        registry.register(
            "audit_verify_passed",
            "Whether the last `audit verify` found the trail intact (1) or not (0)",
            gauge(i64::from(check.passed)),
        );
        registry.register(
            "audit_verify_timestamp_seconds",
            "When the last `audit verify` ran (UNIX time)",
            timestamp(Some(check.at_ms)),
        );
    }
}

/// Files by status, the bytes archived, the transfers running.
fn register_files(registry: &mut Registry, report: &StatusReport) {
    let of = |status: FileStatus| report.files.get(&status).copied().unwrap_or(0);
    let files = by_status(FileStatus::ALL.iter().map(|&s| (s.as_str(), of(s))));
    registry.register("files", "Recording files by status", files);
    registry.register(
        "archived_bytes",
        "Bytes of archived recordings",
        gauge(report.bytes_archived),
    );
    registry.register(
        "transfers_in_flight",
        "Transfers running now",
        gauge(of(FileStatus::Transferring)),
    );
}

/// A gauge for each `(status, value)`, labelled with the status.
fn by_status<'a>(values: impl Iterator<Item = (&'a str, i64)>) -> Family<StatusLabel, Gauge> {
    let family = Family::<StatusLabel, Gauge>::default();
    for (status, n) in values {
        family
            .get_or_create(&StatusLabel {
                status: status.into(),
            })
            .set(n);
    }
    family
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

/// A count the database keeps, exported as the counter it is (never below 0).
fn counter(value: i64) -> Counter {
    let c = Counter::default();
    c.inc_by(u64::try_from(value).unwrap_or(0));
    c
}

/// A time as UNIX seconds; 0 when it never happened.
fn timestamp(at: Option<UnixMs>) -> Gauge<f64, AtomicU64> {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(at.map_or(0.0, |t| t.as_millis() as f64 / 1000.0));
    g
}
