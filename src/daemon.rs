//! `run`: the long-lived service. Polls the live window, re-checks meetings still being
//! transcoded, backfills older windows in the background, downloads continuously, and tells
//! systemd what it is doing.
//!
//! With `[webhook]`, it also answers Tencent Meeting's events and looks up what they
//! announce at once (`crate::webhook`): the polls are then the safety net.
//!
//! Listing calls share one budget, ranked: webhook events' lookups, live polls, then
//! backfill windows. Calls are paced, so a backfill call never stands between a live poll
//! and the budget for more than one spacing, and the backfill starts only once the first
//! live poll went out. Transfers take their addresses from `/v1/addresses`, a budget of
//! its own: they never delay a poll. With `[prune] enabled`, archived files are deleted
//! from the cloud every `prune.interval` through a third budget, after the first poll and
//! once the transfers are done.

use crate::app::{App, AppError, ListedWindows, Listing};
use crate::budget::Priority;
use crate::census::split_windows;
use crate::config::Config;
use crate::domain::Window;
use crate::metrics::{self, MetricsSource};
use crate::prune::Mode;
use crate::state::{DbError, Fact, FileStatus};
use crate::time::UnixMs;
use crate::webhook::{EventWorker, Receiver};
use sd_notify::NotifyState;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest gap between two watchdog pings when systemd did not say.
const DEFAULT_PING: Duration = Duration::from_secs(10);

/// How often a due prune round looks again whether the transfers are done.
const PRUNE_RECHECK: Duration = Duration::from_secs(5);

/// The service's sockets, bound before it reports ready (so a port taken is an error at
/// start). [`App::run`] binds the configured addresses; tests and `demo` bind port 0
/// themselves and pass the listeners to [`App::run_on`], so that no port is guessed.
#[derive(Debug, Default)]
pub struct Listeners {
    /// `/metrics` and `/healthz`; served whenever given.
    pub metrics: Option<TcpListener>,
    /// The webhook's endpoint; used only with `[webhook]`, which says its path and secrets.
    pub webhook: Option<TcpListener>,
}

impl Listeners {
    /// Binds `metrics.listen` and `webhook.listen` (where set) that this does not hold
    /// yet; an address that cannot be listened on is an error naming its key.
    async fn or_configured(self, config: &Config) -> Result<Self, AppError> {
        let metrics = match (self.metrics, config.metrics.listen) {
            (None, Some(listen)) => {
                let bound = TcpListener::bind(listen).await;
                Some(bound.map_err(|source| AppError::MetricsListen { listen, source })?)
            }
            (given, _) => given,
        };
        let webhook = match (self.webhook, config.webhook.as_ref().map(|w| w.listen)) {
            (None, Some(listen)) => {
                let bound = TcpListener::bind(listen).await;
                Some(bound.map_err(|source| AppError::WebhookListen { listen, source })?)
            }
            (given, _) => given,
        };
        Ok(Self { metrics, webhook })
    }
}

/// The webhook of a service about to start: bound, not serving yet.
struct Webhook {
    listener: TcpListener,
    receiver: Arc<Receiver>,
    worker: EventWorker,
}

impl Webhook {
    /// Serves the endpoint on `tasks` until `cancel`; returns the worker of its events, for
    /// the caller to run.
    fn serve(self, tasks: &TaskTracker, cancel: &CancellationToken) -> EventWorker {
        let (listener, receiver, cancel) = (self.listener, self.receiver, cancel.clone());
        tasks.spawn(async move {
            if let Err(e) = crate::webhook::serve(listener, receiver, cancel).await {
                tracing::error!(error = %e, "webhook listener failed");
            }
        });
        self.worker
    }
}

/// Waits for the first live poll to end; false if the service is stopping first. An error
/// of the watch means the poll loop is gone (a fatal error): nothing to wait for.
async fn first_poll_done(
    mut first_poll: tokio::sync::watch::Receiver<bool>,
    cancel: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = first_poll.wait_for(|&done| done) => true,
        () = cancel.cancelled() => false,
    }
}

