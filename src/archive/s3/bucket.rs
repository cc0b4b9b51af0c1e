//! The bucket's client, through `object_store`'s low-level multipart API.
//!
//! The low-level `MultipartStore` calls (`create_multipart`, `put_part`,
//! `complete_multipart`, `abort_multipart`) are used rather than `put_multipart`'s writer
//! because only they expose the upload id and each part's id: persisted, they let a
//! restarted process continue the same upload instead of sending the recording again.
//! Keys have the layout of the local archive (`storage::layout`) under `prefix`.

use super::{LockClient, ObjectLockPolicy, S3Config};
use crate::archive::{ArchiveError, layout};
use crate::time::UnixMs;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, AttributeValue, Attributes, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload,
};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// The user metadata key of the whole file's SHA-256 (`x-amz-meta-sha256`).
pub const SHA256_METADATA: &str = "sha256";

/// A bucket (and key prefix) recordings are uploaded to.
pub struct S3Bucket {
    store: AmazonS3,
    config: S3Config,
    options: ClientOptions,
    /// With `retention.mode`: the client of the Object Lock calls object_store lacks.
    lock: Option<(LockClient, ObjectLockPolicy)>,
}

/// Hand-written: the client's own `Debug` would print its configuration, credentials
/// included.
impl std::fmt::Debug for S3Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Bucket")
            .field("bucket", &self.config.bucket)
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

/// What a HEAD of an object says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// The `sha256` user metadata, when the object has it.
    pub sha256: Option<String>,
    /// The bucket's ETag of the object: it changes when the object is written again.
    pub etag: Option<String>,
}

/// `Content-Type` of an archived object, from its name.
pub fn content_type_of(relative: &str) -> &'static str {
    if relative.ends_with(".json") {
        "application/json"
    } else if relative.ends_with(".mp4") {
        "video/mp4"
    } else {
        "application/octet-stream"
    }
}

impl S3Bucket {
    pub fn new(config: &S3Config) -> Result<Self, ArchiveError> {
        let options = ClientOptions::new()
            .with_allow_http(config.allow_http)
            .with_connect_timeout(Duration::from_secs(30))
            // A whole part travels in one request: the default 30 s would cut a 64 MiB part
            // on a slow uplink.
            .with_timeout(config.timeout);
        let store = builder(config, options.clone())
            .build()
            .map_err(ArchiveError::Client)?;
        let lock = match config.object_lock {
            Some(policy) => Some((
                LockClient::new(config).map_err(ArchiveError::LockClient)?,
                policy,
            )),
            None => None,
        };
        Ok(Self {
            store,
            config: config.clone(),
            options,
            lock,
        })
    }

    /// With `retention.mode`: refuses a bucket without Object Lock (no object could be
    /// retained there).
    pub async fn require_object_lock(&self) -> Result<(), ArchiveError> {
        let Some((client, policy)) = &self.lock else {
            return Ok(());
        };
        if client.lock_enabled().await? {
            Ok(())
        } else {
            Err(ArchiveError::ObjectLockDisabled {
                bucket: self.config.bucket.clone(),
                mode: policy.mode,
            })
        }
    }

    /// With `retention.mode`: retains the current version of `key` in that mode until
    /// `from` + `retention.keep`. Right after the object is complete, so that no moment
    /// passes in which it could be deleted once archived.
    pub async fn retain(&self, key: &ObjectPath, from: UnixMs) -> Result<(), ArchiveError> {
        let Some((client, policy)) = &self.lock else {
            return Ok(());
        };
        client
            .put_retention(key.as_ref(), policy.mode, from + policy.keep)
            .await
            .map_err(ArchiveError::from)
    }

    /// With `retention.mode`: gives the copy `to` the lock of `from` (its retention and
    /// legal hold), which a copy does not carry: a moved object stays as protected as it
    /// was.
    pub async fn carry_lock(&self, from: &ObjectPath, to: &ObjectPath) -> Result<(), ArchiveError> {
        let Some((client, _)) = &self.lock else {
            return Ok(());
        };
        let state = client.lock_state(from.as_ref()).await?;
        if let Some(retention) = state.retention {
            client
                .put_retention(to.as_ref(), retention.mode, retention.until)
                .await?;
        }
        if state.legal_hold {
            client.put_legal_hold(to.as_ref(), true).await?;
        }
        Ok(())
    }

