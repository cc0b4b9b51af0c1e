//! The API's error replies, classified into what a client should do about them.

use crate::Endpoint;
use std::time::Duration;

/// What the caller should do about an [`ApiError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A passing fault: sign afresh and try again after a backoff.
    Retry,
    /// This request cannot succeed as sent (bad parameters, no such meeting): give up on
    /// it, loudly.
    GiveUp,
    /// No request can succeed until someone fixes the credentials or the permissions.
    Fatal,
}

/// An error reply of the API (or a reply that is not what the endpoint returns). Every
/// variant carries the reply's `X-TC-Trace`, which Tencent support asks for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error(
        "rate limited by the API (code {code}, trace {trace}); back off until the window frees"
    )]
    RateLimited { code: i64, trace: String },
    #[error("API server error (HTTP {status}, code {code}: {message}, trace {trace})")]
    Server {
        status: u16,
        code: i64,
        message: String,
        trace: String,
    },
    #[error(
        "the API rejected the request's timestamp as more than 5 minutes off (trace {trace}); \
         check this host's clock (NTP)"
    )]
    ClockSkew { trace: String },
    #[error("the API saw a replayed nonce (trace {trace}); sign again with a fresh one")]
    Replay { trace: String },
    #[error("malformed API reply (HTTP {status}, trace {trace}): {detail}")]
    Malformed {
        status: u16,
        trace: String,
        detail: String,
    },
    #[error(
        "the API rejected the credentials (code {code}: {message}, trace {trace}): the AppId, \
         SecretId or SecretKey is wrong, or an SdkId was sent that Tencent never assigned"
    )]
    Credentials {
        code: i64,
        message: String,
        trace: String,
    },
    #[error(
        "the operator has no permission to {} (code 500014, trace {trace}); it needs the \
         recording management (录制管理) view and edit permission in the Tencent Meeting admin \
         console",
        permission_for(*endpoint)
    )]
    Permission { endpoint: Endpoint, trace: String },
    #[error("the API rejected the request (HTTP {status}, code {code}: {message}, trace {trace})")]
    Rejected {
        status: u16,
        code: i64,
        message: String,
        trace: String,
    },
}

/// Error codes of the documentation this crate gives a meaning to.
pub mod code {
    /// Network timeout on the server side (HTTP 500): retry.
    pub const TIMEOUT: i64 = 41;
    /// Invalid parameters.
    pub const INVALID_PARAMETERS: i64 = 190_004;
    /// The account has no permission (录制管理 view/edit missing).
    pub const NO_PERMISSION: i64 = 500_014;
    /// `X-TC-Timestamp` more than 5 minutes off the server's clock.
    pub const CLOCK_SKEW: i64 = 190_300;
    /// A `(timestamp, nonce)` pair seen within 5 minutes.
    pub const REPLAY: i64 = 190_301;
    /// Wrong AppId / X-TC-Key, or an SdkId that was never assigned.
    pub const WRONG_APP: i64 = 190_303;
    /// The signature check failed.
    pub const BAD_SIGNATURE: i64 = 200_003;
    /// Too frequent; per-minute limit; per-day limit; account-level per-minute limit.
    pub const RATE_LIMITS: [i64; 4] = [9061, 190_310, 190_311, 190_313];
    /// The recording was already deleted (a delete that already happened).
    pub const ALREADY_DELETED: i64 = 4051;
    /// No such meeting.
    pub const MEETING_NOT_FOUND: i64 = 7001;
    /// No such file.
    pub const FILE_NOT_FOUND: i64 = 7003;
}

