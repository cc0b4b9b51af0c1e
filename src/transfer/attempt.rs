//! One attempt at one file: an address, the resume point, the request, the verdict on the
//! answer (`response`), then the body streamed into the archive's writer.

use super::Pool;
use super::addresses::AddressError;
use super::response::{self, ResponseHead, Verdict};
use crate::archive::{ArchiveWriter, WriteError, Written};
use crate::errors::Class;
use crate::state::{DbError, FileRow, FileStatus};
use crate::time::UnixMs;
use futures::StreamExt;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, RANGE};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wemeet_api::Secret;

/// The largest safety margin kept before an address expires.
const MAX_EXPIRY_MARGIN: Duration = Duration::from_secs(15 * 60);

/// Why an attempt did not archive the file; its [`class`](TransferError::class) says what
/// the pool does next.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// `/v1/addresses` lists no address for the file (or no such file).
    #[error("GET /v1/addresses gives no download address for this file")]
    NoAddress,
    #[error("the download host refused the address (HTTP {0}); it has probably expired")]
    AddressRejected(u16),
    #[error("the download host answered HTTP {0}")]
    Status(u16),
    #[error("network error")]
    Network(#[source] reqwest::Error),
    #[error("the body ended after {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    /// The host's answer does not fit what we know (`response` says how); the partial
    /// file is discarded.
    #[error("{0}; restarting the file from zero")]
    Unfit(String),
    /// Getting the address failed.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The archive's writer stopped.
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("stopped by shutdown")]
    Cancelled,
}

impl TransferError {
    /// What the pool does next: stop every worker, pause without spending an attempt,
    /// forget the address, give the file up at once, or count the attempt and retry after
    /// a backoff. A missing address is retried: the next attempt asks again.
    pub fn class(&self) -> Class {
        match self {
            Self::NoAddress
            | Self::Status(_)
            | Self::Network(_)
            | Self::Truncated { .. }
            | Self::Unfit(_) => Class::Retry,
            Self::AddressRejected(_) => Class::RefreshAddress,
            Self::Address(e) => e.class(),
            Self::Write(e) => e.class(),
            Self::Db(_) => Class::Stop,
            Self::Cancelled => Class::RetryLater,
        }
    }

    /// Splits off the database's failure: the process's own, whatever step met it.
    pub fn database(self) -> Result<DbError, Self> {
        match self {
            Self::Db(e) | Self::Write(WriteError::Db(e)) | Self::Address(AddressError::Db(e)) => {
                Ok(e)
            }
            other => Err(other),
        }
    }

    /// Stopped by the shutdown (not a failure: the next run resumes the file).
    pub fn is_shutdown(&self) -> bool {
        matches!(self, Self::Cancelled | Self::Write(WriteError::Cancelled))
    }

    /// What the file becomes once this error used its last attempt: the API giving no
    /// way to download it is `unavailable`, anything else `failed`.
    pub fn exhausted(&self) -> FileStatus {
        match (self.class(), self) {
            (Class::GiveUp, _) | (_, Self::NoAddress) => FileStatus::Unavailable,
            _ => FileStatus::Failed,
        }
    }
}

fn network(e: reqwest::Error) -> TransferError {
    // `without_url`: the URL carries the download token, a secret.
    TransferError::Network(e.without_url())
}

/// Is an address issued at `issued_at`, valid for `ttl`, still safe to start a transfer
/// on that will take `needed` at the observed throughput? A margin (a tenth of the TTL, at
/// most 15 minutes) covers clock skew and a slower network than observed.
pub fn address_is_fresh(
    issued_at: Option<UnixMs>,
    now: UnixMs,
    ttl: Duration,
    needed: Duration,
) -> bool {
    let margin = (ttl / 10).min(MAX_EXPIRY_MARGIN);
    issued_at.is_some_and(|t| now + needed < t + ttl - margin)
}

