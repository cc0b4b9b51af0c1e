//! The `[verify]` table: the daemon's periodic scrub.

use super::{ConfigError, duration};
use serde::Deserialize;
use std::time::Duration;

/// The daemon's periodic scrub.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// `None`: no scrub (the default); run `wemeet-archiver verify` from a timer instead.
    pub interval: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVerify {
    interval: Option<String>,
}

pub(super) fn validate_verify(raw: RawVerify) -> Result<VerifyConfig, ConfigError> {
    let interval = raw
        .interval
        .filter(|i| !i.trim().is_empty())
        .map(|i| duration("verify.interval", &i))
        .transpose()?;
    Ok(VerifyConfig { interval })
}