    /// With `retention.mode`: sets or lifts the legal hold of the current version of
    /// `key`.
    pub async fn legal_hold(&self, key: &ObjectPath, on: bool) -> Result<(), ArchiveError> {
        let Some((client, _)) = &self.lock else {
            return Ok(());
        };
        client
            .put_legal_hold(key.as_ref(), on)
            .await
            .map_err(ArchiveError::from)
    }

    pub fn part_size(&self) -> u64 {
        self.config.part_size
    }

    pub fn max_parts_in_flight(&self) -> usize {
        self.config.max_parts_in_flight
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn describe(&self) -> String {
        match self.config.prefix.as_str() {
            "" => format!("s3://{}", self.config.bucket),
            prefix => format!("s3://{}/{prefix}", self.config.bucket),
        }
    }

    /// The key of a stored relative path, refusing anything that is not plain components
    /// (the same rule as on disk: a tampered database row cannot address another key).
    pub fn key_of(&self, relative: &str) -> Result<ObjectPath, ArchiveError> {
        layout::resolve(std::path::Path::new(""), relative)?;
        let key = match self.config.prefix.as_str() {
            "" => relative.to_string(),
            prefix => format!("{prefix}/{relative}"),
        };
        ObjectPath::parse(&key).map_err(|_| layout::UnsafePath(relative.to_string()).into())
    }

    /// A GET of `key` signed with the bucket's credentials (SigV4 in the query string),
    /// valid for `expires`: a link for someone who has no credentials. Computed locally,
    /// no request is sent.
    pub async fn presigned_get(
        &self,
        key: &ObjectPath,
        expires: Duration,
    ) -> Result<String, ArchiveError> {
        use object_store::signer::Signer;
        self.store
            .signed_url(reqwest::Method::GET, key, expires)
            .await
            .map(String::from)
            .map_err(|e| ArchiveError::s3("presign a GET of", key, e))
    }

    /// Starts a multipart upload of `key`.
    pub async fn create_upload(&self, key: &ObjectPath) -> Result<String, ArchiveError> {
        let options = PutMultipartOptions {
            attributes: content_type(key.as_ref()),
            ..Default::default()
        };
        self.store
            .create_multipart_opts(key, options)
            .await
            .map_err(|e| self.creating(key, e))
    }

    /// Uploads part `index` (0-based); returns its id for [`S3Bucket::complete`].
    pub async fn put_part(
        &self,
        key: &ObjectPath,
        upload_id: &str,
        index: usize,
        data: Bytes,
    ) -> Result<String, ArchiveError> {
        let id = upload_id.to_string();
        match self
            .store
            .put_part(key, &id, index, PutPayload::from(data))
            .await
        {
            Ok(part) => Ok(part.content_id),
            Err(object_store::Error::NotFound { .. }) => Err(ArchiveError::UploadGone {
                key: key.to_string(),
            }),
            Err(e) => Err(ArchiveError::s3("cannot upload a part of", key, e)),
        }
    }

    /// Assembles the object from its parts, in index order.
    pub async fn complete(
        &self,
        key: &ObjectPath,
        upload_id: &str,
        parts: Vec<String>,
    ) -> Result<(), ArchiveError> {
        let parts = parts
            .into_iter()
            .map(|content_id| PartId { content_id })
            .collect();
        match self
            .store
            .complete_multipart(key, &upload_id.to_string(), parts)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Err(ArchiveError::UploadGone {
                key: key.to_string(),
            }),
            Err(e) => Err(ArchiveError::s3("cannot complete the upload of", key, e)),
        }
    }