impl Pool {
    /// Runs one attempt; on success returns what was archived.
    pub(super) async fn attempt(
        &self,
        row: &FileRow,
        cancel: &CancellationToken,
    ) -> Result<Written, TransferError> {
        let needed = self.time_needed(row.record_size.saturating_sub(row.bytes_done));
        let address = self.address_for(row, needed).await?;
        let resume = self.archive.resume(row).await?;
        if row.size_known && resume.offset() == row.record_size {
            // Every byte is durable already (the last run stopped between its last
            // checkpoint and the commit): nothing is left to download.
            let etag = resume.etag().map(str::to_string);
            let writer = resume.open(etag, row.record_size).await?;
            return self.archived(row, writer, cancel).await;
        }
        let mut request = self.http.get(address.expose());
        if resume.offset() > 0 {
            request = request.header(RANGE, format!("bytes={}-", resume.offset()));
            if let Some(etag) = resume.etag() {
                request = request.header(IF_RANGE, etag);
            }
        }
        let response = tokio::select! {
            r = request.send() => r.map_err(network)?,
            () = cancel.cancelled() => return Err(TransferError::Cancelled),
        };
        let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok());
        let etag = header(ETAG).filter(|v| v.starts_with('"'));
        let answer = ResponseHead {
            status: response.status().as_u16(),
            content_range: header(CONTENT_RANGE),
            etag,
            content_length: response.content_length(),
            content_type: header(CONTENT_TYPE),
        };
        // An artifact's size is what its first response announces; every resume is then
        // held to it.
        let size = match row.size_known {
            true => row.record_size,
            false => answer.content_length.unwrap_or(0),
        };
        let verdict = response::judge(&answer, resume.offset(), size, resume.etag());
        let etag = etag.map(str::to_string);
        let resume = match verdict {
            Verdict::Body { from_zero: false } => resume,
            Verdict::Body { from_zero: true } => {
                tracing::info!(
                    file = %row.record_file_id, offset = resume.offset(),
                    "server sent the whole file (Range ignored or file changed); restarting"
                );
                // Forget the old checkpoint (and uploaded parts) before the `.part` file
                // is cut: a crash in between must not resume old bytes with a new
                // file's tail.
                self.store.forget_progress(&row.record_file_id).await?;
                resume.restarted()
            }
            Verdict::Refused(status) => return Err(TransferError::AddressRejected(status)),
            Verdict::Restart(why) => return Err(self.restart(row, why).await),
            Verdict::NotTheRecording(why) => return Err(TransferError::Unfit(why)),
            Verdict::Status(status) => return Err(TransferError::Status(status)),
        };
        if !row.size_known {
            self.store
                .set_announced_size(&row.record_file_id, size)
                .await?;
        }
        let writer = resume.open(etag, size).await?;
        self.stream(row, size, response, writer, cancel).await
    }

    /// Streams the body into `writer` and finishes it once every byte is there.
    async fn stream(
        &self,
        row: &FileRow,
        size: u64,
        response: reqwest::Response,
        mut writer: Box<dyn ArchiveWriter>,
        cancel: &CancellationToken,
    ) -> Result<Written, TransferError> {
        let mut body = response.bytes_stream();
        let in_flight = self.progress.transfer(&row.path, size, writer.received());
        loop {
            let next = tokio::select! {
                next = body.next() => Some(next),
                () = cancel.cancelled() => None,
            };
            let Some(next) = next else {
                // Hang up first: bytes the host goes on sending while the checkpoint is
                // made would be fetched again by the next run.
                drop(body);
                writer.pause().await?;
                return Err(TransferError::Cancelled);
            };
            match next {
                Some(Ok(chunk)) => {
                    if writer.received() + chunk.len() as u64 > size {
                        writer.abandon().await;
                        return Err(self
                            .restart(row, "the host sent more bytes than record_size".into())
                            .await);
                    }
                    let len = chunk.len() as u64;
                    writer.write(chunk, cancel).await?;
                    in_flight.received(len);
                }
                Some(Err(e)) => {
                    writer.pause().await?;
                    return Err(network(e));
                }
                None => break,
            }
        }
        if writer.received() != size {
            writer.pause().await?;
            return Err(TransferError::Truncated {
                got: writer.received(),
                expected: size,
            });
        }
        self.archived(row, writer, cancel).await
    }

    /// Has `writer` make the file durable and checked, then records it `archived`: the
    /// backend writes bytes, the state alone says what they became.
    async fn archived(
        &self,
        row: &FileRow,
        mut writer: Box<dyn ArchiveWriter>,
        cancel: &CancellationToken,
    ) -> Result<Written, TransferError> {
        let written = writer.finish(cancel).await?;
        let id = &row.record_file_id;
        self.store
            .mark_archived(id, written.size, &written.sha256)
            .await?;
        // A hold placed meanwhile by `hold add` may have listed the recording's archived
        // objects before this one was among them: looked at again once it is.
        if !written.held
            && !self
                .store
                .holds_on(&row.meeting_record_id)
                .await?
                .is_empty()
            && let Err(e) = self.archive.set_legal_hold(&row.path, true).await
        {
            tracing::warn!(file = %id, location = %written.location, error = %crate::errors::chain(&e),
                "a hold was placed while the file was archived and its S3 legal hold could not be \
                 set; `hold add` the recording again to set it");
        }
        Ok(written)
    }

    /// The address this attempt starts on: the stored one (from the listing, or fetched for
    /// a sibling) if it outlives the transfer at the observed throughput, else a fresh one
    /// from `/v1/addresses`. A fresh one is taken even for a transfer longer than its life:
    /// the host checks it when the transfer starts, and nothing fresher exists.
    async fn address_for(&self, row: &FileRow, needed: Duration) -> Result<Secret, TransferError> {
        let ttl = self.config.address_ttl;
        let usable = |f: &FileRow, needed: Duration| {
            f.download_address
                .clone()
                .filter(|_| address_is_fresh(f.address_issued_at, UnixMs::now(), ttl, needed))
        };
        if let Some(address) = usable(row, needed) {
            return Ok(address);
        }
        let refreshed = self.addresses.refresh(row).await?;
        refreshed
            .and_then(|f| usable(&f, Duration::ZERO))
            .ok_or(TransferError::NoAddress)
    }

    /// Forgets the checkpoint (and uploaded parts) so the next attempt starts from zero,
    /// and says why.
    async fn restart(&self, row: &FileRow, why: String) -> TransferError {
        tracing::warn!(file = %row.record_file_id, reason = %why, "restarting the transfer from zero");
        match self.store.forget_progress(&row.record_file_id).await {
            Ok(()) => TransferError::Unfit(why),
            Err(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{ArchiveError, Mismatch};
    use crate::client::CallError;
    use wemeet_api::{ApiError, Endpoint};

    fn api(code: i64) -> TransferError {
        let e = ApiError::from_reply(
            Endpoint::Addresses,
            400,
            Some(code),
            String::new(),
            "t".into(),
        );
        TransferError::Address(AddressError::Api(CallError::Api(e)))
    }

    #[test]
    fn each_failure_says_once_what_the_pool_does() {
        let refused = TransferError::AddressRejected(403);
        assert_eq!(refused.class(), Class::RefreshAddress);
        assert_eq!(refused.exhausted(), FileStatus::Failed);
        assert_eq!(TransferError::NoAddress.class(), Class::Retry);
        assert_eq!(
            TransferError::NoAddress.exhausted(),
            FileStatus::Unavailable
        );
        assert_eq!(api(190_004).class(), Class::GiveUp);
        assert_eq!(api(190_004).exhausted(), FileStatus::Unavailable);
        assert_eq!(api(190_310).class(), Class::Retry);
        assert_eq!(api(500_014).class(), Class::Stop);
        let full = ArchiveError::DiskFull {
            path: "a.mp4".into(),
            needed: 1,
        };
        assert_eq!(
            TransferError::from(WriteError::from(full)).class(),
            Class::RetryLater
        );
        let short = Mismatch::Short {
            written: 1,
            size: 2,
        };
        assert_eq!(
            TransferError::from(WriteError::from(short)).class(),
            Class::Retry
        );
        assert!(TransferError::from(WriteError::Cancelled).is_shutdown());
        let db = || DbError::from(sqlx::Error::PoolClosed);
        for e in [
            TransferError::Db(db()),
            TransferError::Write(WriteError::Db(db())),
            TransferError::Address(AddressError::Db(db())),
        ] {
            assert_eq!(e.class(), Class::Stop);
            assert!(e.database().is_ok());
        }
    }

    #[test]
    fn a_message_never_repeats_its_cause() {
        let e = TransferError::Db(DbError::from(sqlx::Error::PoolClosed));
        let cause = sqlx::Error::PoolClosed.to_string();
        assert_eq!(crate::errors::chain(&e), format!("database error: {cause}"));
        let e = api(500_014);
        let text = crate::errors::chain(&e);
        assert_eq!(text.matches("api.operator_id").count(), 1, "{text}");
        assert_eq!(text.matches("录制管理").count(), 1, "{text}");
    }

    #[test]
    fn addresses_are_refreshed_before_they_expire() {
        let hour = 3600 * 1000;
        let now = UnixMs(100 * hour);
        let ago = |ms: i64| Some(UnixMs(now.0 - ms));
        let ttl = Duration::from_secs(6 * 3600);
        let fresh = |issued, needed| address_is_fresh(issued, now, ttl, needed);
        assert!(fresh(ago(hour), Duration::ZERO));
        assert!(fresh(ago(5 * hour), Duration::ZERO));
        assert!(!fresh(ago(6 * hour - 60_000), Duration::ZERO));
        assert!(!fresh(ago(7 * hour), Duration::ZERO));
        assert!(!fresh(None, Duration::ZERO));
        // 1 h old, but the transfer would need 5 h at the observed throughput.
        assert!(!fresh(ago(hour), Duration::from_secs(5 * 3600)));
        assert!(fresh(ago(hour), Duration::from_secs(4 * 3600)));
    }
}
