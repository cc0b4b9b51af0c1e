//! The TOML configuration: parsing, environment overrides and validation.
//!
//! Everything is checked before anything runs, so that a typo costs the admin one restart
//! with a message naming the key and the fix, instead of a half-applied backfill. The file
//! is parsed strictly (`deny_unknown_fields`): a misspelt key would otherwise be silently
//! ignored and its default used.

use reqwest::Url;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wemeet_api::Secret;

mod s3;
mod secrets;
mod webhook;

pub use s3::{
    ENV_AWS_ACCESS_KEY_ID, ENV_AWS_PROFILE, ENV_AWS_SECRET_ACCESS_KEY, ENV_AWS_SESSION_TOKEN,
    ENV_AWS_SHARED_CREDENTIALS_FILE, S3Config, S3Credentials,
};
use s3::{RawS3, validate_s3};
use secrets::SecretSource;
pub use webhook::{
    CREDENTIAL_WEBHOOK_AES_KEY, CREDENTIAL_WEBHOOK_TOKEN, ENV_WEBHOOK_AES_KEY, ENV_WEBHOOK_TOKEN,
    WebhookConfig,
};
use webhook::{RawWebhook, validate_webhook};

/// Environment variables that override the file (systemd units and CI prefer them to files).
pub const ENV_SECRET_ID: &str = "WEMEET_SECRET_ID";
pub const ENV_SECRET_KEY: &str = "WEMEET_SECRET_KEY";
/// systemd's `LoadCredential=` puts credentials in files under this directory.
pub const ENV_CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";
/// The file name looked up in `$CREDENTIALS_DIRECTORY` for the SecretKey.
pub const CREDENTIAL_SECRET_KEY: &str = "wemeet-secret-key";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Checks a budget of calls per minute: 1 to 10000 (`hint` says what to choose), and a
/// warning above the API's own `limit` (in words), where a larger budget only buys
/// rate-limit errors.
fn budget(
    key: &'static str,
    value: i64,
    hint: &str,
    (limit, limit_text): (i64, &str),
) -> Result<(), ConfigError> {
    if !(1..=10_000).contains(&value) {
        return Err(invalid(
            key,
            format!("is {value}; use a number from 1 to 10000 ({hint})"),
        ));
    }
    if value > limit {
        tracing::warn!(
            per_minute = value,
            "{key} is above {limit_text}; expect rate-limit errors"
        );
    }
    Ok(())
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
    pub download: DownloadConfig,
    pub poll: PollConfig,
    pub metrics: MetricsConfig,
    pub verify: VerifyConfig,
    /// `None`: no webhook (the default); `run` finds new recordings by polling alone.
    pub webhook: Option<WebhookConfig>,
    pub prune: PruneConfig,
    pub retention: RetentionConfig,
    pub filter: crate::filter::Filter,
}

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
    pub mode: Option<crate::archive::s3::LockMode>,
}

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

/// The daemon's periodic scrub.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// `None`: no scrub (the default); run `wemeet-archiver verify` from a timer instead.
    pub interval: Option<Duration>,
}

/// How the daemon (`run`) polls for new recordings.
#[derive(Debug, Clone)]
pub struct PollConfig {
    /// Time between two listings of the live window.
    pub interval: Duration,
    /// The live window reaches this far back: files appear only once a meeting has ended
    /// and been transcoded, and the API filters on the meeting's start time.
    pub lookback: Duration,
}

