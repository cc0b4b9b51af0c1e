//! The `[prune]` table: deleting archived recordings from the cloud, opt-in.

use super::{ConfigError, duration, invalid};
use serde::Deserialize;
use std::time::Duration;

/// Deleting archived recordings from the cloud (`prune`, and the service's rounds).
#[derive(Debug, Clone)]
pub struct PruneConfig {
    /// Deletion is permanent, so it is opt-in: without it, `prune` refuses (a dry run
    /// still reports) and the service never deletes.
    pub enabled: bool,
    /// How long a file must have been archived before it may be deleted from the cloud: a
    /// margin for the admin to notice a problem (and for the archive's own backups).
    pub after: Duration,
    /// The service prunes this often.
    pub interval: Duration,
    /// Files deleted at most per run (and per round of the service).
    pub max_per_run: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPrune {
    enabled: bool,
    after: String,
    interval: String,
    max_per_run: i64,
}

impl Default for RawPrune {
    fn default() -> Self {
        Self {
            enabled: false,
            after: "30d".into(),
            interval: "1h".into(),
            max_per_run: 500,
        }
    }
}

pub(super) fn validate_prune(raw: RawPrune) -> Result<PruneConfig, ConfigError> {
    if !(1..=100_000).contains(&raw.max_per_run) {
        return Err(invalid(
            "prune.max_per_run",
            format!("is {}; use a number from 1 to 100000", raw.max_per_run),
        ));
    }
    Ok(PruneConfig {
        enabled: raw.enabled,
        after: duration("prune.after", &raw.after)?,
        interval: duration("prune.interval", &raw.interval)?,
        max_per_run: raw.max_per_run as u32,
    })
}
