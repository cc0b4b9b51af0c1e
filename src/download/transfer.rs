//! One attempt at one file: resume from the last checkpoint, stream, hash, commit.
//!
//! The HTTP side lives here; where the bytes go (a `.part` file or a multipart upload) is
//! the sink's business (`sink.rs`, `s3_sink.rs`).

use super::addresses::AddressError;
use super::s3_sink::{self, ResumedUpload, S3Sink};
use super::sink::{LocalSink, Sink};
use super::{Downloader, hash_state};
use crate::api::ApiError;
use crate::storage::{LocalStorage, Storage, StorageError};
use crate::store::{FileRow, StoreError, now_ms};
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, RANGE};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The largest safety margin kept before an address expires.
const MAX_EXPIRY_MARGIN: Duration = Duration::from_secs(15 * 60);

/// Why an attempt did not archive the file, and so what to do next.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// `/v1/addresses` lists no address for the file (or no such file).
    #[error("GET /v1/addresses gives no download address for this file")]
    NoAddress,
    #[error("the download host refused the address (HTTP {0}); it has probably expired")]
    AddressRejected(u16),
    #[error("the download host answered HTTP {0}")]
    Status(u16),
    #[error("network error: {0}")]
    Network(String),
    #[error("the body ended after {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    /// The server's answer does not fit what we know; the partial file is discarded.
    #[error("{0}; restarting the file from zero")]
    Inconsistent(String),
    /// Getting the address failed: its class says whether a retry can help.
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stopped by shutdown")]
    Cancelled,
}

impl From<AddressError> for TransferError {
    fn from(e: AddressError) -> Self {
        match e {
            AddressError::Api(e) => Self::Api(e),
            AddressError::Store(e) => Self::Store(e),
        }
    }
}

fn network(e: reqwest::Error) -> TransferError {
    // `without_url`: the URL carries the download token, a secret.
    TransferError::Network(e.without_url().to_string())
}

/// Is an address issued at `issued_at_ms`, valid for `ttl`, still safe to start a transfer
/// on that will take `needed` at the observed throughput? A margin (a tenth of the TTL, at
/// most 15 minutes) covers clock skew and a slower network than observed.
pub fn address_is_fresh(
    issued_at_ms: Option<i64>,
    now_ms: i64,
    ttl: Duration,
    needed: Duration,
) -> bool {
    let margin = (ttl / 10).min(MAX_EXPIRY_MARGIN);
    let deadline = |t: i64| t + ttl.as_millis() as i64 - margin.as_millis() as i64;
    issued_at_ms.is_some_and(|t| now_ms + (needed.as_millis() as i64) < deadline(t))
}

/// Where an attempt starts: the durable offset, the hash of the bytes before it, and (in a
/// bucket) the upload to continue.
struct ResumePoint {
    offset: u64,
    hasher: Sha256,
    etag: Option<String>,
    upload: Option<ResumedUpload>,
}