/// The optional Prometheus endpoint.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// `None`: no HTTP listener at all (the default).
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub base_url: Url,
    pub app_id: String,
    /// Sent as the `SdkId` header only when set: sending one that was never assigned is
    /// rejected by the API (190303).
    pub sdk_id: Option<String>,
    pub secret_id: String,
    pub secret_key: Secret,
    pub operator_id: String,
    pub operator_id_type: u8,
    pub record_type: u8,
    /// Calls per minute to the listing (`/v1/corp/records`).
    pub requests_per_minute: u32,
    /// Calls per minute to `/v1/addresses`, a budget of its own.
    pub addresses_per_minute: u32,
    /// Calls per minute to the deletions (`DELETE /v1/records/...`), a budget of its own.
    pub deletes_per_minute: u32,
    /// How long one API call may take in total (listing replies are small).
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The archive root on local disk (`backend = "local"`). Empty with the S3 backend:
    /// look at [`StorageConfig::s3`] first.
    pub path: PathBuf,
    pub timezone: chrono_tz::Tz,
    /// `storage.layout`: where each recording goes under the root (dates in `timezone`).
    pub layout: crate::archive::layout::Layout,
    /// `backend = "s3"`: recordings go to this bucket instead of `path`.
    pub s3: Option<S3Config>,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct DownloadConfig {
    pub workers: usize,
    /// Attempts per file before it is marked `failed` (re-queued by `--retry-failed`).
    pub max_attempts: u32,
    /// Bytes between two durable checkpoints of a transfer (fsync + offset + hash state).
    pub checkpoint_bytes: u64,
    /// Longest silence on a download connection before it is abandoned and resumed.
    /// A read timeout, not a whole-request timeout: a 4 GB body legitimately takes long.
    pub read_timeout: Duration,
    /// How long a transfer that hit a full disk (ENOSPC, EDQUOT) waits before trying again.
    pub disk_full_retry: Duration,
    /// How long the API's download addresses stay valid after they are issued (6 h per
    /// Tencent's documentation; configurable in case that changes).
    pub address_ttl: Duration,
    /// What of each recording is archived: always its video, and (opt-in) its audio track
    /// and transcripts.
    pub artifacts: Vec<crate::state::FileKind>,
    /// How long after a recording ended its transcripts are waited for (they can appear
    /// hours after transcoding); then the wait ends quietly.
    pub artifact_wait: Duration,
}

