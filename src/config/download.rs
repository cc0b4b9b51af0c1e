//! The `[download]` table (its name in users' files): how `transfer::Pool` fetches
//! recordings, and which artifacts of each it archives.

use super::{Choice, ConfigError, duration, invalid, timeout};
use crate::state::FileKind;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct TransferConfig {
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
    pub artifacts: Vec<FileKind>,
    /// How long after a recording ended its transcripts are waited for (they can appear
    /// hours after transcoding); then the wait ends quietly.
    pub artifact_wait: Duration,
}

impl TransferConfig {
    /// Whether artifacts of `kind` are archived.
    pub fn wants(&self, kind: FileKind) -> bool {
        self.artifacts.contains(&kind)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDownload {
    workers: i64,
    max_attempts: i64,
    checkpoint_bytes: i64,
    read_timeout: String,
    disk_full_retry: String,
    address_ttl: String,
    artifacts: Vec<Choice<FileKind>>,
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
            artifacts: vec![Choice::Known(FileKind::Video)],
            artifact_wait: "2d".into(),
        }
    }
}

pub(super) fn validate_download(raw: RawDownload) -> Result<TransferConfig, ConfigError> {
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
    let read_timeout = timeout("download.read_timeout", &raw.read_timeout, "60s")?;
    let artifacts = artifacts(raw.artifacts)?;
    Ok(TransferConfig {
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

/// The kinds named, which must include the video: the recording itself is the point.
fn artifacts(names: Vec<Choice<FileKind>>) -> Result<Vec<FileKind>, ConfigError> {
    let artifacts = names
        .into_iter()
        .map(|name| {
            name.known("download.artifacts", |name| {
                format!(
                    "`{name}` is not a kind of artifact; use a list of \"video\", \"audio\", \
                     \"transcript\", e.g. [\"video\", \"transcript\"]"
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !artifacts.contains(&FileKind::Video) {
        return Err(invalid(
            "download.artifacts",
            "must include \"video\": the recording itself is always archived, its audio and \
             transcripts beside it",
        ));
    }
    Ok(artifacts)
}
