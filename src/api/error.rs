//! API errors, classified where they are born into what the caller must do.

use super::Endpoint;
use std::time::Duration;

/// What the caller should do about an [`ApiError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A passing fault: sign afresh and try again after a backoff.
    Retry,
    /// This request cannot succeed as sent (bad parameters): give up on this window, loudly.
    GiveUp,
    /// No request can succeed until the admin fixes something: stop the process.
    Fatal,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "rate limited by the API (code {code}, trace {trace}); backing off until the window frees"
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
        "the API rejected our timestamp as more than 5 minutes off (trace {trace}); \
         check this host's clock (NTP)"
    )]
    ClockSkew { trace: String },
    #[error("the API saw a replayed nonce (trace {trace}); retrying with a fresh one")]
    Replay { trace: String },
    #[error("network error calling the API: {0}")]
    Transport(String),
    #[error("malformed API reply (HTTP {status}, trace {trace}): {detail}")]
    Malformed {
        status: u16,
        trace: String,
        detail: String,
    },
    #[error(
        "the API rejected the credentials (code {code}: {message}, trace {trace}); check \
         api.app_id, api.secret_id and api.secret_key, and leave api.sdk_id empty unless \
         Tencent assigned one"
    )]
    Credentials {
        code: i64,
        message: String,
        trace: String,
    },
    #[error(
        "the operator has no permission to {} (code 500014, trace {trace}); give \
         api.operator_id the recording management (录制管理) view and edit permission in the \
         Tencent Meeting admin console",
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

impl ApiError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::RateLimited { .. }
            | Self::Server { .. }
            | Self::ClockSkew { .. }
            | Self::Replay { .. }
            | Self::Transport(_)
            | Self::Malformed { .. } => ErrorClass::Retry,
            Self::Credentials { .. } | Self::Permission { .. } => ErrorClass::Fatal,
            Self::Rejected { .. } => ErrorClass::GiveUp,
        }
    }

    /// The least time to wait before retrying, beyond the usual backoff.
    pub fn min_delay(&self) -> Duration {
        match self {
            // Our budget should have prevented this; let the server's window drain.
            Self::RateLimited { .. } => Duration::from_secs(30),
            _ => Duration::ZERO,
        }
    }

    /// Builds the error for a non-success reply of `endpoint` from its HTTP status and
    /// `error_info`.
    pub fn from_reply(
        endpoint: Endpoint,
        status: u16,
        code: Option<i64>,
        message: String,
        trace: String,
    ) -> Self {
        match code {
            Some(code @ (9061 | 190310 | 190311 | 190313)) => Self::RateLimited { code, trace },
            None if status == 429 => Self::RateLimited { code: 0, trace },
            Some(190300) => Self::ClockSkew { trace },
            Some(190301) => Self::Replay { trace },
            Some(code @ (190303 | 200003)) => Self::Credentials {
                code,
                message,
                trace,
            },
            Some(500014) => Self::Permission { endpoint, trace },
            // Not found (7001 meeting, 7003 file) and already deleted (4051) come with HTTP
            // 500 but are answers, not faults: no retry changes them.
            Some(code @ (4051 | 7001 | 7003)) => Self::Rejected {
                status,
                code,
                message,
                trace,
            },
            Some(code) if code == 41 || status >= 500 => Self::Server {
                status,
                code,
                message,
                trace,
            },
            Some(code) => Self::Rejected {
                status,
                code,
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
    }

    #[test]
    fn fatal_errors_tell_the_admin_what_to_fix() {
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
        assert!(e.to_string().contains("api.secret_id"));
    }
}