impl DownloadConfig {
    /// Whether artifacts of `kind` are archived.
    pub fn wants(&self, kind: crate::state::FileKind) -> bool {
        self.artifacts.contains(&kind)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    api: RawApi,
    #[serde(default)]
    storage: RawStorage,
    database: RawDatabase,
    #[serde(default)]
    download: RawDownload,
    #[serde(default)]
    poll: RawPoll,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    verify: RawVerify,
    #[serde(default)]
    webhook: RawWebhook,
    #[serde(default)]
    prune: RawPrune,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    filter: RawFilter,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawFilter {
    users: Vec<String>,
    exclude_users: Vec<String>,
    subject: Option<String>,
    exclude_subject: Option<String>,
    min_duration: Option<String>,
    min_size: Option<RawSize>,
    record_types: Vec<String>,
}

/// A size in bytes (`1048576`) or with a unit (`"1 MB"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPrune {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRetention {
    keep: Option<String>,
    expire: bool,
    interval: String,
    mode: String,
}

impl Default for RawRetention {
    fn default() -> Self {
        Self {
            keep: None,
            expire: false,
            interval: "1d".into(),
            mode: "none".into(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    interval: Option<String>,
}

// Durations stay strings until validation, which names the key in its error
// (`config key `poll.interval`: `soon` is not a positive duration; use e.g. ...`); parsed by
// serde (`humantime_serde`), a typo would get only a line and column. Each table's
// defaults are in its `Default`, in one place.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPoll {
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

/// Required keys (`app_id`, `operator_id`) default to empty and are refused, by name, by
/// validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawApi {
    base_url: String,
    app_id: String,
    sdk_id: String,
    secret_id: String,
    secret_key: Secret,
    secret_key_file: Option<PathBuf>,
    operator_id: String,
    operator_id_type: i64,
    record_type: i64,
    requests_per_minute: i64,
    addresses_per_minute: i64,
    deletes_per_minute: i64,
    timeout: String,
}

impl Default for RawApi {
    fn default() -> Self {
        Self {
            base_url: "https://api.meeting.qq.com".into(),
            app_id: String::new(),
            sdk_id: String::new(),
            secret_id: String::new(),
            secret_key: Secret::default(),
            secret_key_file: None,
            operator_id: String::new(),
            operator_id_type: 1,
            record_type: 1,
            requests_per_minute: 10,
            addresses_per_minute: 50,
            // Tencent documents no limit for the deletions. They are not urgent and cannot
            // be undone: 20 per minute frees 500 files (a default run) in 25 minutes, far
            // below the 100 per minute of account-level endpoints.
            deletes_per_minute: 20,
            timeout: "30s".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStorage {
    backend: String,
    path: Option<PathBuf>,
    timezone: String,
    layout: String,
    s3: Option<RawS3>,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            backend: "local".into(),
            path: None,
            timezone: "Asia/Shanghai".into(),
            layout: crate::archive::layout::DEFAULT_LAYOUT.into(),
            s3: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDownload {
    workers: i64,
    max_attempts: i64,
    checkpoint_bytes: i64,
    read_timeout: String,
    disk_full_retry: String,
    address_ttl: String,
    artifacts: Vec<String>,
    artifact_wait: String,
}

impl Default for RawDownload {
    fn default() -> Self {
        Self {
            workers: 4,
            max_attempts: 8,
            checkpoint_bytes: crate::archive::local::DEFAULT_CHECKPOINT_BYTES as i64,
            read_timeout: "60s".into(),
            disk_full_retry: "30s".into(),
            address_ttl: "6h".into(),
            artifacts: vec!["video".into()],
            artifact_wait: "2d".into(),
        }
    }
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
    /// not mutate the process environment).
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
        let metrics = validate_metrics(raw.metrics)?;
        let webhook = validate_webhook(raw.webhook, base_dir, env)?;
        if let Some(w) = webhook
            .as_ref()
            .filter(|w| Some(w.listen) == metrics.listen)
        {
            return Err(invalid(
                "webhook.listen",
                format!("{} is metrics.listen too; give each its own port", w.listen),
            ));
        }
        let api = validate_api(raw.api, base_dir, env)?;
        let mut storage = validate_storage(raw.storage, base_dir, env)?;
        let retention = validate_retention(raw.retention)?;
        lock_objects(&mut storage, &retention)?;
        Ok(Self {
            api,
            storage,
            database: DatabaseConfig {
                path: non_empty_path("database.path", raw.database.path, base_dir)?,
            },
            download: validate_download(raw.download)?,
            poll: validate_poll(raw.poll)?,
            prune: validate_prune(raw.prune)?,
            retention,
            filter: validate_filter(raw.filter)?,
            verify: VerifyConfig {
                interval: raw
                    .verify
                    .interval
                    .filter(|i| !i.trim().is_empty())
                    .map(|i| duration("verify.interval", &i))
                    .transpose()?,
            },
            metrics,
            webhook,
        })
    }
}

fn validate_metrics(raw: RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let listen = match raw.listen.filter(|l| !l.trim().is_empty()) {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| {
            invalid(
                "metrics.listen",
                format!("`{text}` is not an address:port, e.g. \"127.0.0.1:9898\""),
            )
        })?),
    };
    Ok(MetricsConfig { listen })
}

fn validate_api(
    raw: RawApi,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ApiConfig, ConfigError> {
    let base_url = Url::parse(&raw.base_url).map_err(|e| {
        invalid(
            "api.base_url",
            format!(
                "`{}` is not a URL ({e}); use e.g. \"https://api.meeting.qq.com\"",
                raw.base_url
            ),
        )
    })?;
    if !matches!(base_url.scheme(), "http" | "https") || base_url.host().is_none() {
        return Err(invalid(
            "api.base_url",
            "must be an http(s) URL with a host, e.g. \"https://api.meeting.qq.com\"",
        ));
    }
    if raw.app_id.trim().is_empty() || !raw.app_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(
            "api.app_id",
            "must be your enterprise id (digits only), shown in the Tencent Meeting admin console",
        ));
    }
    let secret_id = env(ENV_SECRET_ID).unwrap_or(raw.secret_id);
    if secret_id.trim().is_empty() {
        return Err(invalid(
            "api.secret_id",
            format!("is empty: set it in the config or in ${ENV_SECRET_ID}"),
        ));
    }
    let secret_key = resolve_secret_key(raw.secret_key, raw.secret_key_file, base_dir, env)?;
    if raw.operator_id.trim().is_empty() {
        return Err(invalid(
            "api.operator_id",
            "is empty: set the userid of an admin allowed to manage recordings",
        ));
    }
    if raw.operator_id_type != 1 {
        return Err(invalid(
            "api.operator_id_type",
            format!(
                "is {}; the recordings API only accepts 1 (userid)",
                raw.operator_id_type
            ),
        ));
    }
    if !(0..=2).contains(&raw.record_type) {
        return Err(invalid(
            "api.record_type",
            format!(
                "is {}; use 0 (all), 1 (cloud recordings) or 2 (uploaded)",
                raw.record_type
            ),
        ));
    }
    budget(
        "api.requests_per_minute",
        raw.requests_per_minute,
        "the API allows 10 for this endpoint",
        (10, "the documented limit of 10"),
    )?;
    let account_level = (100, "Tencent's 100 per minute for account-level endpoints");
    budget(
        "api.addresses_per_minute",
        raw.addresses_per_minute,
        "default 50; Tencent limits account-level endpoints to 100 per minute",
        account_level,
    )?;
    budget(
        "api.deletes_per_minute",
        raw.deletes_per_minute,
        "default 20; Tencent limits account-level endpoints to 100 per minute",
        account_level,
    )?;
    Ok(ApiConfig {
        base_url,
        app_id: raw.app_id,
        sdk_id: Some(raw.sdk_id).filter(|s| !s.trim().is_empty()),
        secret_id,
        secret_key,
        operator_id: raw.operator_id,
        operator_id_type: raw.operator_id_type as u8,
        record_type: raw.record_type as u8,
        requests_per_minute: raw.requests_per_minute as u32,
        addresses_per_minute: raw.addresses_per_minute as u32,
        deletes_per_minute: raw.deletes_per_minute as u32,
        timeout: duration("api.timeout", &raw.timeout)?,
    })
}

/// The SecretKey, from the first of `$WEMEET_SECRET_KEY`, `secret_key_file`, the systemd
/// credential and the inline value that holds one.
fn resolve_secret_key(
    inline: Secret,
    file: Option<PathBuf>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    let source = SecretSource {
        key: "api.secret_key",
        file_key: "api.secret_key_file",
        env: ENV_SECRET_KEY,
        credential: CREDENTIAL_SECRET_KEY,
    };
    let key = source.resolve(inline, file, base_dir, env)?.secret;
    if key.is_empty() {
        return Err(invalid(
            "api.secret_key",
            format!(
                "is empty: set ${ENV_SECRET_KEY}, api.secret_key_file, or a systemd credential \
                 named {CREDENTIAL_SECRET_KEY}"
            ),
        ));
    }
    Ok(key)
}

fn validate_storage(
    raw: RawStorage,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StorageConfig, ConfigError> {
    let (path, s3) = match (raw.backend.as_str(), raw.path, raw.s3) {
        ("local", Some(path), None) => (non_empty_path("storage.path", path, base_dir)?, None),
        ("local", None, _) => {
            return Err(invalid(
                "storage.path",
                "is missing: give the directory recordings are archived in",
            ));
        }
        ("local", Some(_), Some(_)) => {
            return Err(invalid(
                "storage.s3",
                "is set but storage.backend is \"local\": set backend = \"s3\" (and remove \
                 storage.path) or remove the [storage.s3] table",
            ));
        }
        ("s3", None, Some(s3)) => (PathBuf::new(), Some(validate_s3(s3, env)?)),
        ("s3", _, None) => {
            return Err(invalid(
                "storage.s3",
                "is missing: backend = \"s3\" needs a [storage.s3] table with at least `bucket`",
            ));
        }
        ("s3", Some(_), Some(_)) => {
            return Err(invalid(
                "storage.path",
                "is not used with backend = \"s3\" (keys come from [storage.s3] prefix); remove it",
            ));
        }
        (other, _, _) => {
            return Err(invalid(
                "storage.backend",
                format!("`{other}` is not supported; use \"local\" or \"s3\""),
            ));
        }
    };
    let timezone = raw.timezone.parse().map_err(|_| {
        invalid(
            "storage.timezone",
            format!(
                "`{}` is not an IANA time zone; use e.g. \"Asia/Shanghai\" or \"UTC\"",
                raw.timezone
            ),
        )
    })?;
    let layout = crate::archive::layout::Layout::parse(&raw.layout, timezone).map_err(|e| {
        invalid(
            "storage.layout",
            format!(
                "`{}` {e} (the default is \"{}\")",
                raw.layout,
                crate::archive::layout::DEFAULT_LAYOUT
            ),
        )
    })?;
    Ok(StorageConfig {
        path,
        timezone,
        layout,
        s3,
    })
}

fn validate_download(raw: RawDownload) -> Result<DownloadConfig, ConfigError> {
    if !(1..=64).contains(&raw.workers) {
        return Err(invalid(
            "download.workers",
            format!("is {}; use a number from 1 to 64", raw.workers),
        ));
    }
    if !(1..=1000).contains(&raw.max_attempts) {
        return Err(invalid(
            "download.max_attempts",
            format!("is {}; use a number from 1 to 1000", raw.max_attempts),
        ));
    }
    const MIB: i64 = 1024 * 1024;
    if !(MIB..=1024 * MIB).contains(&raw.checkpoint_bytes) {
        return Err(invalid(
            "download.checkpoint_bytes",
            format!(
                "is {}; use a size from 1048576 (1 MiB) to 1073741824 (1 GiB)",
                raw.checkpoint_bytes
            ),
        ));
    }
    let read_timeout = duration("download.read_timeout", &raw.read_timeout)?;
    if read_timeout < Duration::from_secs(1) {
        return Err(invalid(
            "download.read_timeout",
            "must be at least 1s, e.g. \"60s\"",
        ));
    }
    let artifacts = raw
        .artifacts
        .iter()
        .map(|name| {
            crate::state::FileKind::ALL
                .into_iter()
                .find(|k| k.as_str() == name)
                .ok_or_else(|| {
                    invalid(
                        "download.artifacts",
                        format!(
                            "`{name}` is not a kind of artifact; use a list of \"video\", \
                             \"audio\", \"transcript\", e.g. [\"video\", \"transcript\"]"
                        ),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !artifacts.contains(&crate::state::FileKind::Video) {
        return Err(invalid(
            "download.artifacts",
            "must include \"video\": the recording itself is always archived, its audio and \
             transcripts beside it",
        ));
    }
    Ok(DownloadConfig {
        artifacts,
        artifact_wait: duration("download.artifact_wait", &raw.artifact_wait)?,
        workers: raw.workers as usize,
        max_attempts: raw.max_attempts as u32,
        checkpoint_bytes: raw.checkpoint_bytes as u64,
        read_timeout,
        disk_full_retry: duration("download.disk_full_retry", &raw.disk_full_retry)?,
        address_ttl: duration("download.address_ttl", &raw.address_ttl)?,
    })
}

fn validate_poll(raw: RawPoll) -> Result<PollConfig, ConfigError> {
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

fn validate_prune(raw: RawPrune) -> Result<PruneConfig, ConfigError> {
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

fn validate_retention(raw: RawRetention) -> Result<RetentionConfig, ConfigError> {
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
    use crate::archive::s3::LockMode;
    let mode = match raw.mode.trim() {
        "none" | "" => None,
        "governance" => Some(LockMode::Governance),
        "compliance" => Some(LockMode::Compliance),
        other => {
            return Err(invalid(
                "retention.mode",
                format!("`{other}` is not a mode; use \"none\", \"governance\" or \"compliance\""),
            ));
        }
    };
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
fn lock_objects(
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
    s3.object_lock = Some(crate::archive::s3::ObjectLockPolicy { mode, keep });
    Ok(())
}

fn validate_filter(raw: RawFilter) -> Result<crate::filter::Filter, ConfigError> {
    use crate::filter::{Filter, Minimum, RecordType, parse_size};
    let regex = |key: &'static str, text: Option<String>| {
        text.filter(|t| !t.is_empty())
            .map(|t| {
                regex::Regex::new(&t).map_err(|e| {
                    invalid(
                        key,
                        format!("`{t}` is not a regular expression ({e}); use e.g. \"(?i)weekly\""),
                    )
                })
            })
            .transpose()
    };
    let min_size = match raw.min_size {
        None => None,
        Some(RawSize::Bytes(n)) => Some(Minimum {
            value: u64::try_from(n).map_err(|_| {
                invalid(
                    "filter.min_size",
                    format!("is {n}; use a size of at least 0, e.g. 1048576 or \"1 MB\""),
                )
            })?,
            text: format!("{n} B"),
        }),
        Some(RawSize::Text(text)) => Some(Minimum {
            value: parse_size(&text).ok_or_else(|| {
                invalid(
                    "filter.min_size",
                    format!(
                        "`{text}` is not a size; use bytes or a unit, e.g. 1048576, \"512 KB\", \"1 MiB\""
                    ),
                )
            })?,
            text,
        }),
    };
    let min_duration = raw
        .min_duration
        .filter(|t| !t.trim().is_empty())
        .map(|text| {
            Ok::<_, ConfigError>(Minimum {
                value: duration("filter.min_duration", &text)?,
                text,
            })
        })
        .transpose()?;
    let record_types = raw
        .record_types
        .iter()
        .map(|name| {
            RecordType::ALL
                .into_iter()
                .find(|t| t.as_str() == name)
                .ok_or_else(|| {
                    invalid(
                        "filter.record_types",
                        format!(
                            "`{name}` is not a recording type; use a list of \"cloud\" and \
                             \"uploaded\", e.g. [\"cloud\"]"
                        ),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Filter {
        users: raw.users,
        exclude_users: raw.exclude_users,
        subject: regex("filter.subject", raw.subject)?,
        exclude_subject: regex("filter.exclude_subject", raw.exclude_subject)?,
        min_duration,
        min_size,
        record_types,
    })
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

    pub(super) fn key_of(err: ConfigError) -> String {
        match err {
            ConfigError::Invalid { key, .. } => key.to_string(),
            other => other.to_string(),
        }
    }

    #[test]
    fn retention_is_counted_in_years() {
        let c =
            parse(&GOOD.replace("[database]", "[retention]\nkeep = \"6y\"\n[database]")).unwrap();
        assert_eq!(c.retention.keep, Some(Duration::from_secs(6 * 31_557_600)));
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
        assert_eq!(c.retention.keep, defaults.retention.keep);
        assert_eq!(c.retention.expire, defaults.retention.expire);
        assert_eq!(c.retention.interval, defaults.retention.interval);
        assert_eq!(c.api.requests_per_minute, defaults.api.requests_per_minute);
        assert_eq!(
            c.api.addresses_per_minute,
            defaults.api.addresses_per_minute
        );
        assert_eq!(c.download.workers, defaults.download.workers);
        assert_eq!(c.download.max_attempts, defaults.download.max_attempts);
        assert_eq!(
            c.download.checkpoint_bytes,
            defaults.download.checkpoint_bytes
        );
        assert_eq!(c.download.read_timeout, defaults.download.read_timeout);
        assert_eq!(
            c.download.disk_full_retry,
            defaults.download.disk_full_retry
        );
        assert_eq!(c.download.address_ttl, defaults.download.address_ttl);
        assert_eq!(c.download.artifacts, defaults.download.artifacts);
        assert_eq!(c.download.artifact_wait, defaults.download.artifact_wait);
        assert_eq!(c.poll.interval, defaults.poll.interval);
        assert_eq!(c.poll.lookback, defaults.poll.lookback);
        assert_eq!(c.metrics.listen, defaults.metrics.listen);
        assert_eq!(c.verify.interval, defaults.verify.interval);
        assert_eq!(c.api.timeout, defaults.api.timeout);
        assert_eq!(c.api.deletes_per_minute, defaults.api.deletes_per_minute);
        assert_eq!(c.prune.enabled, defaults.prune.enabled);
        assert_eq!(c.prune.after, defaults.prune.after);
        assert_eq!(c.prune.interval, defaults.prune.interval);
        assert_eq!(c.prune.max_per_run, defaults.prune.max_per_run);
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
    fn filter_keys_are_validated_by_name() {
        for (table, key) in [
            ("subject = \"(unclosed\"", "filter.subject"),
            ("exclude_subject = \"[a-\"", "filter.exclude_subject"),
            ("min_size = \"ten\"", "filter.min_size"),
            ("min_size = -1", "filter.min_size"),
            ("min_duration = \"soon\"", "filter.min_duration"),
            ("record_types = [\"live\"]", "filter.record_types"),
        ] {
            let text = format!("{GOOD}\n[filter]\n{table}\n");
            assert_eq!(key_of(parse(&text).unwrap_err()), key, "{table}");
        }
        let text = format!(
            "{GOOD}\n[filter]\nusers = [\"zhangsan\"]\nsubject = \"(?i)sync\"\n\
             min_duration = \"1m\"\nmin_size = \"1 MB\"\nrecord_types = [\"cloud\"]\n"
        );
        let f = parse(&text).unwrap().filter;
        assert_eq!(f.users, ["zhangsan"]);
        assert_eq!(f.min_size.unwrap().value, 1_000_000);
        assert_eq!(f.min_duration.unwrap().value, Duration::from_secs(60));
        assert!(f.subject.unwrap().is_match("Weekly SYNC"));
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
