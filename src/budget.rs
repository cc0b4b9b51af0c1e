//! The API call budget: never more than `limit` calls in any sliding window.
//!
//! Why not `governor`: its `Quota::per_minute(10)` is a GCRA with a burst of 10 that refills
//! continuously, so it admits 19 calls in some 60-second windows; Tencent counts calls per
//! minute and every call, failed ones included, is spent. An exact log of send times is the
//! simplest thing that is provably right, and it is persisted in SQLite so that a restarted
//! process knows what the previous one spent in the last minute and does not burst.

use crate::store::{Store, StoreError};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::Mutex;

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

/// The budget shared by every API caller of the process.
#[derive(Debug)]
pub struct Budget {
    window: Mutex<SlidingWindow>,
    store: Store,
}

impl Budget {
    /// Loads the calls of the last window from the database, so a restart does not burst.
    pub async fn load(store: Store, limit: u32) -> Result<Self, StoreError> {
        let window = WINDOW + SAFETY_MARGIN;
        let now = crate::store::now_ms();
        let mut log = SlidingWindow::new(limit, window);
        for at in store.api_calls_since(now - window.as_millis() as i64).await? {
            log.remember(at);
        }
        store.prune_api_calls(now - 86_400_000).await?;
        Ok(Self {
            window: Mutex::new(log),
            store,
        })
    }

    /// Waits until one more call fits in the window, then spends it (persisted before the
    /// call is sent). Returns the call-log id for [`Budget::record_outcome`].
    pub async fn spend(&self) -> Result<i64, StoreError> {
        loop {
            let mut log = self.window.lock().await;
            let now = crate::store::now_ms();
            match log.try_admit(now) {
                Ok(()) => return self.store.record_api_call(now).await,
                Err(free_at) => {
                    drop(log);
                    let wait = Duration::from_millis((free_at - now).max(1) as u64);
                    tracing::debug!(wait_ms = wait.as_millis() as u64, "API budget spent; waiting");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Stores how a spent call ended (for `status` and the call log).
    pub async fn record_outcome(&self, call_id: i64, outcome: &str) {
        if let Err(e) = self.store.set_call_outcome(call_id, outcome).await {
            tracing::warn!(error = %e, "could not record the outcome of an API call");
        }
    }

    /// Calls spent in the current window.
    pub async fn used(&self) -> usize {
        self.window.lock().await.used(crate::store::now_ms())
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
            let in_window = sent[i..].iter().take_while(|&&t| t < start + 60_000).count();
            assert!(in_window <= limit as usize, "{in_window} calls in the window at {start}");
        }
        // 500 calls at 10 per minute need 49 full windows at least, and no more than
        // 49 windows plus the random gaps of the first burst.
        let span = sent.last().unwrap() - sent.first().unwrap();
        assert!(span >= 49 * 60_000, "span {span}");
        assert!(span < 50 * 60_000 + 30_000, "budget left unused: span {span}");
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
        let (store, _dir) = crate::store::test_support::temp_store().await;
        let budget = Budget::load(store.clone(), 3).await.unwrap();
        for _ in 0..3 {
            budget.spend().await.unwrap();
        }
        drop(budget);
        let restarted = Budget::load(store, 3).await.unwrap();
        assert_eq!(restarted.used().await, 3);
    }
}