/// Tells systemd (when `NOTIFY_SOCKET` is set; a no-op otherwise).
fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

impl App {
    /// Runs until `cancel` fires (SIGTERM), then stops claiming work, lets every transfer
    /// checkpoint, and returns. `since` (UNIX seconds) also backfills from that time.
    /// Listens where `metrics.listen` and `webhook.listen` say.
    pub async fn run(&self, since: Option<i64>, cancel: CancellationToken) -> Result<(), AppError> {
        self.run_on(since, Listeners::default(), cancel).await
    }

    /// [`App::run`] on the `listeners` given; those the config asks for and `listeners`
    /// lacks are bound at the configured addresses. The servers and the transfer pool are
    /// tasks of their own, all joined before this returns.
    pub async fn run_on(
        &self,
        since: Option<i64>,
        listeners: Listeners,
        cancel: CancellationToken,
    ) -> Result<(), AppError> {
        let listeners = listeners.or_configured(&self.config).await?;
        self.resume_interrupted().await?;
        self.api.budgets().records.pace();
        self.api.budgets().deletes.pace();
        let webhook = listeners.webhook.and_then(|l| self.webhook(l));
        let downloader = self.downloader()?;
        let tasks = TaskTracker::new();
        if let Some(listener) = listeners.metrics {
            let source = MetricsSource {
                store: self.store.clone(),
                budgets: self.api.budgets().clone(),
                poll_interval: self.config.poll.interval,
                webhook: webhook.as_ref().map(|w| w.receiver.counters()),
                disk_full_pauses: downloader.disk_full_pauses(),
                retention_mode: self.config.retention.mode,
            };
            tasks.spawn(metrics::serve(listener, source, cancel.clone()));
        }
        // The pool never runs out of work in a daemon: new files keep coming.
        let pool = tasks.spawn(downloader.run(Arc::new(AtomicBool::new(false)), cancel.clone()));
        let events = webhook.map(|w| w.serve(&tasks, &cancel));
        tasks.close();
        notify(&[NotifyState::Ready, NotifyState::Status("started")]);

        let jobs = self.jobs(since, events.as_ref(), &cancel).await;

        notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
        cancel.cancel();
        let pooled = pool
            .await
            .unwrap_or_else(|e| panic!("download pool panicked: {e}"));
        tasks.wait().await;
        jobs?;
        pooled?;
        Ok(())
    }

    /// The service's jobs side by side until `cancel`: live polls, the background backfill
    /// from `since`, the webhook's events, scrubs, prune and expiry rounds, and the reindex
    /// over an archive the database knew nothing of. A fatal error in any of them (bad
    /// credentials) cancels the others and is returned.
    async fn jobs(
        &self,
        since: Option<i64>,
        events: Option<&EventWorker>,
        cancel: &CancellationToken,
    ) -> Result<(), AppError> {
        let stop_on_error = |r: Result<(), AppError>| {
            if r.is_err() {
                cancel.cancel();
            }
            r
        };
        // The first live poll goes before any backfill window: the two start together, and
        // whichever reached the budget first would otherwise win (a paced budget then holds
        // the other back one spacing).
        let (first_poll_done, first_poll) = tokio::sync::watch::channel(false);
        let pruning = first_poll.clone();
        let rebuilding = first_poll.clone();
        // Over an archive the database knew nothing of: once the first live poll queued
        // what the cloud still lists (its copies adopted by the pool), the rest is
        // reindexed from the archive.
        let reindex = async {
            if self.over_existing_archive && self::first_poll_done(rebuilding, cancel).await {
                // Boxed: a reindex's future is large, and only the first start over an
                // existing archive runs it.
                stop_on_error(Box::pin(self.reindex(cancel)).await.map(drop))?;
            }
            Ok::<(), AppError>(())
        };
        let background = async {
            match since {
                Some(since) => {
                    stop_on_error(self.backfill_in_background(since, first_poll, cancel).await)
                }
                None => Ok(()),
            }
        };
        let live = async { stop_on_error(self.poll_loop(first_poll_done, cancel).await) };
        let scrub = async {
            match self.config.verify.interval {
                Some(every) => self.scrub_loop(every, cancel).await,
                None => Ok(()),
            }
        };
        let worked = async {
            match events {
                Some(worker) => stop_on_error(worker.run(cancel).await.map_err(AppError::from)),
                None => Ok(()),
            }
        };
        let prune = async {
            match self.config.prune.enabled {
                true => stop_on_error(self.prune_loop(pruning, cancel).await),
                false => Ok(()),
            }
        };
        let expire = async {
            match self.config.retention.expire {
                // Boxed: the service's future would grow by a whole expiry round.
                true => stop_on_error(Box::pin(self.expire_loop(cancel)).await),
                false => Ok(()),
            }
        };
        let (polled, backfilled, scrubbed, worked, pruned, reindexed, expired) =
            tokio::join!(live, background, scrub, worked, prune, reindex, expire);
        polled?;
        backfilled?;
        worked?;
        pruned?;
        reindexed?;
        expired?;
        scrubbed
    }

