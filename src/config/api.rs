//! The `[api]` table: where the Tencent Meeting API is, the account and its credentials,
//! and the budget of calls per minute of each endpoint.

use super::secrets::SecretSource;
use super::{ConfigError, duration, invalid};
use reqwest::Url;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wemeet_api::Secret;

/// Environment variables that override the file (systemd units and CI prefer them to files).
pub const ENV_SECRET_ID: &str = "WEMEET_SECRET_ID";
pub const ENV_SECRET_KEY: &str = "WEMEET_SECRET_KEY";
/// The file name looked up in `$CREDENTIALS_DIRECTORY` for the SecretKey.
pub const CREDENTIAL_SECRET_KEY: &str = "wemeet-secret-key";

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

/// Required keys (`app_id`, `operator_id`) default to empty and are refused, by name, by
/// validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawApi {
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

pub(super) fn validate_api(
    raw: RawApi,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ApiConfig, ConfigError> {
    let base_url = base_url(&raw.base_url)?;
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
    check_operator(&raw.operator_id, raw.operator_id_type)?;
    if !(0..=2).contains(&raw.record_type) {
        return Err(invalid(
            "api.record_type",
            format!(
                "is {}; use 0 (all), 1 (cloud recordings) or 2 (uploaded)",
                raw.record_type
            ),
        ));
    }
    check_budgets(
        raw.requests_per_minute,
        raw.addresses_per_minute,
        raw.deletes_per_minute,
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

fn base_url(text: &str) -> Result<Url, ConfigError> {
    let base_url = Url::parse(text).map_err(|e| {
        invalid(
            "api.base_url",
            format!("`{text}` is not a URL ({e}); use e.g. \"https://api.meeting.qq.com\""),
        )
    })?;
    if !matches!(base_url.scheme(), "http" | "https") || base_url.host().is_none() {
        return Err(invalid(
            "api.base_url",
            "must be an http(s) URL with a host, e.g. \"https://api.meeting.qq.com\"",
        ));
    }
    Ok(base_url)
}

/// The admin the recording calls are made as: a userid (the only type those calls accept).
fn check_operator(operator_id: &str, operator_id_type: i64) -> Result<(), ConfigError> {
    if operator_id.trim().is_empty() {
        return Err(invalid(
            "api.operator_id",
            "is empty: set the userid of an admin allowed to manage recordings",
        ));
    }
    if operator_id_type != 1 {
        return Err(invalid(
            "api.operator_id_type",
            format!("is {operator_id_type}; the recordings API only accepts 1 (userid)"),
        ));
    }
    Ok(())
}

/// The budget of each endpoint: the listing's, the addresses', the deletions'.
fn check_budgets(requests: i64, addresses: i64, deletes: i64) -> Result<(), ConfigError> {
    budget(
        "api.requests_per_minute",
        requests,
        "the API allows 10 for this endpoint",
        (10, "the documented limit of 10"),
    )?;
    let account_level = (100, "Tencent's 100 per minute for account-level endpoints");
    budget(
        "api.addresses_per_minute",
        addresses,
        "default 50; Tencent limits account-level endpoints to 100 per minute",
        account_level,
    )?;
    budget(
        "api.deletes_per_minute",
        deletes,
        "default 20; Tencent limits account-level endpoints to 100 per minute",
        account_level,
    )
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