impl ApiError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::RateLimited { .. }
            | Self::Server { .. }
            | Self::ClockSkew { .. }
            | Self::Replay { .. }
            | Self::Malformed { .. } => ErrorClass::Retry,
            Self::Credentials { .. } | Self::Permission { .. } => ErrorClass::Fatal,
            Self::Rejected { .. } => ErrorClass::GiveUp,
        }
    }

    /// The least time to wait before retrying, beyond the usual backoff.
    pub fn min_delay(&self) -> Duration {
        match self {
            // A client pacing itself should never see this; let the server's window drain.
            Self::RateLimited { .. } => Duration::from_secs(30),
            _ => Duration::ZERO,
        }
    }

    /// Error 4051: the file or recording a deletion named was deleted already (by an
    /// earlier call whose answer was lost, or by someone else). For the caller, the
    /// deletion is done.
    pub fn is_already_deleted(&self) -> bool {
        matches!(self, Self::Rejected { code, .. } if *code == code::ALREADY_DELETED)
    }

    /// The reply's trace id.
    pub fn trace(&self) -> &str {
        match self {
            Self::RateLimited { trace, .. }
            | Self::Server { trace, .. }
            | Self::ClockSkew { trace }
            | Self::Replay { trace }
            | Self::Malformed { trace, .. }
            | Self::Credentials { trace, .. }
            | Self::Permission { trace, .. }
            | Self::Rejected { trace, .. } => trace,
        }
    }

    /// The error code, for a label: `rate_limited:190310`, `malformed`, ...
    pub fn label(&self) -> String {
        match self {
            Self::RateLimited { code, .. } => format!("rate_limited:{code}"),
            Self::Server { code, .. } => format!("server_error:{code}"),
            Self::ClockSkew { .. } => "clock_skew".into(),
            Self::Replay { .. } => "replay".into(),
            Self::Malformed { .. } => "malformed".into(),
            Self::Credentials { code, .. } => format!("credentials:{code}"),
            Self::Permission { .. } => "permission".into(),
            Self::Rejected { code, .. } => format!("rejected:{code}"),
        }
    }

    /// Builds the error for a non-success reply of `endpoint` from its HTTP status and
    /// `error_info`. The HTTP status and code of the per-minute limit are not documented:
    /// any of the rate codes, and HTTP 429, mean "rate limited". HTTP 403 is "no
    /// permission", whatever its code (documented for the deletions).
    pub fn from_reply(
        endpoint: Endpoint,
        status: u16,
        code: Option<i64>,
        message: String,
        trace: String,
    ) -> Self {
        match code {
            Some(c) if code::RATE_LIMITS.contains(&c) => Self::RateLimited { code: c, trace },
            None if status == 429 => Self::RateLimited { code: 0, trace },
            Some(code::CLOCK_SKEW) => Self::ClockSkew { trace },
            Some(code::REPLAY) => Self::Replay { trace },
            Some(c @ (code::WRONG_APP | code::BAD_SIGNATURE)) => Self::Credentials {
                code: c,
                message,
                trace,
            },
            Some(code::NO_PERMISSION) => Self::Permission { endpoint, trace },
            // The deletions document a bare HTTP 403 for "no permission".
            _ if status == 403 => Self::Permission { endpoint, trace },
            // Not found and already deleted come with HTTP 500 but are answers, not
            // faults: no retry changes them.
            Some(c @ (code::ALREADY_DELETED | code::MEETING_NOT_FOUND | code::FILE_NOT_FOUND)) => {
                Self::Rejected {
                    status,
                    code: c,
                    message,
                    trace,
                }
            }
            Some(c) if c == code::TIMEOUT || status >= 500 => Self::Server {
                status,
                code: c,
                message,
                trace,
            },
            Some(c) => Self::Rejected {
                status,
                code: c,
                message,
                trace,
            },
            None if status >= 500 => Self::Server {
                status,
                code: 0,
                message,
                trace,
            },
            None => Self::Malformed {
                status,
                trace,
                detail: format!("HTTP {status} without an error_info body"),
            },
        }
    }
}

/// What a 500014 on `endpoint` says the operator may not do.
fn permission_for(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Records => "list the account's recordings",
        Endpoint::Addresses => "get the download addresses of the account's recordings",
        Endpoint::Delete => "delete the account's recordings from the cloud",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(status: u16, code: i64) -> ErrorClass {
        ApiError::from_reply(
            Endpoint::Records,
            status,
            Some(code),
            String::new(),
            "t".into(),
        )
        .class()
    }

    #[test]
    fn codes_from_the_doc_are_classified() {
        assert_eq!(class(500, 41), ErrorClass::Retry);
        assert_eq!(class(400, 190310), ErrorClass::Retry);
        assert_eq!(class(400, 9061), ErrorClass::Retry);
        assert_eq!(class(400, 190300), ErrorClass::Retry);
        assert_eq!(class(400, 190301), ErrorClass::Retry);
        assert_eq!(class(400, 190303), ErrorClass::Fatal);
        assert_eq!(class(400, 200003), ErrorClass::Fatal);
        assert_eq!(class(400, 500014), ErrorClass::Fatal);
        assert_eq!(class(400, 190004), ErrorClass::GiveUp);
        assert_eq!(class(503, 12345), ErrorClass::Retry);
        assert_eq!(class(500, 7001), ErrorClass::GiveUp);
        assert_eq!(class(500, 7003), ErrorClass::GiveUp);
        let e = ApiError::from_reply(Endpoint::Records, 429, None, String::new(), "t".into());
        assert_eq!(e.class(), ErrorClass::Retry);
        let e = ApiError::from_reply(Endpoint::Records, 400, None, String::new(), "t".into());
        assert!(matches!(e, ApiError::Malformed { .. }));
        assert_eq!(class(500, 4051), ErrorClass::GiveUp);
        assert_eq!(class(400, 190001), ErrorClass::GiveUp);
        let e = ApiError::from_reply(Endpoint::Delete, 403, None, String::new(), "t".into());
        assert_eq!(e.class(), ErrorClass::Fatal);
        assert!(e.to_string().contains("delete"), "{e}");
    }

    #[test]
    fn fatal_errors_say_what_to_fix() {
        let e = ApiError::from_reply(
            Endpoint::Addresses,
            400,
            Some(500014),
            String::new(),
            "t".into(),
        );
        assert!(e.to_string().contains("录制管理"), "{e}");
        assert!(e.to_string().contains("download addresses"), "{e}");
        let e = ApiError::from_reply(
            Endpoint::Records,
            400,
            Some(190303),
            "bad".into(),
            "t".into(),
        );
        assert!(e.to_string().contains("SecretKey"), "{e}");
        assert_eq!(e.trace(), "t");
    }
}