impl Downloader {
    /// Runs one attempt; on success returns the SHA-256 (lowercase hex) of the archived file.
    pub(super) async fn attempt(
        &self,
        row: &FileRow,
        cancel: &CancellationToken,
    ) -> Result<String, TransferError> {
        let size = row.record_size as u64;
        let needed = self.time_needed(size.saturating_sub(row.bytes_done.max(0) as u64));
        let address = self.address_for(row, needed).await?;
        let ResumePoint {
            mut offset,
            mut hasher,
            etag,
            upload,
        } = self.resume_point(row).await?;
        if offset == size {
            // Every byte is durable already (the last run stopped between its last
            // checkpoint and the commit): nothing is left to download.
            let mut sink = self.open_sink(row, offset, hasher, etag, upload).await?;
            return sink.finish(cancel).await;
        }
        let mut request = self.http.get(address);
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
            if let Some(etag) = &etag {
                request = request.header(IF_RANGE, etag.as_str());
            }
        }
        let response = tokio::select! {
            r = request.send() => r.map_err(network)?,
            () = cancel.cancelled() => return Err(TransferError::Cancelled),
        };
        let status = response.status();
        let new_etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.starts_with('"')) // only strong ETags identify the bytes
            .map(str::to_string);
        match status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                return Err(TransferError::AddressRejected(status.as_u16()));
            }
            StatusCode::PARTIAL_CONTENT => {
                let expected = format!("bytes {offset}-{}/{size}", size.saturating_sub(1));
                let got = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if got != expected {
                    return Err(self
                        .restart(
                            row,
                            format!("Content-Range `{got}` instead of `{expected}`"),
                        )
                        .await);
                }
                if etag.is_some() && new_etag != etag {
                    return Err(self.restart(row, "the ETag changed".into()).await);
                }
            }
            StatusCode::OK => {
                if offset > 0 {
                    tracing::info!(
                        file = %row.record_file_id, offset,
                        "server sent the whole file (Range ignored or file changed); restarting"
                    );
                    // Forget the old checkpoint (and uploaded parts) before the `.part` file
                    // is cut: a crash in between must not resume old bytes with a new
                    // file's tail.
                    self.store.forget_progress(&row.record_file_id).await?;
                    offset = 0;
                    hasher = Sha256::new();
                }
            }
            other => return Err(TransferError::Status(other.as_u16())),
        }
        let remaining = size - offset;
        // Never write a body that cannot be the recording: an error page has another
        // length or type than the listing promised.
        if response.content_length() != Some(remaining) {
            return Err(TransferError::Inconsistent(format!(
                "the host announced {:?} bytes where {remaining} were expected",
                response.content_length()
            )));
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if ["xml", "html", "json"]
            .iter()
            .any(|t| content_type.contains(t))
        {
            return Err(TransferError::Inconsistent(format!(
                "the host sent `{content_type}`, not a recording"
            )));
        }

        let mut sink = self
            .open_sink(row, offset, hasher, new_etag, upload)
            .await?;
        let mut body = response.bytes_stream();
        loop {
            let next = tokio::select! {
                next = body.next() => next,
                () = cancel.cancelled() => {
                    sink.pause().await?;
                    return Err(TransferError::Cancelled);
                }
            };
            match next {
                Some(Ok(chunk)) => {
                    if sink.received() + chunk.len() as u64 > size {
                        sink.abandon().await;
                        return Err(self
                            .restart(row, "the host sent more bytes than record_size".into())
                            .await);
                    }
                    sink.write(chunk, cancel).await?;
                }
                Some(Err(e)) => {
                    sink.pause().await?;
                    return Err(network(e));
                }
                None => break,
            }
        }
        if sink.received() != size {
            sink.pause().await?;
            return Err(TransferError::Truncated {
                got: sink.received(),
                expected: size,
            });
        }
        sink.finish(cancel).await
    }

    /// The address this attempt starts on: the stored one (from the listing, or fetched for
    /// a sibling) if it outlives the transfer at the observed throughput, else a fresh one
    /// from `/v1/addresses`. A fresh one is taken even for a transfer longer than its life:
    /// the host checks it when the transfer starts, and nothing fresher exists.
    async fn address_for(&self, row: &FileRow, needed: Duration) -> Result<String, TransferError> {
        let ttl = self.config.address_ttl;
        let usable = |f: &FileRow, needed: Duration| {
            f.download_address
                .clone()
                .filter(|_| address_is_fresh(f.address_issued_at, now_ms(), ttl, needed))
        };
        if let Some(address) = usable(row, needed) {
            return Ok(address);
        }
        let refreshed = self.addresses.refresh(row).await?;
        refreshed
            .and_then(|f| usable(&f, Duration::ZERO))
            .ok_or(TransferError::NoAddress)
    }

    /// Where `offset` bytes of `row` go next: its `.part` file, or its upload.
    async fn open_sink(
        &self,
        row: &FileRow,
        offset: u64,
        hasher: Sha256,
        etag: Option<String>,
        upload: Option<ResumedUpload>,
    ) -> Result<Sink, TransferError> {
        Ok(match &self.storage {
            Storage::Local(local) => Sink::Local(
                LocalSink::open(
                    local,
                    &self.store,
                    row,
                    offset,
                    hasher,
                    etag,
                    self.config.checkpoint_bytes,
                )
                .await?,
            ),
            Storage::S3(s3) => {
                Sink::S3(S3Sink::open(s3, &self.store, row, offset, hasher, etag, upload).await?)
            }
        })
    }

    /// The durable start of this attempt. On local disk: the last checkpoint if its bytes
    /// are still in the `.part` file, with the saved hash state (or, failing that, the hash
    /// of those bytes). In a bucket: the end of the contiguous parts of the file's upload.
    async fn resume_point(&self, row: &FileRow) -> Result<ResumePoint, TransferError> {
        let local = match &self.storage {
            Storage::Local(local) => local,
            Storage::S3(s3) => {
                let (offset, hasher, upload) = s3_sink::resume_point(s3, &self.store, row).await?;
                return Ok(ResumePoint {
                    offset,
                    hasher: hasher.unwrap_or_else(Sha256::new),
                    etag: row.etag.clone().filter(|_| offset > 0),
                    upload,
                });
            }
        };
        let fresh = ResumePoint {
            offset: 0,
            hasher: Sha256::new(),
            etag: None,
            upload: None,
        };
        let offset = row.bytes_done.max(0) as u64;
        if offset == 0 || offset > row.record_size as u64 {
            return Ok(fresh);
        }
        match local.part_len(&row.path).await? {
            Some(len) if len >= offset => {}
            _ => return Ok(fresh),
        }
        let hasher = match row.hash_state.as_deref().and_then(hash_state::restore) {
            Some(h) => h,
            None => {
                tracing::info!(file = %row.record_file_id, offset, "re-hashing the partial file");
                hash_prefix(local, &row.path, offset).await?
            }
        };
        Ok(ResumePoint {
            offset,
            hasher,
            etag: row.etag.clone(),
            upload: None,
        })
    }

    /// Forgets the checkpoint (and uploaded parts) so the next attempt starts from zero,
    /// and says why.
    async fn restart(&self, row: &FileRow, why: String) -> TransferError {
        tracing::warn!(file = %row.record_file_id, reason = %why, "restarting the transfer from zero");
        match self.store.forget_progress(&row.record_file_id).await {
            Ok(()) => TransferError::Inconsistent(why),
            Err(e) => e.into(),
        }
    }
}

