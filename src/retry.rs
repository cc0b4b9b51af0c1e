//! The program's one retry policy: exponential backoff from 1 s, doubling up to 60 s,
//! with jitter so that several workers never retry in lockstep. API calls and transfers
//! both take their delays from here; webhook events, whose attempts are counted in the
//! database across restarts, take theirs from [`event_retry_delay`].

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// Retries of one API call before its error reaches the caller (6 attempts in all).
const API_RETRIES: usize = 5;

fn policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_factor(2.0)
        .with_max_delay(Duration::from_secs(60))
        .with_jitter()
}

/// The delays between the attempts of one API call.
pub fn delays() -> impl Iterator<Item = Duration> {
    policy().with_max_times(API_RETRIES).build()
}

/// The delays between the attempts at one file, without end: the file's
/// `download.max_attempts` (counted in the database) decides when to stop.
pub fn transfer_delays() -> impl Iterator<Item = Duration> {
    policy().without_max_times().build()
}

/// Attempts at a webhook event whose files the listing does not show as transcoded yet
/// (Tencent: an event can come before every file is ready): 5 s after the first, doubling
/// to at most 10 minutes, about 20 minutes in all. Then the event is left to the polls,
/// whose live window reaches back `poll.lookback`.
const EVENT_FIRST_RETRY: Duration = Duration::from_secs(5);
const EVENT_MAX_RETRY: Duration = Duration::from_secs(600);
const EVENT_ATTEMPTS: i64 = 9;

/// The delay before the next attempt at an event tried `attempts` times, or `None` when it
/// was tried enough.
pub fn event_retry_delay(attempts: i64) -> Option<Duration> {
    if attempts >= EVENT_ATTEMPTS {
        return None;
    }
    let doublings = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    Some((EVENT_FIRST_RETRY * 2u32.pow(doublings)).min(EVENT_MAX_RETRY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_retried_for_about_twenty_minutes_then_left_to_the_polls() {
        let delays: Vec<Duration> = (1..).map_while(event_retry_delay).collect();
        assert_eq!(delays[0], Duration::from_secs(5));
        assert_eq!(delays[1], Duration::from_secs(10));
        assert!(delays.iter().all(|d| *d <= EVENT_MAX_RETRY));
        let total: Duration = delays.iter().sum();
        assert!(
            (Duration::from_secs(20 * 60)..Duration::from_secs(45 * 60)).contains(&total),
            "{total:?}"
        );
    }
}
