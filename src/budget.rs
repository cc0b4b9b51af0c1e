//! The API call budget: never more than `limit` calls in any sliding window.
//!
//! Why not `governor`: its `Quota::per_minute(10)` is a GCRA with a burst of 10 that refills
//! continuously, so it admits 19 calls in some 60-second windows; Tencent counts calls per
//! minute and every call, failed ones included, is spent. An exact log of send times is the
//! simplest thing that is provably right, and it is persisted in SQLite so that a restarted
//! process knows what the previous one spent in the last minute and does not burst.

use crate::state::{Db, DbError};
use crate::time::UnixMs;
use std::collections::VecDeque;
use std::time::Duration;
use wemeet_api::Endpoint;

/// The server's window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Added to the window on our side: we log a call when we send it, the server when it
/// arrives, and the two clocks and the network delay differ. One second costs ~1.6 % of
/// the throughput and keeps a late-arriving call from landing in the previous minute.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(1);

/// The pure sliding-window log, driven by explicit times so that it can be proven on a
/// fake clock.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: usize,
    window_ms: i64,
    /// Send times (ms) of the calls inside the current window, oldest first.
    calls: VecDeque<i64>,
}

impl SlidingWindow {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1) as usize,
            window_ms: window.as_millis() as i64,
            calls: VecDeque::new(),
        }
    }

    /// Admits a call at `now_ms` and logs it, or says when the oldest call leaves the window.
    pub fn try_admit(&mut self, now_ms: i64) -> Result<(), i64> {
        self.expire(now_ms);
        if self.calls.len() < self.limit {
            self.calls.push_back(now_ms);
            Ok(())
        } else {
            Err(self.calls[0] + self.window_ms)
        }
    }

    /// Logs a call made earlier (loaded from the database at start).
    pub fn remember(&mut self, at_ms: i64) {
        self.calls.push_back(at_ms);
    }

    /// Calls made within the window that ends at `now_ms`.
    pub fn used(&mut self, now_ms: i64) -> usize {
        self.expire(now_ms);
        self.calls.len()
    }

    fn expire(&mut self, now_ms: i64) {
        while self
            .calls
            .front()
            .is_some_and(|&t| t + self.window_ms <= now_ms)
        {
            self.calls.pop_front();
        }
    }
}

/// Why a call is made; also its rank when calls compete for an endpoint's budget.
///
/// On the listing budget a webhook event's lookup comes first (a recording the platform
/// just announced), then the live window (new recordings), then background backfill
/// windows (paced, see [`Budget::pace`]); a one-shot `backfill` command is the foreground
/// job and ranks with live polls. The addresses budget serves only transfers, and the
/// deletions' budget only `prune`: neither can delay a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Download addresses for a transfer about to start (`/v1/addresses`).
    Transfer,
    /// The narrow window around a meeting a webhook event announced.
    Event,
    Live,
    /// The listing of the `backfill` command: nothing else competes with it.
    Foreground,
    /// Older windows listed by the daemon (`run --since`).
    Backfill,
    /// Deleting archived files from the cloud (`prune`, and the service's rounds).
    Prune,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transfer => "transfer",
            Self::Event => "event",
            Self::Live => "live",
            Self::Foreground | Self::Backfill => "backfill",
            Self::Prune => "prune",
        }
    }

    /// 0 is the most urgent. `Transfer` and `Event` never meet: each is the top of its own
    /// endpoint's budget.
    fn rank(self) -> usize {
        match self {
            Self::Transfer | Self::Event => 0,
            Self::Live | Self::Foreground => 1,
            Self::Backfill | Self::Prune => 2,
        }
    }
}

/// How often a waiter blocked by a more urgent one looks again.
const RECHECK: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Inner {
    log: SlidingWindow,
    /// Callers waiting, per priority: a caller goes only when no more urgent one waits.
    waiting: [usize; 3],
    /// When the last call was admitted (see [`Budget::pace`]).
    last_admitted_ms: Option<i64>,
}