async fn hash_prefix(
    local: &LocalStorage,
    relative: &str,
    len: u64,
) -> Result<Sha256, TransferError> {
    use tokio::io::AsyncReadExt;
    let path = local.part_path_of(relative)?;
    let io = |e| {
        TransferError::Storage(StorageError::Io {
            action: "cannot read",
            path: path.clone(),
            source: e,
        })
    };
    let file = tokio::fs::File::open(&path).await.map_err(io)?;
    let mut reader = file.take(len);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_refreshed_before_they_expire() {
        let now = 100 * 3600 * 1000;
        let hour = 3600 * 1000;
        let ttl = Duration::from_secs(6 * 3600);
        let fresh = |issued, needed| address_is_fresh(issued, now, ttl, needed);
        assert!(fresh(Some(now - hour), Duration::ZERO));
        assert!(fresh(Some(now - 5 * hour), Duration::ZERO));
        assert!(!fresh(Some(now - 6 * hour + 60_000), Duration::ZERO));
        assert!(!fresh(Some(now - 7 * hour), Duration::ZERO));
        assert!(!fresh(None, Duration::ZERO));
        // 1 h old, but the transfer would need 5 h at the observed throughput.
        assert!(!fresh(Some(now - hour), Duration::from_secs(5 * 3600)));
        assert!(fresh(Some(now - hour), Duration::from_secs(4 * 3600)));
    }
}
