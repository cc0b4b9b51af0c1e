//! The program's one retry policy: exponential backoff from 1 s, doubling up to 60 s,
//! with jitter so that several workers never retry in lockstep. API calls and transfers
//! both take their delays from here.

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
