//! The `[retention]` table: how long recordings must be kept, whether `expire` may remove
//! them after that, and S3 Object Lock on the bucket's objects.

use super::{Choice, ConfigError, StorageConfig, duration, invalid, parse_duration};
use crate::archive::s3::{LockMode, ObjectLockPolicy};
use serde::Deserialize;
use std::time::Duration;

/// How long recordings must be kept, and whether `expire` may remove them after that.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// A recording must be kept this long from its meeting's start; `None` (the default):
    /// no period is set, and nothing ever expires.
    pub keep: Option<Duration>,
    /// Removing recordings from the archive is permanent, so it is opt-in: without it,
    /// `expire` refuses (a dry run still reports) and the service never expires.
    pub expire: bool,
    /// The service expires this often, when `expire` is on.
    pub interval: Duration,
    /// `mode`: S3 Object Lock retention on every object of the bucket (`None`: no lock;
    /// the default, and the only choice on local disk).
    pub mode: Option<LockMode>,
}

/// `retention.mode` as written: no lock (`"none"`, or empty), or a [`LockMode`].
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[serde(alias = "")]
    None,
    Governance,
    Compliance,
}

impl Mode {
    fn lock(self) -> Option<LockMode> {
        match self {
            Self::None => None,
            Self::Governance => Some(LockMode::Governance),
            Self::Compliance => Some(LockMode::Compliance),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRetention {
    keep: Option<String>,
    expire: bool,
    interval: String,
    #[serde(deserialize_with = "Choice::trimmed")]
    mode: Choice<Mode>,
}

impl Default for RawRetention {
    fn default() -> Self {
        Self {
            keep: None,
            expire: false,
            interval: "1d".into(),
            mode: Choice::Known(Mode::None),
        }
    }
}

pub(super) fn validate_retention(raw: RawRetention) -> Result<RetentionConfig, ConfigError> {
    let keep = raw
        .keep
        .filter(|k| !k.trim().is_empty())
        .map(|k| {
            parse_duration(&k).filter(|d| !d.is_zero()).ok_or_else(|| {
                invalid(
                    "retention.keep",
                    format!("`{k}` is not a positive duration; use e.g. \"6y\", \"7y\", \"90d\""),
                )
            })
        })
        .transpose()?;
    if raw.expire && keep.is_none() {
        return Err(invalid(
            "retention.expire",
            "is true but retention.keep is not set: say how long recordings must be kept, e.g. keep = \"6y\"",
        ));
    }
    let mode = raw.mode.known("retention.mode", |other| {
        format!("`{other}` is not a mode; use \"none\", \"governance\" or \"compliance\"")
    })?;
    let mode = mode.lock();
    if mode.is_some() && keep.is_none() {
        return Err(invalid(
            "retention.mode",
            "is set but retention.keep is not: say how long objects must be locked, e.g. keep = \"6y\"",
        ));
    }
    Ok(RetentionConfig {
        keep,
        expire: raw.expire,
        interval: duration("retention.interval", &raw.interval)?,
        mode,
    })
}

/// Hands `retention.mode` to the bucket: S3 Object Lock exists only there, and a locked
/// bucket refuses a `PUT` without an integrity header (`storage.s3.part_checksums`).
pub(super) fn lock_objects(
    storage: &mut StorageConfig,
    retention: &RetentionConfig,
) -> Result<(), ConfigError> {
    let (Some(mode), Some(keep)) = (retention.mode, retention.keep) else {
        return Ok(());
    };
    let Some(s3) = storage.s3.as_mut() else {
        return Err(invalid(
            "retention.mode",
            format!(
                "is \"{mode}\", which is S3 Object Lock: it needs storage.backend = \"s3\" (on a \
                 local disk nothing can be made immutable); set mode = \"none\""
            ),
        ));
    };
    if !s3.part_checksums {
        return Err(invalid(
            "storage.s3.part_checksums",
            "is false, but a bucket with Object Lock (retention.mode) refuses a PUT without a \
             checksum: set it to true",
        ));
    }
    s3.object_lock = Some(ObjectLockPolicy { mode, keep });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{GOOD, parse};
    use std::time::Duration;

    #[test]
    fn retention_is_counted_in_years() {
        let c =
            parse(&GOOD.replace("[database]", "[retention]\nkeep = \"6y\"\n[database]")).unwrap();
        assert_eq!(c.retention.keep, Some(Duration::from_secs(6 * 31_557_600)));
    }

    #[test]
    fn a_mode_is_read_without_its_blanks_and_empty_is_none() {
        for mode in ["\"\"", "\" none \""] {
            let text = GOOD.replace(
                "[database]",
                &format!("[retention]\nmode = {mode}\n[database]"),
            );
            assert_eq!(parse(&text).unwrap().retention.mode, None, "{mode}");
        }
        let text = GOOD.replace("[database]", "[retention]\nmode = \" legal \"\n[database]");
        assert_eq!(
            parse(&text).unwrap_err().to_string(),
            "config key `retention.mode`: `legal` is not a mode; use \"none\", \"governance\" or \
             \"compliance\""
        );
    }
}
