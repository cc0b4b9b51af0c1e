//! What an error asks of its caller, answered once where the error is born; and its whole
//! chain for a log line (`anyhow` writes it for the command line's last word).
//!
//! Every error at a boundary (`CallError`, `ListError`, `AddressError`, `ArchiveError`,
//! `WriteError`, `TransferError`, `PoolError`, `PruneError`, `AppError`) has one
//! `fn class(&self) -> Class`: callers match on that, never on variants, strings or flags.
//! Errors keep their cause as `source()`, never in their message, so the chain names each
//! cause once.

use std::error::Error;

/// What the caller must do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A passing fault (the network, a 5xx, a short or unfit answer): try again after the
    /// usual backoff, counting the attempt.
    Retry,
    /// Not the operation's fault (a full disk, a shutdown): wait and try again later,
    /// without spending an attempt.
    RetryLater,
    /// The download host refused the address (expired or revoked): forget it and take a
    /// fresh one for the next attempt, which counts.
    RefreshAddress,
    /// No retry changes the answer (no such meeting or file, invalid parameters): give up
    /// on this file or request, and go on with the others.
    GiveUp,
    /// Nothing can succeed until someone fixes something (credentials, a permission, the
    /// bucket, the database): stop.
    Stop,
}

/// The API's own classes: a passing fault, an answer no retry changes, or one the admin
/// must fix.
impl From<wemeet_api::ErrorClass> for Class {
    fn from(class: wemeet_api::ErrorClass) -> Self {
        match class {
            wemeet_api::ErrorClass::Retry => Self::Retry,
            wemeet_api::ErrorClass::GiveUp => Self::GiveUp,
            wemeet_api::ErrorClass::Fatal => Self::Stop,
        }
    }
}

/// `error: cause: cause of the cause`, as one line.
pub fn chain(error: &dyn Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cause = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot write the report")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause_once() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(super::chain(&e), "cannot write the report: disk full");
    }
}
