//! S3 Object Lock on single objects: retention and legal holds, which `object_store` cannot
//! set (its `Attribute` has no lock fields and `PutOptions.extensions` are ignored).
//!
//! A handful of raw S3 calls (`?object-lock`, `?retention`, `?legal-hold`, and a HEAD
//! that reports an object's lock), signed with
//! SigV4 by the `aws-sigv4` crate and sent with reqwest, rather than the whole AWS SDK:
//! these five requests are all the archive needs.

use super::S3Config;
use crate::time::UnixMs;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256};
use std::time::SystemTime;

/// What S3 Object Lock retention promises, as S3 spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` can still shorten or remove it.
    Governance,
    /// Nobody, the root account included, can shorten or remove it before its date.
    Compliance,
}

impl LockMode {
    fn as_s3(self) -> &'static str {
        match self {
            Self::Governance => "GOVERNANCE",
            Self::Compliance => "COMPLIANCE",
        }
    }

    fn from_s3(text: &str) -> Option<Self> {
        match text {
            "GOVERNANCE" => Some(Self::Governance),
            "COMPLIANCE" => Some(Self::Compliance),
            _ => None,
        }
    }
}

impl std::fmt::Display for LockMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Governance => "governance",
            Self::Compliance => "compliance",
        })
    }
}

/// An object version's retention, as `GetObjectRetention` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    pub until: UnixMs,
}

/// What locks the current version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockState {
    pub retention: Option<Retention>,
    pub legal_hold: bool,
    /// The version's id (a bucket with Object Lock is versioned).
    pub version_id: Option<String>,
}

/// A lock request the bucket refused, or that did not reach it.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("S3 {action} `{key}`: cannot reach the bucket")]
    Http {
        action: &'static str,
        key: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("S3 {action} `{key}`: HTTP {status}: {body}")]
    Refused {
        action: &'static str,
        key: String,
        status: StatusCode,
        body: String,
    },
    #[error("S3 {action} `{key}`: cannot sign the request: {reason}")]
    Sign {
        action: &'static str,
        key: String,
        reason: String,
    },
    #[error("S3 {action} `{key}`: unexpected answer: {body}")]
    Malformed {
        action: &'static str,
        key: String,
        body: String,
    },
}

/// Everything but S3's unreserved characters is escaped in a key segment, as SigV4's
/// canonical URI wants it.
const KEY_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const S3_XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Signs and sends the Object Lock requests of one bucket.
pub struct LockClient {
    http: reqwest::Client,
    config: S3Config,
}

/// Hand-written: the configuration holds the credentials.
impl std::fmt::Debug for LockClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockClient")
            .field("bucket", &self.config.bucket)
            .finish_non_exhaustive()
    }
}

