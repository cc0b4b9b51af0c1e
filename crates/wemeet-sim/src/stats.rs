//! What the simulator saw, for tests to assert on (`/admin/stats`, `SimHandle::stats`).

use crate::endpoint::Endpoint;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// The error code of the per-minute limit, counted apart in `rate_limited`.
pub const RATE_LIMITED: i64 = 190_310;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimStats {
    /// Every request to `/v1/corp/records`, rejected ones included.
    pub api_calls: u64,
    pub api_errors_by_code: BTreeMap<i64, u64>,
    /// Listing calls answered with the rate-limit error (190310).
    pub rate_limited: u64,
    /// The most listing calls whose arrivals fell within one 60 s window.
    pub max_calls_in_60s: u64,
    /// Every request to `/v1/addresses`, rejected ones included.
    pub address_calls: u64,
    pub address_errors_by_code: BTreeMap<i64, u64>,
    /// `/v1/addresses` calls answered with the rate-limit error (190310).
    pub address_rate_limited: u64,
    /// The most `/v1/addresses` calls whose arrivals fell within one 60 s window.
    pub address_max_calls_in_60s: u64,
    /// Every request to the two `DELETE` endpoints, rejected ones included.
    pub delete_calls: u64,
    pub delete_errors_by_code: BTreeMap<i64, u64>,
    /// `DELETE` calls answered with the rate-limit error (190310).
    pub delete_rate_limited: u64,
    /// The most `DELETE` calls whose arrivals fell within one 60 s window.
    pub delete_max_calls_in_60s: u64,
    /// Files deleted (a repeated deletion, answered 4051, is not counted again).
    pub files_deleted: u64,
    /// Download addresses handed out in listings.
    pub addresses_issued_by_listing: u64,
    /// Download addresses handed out by `/v1/addresses` (empty ones not counted).
    pub addresses_issued_by_addresses: u64,
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

/// The arrivals of one endpoint's last 60 s: what its rate limit judges.
#[derive(Default)]
struct RateWindow(VecDeque<Instant>);

impl RateWindow {
    /// Logs an arrival at `now` and returns the number in `(now - 60 s, now]`, this one
    /// included.
    fn arrive(&mut self, now: Instant) -> u64 {
        while self
            .0
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
        {
            self.0.pop_front();
        }
        self.0.push_back(now);
        self.0.len() as u64
    }
}

/// The counters plus the arrival logs behind the rate limits and the `max_*_in_60s`.
#[derive(Default)]
pub struct StatsRecorder {
    stats: SimStats,
    listing_window: RateWindow,
    address_window: RateWindow,
    delete_window: RateWindow,
}

/// One endpoint's share of the counters.
struct EndpointCounters<'a> {
    window: &'a mut RateWindow,
    calls: &'a mut u64,
    max_in_60s: &'a mut u64,
    errors_by_code: &'a mut BTreeMap<i64, u64>,
    rate_limited: &'a mut u64,
}

impl StatsRecorder {
    pub fn snapshot(&self) -> SimStats {
        self.stats.clone()
    }

    fn counters(&mut self, endpoint: Endpoint) -> EndpointCounters<'_> {
        let s = &mut self.stats;
        match endpoint {
            Endpoint::Listing => EndpointCounters {
                window: &mut self.listing_window,
                calls: &mut s.api_calls,
                max_in_60s: &mut s.max_calls_in_60s,
                errors_by_code: &mut s.api_errors_by_code,
                rate_limited: &mut s.rate_limited,
            },
            Endpoint::Addresses => EndpointCounters {
                window: &mut self.address_window,
                calls: &mut s.address_calls,
                max_in_60s: &mut s.address_max_calls_in_60s,
                errors_by_code: &mut s.address_errors_by_code,
                rate_limited: &mut s.address_rate_limited,
            },
            Endpoint::Delete => EndpointCounters {
                window: &mut self.delete_window,
                calls: &mut s.delete_calls,
                max_in_60s: &mut s.delete_max_calls_in_60s,
                errors_by_code: &mut s.delete_errors_by_code,
                rate_limited: &mut s.delete_rate_limited,
            },
        }
    }

    /// Logs a call to `endpoint` arriving at `now` and returns the number of calls to it
    /// in `(now - 60 s, now]`, this one included.
    pub fn arrival(&mut self, endpoint: Endpoint, now: Instant) -> u64 {
        let c = self.counters(endpoint);
        let in_window = c.window.arrive(now);
        *c.calls += 1;
        *c.max_in_60s = (*c.max_in_60s).max(in_window);
        in_window
    }

    pub fn api_error(&mut self, endpoint: Endpoint, code: i64) {
        let c = self.counters(endpoint);
        *c.errors_by_code.entry(code).or_default() += 1;
        if code == RATE_LIMITED {
            *c.rate_limited += 1;
        }
    }

    /// Only the listing and `/v1/addresses` issue addresses.
    pub fn address_issued(&mut self, by: Endpoint) {
        match by {
            Endpoint::Listing => self.stats.addresses_issued_by_listing += 1,
            Endpoint::Addresses => self.stats.addresses_issued_by_addresses += 1,
            Endpoint::Delete => {}
        }
    }

    pub fn files_deleted(&mut self, n: u64) {
        self.stats.files_deleted += n;
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
        assert_eq!(r.arrival(Endpoint::Listing, t0), 1);
        assert_eq!(
            r.arrival(Endpoint::Listing, t0 + Duration::from_secs(59)),
            2
        );
        // t0 is exactly 60 s old: out of (t - 60 s, t].
        assert_eq!(r.arrival(Endpoint::Listing, t0 + WINDOW), 2);
        assert_eq!(r.snapshot().max_calls_in_60s, 2);
        assert_eq!(r.snapshot().api_calls, 3);
    }

    #[test]
    fn each_endpoint_has_its_own_window_and_counters() {
        let mut r = StatsRecorder::default();
        let t0 = Instant::now();
        r.arrival(Endpoint::Listing, t0);
        r.arrival(Endpoint::Listing, t0);
        assert_eq!(r.arrival(Endpoint::Addresses, t0), 1);
        r.api_error(Endpoint::Addresses, RATE_LIMITED);
        let s = r.snapshot();
        assert_eq!((s.api_calls, s.max_calls_in_60s, s.rate_limited), (2, 2, 0));
        assert_eq!((s.address_calls, s.address_max_calls_in_60s), (1, 1));
        assert_eq!(s.address_rate_limited, 1);
        assert!(s.api_errors_by_code.is_empty());
        assert_eq!(s.address_errors_by_code.get(&RATE_LIMITED), Some(&1));
    }
}
