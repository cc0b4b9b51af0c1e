//! The TOML configuration: parsing, environment overrides and validation.
//!
//! Everything is checked before anything runs, so that a typo costs the admin one restart
//! with a message naming the key and the fix, instead of a half-applied backfill. The file
//! is parsed strictly (`deny_unknown_fields`): a misspelt key would otherwise be silently
//! ignored and its default used.
//!
//! One module per table, each with its raw (as written) struct, its defaults, its
//! validated struct and its validator: `api`, `storage` (with `s3` for `[storage.s3]`),
//! `database`, `download`, `poll`, `metrics`, `verify`, `webhook`, `prune`, `retention`,
//! `filter`; `secrets` is where each secret comes from. This module reads the file, runs
//! the validators in a fixed order and checks what spans two tables.

use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod api;
mod database;
mod download;
mod filter;
mod metrics;
mod poll;
mod prune;
mod retention;
mod s3;
mod secrets;
mod storage;
mod verify;
mod webhook;

pub use api::{ApiConfig, CREDENTIAL_SECRET_KEY, ENV_SECRET_ID, ENV_SECRET_KEY};
pub use database::DatabaseConfig;
pub use download::TransferConfig;
pub use metrics::MetricsConfig;
pub use poll::PollConfig;
pub use prune::PruneConfig;
pub use retention::RetentionConfig;
pub use s3::{
    ENV_AWS_ACCESS_KEY_ID, ENV_AWS_PROFILE, ENV_AWS_SECRET_ACCESS_KEY, ENV_AWS_SESSION_TOKEN,
    ENV_AWS_SHARED_CREDENTIALS_FILE, S3Config, S3Credentials,
};
pub use storage::StorageConfig;
pub use verify::VerifyConfig;
pub use webhook::{
    CREDENTIAL_WEBHOOK_AES_KEY, CREDENTIAL_WEBHOOK_TOKEN, ENV_WEBHOOK_AES_KEY, ENV_WEBHOOK_TOKEN,
    WebhookConfig,
};

/// systemd's `LoadCredential=` puts credentials in files under this directory.
pub const ENV_CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// The validated configuration the rest of the program runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiConfig,
    pub storage: StorageConfig,
    pub database: DatabaseConfig,
    /// The `[download]` table (its name in the file), which configures `transfer::Pool`.
    pub download: TransferConfig,
    pub poll: PollConfig,
    pub metrics: MetricsConfig,
    pub verify: VerifyConfig,
    /// `None`: no webhook (the default); `run` finds new recordings by polling alone.
    pub webhook: Option<WebhookConfig>,
    pub prune: PruneConfig,
    pub retention: RetentionConfig,
    pub filter: crate::filter::Filter,
}

// Durations stay strings until validation, which names the key in its error
// (`config key `poll.interval`: `soon` is not a positive duration; use e.g. ...`); parsed by
// serde (`humantime_serde`), a typo would get only a line and column. Each table's
// defaults are in its `Default`, in one place.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    api: api::RawApi,
    #[serde(default)]
    storage: storage::RawStorage,
    database: database::RawDatabase,
    #[serde(default)]
    download: download::RawDownload,
    #[serde(default)]
    poll: poll::RawPoll,
    #[serde(default)]
    metrics: metrics::RawMetrics,
    #[serde(default)]
    verify: verify::RawVerify,
    #[serde(default)]
    webhook: webhook::RawWebhook,
    #[serde(default)]
    prune: prune::RawPrune,
    #[serde(default)]
    retention: retention::RawRetention,
    #[serde(default)]
    filter: filter::RawFilter,
}

impl Config {
    /// Loads and validates `path`, applying environment overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses `text`; `env` looks up environment variables (a parameter so that tests need
    /// not mutate the process environment). The tables are validated in a fixed order, so
    /// that of two mistakes the same one is always reported first.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let metrics = metrics::validate_metrics(raw.metrics)?;
        let webhook = webhook::validate_webhook(raw.webhook, base_dir, env)?;
        if let Some(w) = webhook
            .as_ref()
            .filter(|w| Some(w.listen) == metrics.listen)
        {
            return Err(invalid(
                "webhook.listen",
                format!("{} is metrics.listen too; give each its own port", w.listen),
            ));
        }
        let api = api::validate_api(raw.api, base_dir, env)?;
        let mut storage = storage::validate_storage(raw.storage, base_dir, env)?;
        let retention = retention::validate_retention(raw.retention)?;
        retention::lock_objects(&mut storage, &retention)?;
        Ok(Self {
            api,
            storage,
            database: database::validate_database(raw.database, base_dir)?,
            download: download::validate_download(raw.download)?,
            poll: poll::validate_poll(raw.poll)?,
            prune: prune::validate_prune(raw.prune)?,
            retention,
            filter: filter::validate_filter(raw.filter)?,
            verify: verify::validate_verify(raw.verify)?,
            metrics,
            webhook,
        })
    }
}