/// The budget of one endpoint, shared by every caller of that endpoint in the process.
#[derive(Debug)]
pub struct Budget {
    endpoint: Endpoint,
    inner: std::sync::Mutex<Inner>,
    /// Once [`Budget::pace`] was called, calls are spaced by window / limit.
    spacing_ms: i64,
    paced: std::sync::atomic::AtomicBool,
    /// Wall-clock time at `origin`: times come from the monotonic clock (immune to clock
    /// jumps, and virtual under tokio's paused clock in tests) anchored to the wall clock.
    origin_ms: i64,
    origin: tokio::time::Instant,
    /// `None` only in tests that prove the scheduling on tokio's paused clock.
    store: Option<Db>,
    /// Calls by outcome since the process started (the metrics' counter).
    outcomes: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

/// Takes a caller off the waiting list even if its future is dropped (cancelled).
struct Waiting<'a> {
    budget: &'a Budget,
    priority: Priority,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.budget.lock().waiting[self.priority.rank()] -= 1;
    }
}

impl Budget {
    fn new(endpoint: Endpoint, limit: u32, store: Option<Db>, calls: Vec<i64>) -> Self {
        let window = WINDOW + SAFETY_MARGIN;
        let mut log = SlidingWindow::new(limit, window);
        for at in calls {
            log.remember(at);
        }
        Self {
            endpoint,
            inner: std::sync::Mutex::new(Inner {
                log,
                waiting: [0; 3],
                last_admitted_ms: None,
            }),
            spacing_ms: window.as_millis() as i64 / i64::from(limit.max(1)),
            paced: std::sync::atomic::AtomicBool::new(false),
            origin_ms: UnixMs::now().as_millis(),
            origin: tokio::time::Instant::now(),
            store,
            outcomes: Default::default(),
        }
    }

    /// Loads the calls of `endpoint` in the last window from the database, so a restart
    /// does not burst.
    pub async fn load(store: Db, endpoint: Endpoint, limit: u32) -> Result<Self, DbError> {
        let now = UnixMs::now();
        let calls = store
            .api_calls_since(endpoint, now - (WINDOW + SAFETY_MARGIN))
            .await?;
        store
            .prune_api_calls(now - Duration::from_secs(86_400))
            .await?;
        let calls = calls.into_iter().map(UnixMs::as_millis).collect();
        Ok(Self::new(endpoint, limit, Some(store), calls))
    }

    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The lock is never held across an await nor while panicking code runs.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> i64 {
        self.origin_ms + self.origin.elapsed().as_millis() as i64
    }

