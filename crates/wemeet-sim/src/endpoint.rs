//! The signed endpoints of the API: what the gate (`signed`), the counters (`stats`) and
//! the address issuer (`state`) tell apart, each with its own rate limit.

use crate::config::SimConfig;

/// The signed endpoints, each with its own rate limit and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v1/corp/records`.
    Listing,
    /// `GET /v1/addresses`.
    Addresses,
    /// `DELETE /v1/records/{record_file_id}` and `DELETE /v1/records?meeting_record_id=`,
    /// under one limit.
    Delete,
}

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Self::Listing => "listing",
            Self::Addresses => "addresses",
            Self::Delete => "delete",
        }
    }

    /// What the routes serve each endpoint with, and so what its signature covers.
    pub fn method(self) -> &'static str {
        match self {
            Self::Listing | Self::Addresses => "GET",
            Self::Delete => "DELETE",
        }
    }

    pub fn limit_per_minute(self, config: &SimConfig) -> u32 {
        match self {
            Self::Listing => config.rate_limit_per_minute,
            Self::Addresses => config.addresses_rate_limit_per_minute,
            Self::Delete => config.deletes_rate_limit_per_minute,
        }
    }
}
