//! One attempt at one file: resume from the last checkpoint, stream, hash, commit.

use super::{Downloader, hash_state};
use crate::scheduler::ListError;
use crate::storage::{PartFile, StorageError};
use crate::store::{Checkpoint, FileRow, StoreError};
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, RANGE};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Addresses expire 6 hours after they are issued.
pub const ADDRESS_TTL: Duration = Duration::from_secs(6 * 3600);
/// An address this close to expiry is refreshed before a transfer starts on it.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(15 * 60);

/// Why an attempt did not archive the file, and so what to do next.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("the download address is missing or expired")]
    AddressExpired,
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
    #[error("the API no longer lists this file")]
    NotListed,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    List(#[from] ListError),
    #[error("stopped by shutdown")]
    Cancelled,
}

fn network(e: reqwest::Error) -> TransferError {
    // `without_url`: the URL carries the download token, a secret.
    TransferError::Network(e.without_url().to_string())
}

/// Is an address issued at `issued_at_ms` still safe to start a transfer on?
pub fn address_is_fresh(issued_at_ms: Option<i64>, now_ms: i64) -> bool {
    let limit = (ADDRESS_TTL - EXPIRY_MARGIN).as_millis() as i64;
    issued_at_ms.is_some_and(|t| now_ms - t < limit)
}

/// Where an attempt starts: the durable offset and the hash of the bytes before it.
struct ResumePoint {
    offset: u64,
    hasher: Sha256,
    etag: Option<String>,
}

impl Downloader {
    /// Runs one attempt; on success returns the SHA-256 (lowercase hex) of the archived file.
    pub(super) async fn attempt(
        &self,
        row: &FileRow,
        cancel: &CancellationToken,
    ) -> Result<String, TransferError> {
        let size = row.record_size as u64;
        let address = match &row.download_address {
            Some(a) if address_is_fresh(row.address_issued_at, crate::store::now_ms()) => a,
            _ => return Err(TransferError::AddressExpired),
        };
        let ResumePoint {
            mut offset,
            mut hasher,
            etag,
        } = self.resume_point(row).await?;
        let mut request = self.http.get(address.as_str());
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
            StatusCode::RANGE_NOT_SATISFIABLE if offset == size => {
                tracing::debug!(file = %row.record_file_id, "all bytes were already on disk");
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
                        .restart(row, format!("Content-Range `{got}` instead of `{expected}`"))
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
                    // Forget the old checkpoint before the `.part` file is cut: a crash in
                    // between must not resume old bytes with a new file's tail.
                    self.store
                        .save_checkpoint(&row.record_file_id, &Checkpoint::default())
                        .await?;
                    offset = 0;
                    hasher = Sha256::new();
                }
            }
            other => return Err(TransferError::Status(other.as_u16())),
        }
        let remaining = size - offset;
        if status != StatusCode::RANGE_NOT_SATISFIABLE {
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
            if ["xml", "html", "json"].iter().any(|t| content_type.contains(t)) {
                return Err(TransferError::Inconsistent(format!(
                    "the host sent `{content_type}`, not a recording"
                )));
            }
        }

        let mut part = self.storage.open_part(&row.path, offset).await?;
        let mut durable = offset;
        let mut body = response.bytes_stream();
        loop {
            let next = tokio::select! {
                next = body.next() => next,
                () = cancel.cancelled() => {
                    self.checkpoint(row, &mut part, &hasher, &new_etag).await?;
                    return Err(TransferError::Cancelled);
                }
            };
            match next {
                Some(Ok(chunk)) => {
                    if part.len() + chunk.len() as u64 > size {
                        return Err(self
                            .restart(row, "the host sent more bytes than record_size".into())
                            .await);
                    }
                    // After a failed write the file may hold a torn tail: the last checkpoint
                    // stays the resume point and the tail is cut when the file is reopened.
                    part.append(&chunk, size - part.len()).await?;
                    hasher.update(&chunk);
                    if part.len() - durable >= self.config.checkpoint_bytes {
                        self.checkpoint(row, &mut part, &hasher, &new_etag).await?;
                        durable = part.len();
                    }
                }
                Some(Err(e)) => {
                    self.checkpoint(row, &mut part, &hasher, &new_etag).await?;
                    return Err(network(e));
                }
                None => break,
            }
        }
        if part.len() != size {
            self.checkpoint(row, &mut part, &hasher, &new_etag).await?;
            return Err(TransferError::Truncated {
                got: part.len(),
                expected: size,
            });
        }
        let sha256 = hex::encode(hasher.finalize());
        self.storage.commit(&row.path, part).await?;
        self.store
            .mark_archived(&row.record_file_id, size as i64, &sha256)
            .await?;
        Ok(sha256)
    }

    /// The durable start of this attempt: the last checkpoint if its bytes are still in the
    /// `.part` file, with the saved hash state (or, failing that, the hash of those bytes).
    async fn resume_point(&self, row: &FileRow) -> Result<ResumePoint, TransferError> {
        let fresh = ResumePoint {
            offset: 0,
            hasher: Sha256::new(),
            etag: None,
        };
        let offset = row.bytes_done.max(0) as u64;
        if offset == 0 || offset > row.record_size as u64 {
            return Ok(fresh);
        }
        match self.storage.part_len(&row.path).await? {
            Some(len) if len >= offset => {}
            _ => return Ok(fresh),
        }
        let hasher = match row.hash_state.as_deref().and_then(hash_state::restore) {
            Some(h) => h,
            None => {
                tracing::info!(file = %row.record_file_id, offset, "re-hashing the partial file");
                self.hash_prefix(&row.path, offset).await?
            }
        };
        Ok(ResumePoint {
            offset,
            hasher,
            etag: row.etag.clone(),
        })
    }

    async fn hash_prefix(&self, relative: &str, len: u64) -> Result<Sha256, TransferError> {
        use tokio::io::AsyncReadExt;
        let path = self.storage.part_path_of(relative)?;
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

    /// Makes the bytes written so far durable, then records them as the resume point.
    async fn checkpoint(
        &self,
        row: &FileRow,
        part: &mut PartFile,
        hasher: &Sha256,
        etag: &Option<String>,
    ) -> Result<(), TransferError> {
        part.sync().await?;
        self.store
            .save_checkpoint(
                &row.record_file_id,
                &Checkpoint {
                    bytes_done: part.len() as i64,
                    etag: etag.clone(),
                    hash_state: Some(hash_state::save(hasher)),
                },
            )
            .await?;
        Ok(())
    }

    /// Forgets the checkpoint so the next attempt starts from zero, and says why.
    async fn restart(&self, row: &FileRow, why: String) -> TransferError {
        tracing::warn!(file = %row.record_file_id, reason = %why, "restarting the transfer from zero");
        match self
            .store
            .save_checkpoint(&row.record_file_id, &Checkpoint::default())
            .await
        {
            Ok(()) => TransferError::Inconsistent(why),
            Err(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_refreshed_before_they_expire() {
        let now = 100 * 3600 * 1000;
        let hour = 3600 * 1000;
        assert!(address_is_fresh(Some(now - hour), now));
        assert!(address_is_fresh(Some(now - 5 * hour), now));
        assert!(!address_is_fresh(Some(now - 6 * hour + 60_000), now));
        assert!(!address_is_fresh(Some(now - 7 * hour), now));
        assert!(!address_is_fresh(None, now));
    }
}
