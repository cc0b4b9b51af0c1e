//! The `[storage]` table: which backend holds the archive (a directory, or a bucket
//! configured in `[storage.s3]`), the time zone of its dates and the layout of its paths.

use super::s3::{RawS3, validate_s3};
use super::{Choice, ConfigError, S3Config, invalid, non_empty_path};
use crate::archive::layout::{DEFAULT_LAYOUT, Layout};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The archive root on local disk (`backend = "local"`). Empty with the S3 backend:
    /// look at [`StorageConfig::s3`] first.
    pub path: PathBuf,
    pub timezone: chrono_tz::Tz,
    /// `storage.layout`: where each recording goes under the root (dates in `timezone`).
    pub layout: Layout,
    /// `backend = "s3"`: recordings go to this bucket instead of `path`.
    pub s3: Option<S3Config>,
}

/// `storage.backend`, as written in the file.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Backend {
    Local,
    S3,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStorage {
    backend: Choice<Backend>,
    path: Option<PathBuf>,
    timezone: String,
    layout: String,
    s3: Option<RawS3>,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            backend: Choice::Known(Backend::Local),
            path: None,
            timezone: "Asia/Shanghai".into(),
            layout: DEFAULT_LAYOUT.into(),
            s3: None,
        }
    }
}

pub(super) fn validate_storage(
    raw: RawStorage,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StorageConfig, ConfigError> {
    let backend = raw.backend.known("storage.backend", |other| {
        format!("`{other}` is not supported; use \"local\" or \"s3\"")
    })?;
    let (path, s3) = root(backend, raw.path, raw.s3, base_dir, env)?;
    let timezone = raw.timezone.parse().map_err(|_| {
        invalid(
            "storage.timezone",
            format!(
                "`{}` is not an IANA time zone; use e.g. \"Asia/Shanghai\" or \"UTC\"",
                raw.timezone
            ),
        )
    })?;
    let layout = Layout::parse(&raw.layout, timezone).map_err(|e| {
        invalid(
            "storage.layout",
            format!("`{}` {e} (the default is \"{DEFAULT_LAYOUT}\")", raw.layout),
        )
    })?;
    Ok(StorageConfig {
        path,
        timezone,
        layout,
        s3,
    })
}

/// Where the archive is: `storage.path` for a directory, `[storage.s3]` for a bucket; the
/// one the backend does not use must not be set (it would be silently ignored).
fn root(
    backend: Backend,
    path: Option<PathBuf>,
    s3: Option<RawS3>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(PathBuf, Option<S3Config>), ConfigError> {
    let (key, message) = match (backend, path, s3) {
        (Backend::Local, Some(path), None) => {
            return Ok((non_empty_path("storage.path", path, base_dir)?, None));
        }
        (Backend::S3, None, Some(s3)) => return Ok((PathBuf::new(), Some(validate_s3(s3, env)?))),
        (Backend::Local, None, _) => (
            "storage.path",
            "is missing: give the directory recordings are archived in",
        ),
        (Backend::Local, Some(_), Some(_)) => (
            "storage.s3",
            "is set but storage.backend is \"local\": set backend = \"s3\" (and remove \
             storage.path) or remove the [storage.s3] table",
        ),
        (Backend::S3, _, None) => (
            "storage.s3",
            "is missing: backend = \"s3\" needs a [storage.s3] table with at least `bucket`",
        ),
        (Backend::S3, Some(_), Some(_)) => (
            "storage.path",
            "is not used with backend = \"s3\" (keys come from [storage.s3] prefix); remove it",
        ),
    };
    Err(invalid(key, message))
}

#[cfg(test)]
mod tests {
    use super::super::ConfigError;
    use super::super::tests::{GOOD, key_of, parse};

    #[test]
    fn a_layout_that_can_collide_is_refused_by_name() {
        for layout in [
            "{userid}/{subject}",
            "{record_file_id}/x",
            "{nope}/{record_file_id}",
        ] {
            let text = GOOD.replace(
                "path = \"archive\"",
                &format!("path = \"archive\"\nlayout = \"{layout}\""),
            );
            assert_eq!(
                key_of(parse(&text).unwrap_err()),
                "storage.layout",
                "{layout}"
            );
        }
        let text = GOOD.replace(
            "path = \"archive\"",
            "path = \"archive\"\nlayout = \"{userid}/{start:%Y}/{record_file_id}\"",
        );
        assert_eq!(
            parse(&text).unwrap().storage.layout.template(),
            "{userid}/{start:%Y}/{record_file_id}"
        );
    }

    #[test]
    fn a_backend_that_is_not_one_of_the_choices_is_refused_naming_them() {
        let text = GOOD.replace(
            "path = \"archive\"",
            "path = \"archive\"\nbackend = \"ftp\"",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert_eq!(
            err,
            "config key `storage.backend`: `ftp` is not supported; use \"local\" or \"s3\""
        );
        let text = GOOD.replace("path = \"archive\"", "path = \"archive\"\nbackend = 3");
        assert!(
            matches!(parse(&text), Err(ConfigError::Parse { message, .. }) if message.contains("backend")),
            "a wrong type names the key too"
        );
    }
}