impl LockClient {
    pub fn new(config: &S3Config) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .https_only(!config.allow_http)
            .build()?;
        Ok(Self {
            http,
            config: config.clone(),
        })
    }

    /// Whether the bucket has Object Lock enabled (`GetObjectLockConfiguration`). A bucket
    /// created without it answers 404 `ObjectLockConfigurationNotFoundError`.
    pub async fn lock_enabled(&self) -> Result<bool, LockError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Configuration {
            object_lock_enabled: Option<String>,
        }
        const ACTION: &str = "GetObjectLockConfiguration on";
        let answer = self
            .send(ACTION, Method::GET, None, "object-lock", None, Vec::new())
            .await?;
        match answer {
            LockReply::Ok(body) => {
                let parsed: Configuration = parse(ACTION, &self.config.bucket, &body)?;
                Ok(parsed.object_lock_enabled.as_deref() == Some("Enabled"))
            }
            LockReply::Refused(status, body)
                if status == StatusCode::NOT_FOUND
                    && body.contains("ObjectLockConfigurationNotFound") =>
            {
                Ok(false)
            }
            LockReply::Refused(status, body) => Err(LockError::Refused {
                action: ACTION,
                key: self.config.bucket.clone(),
                status,
                body,
            }),
        }
    }

    /// Puts the current version of `key` under retention in `mode` until `until`
    /// (`PutObjectRetention`).
    pub async fn put_retention(
        &self,
        key: &str,
        mode: LockMode,
        until: UnixMs,
    ) -> Result<(), LockError> {
        let body = format!(
            "<Retention xmlns=\"{S3_XMLNS}\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            mode.as_s3(),
            s3_date(until),
        );
        self.expect_ok(
            "PutObjectRetention on",
            Method::PUT,
            key,
            "retention",
            None,
            body,
        )
        .await
        .map(drop)
    }

    /// Sets (`on`) or lifts the legal hold of the current version of `key`
    /// (`PutObjectLegalHold`).
    pub async fn put_legal_hold(&self, key: &str, on: bool) -> Result<(), LockError> {
        let body = format!(
            "<LegalHold xmlns=\"{S3_XMLNS}\"><Status>{}</Status></LegalHold>",
            if on { "ON" } else { "OFF" }
        );
        self.expect_ok(
            "PutObjectLegalHold on",
            Method::PUT,
            key,
            "legal-hold",
            None,
            body,
        )
        .await
        .map(drop)
    }

    /// Creates the bucket, with Object Lock enabled when `object_lock` (which S3 allows
    /// only at creation). For setting up a bucket (and the tests' servers).
    pub async fn create_bucket(&self, object_lock: bool) -> Result<(), LockError> {
        let mut request = self.request(Method::PUT, None, "", None)?;
        if object_lock {
            request
                .headers
                .push(("x-amz-bucket-object-lock-enabled", "true".into()));
        }
        match self.execute("CreateBucket", request, Vec::new()).await? {
            LockReply::Ok(_) => Ok(()),
            LockReply::Refused(status, body) => Err(LockError::Refused {
                action: "CreateBucket",
                key: self.config.bucket.clone(),
                status,
                body,
            }),
        }
    }

    /// Deletes one version of `key` (`DeleteObject?versionId=`): what Object Lock forbids
    /// before the retention date. For the tests that show the bucket refuses it.
    pub async fn delete_version(&self, key: &str, version: &str) -> Result<(), LockError> {
        let request = self.request(Method::DELETE, Some(key), "", Some(version))?;
        match self.execute("DeleteObject", request, Vec::new()).await? {
            LockReply::Ok(_) => Ok(()),
            LockReply::Refused(status, body) => Err(LockError::Refused {
                action: "DeleteObject",
                key: key.into(),
                status,
                body,
            }),
        }
    }

    /// The lock of the current version of `key`, as its `HeadObject` reports it (S3 and
    /// moto both answer there; moto has no `GetObjectRetention`).
    pub async fn lock_state(&self, key: &str) -> Result<LockState, LockError> {
        const ACTION: &str = "HeadObject";
        let request = self.request(Method::HEAD, Some(key), "", None)?;
        let builder = self
            .signed(request, Vec::new())
            .map_err(|reason| LockError::Sign {
                action: ACTION,
                key: key.into(),
                reason,
            })?;
        let response = builder.send().await.map_err(|source| LockError::Http {
            action: ACTION,
            key: key.into(),
            source,
        })?;
        if !response.status().is_success() {
            return Err(LockError::Refused {
                action: ACTION,
                key: key.into(),
                status: response.status(),
                body: String::new(),
            });
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let malformed = |body: String| LockError::Malformed {
            action: ACTION,
            key: key.into(),
            body,
        };
        let retention = match (
            header("x-amz-object-lock-mode"),
            header("x-amz-object-lock-retain-until-date"),
        ) {
            (Some(mode), Some(until)) => Some(Retention {
                mode: LockMode::from_s3(&mode).ok_or_else(|| malformed(mode.clone()))?,
                until: chrono::DateTime::parse_from_rfc3339(&until)
                    .map(|t| UnixMs(t.timestamp_millis()))
                    .map_err(|_| malformed(until.clone()))?,
            }),
            _ => None,
        };
        Ok(LockState {
            retention,
            legal_hold: header("x-amz-object-lock-legal-hold").as_deref() == Some("ON"),
            version_id: header("x-amz-version-id"),
        })
    }

    async fn expect_ok(
        &self,
        action: &'static str,
        method: Method,
        key: &str,
        sub: &str,
        version: Option<&str>,
        body: String,
    ) -> Result<Bytes, LockError> {
        match self
            .send(action, method, Some(key), sub, version, body.into_bytes())
            .await?
        {
            LockReply::Ok(body) => Ok(body),
            LockReply::Refused(status, body) => Err(LockError::Refused {
                action,
                key: key.into(),
                status,
                body,
            }),
        }
    }

    async fn send(
        &self,
        action: &'static str,
        method: Method,
        key: Option<&str>,
        sub: &str,
        version: Option<&str>,
        body: Vec<u8>,
    ) -> Result<LockReply, LockError> {
        let mut request = self.request(method, key, sub, version)?;
        if !body.is_empty() {
            // Object Lock requests must carry an integrity header (Content-MD5 or a
            // checksum).
            let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
            request
                .headers
                .push(("x-amz-sdk-checksum-algorithm", "SHA256".into()));
            request.headers.push(("x-amz-checksum-sha256", sha256));
        }
        self.execute(action, request, body).await
    }

    /// The URL of `key` (or of the bucket), with the subresource `sub` and a version.
    fn request(
        &self,
        method: Method,
        key: Option<&str>,
        sub: &str,
        version: Option<&str>,
    ) -> Result<Raw, LockError> {
        let config = &self.config;
        let (base, in_host) = match &config.endpoint {
            Some(endpoint) => (endpoint.clone(), !config.path_style),
            None => (
                Url::parse(&format!("https://s3.{}.amazonaws.com", config.region))
                    .expect("a region name makes a valid host"),
                !config.path_style,
            ),
        };
        let mut url = base;
        // Virtual-hosted style: the bucket in the host, as object_store puts it there.
        if in_host
            && let Some(host) = url.host_str().map(str::to_string)
            && !host.starts_with(&format!("{}.", config.bucket))
        {
            let _ = url.set_host(Some(&format!("{}.{host}", config.bucket)));
        }
        let mut path = url.path().trim_end_matches('/').to_string();
        if !in_host {
            path.push('/');
            path.push_str(&config.bucket);
        }
        if let Some(key) = key {
            for segment in key.split('/') {
                path.push('/');
                path.extend(utf8_percent_encode(segment, KEY_SEGMENT));
            }
        } else if in_host {
            path.push('/');
        }
        url.set_path(&path);
        let mut query = sub.to_string();
        if let Some(version) = version {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str("versionId=");
            query.extend(utf8_percent_encode(version, KEY_SEGMENT));
        }
        url.set_query((!query.is_empty()).then_some(query.as_str()));
        Ok(Raw {
            method,
            url,
            headers: Vec::new(),
        })
    }

    async fn execute(
        &self,
        action: &'static str,
        request: Raw,
        body: Vec<u8>,
    ) -> Result<LockReply, LockError> {
        let key = request.url.path().to_string();
        let builder = self
            .signed(request, body)
            .map_err(|reason| LockError::Sign {
                action,
                key: key.clone(),
                reason,
            })?;
        let response = builder.send().await.map_err(|source| LockError::Http {
            action,
            key: key.clone(),
            source,
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|source| LockError::Http {
            action,
            key,
            source,
        })?;
        Ok(if status.is_success() {
            LockReply::Ok(bytes)
        } else {
            LockReply::Refused(status, excerpt(&bytes))
        })
    }

    /// The request, signed (SigV4, as S3 wants it: the payload's SHA-256 in
    /// `x-amz-content-sha256`, the path neither normalized nor encoded twice).
    fn signed(&self, request: Raw, body: Vec<u8>) -> Result<reqwest::RequestBuilder, String> {
        let credentials = &self.config.credentials;
        let identity: Identity = Credentials::new(
            credentials.access_key_id.expose(),
            credentials.secret_access_key.expose(),
            credentials
                .session_token
                .as_ref()
                .map(|t| t.expose().to_string()),
            None,
            "wemeet-archiver",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let signable = SignableRequest::new(
            request.method.as_str(),
            request.url.as_str(),
            request.headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        let mut builder = self.http.request(request.method, request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        for (name, value) in instructions.headers() {
            builder = builder.header(name, value);
        }
        Ok(builder.body(body))
    }
}

/// A request before signing.
struct Raw {
    method: Method,
    url: Url,
    headers: Vec<(&'static str, String)>,
}

enum LockReply {
    Ok(Bytes),
    Refused(StatusCode, String),
}

/// The start of an answer, for an error message (S3's error documents are short; an
/// answer that is not one is not printed whole).
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    text.chars().filter(|c| !c.is_control()).collect()
}

fn parse<T: serde::de::DeserializeOwned>(
    action: &'static str,
    key: &str,
    body: &[u8],
) -> Result<T, LockError> {
    let text = String::from_utf8_lossy(body);
    quick_xml::de::from_str(&text).map_err(|_| LockError::Malformed {
        action,
        key: key.into(),
        body: excerpt(body),
    })
}

/// `until` in S3's date format, rounded up to the whole second so that the date S3 keeps
/// is never before `until`.
fn s3_date(until: UnixMs) -> String {
    let secs = until.as_secs() + i64::from(until.as_millis().rem_euclid(1000) != 0);
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_until_dates_round_up_to_the_second() {
        assert_eq!(s3_date(UnixMs(1_000)), "1970-01-01T00:00:01Z");
        assert_eq!(s3_date(UnixMs(1_001)), "1970-01-01T00:00:02Z");
    }
}