    /// With `[retention] expire = true`: removes the recordings past `retention.keep` at
    /// start and every `retention.interval` after (a restart runs a round at once: one
    /// query when nothing is due). A removal that fails is logged and retried next round.
    async fn expire_loop(&self, cancel: &CancellationToken) -> Result<(), AppError> {
        while !cancel.is_cancelled() {
            let report = self.expire(false).await?;
            tracing::info!(
                expired = report.count(crate::app::ExpireOutcome::Expired),
                held = report.count(crate::app::ExpireOutcome::Held),
                failed = report.count(crate::app::ExpireOutcome::Failed),
                "expiry round finished"
            );
            tokio::select! {
                () = tokio::time::sleep(self.config.retention.interval) => {}
                () = cancel.cancelled() => {}
            }
        }
        Ok(())
    }

    /// Deletes archived files from the cloud every `prune.interval` (from the last round,
    /// across restarts), within the deletions' own budget. Live polls and transfers go
    /// first: the first round waits for the first poll, and a due round waits while files
    /// are queued or transferring (at most one interval, so a backfill of weeks cannot
    /// hold it off for ever), then re-reads one file at a time (one core at most). A
    /// refused copy is logged at error level (and counted in the metrics); credentials or
    /// permissions the API refuses stop the service, as they would stop its polls.
    async fn prune_loop(
        &self,
        first_poll: tokio::sync::watch::Receiver<bool>,
        cancel: &CancellationToken,
    ) -> Result<(), AppError> {
        if !first_poll_done(first_poll, cancel).await {
            return Ok(());
        }
        let pruner = self.pruner()?;
        let every = self.config.prune.interval;
        while !cancel.is_cancelled() {
            let last = self.store.daemon_facts().await?.prune_finished_at;
            let due = last.map_or(UnixMs(0), |t| t + every);
            tokio::select! {
                () = tokio::time::sleep(due.since(UnixMs::now())) => {}
                () = cancel.cancelled() => return Ok(()),
            }
            let give_way_until = UnixMs::now() + every;
            while self.store.transfers_pending().await? && UnixMs::now() < give_way_until {
                tokio::select! {
                    () = tokio::time::sleep(PRUNE_RECHECK) => {}
                    () = cancel.cancelled() => return Ok(()),
                }
            }
            let report = pruner.run(Mode::Delete, cancel).await?;
            let s = &report.summary;
            tracing::info!(
                deleted = s.deleted + s.already_deleted,
                refused = s.refused,
                failed = s.failed,
                bytes_freed = s.bytes_freed,
                left = s.left_for_next_run,
                "prune round finished"
            );
            if report.interrupted {
                return Ok(());
            }
            self.store
                .record_fact(Fact::PruneFinished(UnixMs::now()))
                .await?;
        }
        Ok(())
    }