/// A name from a fixed set, parsed by serde into its enum `T`; or the text as written when
/// it names none of them, so that validation refuses it naming the key and the choices
/// (serde's own error would give only a line and a column).
enum Choice<T> {
    Known(T),
    Unknown(String),
}

impl<T: DeserializeOwned> Choice<T> {
    fn from_text(text: String) -> Self {
        let parsed: Result<T, serde::de::value::Error> =
            T::deserialize(text.as_str().into_deserializer());
        parsed.map_or(Self::Unknown(text), Self::Known)
    }

    /// For a key whose value is read without its surrounding blanks.
    fn trimmed<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::from_text(
            String::deserialize(deserializer)?.trim().into(),
        ))
    }
}

impl<T> Choice<T> {
    /// The value, or an error naming `key` with `refusal` of the text that named none.
    fn known(
        self,
        key: &'static str,
        refusal: impl FnOnce(&str) -> String,
    ) -> Result<T, ConfigError> {
        match self {
            Self::Known(value) => Ok(value),
            Self::Unknown(text) => Err(invalid(key, refusal(&text))),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Choice<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::from_text(String::deserialize(deserializer)?))
    }
}

/// Parses a human duration such as `30s`, `5m`, `3d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

fn duration(key: &'static str, text: &str) -> Result<Duration, ConfigError> {
    parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            invalid(
                key,
                format!("`{text}` is not a positive duration; use e.g. \"30s\", \"5m\", \"3d\""),
            )
        })
}

/// A duration of at least a second (a timeout shorter than that fails every call);
/// `example` is the suggestion in the error.
fn timeout(key: &'static str, text: &str, example: &str) -> Result<Duration, ConfigError> {
    let timeout = duration(key, text)?;
    if timeout < Duration::from_secs(1) {
        return Err(invalid(
            key,
            format!("must be at least 1s, e.g. \"{example}\""),
        ));
    }
    Ok(timeout)
}

