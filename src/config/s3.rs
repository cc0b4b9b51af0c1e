//! The `[storage.s3]` table: bucket, endpoint, part sizes, and where credentials come from.
//!
//! Credentials follow the AWS tools' own order (environment, then a credentials file), so an
//! admin's existing setup works unchanged; keys written in the TOML are accepted only with a
//! warning, since config files get copied around.

use super::{ConfigError, invalid, timeout};
#[cfg(test)]
use crate::archive::s3::{LockMode, ObjectLockPolicy};
pub use crate::archive::s3::{S3_MAX_PART_SIZE, S3_MIN_PART_SIZE, S3Config, S3Credentials};
use reqwest::Url;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use wemeet_api::Secret;

/// Environment variables and files the S3 credentials come from, as every AWS tool reads
/// them (so an admin's existing setup works unchanged).
pub const ENV_AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const ENV_AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
pub const ENV_AWS_SHARED_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
pub const ENV_AWS_PROFILE: &str = "AWS_PROFILE";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawS3 {
    bucket: String,
    endpoint: String,
    region: String,
    prefix: String,
    path_style: Option<bool>,
    allow_http: bool,
    part_size: i64,
    max_parts_in_flight: i64,
    part_checksums: bool,
    timeout: String,
    /// Accepted (with a warning) for admins who insist; the environment or a credentials
    /// file keep the secret out of a file that gets copied around.
    access_key_id: String,
    secret_access_key: Secret,
}

impl Default for RawS3 {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            endpoint: String::new(),
            region: "us-east-1".into(),
            prefix: String::new(),
            path_style: None,
            allow_http: false,
            part_size: 64 * 1024 * 1024,
            max_parts_in_flight: 2,
            part_checksums: true,
            timeout: "10m".into(),
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
        }
    }
}

pub(super) fn validate_s3(
    raw: RawS3,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<S3Config, ConfigError> {
    let bucket = bucket(&raw.bucket)?;
    let endpoint = endpoint(raw.endpoint.trim(), raw.allow_http)?;
    let region = raw.region.trim().to_string();
    if region.is_empty() {
        return Err(invalid(
            "storage.s3.region",
            "is empty: e.g. \"us-east-1\" (MinIO's default) or \"ap-guangzhou\" (COS)",
        ));
    }
    let prefix = prefix(&raw.prefix)?;
    check_parts(raw.part_size, raw.max_parts_in_flight)?;
    let timeout = timeout("storage.s3.timeout", &raw.timeout, "10m")?;
    Ok(S3Config {
        path_style: raw.path_style.unwrap_or(endpoint.is_some()),
        bucket,
        endpoint,
        region,
        prefix,
        allow_http: raw.allow_http,
        part_size: raw.part_size as u64,
        max_parts_in_flight: raw.max_parts_in_flight as usize,
        part_checksums: raw.part_checksums,
        timeout,
        credentials: resolve_s3_credentials(raw.access_key_id, raw.secret_access_key, env)?,
        // Set from `[retention]` once both tables are read.
        object_lock: None,
    })
}

fn bucket(text: &str) -> Result<String, ConfigError> {
    let bucket = text.trim().to_string();
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !bucket_ok {
        return Err(invalid(
            "storage.s3.bucket",
            format!(
                "`{bucket}` is not a bucket name: 3 to 63 letters, digits, `.`, `-` (Tencent COS: \
                 \"name-appid\")"
            ),
        ));
    }
    Ok(bucket)
}

/// `None` (empty): AWS itself. Plain http only when the admin said the network is trusted.
fn endpoint(text: &str, allow_http: bool) -> Result<Option<Url>, ConfigError> {
    if text.is_empty() {
        return Ok(None);
    }
    let url = Url::parse(text).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.query().is_none()
    });
    let Some(url) = url else {
        return Err(invalid(
            "storage.s3.endpoint",
            format!(
                "`{text}` is not an http(s) URL with a host, e.g. \
                 \"https://cos.ap-guangzhou.myqcloud.com\" or \"http://127.0.0.1:9000\""
            ),
        ));
    };
    if url.scheme() == "http" && !allow_http {
        return Err(invalid(
            "storage.s3.endpoint",
            format!(
                "`{text}` is plain http, which sends recordings unencrypted: use https, or \
                 set storage.s3.allow_http = true (a bucket on a trusted network)"
            ),
        ));
    }
    Ok(Some(url))
}