    /// Discards an upload and its parts; one that is already gone counts as discarded.
    pub async fn abort(&self, key: &ObjectPath, upload_id: &str) -> Result<(), ArchiveError> {
        match self
            .store
            .abort_multipart(key, &upload_id.to_string())
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ArchiveError::s3("cannot abort the upload of", key, e)),
        }
    }

    /// One `PUT` of a whole object (a file smaller than a part, `meeting.json`), with its
    /// SHA-256 as metadata when known.
    pub async fn put(
        &self,
        key: &ObjectPath,
        data: Bytes,
        sha256: Option<&str>,
    ) -> Result<(), ArchiveError> {
        let mut attributes = content_type(key.as_ref());
        if let Some(sha256) = sha256 {
            attributes.insert(
                Attribute::Metadata(SHA256_METADATA.into()),
                AttributeValue::from(sha256.to_string()),
            );
        }
        let options = PutOptions {
            attributes,
            ..Default::default()
        };
        self.store
            .put_opts(key, PutPayload::from(data), options)
            .await
            .map(drop)
            .map_err(|e| self.creating(key, e))
    }

    /// Classifies the error of a request creating `key`.
    fn creating(&self, key: &ObjectPath, e: object_store::Error) -> ArchiveError {
        match e {
            object_store::Error::NotFound { .. } => ArchiveError::BucketNotFound {
                bucket: self.config.bucket.clone(),
            },
            e => ArchiveError::s3("cannot upload", key, e),
        }
    }

    /// Gives a completed object its `sha256` metadata.
    ///
    /// A multipart upload's metadata is fixed when it is created, before a byte of the
    /// recording has been downloaded, so the hash can only be attached afterwards: by
    /// copying the object onto itself with `x-amz-metadata-directive: REPLACE` (a
    /// server-side copy; no byte travels). object_store's `copy` has no option for that, but
    /// it signs the client's default headers, so a client made for this one copy carries
    /// them. S3 copies at most `MAX_COPY_SIZE` bytes in one request.
    pub async fn set_sha256(&self, key: &ObjectPath, sha256: &str) -> Result<(), ArchiveError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-amz-metadata-directive"),
            HeaderValue::from_static("REPLACE"),
        );
        headers.insert(
            HeaderName::from_static("x-amz-meta-sha256"),
            HeaderValue::from_str(sha256).map_err(|_| ArchiveError::Header {
                header: "x-amz-meta-sha256",
                value: sha256.to_string(),
            })?,
        );
        // REPLACE replaces the content type too.
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(content_type_of(key.as_ref())),
        );
        let copier = builder(
            &self.config,
            self.options.clone().with_default_headers(headers),
        )
        .build()
        .map_err(ArchiveError::Client)?;
        copier
            .copy(key, key)
            .await
            .map_err(|e| ArchiveError::s3("cannot set the sha256 metadata of", key, e))
    }

    /// Copies `from` to `to` inside the bucket (server side; metadata kept).
    pub async fn copy(&self, from: &ObjectPath, to: &ObjectPath) -> Result<(), ArchiveError> {
        self.store
            .copy(from, to)
            .await
            .map_err(|e| ArchiveError::s3("cannot copy", from, e))
    }

    /// Deletes `key`; one already gone is no error.
    pub async fn delete(&self, key: &ObjectPath) -> Result<(), ArchiveError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ArchiveError::s3("cannot delete", key, e)),
        }
    }

    /// Size and `sha256` metadata of `key`; `None` if there is no such object.
    pub async fn head(&self, key: &ObjectPath) -> Result<Option<ObjectInfo>, ArchiveError> {
        let options = GetOptions {
            head: true,
            ..Default::default()
        };
        match self.store.get_opts(key, options).await {
            Ok(result) => Ok(Some(ObjectInfo {
                size: result.meta.size,
                etag: result.meta.e_tag.clone(),
                sha256: result
                    .attributes
                    .get(&Attribute::Metadata(SHA256_METADATA.into()))
                    .map(|v| v.to_string()),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(ArchiveError::s3("cannot look up", key, e)),
        }
    }

    /// Every object under the prefix, as (path relative to the prefix, size), sorted by
    /// path; what `verify` compares with the database. Multipart uploads in progress are
    /// not objects yet and do not appear.
    pub async fn list(&self) -> Result<Vec<(String, u64)>, ArchiveError> {
        let prefix = match self.config.prefix.as_str() {
            "" => None,
            p => Some(ObjectPath::from(p)),
        };
        let strip = match self.config.prefix.as_str() {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let mut objects = Vec::new();
        let mut listing = self.store.list(prefix.as_ref());
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|source| ArchiveError::S3 {
                action: "cannot list",
                key: prefix
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string),
                source,
            })?;
            let key = meta.location.to_string();
            let relative = key.strip_prefix(&strip).unwrap_or(&key).to_string();
            objects.push((relative, meta.size));
        }
        objects.sort();
        Ok(objects)
    }

    /// Streams the bytes of `key` (never buffered whole).
    pub async fn read(
        &self,
        key: &ObjectPath,
    ) -> Result<BoxStream<'static, Result<Bytes, ArchiveError>>, ArchiveError> {
        let result = self.store.get(key).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => ArchiveError::NotFound(key.to_string()),
            e => ArchiveError::s3("cannot read", key, e),
        })?;
        let key = key.clone();
        Ok(result
            .into_stream()
            .map_err(move |e| ArchiveError::s3("cannot read", &key, e))
            .boxed())
    }
}