    /// From now on, spaces calls evenly: one per window / limit (6.1 s at 10 per minute).
    ///
    /// A one-shot backfill wants its first ten calls at once. A daemon, where live polls and
    /// background windows compete all day, must not: a burst fills the window and the next
    /// caller, however urgent, then waits for it to drain (up to a minute).
    /// Evenly spaced, the budget is still used fully, and an urgent call waits at most one
    /// spacing behind the callers ranked above it.
    pub fn pace(&self) {
        self.paced.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits until one more call fits in the window and no more urgent caller waits, then
    /// spends it (persisted before the call is sent). Returns the call-log id for
    /// [`Budget::record_outcome`].
    pub async fn spend(&self, priority: Priority) -> Result<Option<i64>, DbError> {
        self.lock().waiting[priority.rank()] += 1;
        let _waiting = Waiting {
            budget: self,
            priority,
        };
        let admitted_at = loop {
            let wait_ms = {
                let mut inner = self.lock();
                let now = self.now_ms();
                let paced_until = inner
                    .last_admitted_ms
                    .filter(|_| self.paced.load(std::sync::atomic::Ordering::Relaxed))
                    .map(|t| t + self.spacing_ms);
                if inner.waiting[..priority.rank()].iter().any(|&n| n > 0) {
                    RECHECK.as_millis() as i64
                } else if let Some(t) = paced_until.filter(|&t| t > now) {
                    t - now
                } else {
                    match inner.log.try_admit(now) {
                        Ok(()) => {
                            inner.last_admitted_ms = Some(now);
                            break now;
                        }
                        Err(free_at) => free_at - now,
                    }
                }
            };
            tracing::trace!(wait_ms, ?priority, "waiting for the API budget");
            // Re-check at least every RECHECK: a more urgent caller may have gone meanwhile.
            let wait = Duration::from_millis(wait_ms.clamp(1, RECHECK.as_millis() as i64) as u64);
            tokio::time::sleep(wait).await;
        };
        match &self.store {
            Some(store) => store
                .record_api_call(UnixMs(admitted_at), self.endpoint, priority.as_str())
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    /// Stores how a spent call ended (for `status` and the call log).
    pub async fn record_outcome(&self, call_id: Option<i64>, outcome: &str) {
        *self
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(outcome.to_string())
            .or_default() += 1;
        let (Some(store), Some(id)) = (&self.store, call_id) else {
            return;
        };
        if let Err(e) = store.set_call_outcome(id, outcome).await {
            tracing::warn!(error = %crate::errors::chain(&e), "could not record the outcome of an API call");
        }
    }

    /// Calls sent by this process, by outcome.
    pub fn outcomes(&self) -> Vec<(String, u64)> {
        let map = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Calls spent in the current window.
    pub fn used(&self) -> usize {
        let now = self.now_ms();
        self.lock().log.used(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives the log with a fake clock: callers arrive at random and retry as soon as the
    /// log says. Proves both halves: no window of 60 s ever holds more than `limit`, and the
    /// budget is used fully (no idle gap while calls wait).
    #[test]
    fn never_exceeds_limit_in_any_window_and_uses_it_fully() {
        let limit = 10;
        let mut log = SlidingWindow::new(limit, WINDOW);
        let mut now = 0i64;
        let mut sent = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        while sent.len() < 500 {
            match log.try_admit(now) {
                Ok(()) => {
                    sent.push(now);
                    // the next caller shows up 0..3 s later
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    if seed.is_multiple_of(2) {
                        now += (seed % 3000) as i64;
                    }
                }
                Err(free_at) => {
                    assert!(free_at > now);
                    now = free_at;
                }
            }
        }
        for (i, &start) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|&&t| t < start + 60_000)
                .count();
            assert!(
                in_window <= limit as usize,
                "{in_window} calls in the window at {start}"
            );
        }
        // 500 calls at 10 per minute need 49 full windows at least, and no more than
        // 49 windows plus the random gaps of the first burst.
        let span = sent.last().unwrap() - sent.first().unwrap();
        assert!(span >= 49 * 60_000, "span {span}");
        assert!(
            span < 50 * 60_000 + 30_000,
            "budget left unused: span {span}"
        );
    }

    #[test]
    fn a_burst_is_cut_at_the_limit_and_reopens_after_the_window() {
        let mut log = SlidingWindow::new(10, WINDOW);
        for _ in 0..10 {
            log.try_admit(1_000).unwrap();
        }
        assert_eq!(log.try_admit(1_000), Err(61_000));
        assert_eq!(log.try_admit(60_999), Err(61_000));
        assert!(log.try_admit(61_000).is_ok());
    }

    #[test]
    fn calls_remembered_from_a_previous_process_count() {
        let mut log = SlidingWindow::new(3, WINDOW);
        log.remember(0);
        log.remember(10_000);
        log.try_admit(20_000).unwrap();
        assert_eq!(log.try_admit(30_000), Err(60_000));
    }

    #[tokio::test]
    async fn restart_loads_the_persisted_call_log() {
        let (store, _dir) = crate::state::test_support::temp_store().await;
        let budget = Budget::load(store.clone(), Endpoint::Records, 3)
            .await
            .unwrap();
        for _ in 0..3 {
            budget.spend(Priority::Live).await.unwrap();
        }
        let addresses = Budget::load(store.clone(), Endpoint::Addresses, 5)
            .await
            .unwrap();
        addresses.spend(Priority::Transfer).await.unwrap();
        drop((budget, addresses));
        let restarted = Budget::load(store.clone(), Endpoint::Records, 3)
            .await
            .unwrap();
        assert_eq!(restarted.used(), 3);
        let addresses = Budget::load(store, Endpoint::Addresses, 5).await.unwrap();
        assert_eq!(addresses.used(), 1, "each endpoint counts its own calls");
    }

    /// On tokio's paused clock, paced as in the daemon: a backfill that wants every call it
    /// can get, and a live poll every 30 s. The live poll never waits more than one spacing
    /// (6.1 s), backfill still gets nearly the whole budget, and no window holds more than
    /// 10 calls.
    #[tokio::test(start_paused = true)]
    async fn live_polls_are_not_starved_by_a_backfill_and_the_budget_is_used_fully() {
        use std::sync::Arc;
        let budget = Arc::new(Budget::new(Endpoint::Records, 10, None, Vec::new()));
        budget.pace();
        let start = tokio::time::Instant::now();
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let backfill = {
            let (budget, calls) = (Arc::clone(&budget), Arc::clone(&calls));
            tokio::spawn(async move {
                loop {
                    budget.spend(Priority::Backfill).await.unwrap();
                    calls
                        .lock()
                        .unwrap()
                        .push((start.elapsed(), Priority::Backfill));
                }
            })
        };
        let mut live_waits = Vec::new();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(30)).await;
            let asked = tokio::time::Instant::now();
            budget.spend(Priority::Live).await.unwrap();
            live_waits.push(asked.elapsed());
            calls
                .lock()
                .unwrap()
                .push((start.elapsed(), Priority::Live));
        }
        backfill.abort();
        let calls = calls.lock().unwrap().clone();
        let max_wait = live_waits.iter().max().unwrap();
        assert!(
            *max_wait <= Duration::from_millis(6200),
            "a live poll waited {max_wait:?}"
        );
        let times: Vec<u128> = calls.iter().map(|(t, _)| t.as_millis()).collect();
        for (i, &t) in times.iter().enumerate() {
            let n = times[i..].iter().take_while(|&&u| u < t + 60_000).count();
            assert!(n <= 10, "{n} calls in the 60 s from {t} ms");
        }
        // About 10 minutes at 10 calls per 61 s: about 100 calls in all.
        let total = calls.len();
        assert!((95..=105).contains(&total), "{total} calls in 10 minutes");
    }

    /// The order in which `waiting` (queued 10 ms apart, in this order) get a budget of 1
    /// whose minute a live poll has just filled.
    async fn order_served(waiting: [Priority; 3]) -> Vec<Priority> {
        use std::sync::Arc;
        let budget = Arc::new(Budget::new(Endpoint::Records, 1, None, Vec::new()));
        budget.spend(Priority::Live).await.unwrap(); // the window is now full for 61 s
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for p in waiting {
            let (budget, order) = (Arc::clone(&budget), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                budget.spend(p).await.unwrap();
                order.lock().unwrap().push(p);
            }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        order.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_poll_goes_before_a_waiting_backfill_call() {
        let waiting = [Priority::Backfill, Priority::Backfill, Priority::Live];
        assert_eq!(
            order_served(waiting).await,
            [Priority::Live, Priority::Backfill, Priority::Backfill]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_lookup_goes_before_a_waiting_live_poll_and_backfill() {
        let waiting = [Priority::Backfill, Priority::Live, Priority::Event];
        assert_eq!(
            order_served(waiting).await,
            [Priority::Event, Priority::Live, Priority::Backfill]
        );
    }
}