/// The prefix without empty segments (`/a//b/` is `a/b`); `.` and `..` are refused.
fn prefix(text: &str) -> Result<String, ConfigError> {
    let mut segments = Vec::new();
    for segment in text.split('/').filter(|s| !s.is_empty()) {
        if matches!(segment, "." | "..") || segment.chars().any(char::is_control) {
            return Err(invalid(
                "storage.s3.prefix",
                format!("`{text}` must be plain folder names separated by `/`, e.g. \"wemeet\""),
            ));
        }
        segments.push(segment);
    }
    Ok(segments.join("/"))
}

/// A part within S3's limits, and a bound on the memory each transfer holds.
fn check_parts(part_size: i64, max_parts_in_flight: i64) -> Result<(), ConfigError> {
    if !(S3_MIN_PART_SIZE as i64..=S3_MAX_PART_SIZE as i64).contains(&part_size) {
        return Err(invalid(
            "storage.s3.part_size",
            format!(
                "is {part_size}; use a size from {S3_MIN_PART_SIZE} (5 MiB, S3's minimum) to \
                 {S3_MAX_PART_SIZE} (5 GiB, S3's maximum)"
            ),
        ));
    }
    if !(1..=16).contains(&max_parts_in_flight) {
        return Err(invalid(
            "storage.s3.max_parts_in_flight",
            format!(
                "is {max_parts_in_flight}; use a number from 1 to 16 (memory per transfer is \
                 part_size times this)"
            ),
        ));
    }
    Ok(())
}