fn content_type(key: &str) -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, content_type_of(key).into());
    attributes
}

/// The client for `config`. Virtual-hosted style with a custom endpoint needs the bucket in
/// the host (object_store expects the endpoint to include it), so it is put there.
fn builder(config: &S3Config, options: ClientOptions) -> AmazonS3Builder {
    let credentials = &config.credentials;
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&config.bucket)
        .with_region(&config.region)
        .with_access_key_id(credentials.access_key_id.expose())
        .with_secret_access_key(credentials.secret_access_key.expose())
        .with_virtual_hosted_style_request(!config.path_style)
        .with_allow_http(config.allow_http)
        .with_client_options(options);
    if let Some(token) = &credentials.session_token {
        builder = builder.with_token(token.expose());
    }
    if config.part_checksums {
        builder = builder.with_checksum_algorithm(Checksum::SHA256);
    }
    if let Some(endpoint) = &config.endpoint {
        let mut endpoint = endpoint.clone();
        if !config.path_style
            && let Some(host) = endpoint.host_str().map(str::to_string)
            && !host.starts_with(&format!("{}.", config.bucket))
        {
            // Checked by config validation: an endpoint URL has a host, so this cannot fail.
            let _ = endpoint.set_host(Some(&format!("{}.{host}", config.bucket)));
        }
        builder = builder.with_endpoint(endpoint.as_str().trim_end_matches('/'));
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::s3::S3Credentials;
    use wemeet_api::Secret;

    fn config(prefix: &str) -> S3Config {
        S3Config {
            bucket: "recordings".into(),
            endpoint: Some("http://127.0.0.1:9".parse().unwrap()),
            region: "us-east-1".into(),
            prefix: prefix.into(),
            path_style: true,
            allow_http: true,
            part_size: 5 << 20,
            max_parts_in_flight: 2,
            part_checksums: true,
            timeout: Duration::from_secs(5),
            credentials: S3Credentials {
                access_key_id: Secret::new("AKIAEXAMPLE"),
                secret_access_key: Secret::new("very-secret"),
                session_token: None,
            },
            object_lock: None,
        }
    }

    #[test]
    fn keys_follow_the_layout_under_the_prefix_and_refuse_escapes() {
        let s3 = S3Bucket::new(&config("wemeet/archive")).unwrap();
        assert_eq!(
            s3.key_of("2024/01/02/1-周会 🎉/9.mp4").unwrap().as_ref(),
            "wemeet/archive/2024/01/02/1-周会 🎉/9.mp4"
        );
        assert_eq!(
            S3Bucket::new(&config(""))
                .unwrap()
                .key_of("a/b.mp4")
                .unwrap()
                .as_ref(),
            "a/b.mp4"
        );
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "a//b"] {
            assert!(s3.key_of(bad).is_err(), "{bad:?}");
        }
        assert_eq!(s3.describe(), "s3://recordings/wemeet/archive");
    }

    #[test]
    fn debug_output_hides_the_credentials() {
        let s3 = S3Bucket::new(&config("")).unwrap();
        let debug = format!("{s3:?}");
        assert!(
            !debug.contains("very-secret") && !debug.contains("AKIAEXAMPLE"),
            "{debug}"
        );
    }

    #[test]
    fn content_types_follow_the_name() {
        assert_eq!(content_type_of("a/meeting.json"), "application/json");
        assert_eq!(content_type_of("a/1.mp4"), "video/mp4");
    }
}