    /// With `[webhook]`: what serves and works its events on `listener`.
    fn webhook(&self, listener: TcpListener) -> Option<Webhook> {
        let config = self.config.webhook.as_ref()?;
        let receiver = Arc::new(Receiver::new(config, self.store.clone()));
        let worker = EventWorker::new(
            self.store.clone(),
            Arc::clone(&self.lister),
            receiver.arrivals(),
            self.config.poll.lookback,
        );
        let addr = listener.local_addr().map_or(config.listen, |a| a);
        tracing::info!(%addr, path = %config.path, "webhook listening");
        Some(Webhook {
            listener,
            receiver,
            worker,
        })
    }

    /// Re-verifies the whole archive every `every` (from the last run, across restarts),
    /// one file at a time: hashing is CPU- and disk-bound, and the transfers keep the rest.
    /// Problems are logged at error level and exported by `/metrics`. A scrub that cannot
    /// run is logged and tried again at the next interval; it never stops the service.
    async fn scrub_loop(
        &self,
        every: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), AppError> {
        loop {
            let last = self.store.daemon_facts().await?.scrub_finished_at;
            let due = last.map_or(UnixMs(0), |t| t + every);
            tokio::select! {
                () = tokio::time::sleep(due.since(UnixMs::now())) => {}
                () = cancel.cancelled() => return Ok(()),
            }
            let options = crate::verify::VerifyOptions {
                jobs: 1,
                ..crate::verify::VerifyOptions::new(self.config.storage.timezone)
            };
            let checked = tokio::select! {
                r = crate::verify::verify_configured(&self.config, &self.store, &options) => r,
                () = cancel.cancelled() => return Ok(()),
            };
            match checked {
                Ok(report) => {
                    for row in report.problems() {
                        tracing::error!(
                            path = %row.path, status = row.status.as_str(), detail = %row.detail.as_deref().unwrap_or("-"),
                            "scrub found a problem"
                        );
                    }
                    tracing::info!(
                        checked = report.summary.checked_files,
                        problems = report.summary.problems,
                        "scrub finished"
                    );
                    let findings: Vec<(&str, u64)> = crate::verify::Status::ALL
                        .iter()
                        .map(|&s| (s.as_str(), report.summary.of(s)))
                        .collect();
                    self.store
                        .record_scrub(UnixMs::now(), Some(&findings))
                        .await?;
                }
                Err(e) => {
                    tracing::error!(error = %crate::errors::chain(&e), "scrub could not run");
                    // The last findings stay; the next try waits a whole interval.
                    self.store.record_scrub(UnixMs::now(), None).await?;
                }
            }
        }
    }

    /// Lists the live window every `poll.interval` until cancelled; pings the watchdog and
    /// publishes a status line meanwhile. `first_done` is set once the first poll ended.
    async fn poll_loop(
        &self,
        first_done: tokio::sync::watch::Sender<bool>,
        cancel: &CancellationToken,
    ) -> Result<(), AppError> {
        let interval = self.config.poll.interval;
        let ping = sd_notify::watchdog_enabled()
            .map(|d| d / 2)
            .unwrap_or(DEFAULT_PING)
            .min(DEFAULT_PING);
        while !cancel.is_cancelled() {
            let next = UnixMs::now() + interval;
            self.store.record_fact(Fact::NextPoll(next)).await?;
            let polled = self.poll_once(cancel).await?;
            if polled.cancelled {
                break;
            }
            first_done.send_replace(true);
            if polled.failed.is_empty() {
                self.store.record_fact(Fact::PollOk(UnixMs::now())).await?;
            }
            crate::audit::write_trail_or_warn(&self.store, self.archive()?.as_ref()).await;
            let status = self.status_line().await?;
            notify(&[NotifyState::Status(&status), NotifyState::Watchdog]);
            // Wait for the next poll, pinging the watchdog from this loop: if it hangs,
            // systemd notices and restarts the service.
            while UnixMs::now() < next && !cancel.is_cancelled() {
                let left = next.since(UnixMs::now());
                tokio::select! {
                    () = tokio::time::sleep(left.min(ping)) => {}
                    () = cancel.cancelled() => {}
                }
                notify(&[NotifyState::Watchdog]);
            }
        }
        Ok(())
    }