/// Precedence: the `AWS_*` environment, then the keys in the config file (with a warning),
/// then the shared credentials file (`$AWS_SHARED_CREDENTIALS_FILE` or
/// `~/.aws/credentials`, profile `$AWS_PROFILE` or `default`). Read once at start: new
/// credentials take effect at the next start.
fn resolve_s3_credentials(
    inline_key_id: String,
    inline_secret: Secret,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<S3Credentials, ConfigError> {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if let Some(credentials) = from_environment(&var)? {
        return Ok(credentials);
    }
    if let Some(credentials) = inline(inline_key_id, inline_secret)? {
        return Ok(credentials);
    }
    from_credentials_file(&var)
}

/// `$AWS_ACCESS_KEY_ID` and `$AWS_SECRET_ACCESS_KEY`: both or neither.
fn from_environment(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<S3Credentials>, ConfigError> {
    match (var(ENV_AWS_ACCESS_KEY_ID), var(ENV_AWS_SECRET_ACCESS_KEY)) {
        (Some(id), Some(secret)) => Ok(Some(S3Credentials {
            access_key_id: Secret::new(id),
            secret_access_key: Secret::new(secret),
            session_token: var(ENV_AWS_SESSION_TOKEN).map(Secret::new),
        })),
        (None, None) => Ok(None),
        _ => Err(invalid(
            "storage.s3",
            format!(
                "only one of ${ENV_AWS_ACCESS_KEY_ID} and ${ENV_AWS_SECRET_ACCESS_KEY} is \
                 set; set both, or neither"
            ),
        )),
    }
}

/// The keys written in the config file: both or neither, and a warning when both.
fn inline(key_id: String, secret: Secret) -> Result<Option<S3Credentials>, ConfigError> {
    match (key_id.trim().is_empty(), secret.is_empty()) {
        (false, false) => {
            tracing::warn!(
                "storage.s3.secret_access_key is written in the config file; prefer \
                 ${ENV_AWS_ACCESS_KEY_ID}/${ENV_AWS_SECRET_ACCESS_KEY} or a credentials file"
            );
            Ok(Some(S3Credentials {
                access_key_id: Secret::new(key_id.trim()),
                secret_access_key: secret,
                session_token: None,
            }))
        }
        (false, true) => Err(invalid(
            "storage.s3.secret_access_key",
            "is missing while storage.s3.access_key_id is set; set both, or (better) neither \
             and use the AWS_* environment or a credentials file",
        )),
        (true, false) => Err(invalid(
            "storage.s3.access_key_id",
            "is missing while storage.s3.secret_access_key is set; set both, or (better) \
             neither and use the AWS_* environment or a credentials file",
        )),
        (true, true) => Ok(None),
    }
}

/// The profile `$AWS_PROFILE` (or `default`) of `$AWS_SHARED_CREDENTIALS_FILE` (or
/// `~/.aws/credentials`); a missing default file means no credentials at all, a missing
/// named one is an error of its own.
fn from_credentials_file(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<S3Credentials, ConfigError> {
    let explicit = var(ENV_AWS_SHARED_CREDENTIALS_FILE).map(PathBuf::from);
    let file = explicit
        .clone()
        .or_else(|| var("HOME").map(|home| Path::new(&home).join(".aws/credentials")));
    let profile = var(ENV_AWS_PROFILE).unwrap_or_else(|| "default".into());
    let no_credentials = || {
        invalid(
            "storage.s3",
            format!(
                "no S3 credentials: set ${ENV_AWS_ACCESS_KEY_ID} and \
                 ${ENV_AWS_SECRET_ACCESS_KEY}, or give profile `{profile}` in a credentials \
                 file (${ENV_AWS_SHARED_CREDENTIALS_FILE} or ~/.aws/credentials)"
            ),
        )
    };
    let Some(file) = file else {
        return Err(no_credentials());
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return Err(no_credentials());
        }
        Err(e) => {
            return Err(invalid(
                "storage.s3",
                format!("cannot read the credentials file {}: {e}", file.display()),
            ));
        }
    };
    credentials_file_profile(&text, &profile).ok_or_else(|| {
        invalid(
            "storage.s3",
            format!(
                "the credentials file {} has no profile `{profile}` with aws_access_key_id and \
                 aws_secret_access_key",
                file.display()
            ),
        )
    })
}

/// The keys of `profile` in an AWS shared credentials file (an INI file, read as the AWS
/// tools read it: keys case-insensitive, `#` and `;` comments).
fn credentials_file_profile(text: &str, profile: &str) -> Option<S3Credentials> {
    let ini = ini::Ini::load_from_str_opt(
        text,
        ini::ParseOption {
            enabled_quote: false,
            enabled_escape: false,
            ..ini::ParseOption::default()
        },
    )
    .ok()?;
    let section = ini.section(Some(profile))?;
    let value = |key: &str| {
        section
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    Some(S3Credentials {
        access_key_id: Secret::new(value("aws_access_key_id")?),
        secret_access_key: Secret::new(value("aws_secret_access_key")?),
        session_token: value("aws_session_token").map(Secret::new),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{GOOD, key_of, parse};
    use super::super::*;
    use super::*;
    use std::time::Duration;

    /// `GOOD` on the S3 backend, with `s3` as the `[storage.s3]` table.
    fn s3_config(s3: &str) -> String {
        GOOD.replace(
            "[storage]\npath = \"archive\"",
            &format!("[storage]\nbackend = \"s3\"\n[storage.s3]\n{s3}"),
        )
    }

    fn aws_env(name: &str) -> Option<String> {
        match name {
            ENV_AWS_ACCESS_KEY_ID => Some("AKIAENV".into()),
            ENV_AWS_SECRET_ACCESS_KEY => Some("env-secret".into()),
            _ => None,
        }
    }

    fn parse_s3(s3: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::parse(&s3_config(s3), Path::new("/etc/wa/config.toml"), env)
    }

    #[test]
    fn retention_mode_locks_the_buckets_objects_and_needs_keep_and_checksums() {
        let with = |s3: &str, retention: &str| {
            Config::parse(
                &format!("{}\n[retention]\n{retention}\n", s3_config(s3)),
                Path::new("/etc/wa/config.toml"),
                &aws_env,
            )
        };
        let c = with("bucket = \"b-1\"", "keep = \"6y\"\nmode = \"compliance\"").unwrap();
        assert_eq!(
            c.storage.s3.unwrap().object_lock,
            Some(ObjectLockPolicy {
                mode: LockMode::Compliance,
                keep: Duration::from_secs(6 * 31_557_600),
            })
        );
        let none = with("bucket = \"b-1\"", "keep = \"6y\"").unwrap();
        assert_eq!(none.storage.s3.unwrap().object_lock, None);
        for (s3, retention, key) in [
            (
                "bucket = \"b-1\"",
                "mode = \"governance\"",
                "retention.mode",
            ),
            (
                "bucket = \"b-1\"",
                "keep = \"6y\"\nmode = \"legal\"",
                "retention.mode",
            ),
            (
                "bucket = \"b-1\"\npart_checksums = false",
                "keep = \"6y\"\nmode = \"governance\"",
                "storage.s3.part_checksums",
            ),
        ] {
            assert_eq!(key_of(with(s3, retention).unwrap_err()), key, "{retention}");
        }
        // On local disk nothing can be locked.
        let local = parse(&GOOD.replace(
            "[database]",
            "[retention]\nkeep = \"6y\"\nmode = \"compliance\"\n[database]",
        ))
        .unwrap_err();
        assert_eq!(key_of(local), "retention.mode");
    }

    #[test]
    fn s3_backend_gets_documented_defaults() {
        let c = parse_s3("bucket = \"recordings\"", &aws_env).unwrap();
        let s3 = c.storage.s3.unwrap();
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.endpoint, None);
        assert!(!s3.path_style, "AWS itself is virtual-hosted");
        assert!(!s3.allow_http && s3.part_checksums);
        assert_eq!(
            (s3.part_size, s3.max_parts_in_flight),
            (64 * 1024 * 1024, 2)
        );
        assert_eq!(s3.timeout, Duration::from_secs(600));
        assert_eq!(s3.prefix, "");
        assert_eq!(s3.credentials.access_key_id.expose(), "AKIAENV");
        assert_eq!(c.storage.timezone, chrono_tz::Asia::Shanghai);

        let c = parse_s3(
            "bucket = \"recordings\"\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n\
             prefix = \"/a//b/\"",
            &aws_env,
        )
        .unwrap();
        let s3 = c.storage.s3.unwrap();
        assert!(s3.path_style, "custom endpoints default to path style");
        assert_eq!(s3.prefix, "a/b");
    }

    #[test]
    fn s3_credentials_come_from_the_environment_the_file_or_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\n\
             # archive profile\n[archive]\naws_access_key_id=AKIAARCHIVE\n\
             aws_secret_access_key=s2\naws_session_token = tok\n",
        )
        .unwrap();
        let file = file.to_str().unwrap().to_string();
        let with_file = |profile: Option<&'static str>| {
            let file = file.clone();
            move |name: &str| match name {
                ENV_AWS_SHARED_CREDENTIALS_FILE => Some(file.clone()),
                ENV_AWS_PROFILE => profile.map(String::from),
                _ => None,
            }
        };
        let creds = |c: Config| c.storage.s3.unwrap().credentials;

        let c = creds(parse_s3("bucket = \"b-1\"", &with_file(None)).unwrap());
        assert_eq!(
            (c.access_key_id.expose(), c.secret_access_key.expose()),
            ("AKIADEFAULT", "s1")
        );
        assert!(c.session_token.is_none());
        let c = creds(parse_s3("bucket = \"b-1\"", &with_file(Some("archive"))).unwrap());
        assert_eq!(c.access_key_id.expose(), "AKIAARCHIVE");
        assert_eq!(c.session_token.unwrap().expose(), "tok");
        let err = parse_s3("bucket = \"b-1\"", &with_file(Some("nope"))).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");

        // The environment wins over the file and the config; the config over the file.
        let inline = "bucket = \"b-1\"\naccess_key_id = \"AKIAINLINE\"\nsecret_access_key = \"s3\"";
        assert_eq!(
            creds(parse_s3(inline, &aws_env).unwrap())
                .access_key_id
                .expose(),
            "AKIAENV"
        );
        assert_eq!(
            creds(parse_s3(inline, &with_file(None)).unwrap())
                .access_key_id
                .expose(),
            "AKIAINLINE"
        );

        let err = parse_s3("bucket = \"b-1\"", &|name| {
            (name == "HOME").then(|| "/nonexistent".into())
        })
        .unwrap_err();
        assert_eq!(key_of(err), "storage.s3");
        let half = "bucket = \"b-1\"\naccess_key_id = \"AKIAINLINE\"";
        assert_eq!(
            key_of(parse_s3(half, &|_| None).unwrap_err()),
            "storage.s3.secret_access_key"
        );
        let c = parse_s3(inline, &|_| None).unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("AKIAINLINE") && !debug.contains("\"s3\""),
            "{debug}"
        );
    }

    #[test]
    fn impossible_s3_values_are_named() {
        let cases = [
            ("bucket = \"\"", "storage.s3.bucket"),
            ("bucket = \"a/b\"", "storage.s3.bucket"),
            (
                "bucket = \"b-1\"\nendpoint = \"minio:9000\"",
                "storage.s3.endpoint",
            ),
            (
                "bucket = \"b-1\"\nendpoint = \"http://10.0.0.1:9000\"",
                "storage.s3.endpoint",
            ),
            ("bucket = \"b-1\"\nregion = \"\"", "storage.s3.region"),
            ("bucket = \"b-1\"\nprefix = \"a/../b\"", "storage.s3.prefix"),
            (
                "bucket = \"b-1\"\npart_size = 1048576",
                "storage.s3.part_size",
            ),
            (
                "bucket = \"b-1\"\npart_size = 10737418240",
                "storage.s3.part_size",
            ),
            (
                "bucket = \"b-1\"\nmax_parts_in_flight = 0",
                "storage.s3.max_parts_in_flight",
            ),
            (
                "bucket = \"b-1\"\ntimeout = \"never\"",
                "storage.s3.timeout",
            ),
        ];
        for (s3, key) in cases {
            assert_eq!(key_of(parse_s3(s3, &aws_env).unwrap_err()), key, "{s3}");
        }
        let err = parse_s3("bucket = \"b-1\"\nbukket = \"x\"", &aws_env).unwrap_err();
        assert!(err.to_string().contains("bukket"), "{err}");
        // The backend and its table must agree.
        let no_table = GOOD.replace("path = \"archive\"", "backend = \"s3\"");
        assert_eq!(key_of(parse(&no_table).unwrap_err()), "storage.s3");
        let both = s3_config("bucket = \"b-1\"")
            .replace("backend = \"s3\"", "backend = \"s3\"\npath = \"x\"");
        assert_eq!(
            key_of(Config::parse(&both, Path::new("c.toml"), &aws_env).unwrap_err()),
            "storage.path"
        );
        let local_with_table =
            s3_config("bucket = \"b-1\"").replace("backend = \"s3\"", "path = \"x\"");
        assert_eq!(
            key_of(Config::parse(&local_with_table, Path::new("c.toml"), &aws_env).unwrap_err()),
            "storage.s3"
        );
        let no_path = GOOD.replace("path = \"archive\"", "");
        assert_eq!(key_of(parse(&no_path).unwrap_err()), "storage.path");
    }

    #[test]
    fn the_example_s3_table_is_valid_once_uncommented() {
        let text = include_str!("../../config/wemeet-archiver.example.toml")
            .lines()
            .filter(|l| !l.starts_with("path = \"/var/lib/wemeet-archiver/recordings\""))
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.starts_with([' ', '#']) && !rest.is_empty() => rest,
                _ => l,
            })
            .map(|l| {
                if l.starts_with("backend = \"local\"") {
                    "backend = \"s3\""
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(
            &text,
            Path::new("/etc/wa/config.toml"),
            &|name| match name {
                ENV_SECRET_KEY | ENV_SECRET_ID => Some("from-env".into()),
                other => aws_env(other),
            },
        )
        .unwrap();
        let s3 = c
            .storage
            .s3
            .expect("the example's [storage.s3] table is read");
        let defaults = parse_s3("bucket = \"b-1\"\nendpoint = \"https://x\"", &aws_env)
            .unwrap()
            .storage
            .s3
            .unwrap();
        assert_eq!(s3.bucket, "meeting-recordings");
        assert_eq!(s3.path_style, defaults.path_style);
        assert_eq!(s3.part_size, defaults.part_size);
        assert_eq!(s3.max_parts_in_flight, defaults.max_parts_in_flight);
        assert_eq!(s3.timeout, defaults.timeout);
        assert_eq!(s3.region, defaults.region);
        assert_eq!(s3.part_checksums, defaults.part_checksums);
    }
}
