//! What the simulator saw, for tests to assert on (`/admin/stats`, `SimHandle::stats`).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimStats {
    /// Every request to `/v1/corp/records`, rejected ones included.
    pub api_calls: u64,
    pub api_errors_by_code: BTreeMap<i64, u64>,
    /// Calls answered with the rate-limit error (190310).
    pub rate_limited: u64,
    /// The most listing calls whose arrivals fell within one 60 s window.
    pub max_calls_in_60s: u64,
    /// Every request to the download host, HEAD and rejected ones included.
    pub download_requests: u64,
    pub download_status_counts: BTreeMap<u16, u64>,
    /// Body bytes handed to the HTTP layer for downloads (a chunk is counted when it is
    /// produced, so a client that hangs up may have received up to one chunk less).
    pub bytes_served: u64,
    pub bytes_served_by_file: BTreeMap<String, u64>,
    /// Download requests refused because their token had expired (forged or missing
    /// tokens are refused too, but only show in `download_status_counts[403]`).
    pub expired_token_rejections: u64,
}

/// The counters plus the arrival log behind the rate limit and `max_calls_in_60s`.
#[derive(Default)]
pub struct StatsRecorder {
    stats: SimStats,
    arrivals: VecDeque<Instant>,
}

impl StatsRecorder {
    pub fn snapshot(&self) -> SimStats {
        self.stats.clone()
    }

    /// Logs a listing call arriving at `now` and returns the number of calls in
    /// `(now - 60 s, now]`, this one included.
    pub fn listing_arrival(&mut self, now: Instant) -> u64 {
        while self
            .arrivals
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
        {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back(now);
        let in_window = self.arrivals.len() as u64;
        self.stats.api_calls += 1;
        self.stats.max_calls_in_60s = self.stats.max_calls_in_60s.max(in_window);
        in_window
    }

    pub fn listing_error(&mut self, code: i64, rate_limited: bool) {
        *self.stats.api_errors_by_code.entry(code).or_default() += 1;
        if rate_limited {
            self.stats.rate_limited += 1;
        }
    }

    pub fn download_request(&mut self) {
        self.stats.download_requests += 1;
    }

    pub fn download_status(&mut self, status: u16) {
        *self.stats.download_status_counts.entry(status).or_default() += 1;
    }

    pub fn expired_token(&mut self) {
        self.stats.expired_token_rejections += 1;
    }

    pub fn bytes_served(&mut self, record_file_id: &str, n: u64) {
        self.stats.bytes_served += n;
        *self
            .stats
            .bytes_served_by_file
            .entry(record_file_id.to_string())
            .or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_sixty_seconds_half_open() {
        let mut r = StatsRecorder::default();
        let t0 = Instant::now();
        assert_eq!(r.listing_arrival(t0), 1);
        assert_eq!(r.listing_arrival(t0 + Duration::from_secs(59)), 2);
        // t0 is exactly 60 s old: out of (t - 60 s, t].
        assert_eq!(r.listing_arrival(t0 + WINDOW), 2);
        assert_eq!(r.snapshot().max_calls_in_60s, 2);
        assert_eq!(r.snapshot().api_calls, 3);
    }
}