    /// One live poll: the window `[now - lookback, now]`, then every meeting older than that
    /// which is still recording or transcoding (by a narrow window around its start). A
    /// window that cannot be listed ends the poll, which is retried at the next interval.
    async fn poll_once(&self, cancel: &CancellationToken) -> Result<ListedWindows, AppError> {
        const LIVE: Listing = Listing {
            priority: Priority::Live,
            listed: "live window listed",
            not_listed: "live poll failed; retrying at the next interval",
            stop_at_failure: true,
        };
        let now = UnixMs::now();
        let since = (now - self.config.poll.lookback).as_secs();
        let live = split_windows(since, now.as_secs());
        let polled = self.list_windows(&live, &LIVE, cancel).all().await?;
        if polled.cancelled || !polled.failed.is_empty() {
            return Ok(polled);
        }
        let pending: Vec<Window> = (self.store.pending_meetings().await?.iter())
            .map(|m| m.media_start_time.as_secs())
            .filter(|&second| second < since)
            .map(|second| Window::new(second, second + 1))
            .collect();
        self.list_windows(&pending, &LIVE, cancel).all().await
    }

    /// Lists `[since, now - lookback]` window by window at backfill priority, skipping
    /// windows that were listed completely after they could still change. Starts once the
    /// first live poll ended (`first_poll`), so that poll never waits behind a window.
    async fn backfill_in_background(
        &self,
        since: i64,
        first_poll: tokio::sync::watch::Receiver<bool>,
        cancel: &CancellationToken,
    ) -> Result<(), AppError> {
        const BACKFILL: Listing = Listing {
            priority: Priority::Backfill,
            listed: "backfill window listed",
            not_listed: "backfill window not listed; it is retried at the next start",
            stop_at_failure: false,
        };
        if !first_poll_done(first_poll, cancel).await {
            return Ok(());
        }
        let lookback = self.config.poll.lookback;
        let until = (UnixMs::now() - lookback).as_secs();
        let windows = split_windows(since, until);
        let total = windows.len() as i64;
        // Listed after end + lookback: every meeting in it had ended and been transcoded.
        let mut unsettled = Vec::new();
        for window in windows {
            let settled_at = UnixMs::end_of_second(window.end) + lookback;
            if !self.store.window_listed_after(window, settled_at).await? {
                unsettled.push(window);
            }
        }
        let mut done = total - unsettled.len() as i64;
        let progress = Fact::BackfillProgress { done, total };
        self.store.record_fact(progress).await?;
        let mut listing = self.list_windows(&unsettled, &BACKFILL, cancel);
        while let Some(listed) = listing.next().await? {
            if listed.is_ok() {
                done += 1;
                let progress = Fact::BackfillProgress { done, total };
                self.store.record_fact(progress).await?;
            }
        }
        if !listing.listed.cancelled {
            tracing::info!(windows = done, "background backfill done");
        }
        Ok(())
    }

    /// One line for `systemctl status`.
    async fn status_line(&self) -> Result<String, DbError> {
        let report = self.store.status(UnixMs::now()).await?;
        let n = |k: FileStatus| report.files.get(&k).copied().unwrap_or(0);
        Ok(format!(
            "{} archived ({} deleted in the cloud), {} queued, {} transferring, {} failed, {} \
             unavailable, {} skipped; API calls in the last minute: {} listing, {} addresses, {} deletes",
            n(FileStatus::Archived),
            report.files_deleted_in_cloud,
            n(FileStatus::Queued),
            n(FileStatus::Transferring),
            n(FileStatus::Failed),
            n(FileStatus::Unavailable),
            n(FileStatus::Skipped),
            report.api_calls_last_60s,
            report.address_calls_last_60s,
            report.delete_calls_last_60s
        ))
    }
}
