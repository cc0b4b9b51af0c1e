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
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
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
        let mut registry = Registry::with_prefix("wemeet");

        self.register_api_calls(&mut registry);

        let files = Family::<StatusLabel, Gauge>::default();
        let report = self.store.status(now).await?;
        for status in FileStatus::ALL {
            let n = report.files.get(&status).copied().unwrap_or(0);
            files
                .get_or_create(&StatusLabel {
                    status: status.as_str().into(),
                })
                .set(n);
        }
        registry.register("files", "Recording files by status", files.clone());

        let bytes = Gauge::<i64>::default();
        bytes.set(report.bytes_archived);
        registry.register("archived_bytes", "Bytes of archived recordings", bytes);

        let in_flight = Gauge::<i64>::default();
        in_flight.set(
            report
                .files
                .get(&FileStatus::Transferring)
                .copied()
                .unwrap_or(0),
        );
        registry.register("transfers_in_flight", "Transfers running now", in_flight);

        let oldest = Gauge::<f64, AtomicU64>::default();
        let issued = self.store.oldest_pending_address().await?;
        oldest.set(issued.map_or(0.0, |t| now.since(t).as_secs_f64()));
        registry.register(
            "oldest_address_age_seconds",
            "Age of the oldest download address still waiting to be used",
            oldest,
        );

        let seconds = |t: Option<UnixMs>| t.map_or(0.0, |t| t.as_millis() as f64 / 1000.0);
        let last_poll = Gauge::<f64, AtomicU64>::default();
        last_poll.set(seconds(facts.last_poll_ok_at));
        registry.register(
            "last_successful_poll_timestamp_seconds",
            "When the live window was last listed completely (UNIX time)",
            last_poll,
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

        self.register_prune(&mut registry, &report, &facts);
        register_retention(&mut registry, &report, self.retention_mode);
        if let Some(counters) = &self.webhook {
            self.register_webhook(&mut registry, counters).await?;
        }

        // The last scrub (`[verify] interval`), if one ran: its findings by verdict.
        if facts.scrub_finished_at.is_some() {
            let found: std::collections::HashMap<String, i64> =
                self.store.scrub_findings().await?.into_iter().collect();
            let findings = Family::<StatusLabel, Gauge>::default();
            for status in crate::verify::Status::ALL {
                let n = found.get(status.as_str()).copied().unwrap_or(0);
                findings
                    .get_or_create(&StatusLabel {
                        status: status.as_str().into(),
                    })
                    .set(n);
            }
            registry.register(
                "scrub_files",
                "Files by verdict of the last periodic scrub",
                findings,
            );
            let at = Gauge::<f64, AtomicU64>::default();
            at.set(seconds(facts.scrub_finished_at));
            registry.register(
                "scrub_last_run_timestamp_seconds",
                "When the last periodic scrub finished (UNIX time)",
                at,
            );
        }

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        Ok(text)
    }

    /// What `prune` did: files the cloud no longer holds, copies refused, the last round.
    fn register_prune(&self, registry: &mut Registry, report: &StatusReport, facts: &DaemonFacts) {
        let deleted = Counter::<u64>::default();
        deleted.inc_by(u64::try_from(report.files_deleted_in_cloud).unwrap_or(0));
        registry.register(
            "cloud_deleted",
            "Archived files deleted from the cloud (confirmed by the API), in all",
            deleted,
        );
        let refused = Counter::<u64>::default();
        refused.inc_by(u64::try_from(facts.prune_refused).unwrap_or(0));
        registry.register(
            "prune_refused",
            "Archived copies found not intact by prune, whose cloud file was kept, in all",
            refused,
        );
        if let Some(at) = facts.prune_finished_at {
            let last = Gauge::<f64, AtomicU64>::default();
            last.set(at.as_millis() as f64 / 1000.0);
            registry.register(
                "prune_last_run_timestamp_seconds",
                "When the service's last prune round finished (UNIX time)",
                last,
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
        registry.register(
            "webhook_events_received",
            "Event POSTs to the webhook, whatever became of them",
            counters.received.clone(),
        );
        registry.register(
            "webhook_events_accepted",
            "Events verified and recorded for the first time",
            counters.accepted.clone(),
        );
        registry.register(
            "webhook_events_duplicate",
            "Deliveries of an event already recorded (same trace_id): nothing done",
            counters.duplicates.clone(),
        );
        registry.register(
            "webhook_events_unreadable",
            "Deliveries of signed events that could not be read: acknowledged, kept raw in the database, and worked by listing the live window",
            counters.unreadable.clone(),
        );
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
        let events = Family::<StatusLabel, Gauge>::default();
        for s in crate::state::EventStatus::ALL {
            let n = status.events.get(&s).copied().unwrap_or(0);
            events
                .get_or_create(&StatusLabel {
                    status: s.as_str().into(),
                })
                .set(n);
        }
        registry.register("webhook_events", "Recorded events by status", events);
        let last = Gauge::<f64, AtomicU64>::default();
        let at = status.last_event.map(|e| e.last_received_at);
        last.set(at.map_or(0.0, |t| t.as_millis() as f64 / 1000.0));
        registry.register(
            "webhook_last_event_timestamp_seconds",
            "When the last event was received (UNIX time)",
            last,
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

/// Serves `/metrics` and `/healthz` on `listen` until `cancel`; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    source: MetricsSource,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Arc::new(source));
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    Ok(addr)
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

/// Legal holds, expired recordings, the audit trail and its last `audit verify`: an alert
/// on `wemeet_audit_verify_passed == 0` says the trail was found altered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: String,
}

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
    let gauge = |value: i64| {
        let g = Gauge::<i64>::default();
        g.set(value);
        g
    };
    let timestamp = |at: UnixMs| {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(at.as_millis() as f64 / 1000.0);
        g
    };
    registry.register(
        "holds_in_force",
        "Legal holds in force",
        gauge(r.holds_in_force),
    );
    registry.register(
        "held_recordings",
        "Recordings under at least one legal hold in force",
        gauge(r.held_recordings),
    );
    registry.register(
        "expired_recordings",
        "Recordings removed from the archive by expire, past retention.keep",
        gauge(r.expired_recordings),
    );
    registry.register(
        "audit_records",
        "Records in the audit trail",
        gauge(r.last_record.as_ref().map_or(0, |l| l.seq)),
    );
    if let Some(last) = &r.last_record {
        registry.register(
            "audit_last_record_timestamp_seconds",
            "When the newest audit record was made (UNIX time)",
            timestamp(last.at_ms),
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
            timestamp(check.at_ms),
        );
    }
}
