//! Which fault, if any, a given call suffers.
//!
//! Faults are counted, not random: "the first N GETs of each file" or "the first N
//! listing calls", so a test knows exactly which attempt fails and that a correct client
//! recovers on the next one.

use crate::config::SimConfig;
use std::time::Duration;

/// What goes wrong with a listing call that would otherwise succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingFault {
    /// HTTP 500 with error 41.
    ServerError,
    /// HTTP 200 with a body that is not JSON.
    InvalidJson,
}

/// The fault of the `n`-th (1-based) accepted listing call: the 5xx ones come first, then
/// the invalid-JSON ones, so both knobs can be combined.
pub fn listing_fault(config: &SimConfig, n: u32) -> Option<ListingFault> {
    if n <= config.listing_5xx_first {
        Some(ListingFault::ServerError)
    } else if n - config.listing_5xx_first <= config.listing_invalid_json_first {
        Some(ListingFault::InvalidJson)
    } else {
        None
    }
}

/// Whether the `n`-th (1-based) `/v1/addresses` call that would succeed answers HTTP 500
/// with error 41 instead.
pub fn addresses_server_error(config: &SimConfig, n: u32) -> bool {
    n <= config.addresses_5xx_first
}

/// Whether the `n`-th (1-based) `/v1/addresses` answer for one file gives it an empty
/// `download_address`.
pub fn address_left_empty(config: &SimConfig, n: u32) -> bool {
    n <= config.addresses_empty_first
}

/// Whether the `n`-th (1-based) `DELETE` call that would succeed answers HTTP 500 with
/// error 41 instead (and deletes nothing).
pub fn delete_server_error(config: &SimConfig, n: u32) -> bool {
    n <= config.deletes_5xx_first
}

/// Whether the `n`-th (1-based) successful `DELETE` is answered only after `stall`.
pub fn delete_answer_stalled(config: &SimConfig, n: u32) -> bool {
    config.stall_nth_delete != 0 && n == config.stall_nth_delete
}

/// What happens halfway through a download body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// The stream errors: hyper aborts the connection.
    Reset,
    /// The stream ends short of the declared Content-Length.
    Truncate,
    /// The stream pauses for this long, then goes on.
    Stall(Duration),
}

/// The faults of the `n`-th (1-based) authorised GET of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetFaults {
    /// Answer 503 SlowDown instead of the body.
    pub slow_down: bool,
    /// Each knob counts the same GETs; when several apply, reset wins over truncate,
    /// which wins over stall.
    pub body: Option<BodyFault>,
}

pub fn get_faults(config: &SimConfig, n: u32) -> GetFaults {
    let body = if n <= config.reset_first {
        Some(BodyFault::Reset)
    } else if n <= config.truncate_first {
        Some(BodyFault::Truncate)
    } else if n <= config.stall_first {
        Some(BodyFault::Stall(config.stall))
    } else {
        None
    };
    GetFaults {
        slow_down: n <= config.error_5xx_first,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_faults_follow_each_other() {
        let config = SimConfig {
            listing_5xx_first: 1,
            listing_invalid_json_first: 2,
            ..SimConfig::default()
        };
        let seen: Vec<_> = (1..=4).map(|n| listing_fault(&config, n)).collect();
        assert_eq!(
            seen,
            [
                Some(ListingFault::ServerError),
                Some(ListingFault::InvalidJson),
                Some(ListingFault::InvalidJson),
                None
            ]
        );
    }

    #[test]
    fn address_faults_strike_the_first_n_only() {
        let config = SimConfig {
            addresses_5xx_first: 1,
            addresses_empty_first: 2,
            ..SimConfig::default()
        };
        let errors: Vec<_> = (1..=3)
            .map(|n| addresses_server_error(&config, n))
            .collect();
        let empties: Vec<_> = (1..=3).map(|n| address_left_empty(&config, n)).collect();
        assert_eq!(errors, [true, false, false]);
        assert_eq!(empties, [true, true, false]);
        assert!(!address_left_empty(&SimConfig::default(), 1));
    }

    #[test]
    fn delete_faults_strike_the_first_n_and_the_nth_only() {
        let config = SimConfig {
            deletes_5xx_first: 1,
            stall_nth_delete: 2,
            ..SimConfig::default()
        };
        let errors: Vec<_> = (1..=3).map(|n| delete_server_error(&config, n)).collect();
        let stalls: Vec<_> = (1..=3).map(|n| delete_answer_stalled(&config, n)).collect();
        assert_eq!(errors, [true, false, false]);
        assert_eq!(stalls, [false, true, false]);
        assert!(!delete_answer_stalled(&SimConfig::default(), 1));
    }

    #[test]
    fn get_faults_count_per_attempt() {
        let config = SimConfig {
            reset_first: 1,
            truncate_first: 2,
            error_5xx_first: 1,
            ..SimConfig::default()
        };
        assert_eq!(get_faults(&config, 1).body, Some(BodyFault::Reset));
        assert!(get_faults(&config, 1).slow_down);
        assert_eq!(get_faults(&config, 2).body, Some(BodyFault::Truncate));
        assert_eq!(
            get_faults(&config, 3),
            GetFaults {
                slow_down: false,
                body: None
            }
        );
    }
}