/// Relative paths are taken relative to the config file, so a config works wherever the
/// service is started from.
fn non_empty_path(
    key: &'static str,
    path: PathBuf,
    base_dir: &Path,
) -> Result<PathBuf, ConfigError> {
    if path.as_os_str().is_empty() {
        return Err(invalid(key, "is empty: give a directory or file path"));
    }
    Ok(base_dir.join(path))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(super) const GOOD: &str = r#"
[api]
base_url = "http://127.0.0.1:1"
app_id = "200000001"
secret_id = "AKIDexample"
secret_key = "very-secret-key"
operator_id = "admin"
[storage]
path = "archive"
[database]
path = "state.db"
"#;

    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/wa/config.toml"), &|_| None)
    }

    /// Asserts that two configs agree on each of the fields named (as `table.key`).
    macro_rules! agree {
        ($left:ident, $right:ident, $($($field:ident).+),+ $(,)?) => {
            $(assert_eq!($left.$($field).+, $right.$($field).+, stringify!($($field).+));)+
        };
    }

    pub(super) fn key_of(err: ConfigError) -> String {
        match err {
            ConfigError::Invalid { key, .. } => key.to_string(),
            other => other.to_string(),
        }
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.api.requests_per_minute, 10);
        assert_eq!(c.api.addresses_per_minute, 50);
        assert_eq!(c.api.deletes_per_minute, 20);
        assert!(!c.prune.enabled, "deleting from the cloud is opt-in");
        assert_eq!(c.prune.after, Duration::from_secs(30 * 86_400));
        assert_eq!(c.prune.interval, Duration::from_secs(3600));
        assert_eq!(c.prune.max_per_run, 500);
        assert_eq!(c.retention.keep, None);
        assert!(
            !c.retention.expire,
            "expiring recordings from the archive is opt-in"
        );
        assert_eq!(c.api.record_type, 1);
        assert_eq!(c.api.sdk_id, None);
        assert_eq!(c.download.workers, 4);
        assert_eq!(c.storage.path, Path::new("/etc/wa/archive"));
        assert_eq!(c.storage.timezone, chrono_tz::Asia::Shanghai);
    }

    #[test]
    fn the_example_config_is_valid_and_documents_the_defaults() {
        let text = include_str!("../../config/wemeet-archiver.example.toml");
        let c = Config::parse(text, Path::new("/etc/wa/config.toml"), &|name| match name {
            ENV_SECRET_KEY | ENV_SECRET_ID => Some("from-env".into()),
            _ => None,
        })
        .unwrap();
        let defaults = parse(GOOD).unwrap();
        agree!(
            c,
            defaults,
            retention.keep,
            retention.expire,
            retention.interval,
            api.requests_per_minute,
            api.addresses_per_minute,
            download.workers,
            download.max_attempts,
            download.checkpoint_bytes,
            download.read_timeout,
            download.disk_full_retry,
            download.address_ttl,
            download.artifacts,
            download.artifact_wait,
            poll.interval,
            poll.lookback,
            metrics.listen,
            verify.interval,
            api.timeout,
            api.deletes_per_minute,
            prune.enabled,
            prune.after,
            prune.interval,
            prune.max_per_run,
        );
        assert!(c.webhook.is_none() && defaults.webhook.is_none());
        let with_listen = text.replace(
            "listen = \"\"                     # e.g. \"127.0.0.1:8391\"",
            "listen = \"127.0.0.1:8391\"",
        );
        let err = Config::parse(
            &with_listen,
            Path::new("/etc/wa/c.toml"),
            &|name| match name {
                ENV_SECRET_KEY | ENV_SECRET_ID => Some("from-env".into()),
                _ => None,
            },
        )
        .unwrap_err();
        assert_eq!(key_of(err), "webhook.token", "listening needs the token");
    }

    #[test]
    fn debug_output_hides_the_secret_key() {
        let c = parse(GOOD).unwrap();
        assert!(!format!("{c:?}").contains("very-secret-key"));
    }

    #[test]
    fn environment_overrides_secrets() {
        let c = Config::parse(GOOD, Path::new("c.toml"), &|name| match name {
            ENV_SECRET_KEY => Some("from-env".into()),
            ENV_SECRET_ID => Some("AKIDenv".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.api.secret_key.expose(), "from-env");
        assert_eq!(c.api.secret_id, "AKIDenv");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse(&GOOD.replace("[database]", "[database]\npaht = \"x\"")).unwrap_err();
        assert!(err.to_string().contains("paht"), "{err}");
    }

    #[test]
    fn missing_key_is_named() {
        let err = parse(&GOOD.replace("operator_id = \"admin\"", "")).unwrap_err();
        assert!(err.to_string().contains("operator_id"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = parse(&GOOD.replace("[storage]", "[download]\nworkers = \"four\"\n[storage]"))
            .unwrap_err();
        assert!(err.to_string().contains("workers"), "{err}");
    }

    #[test]
    fn impossible_values_are_named() {
        let cases = [
            (
                "[database]",
                "[download]\nworkers = 0\n[database]",
                "download.workers",
            ),
            (
                "operator_id = \"admin\"",
                "operator_id = \"admin\"\nrequests_per_minute = 0",
                "api.requests_per_minute",
            ),
            (
                "operator_id = \"admin\"",
                "operator_id = \"admin\"\nrecord_type = 7",
                "api.record_type",
            ),
            (
                "operator_id = \"admin\"",
                "operator_id = \"admin\"\naddresses_per_minute = 0",
                "api.addresses_per_minute",
            ),
            (
                "path = \"archive\"",
                "path = \"archive\"\ntimezone = \"Mars/Base\"",
                "storage.timezone",
            ),
            (
                "secret_key = \"very-secret-key\"",
                "secret_key = \"\"",
                "api.secret_key",
            ),
            ("app_id = \"200000001\"", "app_id = \"abc\"", "api.app_id"),
            (
                "[database]",
                "[poll]\ninterval = \"soon\"\n[database]",
                "poll.interval",
            ),
            (
                "[database]",
                "[download]\nartifacts = [\"video\", \"chat\"]\n[database]",
                "download.artifacts",
            ),
            (
                "[database]",
                "[download]\nartifacts = [\"audio\"]\n[database]",
                "download.artifacts",
            ),
            (
                "[database]",
                "[poll]\nlookback = \"1m\"\n[database]",
                "poll.lookback",
            ),
            (
                "[database]",
                "[metrics]\nlisten = \"port 80\"\n[database]",
                "metrics.listen",
            ),
            (
                "path = \"archive\"",
                "path = \"archive\"\nbackend = \"ftp\"",
                "storage.backend",
            ),
            (
                "operator_id = \"admin\"",
                "operator_id = \"admin\"\ndeletes_per_minute = 0",
                "api.deletes_per_minute",
            ),
            (
                "[database]",
                "[prune]\nafter = \"a month\"\n[database]",
                "prune.after",
            ),
            (
                "[database]",
                "[prune]\ninterval = \"0s\"\n[database]",
                "prune.interval",
            ),
            (
                "[database]",
                "[prune]\nmax_per_run = 0\n[database]",
                "prune.max_per_run",
            ),
            (
                "[database]",
                "[retention]\nkeep = \"six years\"\n[database]",
                "retention.keep",
            ),
            (
                "[database]",
                "[retention]\nexpire = true\n[database]",
                "retention.expire",
            ),
        ];
        for (from, to, key) in cases {
            let err = parse(&GOOD.replacen(from, to, 1)).unwrap_err();
            assert_eq!(key_of(err), key, "replacing {from:?}");
        }
    }
}
