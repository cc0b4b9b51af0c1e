//! The `[poll]` table: how often `run` lists the live window, and how far back it reaches.

use super::{ConfigError, duration, invalid};
use serde::Deserialize;
use std::time::Duration;

/// How the daemon (`run`) polls for new recordings.
#[derive(Debug, Clone)]
pub struct PollConfig {
    /// Time between two listings of the live window.
    pub interval: Duration,
    /// The live window reaches this far back: files appear only once a meeting has ended
    /// and been transcoded, and the API filters on the meeting's start time.
    pub lookback: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPoll {
    interval: String,
    lookback: String,
}

impl Default for RawPoll {
    fn default() -> Self {
        Self {
            interval: "5m".into(),
            lookback: "3d".into(),
        }
    }
}

pub(super) fn validate_poll(raw: RawPoll) -> Result<PollConfig, ConfigError> {
    let interval = duration("poll.interval", &raw.interval)?;
    let lookback = duration("poll.lookback", &raw.lookback)?;
    if lookback < interval {
        return Err(invalid(
            "poll.lookback",
            format!(
                "`{}` is shorter than poll.interval `{}`: recordings between two polls would \
                 be missed; use e.g. \"3d\"",
                raw.lookback, raw.interval
            ),
        ));
    }
    Ok(PollConfig { interval, lookback })
}
